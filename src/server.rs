//! Assembly: the shared core, the listeners, and graceful shutdown.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use foldhash::fast::RandomState;
use jetway_protocols::nats::ServerInfo;
use parking_lot::{Mutex, RwLock};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::account::auth::{AfterReload, Auth, Credentials, Login};
use crate::account::mappings::SubjectMappings;
use crate::account::users::ConnectionKind;
use crate::account::{Account, Accounts, GLOBAL_ACCOUNT};
use crate::config::Config;
use crate::nats::client::{ClientShared, CloseReason};
use crate::router::Message;
use crate::stats::ServerStats;
use crate::tls::{ReloadableAcceptor, TlsError};

/// The nats-server version whose client-visible behaviour Jetway implements. Clients gate
/// features on it; raise it as features land.
pub const NATS_COMPAT_VERSION: &str = "2.11.0";
/// Jetway's own version.
pub const JETWAY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("can't listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    JetStream(#[from] crate::jetstream::JetStreamError),
}

/// State shared by every task of one server.
pub struct Core {
    pub config: Config,
    pub server_id: String,
    pub server_name: String,
    pub started: SystemTime,
    pub accounts: Accounts,
    /// Where server events and advisories are published (`system_account`, default `$SYS`).
    pub system_account: Arc<Account>,
    pub stats: Arc<ServerStats>,
    /// Monitoring state that outlives connections: closed connections, event sequence, metrics.
    pub monitor: crate::monitor::MonitorState,
    /// Who may log in; replaced by a configuration reload (see [`ServerHandle::reload_with`]).
    auth: RwLock<Arc<Auth>>,
    /// Keys the connections' nkey challenges (see [`Core::nonce_of`]).
    nonce_key: ring::hmac::Key,
    /// Cancelled to stop every accept loop (shutdown and lame-duck mode).
    pub stop_accepting: CancellationToken,
    /// Every connection task, so shutdown can wait for them.
    pub tasks: TaskTracker,
    pub lame_duck: AtomicBool,
    /// The client port's TLS, when configured.
    pub tls: Option<Arc<ReloadableAcceptor>>,
    /// The MQTT port's TLS (`mqtt.tls`), when configured.
    pub mqtt_tls: Option<Arc<ReloadableAcceptor>>,
    /// The WebSocket port's TLS (`websocket.tls`), when configured.
    pub websocket_tls: Option<Arc<ReloadableAcceptor>>,
    /// Where the WebSocket listener is bound, once it is (for INFO and `/varz`).
    pub websocket_addr: OnceLock<SocketAddr>,
    /// JetStream, when enabled.
    pub jetstream: Option<Arc<crate::jetstream::JetStream>>,
    clients: Mutex<HashMap<u64, Arc<ClientShared>, RandomState>>,
    next_cid: AtomicU64,
    info_addr: Mutex<Option<SocketAddr>>,
}

/// The TLS acceptor of each listener that has a `tls {}` block.
struct ListenerTls {
    client: Option<Arc<ReloadableAcceptor>>,
    mqtt: Option<Arc<ReloadableAcceptor>>,
    websocket: Option<Arc<ReloadableAcceptor>>,
}

impl ListenerTls {
    /// Reads every certificate file now, so a bad one stops the start.
    fn build(config: &Config) -> Result<Self, StartError> {
        // A disabled listener's files are not read.
        let build = |enabled: bool, settings: &Option<crate::config::Tls>| {
            settings
                .as_ref()
                .filter(|_| enabled)
                .map(|s| ReloadableAcceptor::new(s).map(Arc::new))
                .transpose()
        };
        Ok(ListenerTls {
            client: build(true, &config.tls)?,
            mqtt: build(config.mqtt.port != 0, &config.mqtt.tls)?,
            websocket: build(config.websocket.port != 0, &config.websocket.tls)?,
        })
    }
}

