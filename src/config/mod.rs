//! Typed server configuration.
//!
//! Two file formats produce the same [`Config`]: TOML (the documented format) and nats-server's
//! `.conf` format (for the options we support). Both are first read into a generic tree, then
//! deserialized by serde into these structs, so defaults and value checks live in one place.
//! Key names match nats-server's so a `.conf` file and a TOML file look alike.
//!
//! Defaults are laptop-friendly: NATS on 4222, MQTT on 1883, monitoring on 8222 and JetStream
//! in `./data`. Port conventions follow nats-server: `-1` picks a random port; for the optional
//! listeners (monitoring, MQTT) `0` disables them.
//!
//! Layout: `conf/` reads the `.conf` format into a located tree, `toml_tree` reads TOML into the
//! same tree, `normalize` rewrites nats-server aliases and shorthands on that tree, `de` lets
//! serde read the tree (collecting unknown keys), `load` is the public entry point, and `units`
//! holds durations and sizes.

pub mod conf;
mod de;
mod load;
mod normalize;
mod security;
mod toml_tree;
pub mod units;

pub use load::{ConfigError, ConfigWarning, Loaded, WarningKind};
pub use security::{
    AccountConfig, AccountJetStreamConfig, AccountsConfig, ExportConfig, ImportConfig, ImportSource,
    MapDestination, MappingConfig, MappingWeight, MappingsConfig, PermissionsConfig,
    ResponsePermissionConfig, SubjectPermissionConfig, UserConfig,
};
pub use toml_tree::TomlError;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole server configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Interface for client connections.
    pub host: String,
    /// Client port; `-1` picks a random port, `0` means the default 4222.
    pub port: i32,
    /// Server name reported in INFO; defaults to the server id.
    pub server_name: Option<String>,
    /// Largest message payload a client may publish.
    #[serde(with = "units::size")]
    pub max_payload: u64,
    /// Longest protocol control line.
    #[serde(with = "units::size")]
    pub max_control_line: u64,
    /// Outbound bytes a client may have pending before it is a slow consumer.
    #[serde(with = "units::size")]
    pub max_pending: u64,
    /// How long one write to a client may block before it is a slow consumer.
    #[serde(with = "units::duration")]
    pub write_deadline: Duration,
    /// Interval between server PINGs.
    #[serde(with = "units::duration")]
    pub ping_interval: Duration,
    /// Outstanding PINGs before the connection is stale.
    pub ping_max: u32,
    /// Maximum concurrent client connections.
    pub max_connections: usize,
    /// Maximum subscriptions per connection; 0 is unlimited.
    pub max_subscriptions: u32,
    /// Disables header support (HPUB/HMSG).
    pub no_header_support: bool,
    /// Lame-duck mode: time over which clients are closed.
    #[serde(with = "units::duration")]
    pub lame_duck_duration: Duration,
    /// Lame-duck mode: wait before closing the first clients.
    #[serde(with = "units::duration")]
    pub lame_duck_grace_period: Duration,
    /// Where to write the process id.
    pub pid_file: Option<PathBuf>,
    /// Log file; stderr when absent.
    pub log_file: Option<PathBuf>,
    /// Debug logging.
    pub debug: bool,
    /// Protocol tracing.
    pub trace: bool,
    /// Timestamps in log lines.
    pub logtime: bool,
    /// Monitoring interface.
    pub http_host: String,
    /// Monitoring port: `0` disables, `-1` picks a random port.
    pub http_port: i32,
    /// Monitoring over HTTPS instead, with the `tls {}` block's certificate (clients are not
    /// asked for one): `0` disables, `-1` picks a random port. nats-server serves one or the
    /// other; setting this in a file turns the default `http_port` off.
    pub https_port: i32,
    /// Closed connections remembered for `/connz?state=closed` (oldest dropped first).
    pub max_closed_clients: usize,
    /// Account that receives server events and advisories (`$SYS.ACCOUNT.<acc>.CONNECT`, …).
    pub system_account: String,
    /// Top-level JetStream store directory (nats-server accepts it outside the block too).
    pub store_dir: Option<PathBuf>,
    /// Client authentication.
    pub authorization: Authorization,
    /// Accounts and their users, exports, imports and JetStream limits.
    pub accounts: AccountsConfig,
    /// Subject mappings of the global account (`$G`), as nats-server's top-level `mappings`.
    #[serde(alias = "maps")]
    pub mappings: MappingsConfig,
    /// The user a client that sends no credentials is logged in as.
    pub no_auth_user: Option<String>,
    /// JetStream.
    pub jetstream: JetStream,
    /// MQTT gateway.
    pub mqtt: Mqtt,
    /// WebSocket listener (NATS and MQTT over WebSocket).
    pub websocket: Websocket,
    /// TLS for client connections; plain TCP when absent.
    pub tls: Option<Tls>,
    /// With TLS configured, also accept clients that do not start TLS (INFO then says
    /// `tls_available` instead of `tls_required`).
    pub allow_non_tls: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "0.0.0.0".into(),
            port: 4222,
            server_name: None,
            max_payload: 1024 * 1024,
            max_control_line: 4096,
            max_pending: 64 * 1024 * 1024,
            write_deadline: Duration::from_secs(10),
            ping_interval: Duration::from_secs(120),
            ping_max: 2,
            max_connections: 64 * 1024,
            max_subscriptions: 0,
            no_header_support: false,
            lame_duck_duration: Duration::from_secs(120),
            lame_duck_grace_period: Duration::from_secs(10),
            pid_file: None,
            log_file: None,
            debug: false,
            trace: false,
            logtime: true,
            http_host: "0.0.0.0".into(),
            http_port: 8222,
            https_port: 0,
            max_closed_clients: 10_000,
            system_account: "$SYS".into(),
            store_dir: None,
            authorization: Authorization::default(),
            accounts: AccountsConfig::new(),
            mappings: MappingsConfig::new(),
            no_auth_user: None,
            jetstream: JetStream::default(),
            mqtt: Mqtt::default(),
            websocket: Websocket::default(),
            tls: None,
            allow_non_tls: false,
        }
    }
}