impl Core {
    fn new(config: Config, tls: ListenerTls) -> Result<Self, StartError> {
        let server_id = new_server_id();
        let server_name = config.server_name.clone().unwrap_or_else(|| server_id.clone());
        let accounts = Accounts::default();
        let mappings_of = |config| {
            SubjectMappings::from_config(config).map_err(|e| StartError::Config(format!("mappings: {e}")))
        };
        for (name, block) in &config.accounts {
            let account = accounts.get_or_create(name);
            account.set_max_connections(block.max_connections.map_or(0, |m| m as usize));
            account.set_mappings(mappings_of(&block.mappings)?);
        }
        // Top-level mappings are the global account's, as in nats-server.
        if !config.mappings.is_empty() {
            accounts.get_or_create(GLOBAL_ACCOUNT).set_mappings(mappings_of(&config.mappings)?);
        }
        let auth = Auth::build(&config, &accounts).map_err(|e| StartError::Config(e.to_string()))?;
        let stats = Arc::new(ServerStats::default());
        crate::account::imports::install(&config.accounts, &accounts, &stats)
            .map_err(|e| StartError::Config(e.to_string()))?;
        let system_account = accounts.get_or_create(&config.system_account);
        let monitor = crate::monitor::MonitorState::new(&config);
        Ok(Core {
            config,
            server_id,
            server_name,
            started: SystemTime::now(),
            accounts,
            system_account,
            monitor,
            stats,
            auth: RwLock::new(Arc::new(auth)),
            nonce_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &rand::random::<[u8; 32]>()),
            stop_accepting: CancellationToken::new(),
            tasks: TaskTracker::new(),
            lame_duck: AtomicBool::new(false),
            tls: tls.client,
            mqtt_tls: tls.mqtt,
            websocket_tls: tls.websocket,
            websocket_addr: OnceLock::new(),
            jetstream: None,
            clients: Mutex::new(HashMap::default()),
            next_cid: AtomicU64::new(1),
            info_addr: Mutex::new(None),
        })
    }

    /// Who may log in now.
    pub fn auth(&self) -> Arc<Auth> {
        self.auth.read().clone()
    }

    /// Authenticates `client` and records its (first) login, as one step under the users in
    /// effect: a reload waits for it, so it either judges this login or came before it.
    pub fn log_in(&self, client: &ClientShared, creds: &Credentials<'_>) -> Option<Login> {
        let auth = self.auth.read();
        let login = auth.authenticate(creds)?;
        let mut identity = client.identity.lock();
        if identity.login.is_none() {
            identity.login = Some(login.clone());
        }
        Some(login)
    }

    pub fn next_client_id(&self) -> u64 {
        self.next_cid.fetch_add(1, Ordering::Relaxed)
    }

    /// A new connection of `kind` from `addr`, counted but not yet registered.
    pub fn new_client(&self, addr: SocketAddr, kind: ConnectionKind) -> Arc<ClientShared> {
        let id = self.next_client_id();
        self.stats.total_connections.fetch_add(1, Ordering::Relaxed);
        let client =
            Arc::new(ClientShared::new(id, addr, self.config.max_pending as usize, self.stats.clone()));
        client.set_kind(kind);
        client
    }

    /// Every listener's TLS acceptor, named for the log.
    pub fn tls_acceptors(&self) -> impl Iterator<Item = (&'static str, &Arc<ReloadableAcceptor>)> {
        [("client", &self.tls), ("MQTT", &self.mqtt_tls), ("websocket", &self.websocket_tls)]
            .into_iter()
            .filter_map(|(name, tls)| tls.as_ref().map(|t| (name, t)))
    }

    /// Adds a client; false when `max_connections` is reached.
    pub fn register(&self, client: &Arc<ClientShared>) -> bool {
        let mut clients = self.clients.lock();
        if clients.len() >= self.config.max_connections {
            return false;
        }
        clients.insert(client.id, client.clone());
        true
    }

    pub fn unregister(&self, client: &ClientShared) {
        self.clients.lock().remove(&client.id);
        crate::monitor::client_closed(self, client);
        tracing::debug!(cid = client.id, reason = ?client.close_reason(), "client connection closed");
    }

    /// The connected client with this id.
    pub fn client(&self, id: u64) -> Option<Arc<ClientShared>> {
        self.clients.lock().get(&id).cloned()
    }

    pub fn clients(&self) -> Vec<Arc<ClientShared>> {
        self.clients.lock().values().cloned().collect()
    }

    pub fn num_clients(&self) -> usize {
        self.clients.lock().len()
    }

    /// Publishes a message from inside the server (advisories, API replies, stream deliveries)
    /// into `account`. Returns how many subscriptions received it.
    pub fn publish(&self, account: &Account, msg: &Message<'_>) -> usize {
        crate::router::deliver::publish(account, &self.stats, msg)
    }

    /// The INFO sent to client `id`.
    pub fn client_info(&self, id: u64, ip: IpAddr) -> ServerInfo {
        let addr = *self.info_addr.lock();
        let tls = self.tls.as_ref().map(|t| t.settings());
        // A TLS-first client has already done TLS when it reads INFO, so it is "required".
        let tls_required = tls.is_some_and(|t| t.handshake_first || !self.config.allow_non_tls);
        ServerInfo {
            server_id: self.server_id.clone(),
            server_name: self.server_name.clone(),
            version: NATS_COMPAT_VERSION.into(),
            proto: 1,
            go: "rust".into(),
            host: addr.map(|a| a.ip().to_string()).unwrap_or_else(|| self.config.host.clone()),
            port: addr.map_or(0, |a| a.port()),
            headers: !self.config.no_header_support,
            max_payload: self.config.max_payload,
            client_id: Some(id),
            client_ip: Some(ip.to_string()),
            auth_required: self.auth().required(),
            ldm: self.lame_duck.load(Ordering::Relaxed),
            tls_required,
            tls_available: tls.is_some() && !tls_required,
            tls_verify: tls.is_some_and(|t| t.verifies_clients()),
            jetstream: self.jetstream.is_some(),
            domain: self.jetstream.as_ref().and_then(|js| js.domain.clone()),
            api_lvl: self.jetstream.as_ref().map(|_| crate::jetstream::API_LEVEL),
            jetway_version: Some(JETWAY_VERSION.into()),
            ..ServerInfo::default()
        }
    }

    /// The challenge in `client`'s INFO that nkey users sign, while any are configured: 11
    /// bytes in URL-safe base64 (15 characters, as nats-server's). They are an HMAC of the
    /// client id under a key made at startup, so each connection's is unpredictable and
    /// never repeats, and no connection has to keep one.
    pub fn nonce_of(&self, client: &ClientShared) -> Option<String> {
        use base64::Engine;
        if client.is_mqtt() || !self.auth().nonce_required() {
            return None;
        }
        let tag = ring::hmac::sign(&self.nonce_key, &client.id.to_le_bytes());
        let raw = tag.as_ref().get(..11)?;
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
    }

    /// The INFO sent to `client`. NATS over WebSocket gets the WebSocket listener's address,
    /// and its TLS is the WebSocket's own (`wss://`), done before INFO: like nats-server,
    /// `tls_required` and `tls_available` both say whether the listener is `wss`.
    pub fn client_info_for(&self, client: &ClientShared) -> ServerInfo {
        let mut info = self.client_info(client.id, client.addr.ip());
        info.nonce = self.nonce_of(client);
        if client.kind() == ConnectionKind::Websocket {
            let tls = self.websocket_tls.as_ref().map(|t| t.settings());
            info.tls_required = tls.is_some();
            info.tls_available = tls.is_some();
            info.tls_verify = tls.is_some_and(|t| t.verifies_clients());
            if let Some(addr) = self.websocket_addr.get() {
                info.host = addr.ip().to_string();
                info.port = addr.port();
            }
        }
        info
    }
}

/// Whether `new` differs from `running` only in what [`ServerHandle::reload_with`] applies.
fn only_logins_differ(running: &Config, new: &Config) -> bool {
    let mut rest = new.clone();
    // The login timeout is read from the running configuration: not reloaded.
    rest.authorization =
        crate::config::Authorization { timeout: rest.authorization.timeout, ..running.authorization.clone() };
    rest.no_auth_user = running.no_auth_user.clone();
    rest.mqtt.no_auth_user = running.mqtt.no_auth_user.clone();
    for (name, block) in &mut rest.accounts {
        if let Some(old) = running.accounts.get(name) {
            block.users = old.users.clone();
        }
    }
    rest == *running
}

/// A nats-server-style id: 'N' and 55 base32 characters.
fn new_server_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut id = String::from("N");
    for _ in 0..55 {
        let i = rand::random_range(0..ALPHABET.len());
        id.push(char::from(ALPHABET.get(i).copied().unwrap_or(b'A')));
    }
    id
}

/// A running server.
pub struct ServerHandle {
    core: Arc<Core>,
    /// Where NATS clients connect.
    pub nats_addr: SocketAddr,
    /// Where the monitoring endpoints are served, when enabled.
    pub http_addr: Option<SocketAddr>,
    /// Where the monitoring endpoints are served over HTTPS (`https_port`), when enabled.
    pub https_addr: Option<SocketAddr>,
    /// Where MQTT clients connect, when enabled.
    pub mqtt_addr: Option<SocketAddr>,
    /// Where WebSocket clients (NATS, and MQTT on `/mqtt`) connect, when enabled.
    pub websocket_addr: Option<SocketAddr>,
    monitor_stop: CancellationToken,
    /// The HTTPS monitor's TLS (the client port's certificate), reloaded with it.
    monitor_tls: Option<Arc<ReloadableAcceptor>>,
}