/// The `authorization {}` block: a single user, a token, or a users list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Authorization {
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    /// Users of the global account (or of the account each names).
    pub users: Vec<UserConfig>,
    /// Permissions of users that have none of their own.
    pub default_permissions: Option<PermissionsConfig>,
    /// Time a client has to send CONNECT.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
}

impl Default for Authorization {
    fn default() -> Self {
        Authorization {
            user: None,
            password: None,
            token: None,
            users: Vec::new(),
            default_permissions: None,
            timeout: Duration::from_secs(2),
        }
    }
}

/// When the store makes appends durable.
///
/// Written as `"always"` or a duration; serde impls are in `units`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncInterval {
    /// fsync before every acknowledgement (group commit makes this fast). The default.
    Always,
    /// fsync in the background at this interval; acks may precede durability.
    Every(Duration),
}

/// The `jetstream {}` block. `jetstream: enabled` / `true` / `false` are accepted as shorthand
/// (rewritten into this block by `normalize`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JetStream {
    pub enabled: bool,
    /// Store directory; `./data` when unset.
    pub store_dir: Option<PathBuf>,
    /// Memory storage limit in bytes; derived from the machine when unset.
    #[serde(with = "units::size_opt")]
    pub max_memory_store: Option<u64>,
    /// File storage limit in bytes; derived from free disk when unset.
    #[serde(with = "units::size_opt")]
    pub max_file_store: Option<u64>,
    pub sync_interval: SyncInterval,
    pub domain: Option<String>,
    pub unique_tag: Option<String>,
    /// Server-wide caps on what streams and consumers may ask for (`limits {}`).
    pub limits: JetStreamLimits,
}

/// nats-server's `jetstream { limits {} }`: caps on consumers and streams. 0 (or absent) is
/// no cap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JetStreamLimits {
    /// A consumer's `max_ack_pending` may not exceed it, and defaults to it when lower than
    /// the usual 1,000.
    pub max_ack_pending: i64,
    /// A pull consumer's `max_batch` may not exceed it, and defaults to it.
    pub max_request_batch: i64,
    /// Replicated assets: accepted (Jetway has no replicas yet).
    pub max_ha_assets: i64,
    /// A stream's `duplicate_window` may not exceed it, and defaults to at most it.
    #[serde(with = "units::duration")]
    pub duplicate_window: Duration,
}