impl ServerHandle {
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Stops accepting, closes every client after flushing what is queued for it, and waits
    /// (bounded) for their tasks.
    pub async fn shutdown(self) {
        self.core.stop_accepting.cancel();
        if let Some(js) = &self.core.jetstream {
            // Final flush and fsync of every store before the process goes.
            js.shutdown();
        }
        self.monitor_stop.cancel();
        for client in self.core.clients() {
            client.close(CloseReason::ServerShutdown);
        }
        self.core.tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), self.core.tasks.wait()).await.is_err() {
            tracing::warn!("some connections did not close within 10s");
        }
        tracing::info!("Server Exiting..");
    }

    /// Applies a configuration read again (SIGHUP): users, passwords, nkeys, permissions,
    /// `no_auth_user` and the token take effect for new logins, and a connected client stays
    /// only while the new configuration would log it in the same way (see
    /// [`Auth::after_reload`]: a client whose user is gone is closed, one whose login no longer
    /// holds gets nats-server's `Authorization Violation` first); TLS certificates are read
    /// again. A configuration whose users do not build changes nothing. Other options need a restart
    /// (a warning says so when they changed).
    pub fn reload_with(&self, config: Config) {
        let core = &self.core;
        let new = match Auth::build(&config, &core.accounts) {
            Ok(auth) => Arc::new(auth),
            Err(e) => {
                tracing::error!("Failed to reload the configuration, keeping the running one: {e}");
                return;
            }
        };
        let old = std::mem::replace(&mut *core.auth.write(), new.clone());
        let mut closed = 0;
        for client in core.clients() {
            let login = client.identity.lock().login.clone();
            // A client not logged in yet logs in under the new users.
            let Some(login) = login else { continue };
            let reason = match old.after_reload(&new, &login) {
                AfterReload::Stays => continue,
                AfterReload::Gone => CloseReason::ClientClosed,
                AfterReload::Refused => {
                    if !client.is_mqtt() {
                        let mut err = bytes::BytesMut::new();
                        jetway_protocols::nats::encode::err(&mut err, "Authorization Violation");
                        client.send_raw(&err);
                    }
                    CloseReason::AuthenticationViolation
                }
            };
            client.close(reason);
            closed += 1;
        }
        tracing::info!("Reloaded: authorization and users ({closed} client(s) no longer authorized closed)");
        // Users may have come to the system account: its requests get answered from now on.
        crate::monitor::system::install(core);
        if !only_logins_differ(&core.config, &config) {
            tracing::warn!(
                "Reloaded only authorization, users and TLS certificates: other changed options take effect at restart"
            );
        }
        self.reload();
    }

    /// Reloads what can change without reading the configuration again: the TLS certificates
    /// of every listener. Errors are logged and leave that listener's certificates as they were.
    pub fn reload(&self) {
        let mut any = false;
        let monitor = self.monitor_tls.iter().map(|tls| ("monitoring", tls));
        for (listener, tls) in self.core.tls_acceptors().chain(monitor) {
            any = true;
            match tls.reload() {
                Ok(()) => tracing::info!("Reloaded: TLS certificates ({listener} listener)"),
                Err(e) => tracing::error!(
                    "Failed to reload TLS certificates of the {listener} listener, keeping the previous ones: {e}"
                ),
            }
        }
        if !any {
            tracing::info!("Reloaded: nothing in this configuration is reloadable");
        }
    }

    /// Lame-duck mode: stop accepting, tell clients (INFO `ldm`), wait the grace period, then
    /// close clients spread over `lame_duck_duration`, then shut down.
    pub async fn lame_duck(self) {
        let core = self.core.clone();
        tracing::info!("Entering lame duck mode, stop accepting new clients");
        core.lame_duck.store(true, Ordering::Relaxed);
        core.stop_accepting.cancel();
        for client in core.clients() {
            let mut buf = bytes::BytesMut::new();
            jetway_protocols::nats::encode::info(&mut buf, &core.client_info_for(&client));
            client.send_raw(&buf);
        }
        tokio::time::sleep(core.config.lame_duck_grace_period).await;
        let clients = core.clients();
        let window = core.config.lame_duck_duration.saturating_sub(core.config.lame_duck_grace_period);
        let pause = window.checked_div(clients.len().max(1) as u32).unwrap_or_default();
        for client in clients {
            client.close(CloseReason::ServerShutdown);
            tokio::time::sleep(pause.min(Duration::from_secs(1))).await;
        }
        self.shutdown().await;
    }
}