impl Default for JetStream {
    fn default() -> Self {
        JetStream {
            enabled: true,
            store_dir: None,
            max_memory_store: None,
            max_file_store: None,
            sync_interval: SyncInterval::Always,
            domain: None,
            unique_tag: None,
            limits: JetStreamLimits::default(),
        }
    }
}

/// The `mqtt {}` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mqtt {
    pub host: String,
    /// `0` disables MQTT, `-1` picks a random port.
    pub port: i32,
    #[serde(with = "units::duration")]
    pub ack_wait: Duration,
    pub max_ack_pending: u32,
    pub stream_replicas: u32,
    pub no_auth_user: Option<String>,
    /// TLS on the MQTT port; plain TCP when absent. `verify_and_map` here maps the
    /// certificates of MQTT clients (over TCP and over WebSocket) to users.
    pub tls: Option<Tls>,
}

impl Default for Mqtt {
    fn default() -> Self {
        Mqtt {
            host: "0.0.0.0".into(),
            port: 1883,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 1024,
            stream_replicas: 1,
            no_auth_user: None,
            tls: None,
        }
    }
}

/// The `websocket {}` block (nats-server's names). One port serves NATS clients and, on the
/// path `/mqtt`, MQTT clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Websocket {
    pub host: String,
    /// `0` disables the listener (the default), `-1` picks a random port.
    pub port: i32,
    /// Allows a listener without `tls` (plain `ws://`); without it, `tls` is required.
    pub no_tls: bool,
    /// TLS for `wss://`. `verify_and_map` here maps NATS-over-WebSocket clients' certificates.
    pub tls: Option<Tls>,
    /// Time a client has to send its HTTP upgrade request (after the TLS handshake).
    #[serde(with = "units::duration")]
    pub handshake_timeout: Duration,
    /// Refuse browsers whose `Origin` is not this listener's own scheme, host and port.
    pub same_origin: bool,
    /// Origins (`scheme://host[:port]`) browsers may connect from; empty allows any.
    #[serde(deserialize_with = "security::one_or_many")]
    pub allowed_origins: Vec<String>,
    /// permessage-deflate: accepted for compatibility, not implemented (a warning at startup).
    pub compression: bool,
}

impl Default for Websocket {
    fn default() -> Self {
        Websocket {
            host: "0.0.0.0".into(),
            port: 0,
            no_tls: false,
            tls: None,
            handshake_timeout: Duration::from_secs(2),
            same_origin: false,
            allowed_origins: Vec::new(),
            compression: false,
        }
    }
}

/// The `tls {}` block (nats-server's names). Certificate and key are required; everything else
/// has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tls {
    /// PEM certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates that client certificates must chain to (with `verify`).
    pub ca_file: Option<PathBuf>,
    /// Require and verify a client certificate (mutual TLS).
    pub verify: bool,
    /// Like `verify`, and the certificate's subject or SANs name the user.
    pub verify_and_map: bool,
    /// Time a client has to complete the handshake (nats-server: a float of seconds).
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// The TLS handshake comes before INFO (INFO is then sent encrypted).
    #[serde(deserialize_with = "units::flag")]
    pub handshake_first: bool,
    /// Oldest protocol version accepted.
    pub min_version: TlsVersion,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            cert_file: None,
            key_file: None,
            ca_file: None,
            verify: false,
            verify_and_map: false,
            timeout: Duration::from_secs(2),
            handshake_first: false,
            min_version: TlsVersion::V1_2,
        }
    }
}

impl Tls {
    /// Whether clients must present a certificate.
    pub fn verifies_clients(&self) -> bool {
        self.verify || self.verify_and_map
    }
}

/// A TLS protocol version, written `"1.2"` or `"1.3"` (a bare `1.2` in `.conf` is accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

#[cfg(test)]
mod tests;