pub(crate) async fn bind(host: &str, port: i32, default_port: u16) -> Result<TcpListener, StartError> {
    let port = match port {
        -1 => 0,
        0 => default_port,
        p => u16::try_from(p).map_err(|_| StartError::Config(format!("invalid port {p}")))?,
    };
    let addr = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    listen(&addr).await.map_err(|source| StartError::Listen { addr, source })
}

/// Binds with a deep accept backlog (tokio's default of 1,024 overflows when a thousand
/// clients connect at once; nats-server uses the kernel maximum too).
async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let mut last_err = None;
    for sock_addr in tokio::net::lookup_host(addr).await? {
        let socket = if sock_addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        if let Err(e) = socket.bind(sock_addr) {
            last_err = Some(e);
            continue;
        }
        return socket.listen(4096);
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("no address to bind")))
}

/// Starts a server: binds every listener and spawns the accept loops. Returns once clients
/// can connect.
pub async fn run(config: Config) -> Result<ServerHandle, StartError> {
    crate::websocket::check_settings(&config.websocket).map_err(StartError::Config)?;
    let tls = ListenerTls::build(&config)?;
    let mut core = Core::new(config, tls)?;
    tracing::info!("Starting jetway version {JETWAY_VERSION} (nats-server {NATS_COMPAT_VERSION} compatible)");
    tracing::info!("Server name: {}", core.server_name);
    tracing::info!("Server ID: {}", core.server_id);
    if core.config.jetstream.enabled {
        let dir = core
            .config
            .jetstream
            .store_dir
            .clone()
            .or_else(|| core.config.store_dir.clone())
            .unwrap_or_else(|| std::path::PathBuf::from("./data"));
        let js = crate::jetstream::JetStream::start(
            &core.config.jetstream,
            dir.clone(),
            core.server_name.clone(),
            core.stats.clone(),
        )?;
        tracing::info!("Starting JetStream");
        tracing::info!("    Store Directory: \"{}\"", dir.display());
        tracing::info!("    Max Memory:      {}", js.limits.max_memory);
        tracing::info!("    Max Storage:     {}", js.limits.max_storage);
        enable_jetstream_accounts(&core, &js);
        core.jetstream = Some(js);
    }
    let core = Arc::new(core);
    if let Some(js) = &core.jetstream {
        let _ = js.core.set(Arc::downgrade(&core));
    }
    crate::monitor::system::install(&core);

    let nats_listener = bind(&core.config.host, core.config.port, 4222).await?;
    let nats_addr = nats_listener
        .local_addr()
        .map_err(|source| StartError::Listen { addr: core.config.host.clone(), source })?;
    *core.info_addr.lock() = Some(nats_addr);

    let monitor_stop = CancellationToken::new();
    let http_addr = if core.config.http_port != 0 {
        let listener = bind(&core.config.http_host, core.config.http_port, 8222).await?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartError::Listen { addr: core.config.http_host.clone(), source })?;
        tracing::info!("Starting http monitor on {}", display_addr(addr));
        tokio::spawn(crate::monitor::serve(core.clone(), listener, monitor_stop.clone()));
        Some(addr)
    } else {
        None
    };
    let (https_addr, monitor_tls) = start_https_monitor(&core, &monitor_stop).await?;

    if let Some(tls) = &core.tls {
        match (core.config.allow_non_tls, tls.settings().handshake_first) {
            (false, _) => tracing::info!("TLS required for client connections"),
            (true, false) => tracing::info!("TLS available for client connections (allow_non_tls)"),
            (true, true) => {
                tracing::info!("TLS required for client connections");
                tracing::warn!("allow_non_tls is ignored with handshake_first: plain-text clients will fail");
            }
        }
    }
    tokio::spawn(release_idle_chunks(core.clone()));
    for (_, tls) in core.tls_acceptors() {
        // Tied to accepting: once no new handshakes can happen, reloading is moot.
        tokio::spawn(crate::tls::reload::watch(
            tls.clone(),
            crate::tls::reload::WATCH_INTERVAL,
            core.stop_accepting.clone(),
        ));
    }
    let gateway = (core.config.mqtt.port != 0).then(|| crate::mqtt::MqttServer::new(core.clone()));
    let mqtt_addr = match &gateway {
        Some(gateway) => {
            let listener = bind(&core.config.mqtt.host, core.config.mqtt.port, 1883).await?;
            let addr = listener
                .local_addr()
                .map_err(|source| StartError::Listen { addr: core.config.mqtt.host.clone(), source })?;
            let scheme = if core.mqtt_tls.is_some() { "tls" } else { "mqtt" };
            tracing::info!("Listening for MQTT clients on {scheme}://{}", display_addr(addr));
            core.monitor.attach_mqtt(gateway, addr);
            tokio::spawn(crate::mqtt::listener::accept_loop(gateway.clone(), listener));
            tokio::spawn(crate::mqtt::keep_alive::sweep(Arc::downgrade(gateway)));
            Some(addr)
        }
        None => None,
    };
    let websocket_addr = crate::websocket::listener::start(&core, gateway).await?;

    tracing::info!("Listening for client connections on {}", display_addr(nats_addr));
    tokio::spawn(crate::nats::listener::accept_loop(core.clone(), nats_listener));
    tracing::info!("Server is ready");
    Ok(ServerHandle {
        core,
        nats_addr,
        http_addr,
        https_addr,
        mqtt_addr,
        websocket_addr,
        monitor_stop,
        monitor_tls,
    })
}

/// Starts HTTPS monitoring when `https_port` is set: nats-server refuses it together with
/// `http_port`, and without the `tls {}` block whose certificate it serves.
async fn start_https_monitor(
    core: &Arc<Core>,
    stop: &CancellationToken,
) -> Result<(Option<SocketAddr>, Option<Arc<ReloadableAcceptor>>), StartError> {
    let config = &core.config;
    if config.https_port == 0 {
        return Ok((None, None));
    }
    if config.http_port != 0 {
        return Err(StartError::Config(format!(
            "can't specify both HTTP ({}) and HTTPS ({}) monitoring ports",
            config.http_port, config.https_port
        )));
    }
    let Some(settings) = &config.tls else {
        return Err(StartError::Config("TLS cert and key required for HTTPS monitoring (tls {})".into()));
    };
    let acceptor = crate::monitor::https::acceptor(settings)?;
    let listener = bind(&config.http_host, config.https_port, 8443).await?;
    let listen_error = |source| StartError::Listen { addr: config.http_host.clone(), source };
    let addr = listener.local_addr().map_err(listen_error)?;
    let listener = crate::monitor::https::TlsListener::spawn(listener, acceptor.clone(), stop.clone())
        .map_err(listen_error)?;
    tracing::info!("Starting https monitor on {}", display_addr(addr));
    tokio::spawn(crate::monitor::serve_https(core.clone(), listener, stop.clone()));
    // Tied to the monitor: once it stops, reloading its certificate is moot.
    tokio::spawn(crate::tls::reload::watch(
        acceptor.clone(),
        crate::tls::reload::WATCH_INTERVAL,
        stop.clone(),
    ));
    Ok((Some(addr), Some(acceptor)))
}

/// Enables JetStream for the accounts that have it: `$G` alone when no accounts are
/// configured, otherwise each account with a `jetstream` block (with its limits). The others
/// get a responder that answers "JetStream not enabled for account".
fn enable_jetstream_accounts(core: &Core, js: &Arc<crate::jetstream::JetStream>) {
    if core.config.accounts.is_empty() {
        js.enable_account(core.accounts.global());
        return;
    }
    for account in core.accounts.all() {
        let block = core.config.accounts.get(account.name.as_ref()).and_then(|a| a.jetstream.as_ref());
        match block.filter(|b| b.enabled) {
            Some(block) => {
                let limits = crate::jetstream::account_limits::AccountLimits::from_config(block);
                js.enable_account(&account).set_limits(limits);
            }
            None if account.name.as_ref() != core.config.system_account => {
                crate::jetstream::not_enabled::subscribe(&account, &core.stats);
            }
            None => {}
        }
    }
}

/// `host:port` with IPv6 hosts bracketed, as nats-server prints it.
pub fn display_addr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

/// How long a connection stays quiet before it gives back the outbound chunks it keeps for
/// reuse, and how often that is checked.
const RELEASE_IDLE_CHUNKS: Duration = Duration::from_secs(1);

/// Once a second, connections idle for [`RELEASE_IDLE_CHUNKS`] return their spare outbound
/// chunks (64 KiB each) to the shared pool, so thousands of idle clients hold none. One sweep
/// here instead of a timer in every writer's wait: arming and dropping a timer on each wait
/// cost measurable throughput on busy connections.
async fn release_idle_chunks(core: Arc<Core>) {
    let mut tick = tokio::time::interval(RELEASE_IDLE_CHUNKS);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = core.stop_accepting.cancelled() => return,
        }
        let clients: Vec<Arc<ClientShared>> = core.clients.lock().values().cloned().collect();
        for client in clients {
            if client.idle_for() >= RELEASE_IDLE_CHUNKS && client.outbound.has_free_chunks() {
                client.outbound.release_free();
            }
        }
    }
}
