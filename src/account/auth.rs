//! Client authentication: who a CONNECT (NATS or MQTT) logs in as, and into which account.
//!
//! Methods, in the order they are tried (nats-server's `auth.go`):
//! 1. `verify_and_map` of the listener's `tls {}` (the client port's for NATS clients,
//!    `websocket.tls` for NATS over WebSocket, `mqtt.tls` for MQTT over TCP and over
//!    WebSocket, whose certificate then comes from the WebSocket's TLS): the client
//!    certificate's names (in `tls::identity` order) name the user; no password. Nothing else
//!    is accepted on that listener then.
//! 2. `no_auth_user`: a client that sends no credentials at all is that user.
//! 3. The token, the single user/password of `authorization {}`, then the users lists: an
//!    nkey user by the signature of the connection's INFO nonce, others by password.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use super::permissions::Permissions;
use super::users::{constant_time_eq, ConnectionKind, User, UserError};
use super::{Account, Accounts};
use crate::config::Config;
use crate::tls::CertIdentities;

/// What a client presented.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub user: Option<&'a str>,
    pub pass: Option<&'a str>,
    pub token: Option<&'a str>,
    /// Names of the verified client certificate, if any.
    pub cert: Option<&'a CertIdentities>,
    /// A public nkey and its signature of `nonce` (the one sent in this connection's INFO).
    pub nkey: Option<&'a str>,
    pub sig: Option<&'a str>,
    pub nonce: Option<&'a [u8]>,
    pub kind: ConnectionKind,
}

/// A successful authentication.
#[derive(Debug, Clone)]
pub struct Login {
    /// The configured user, when logged in as one (not for the token or single user).
    pub user: Option<Arc<User>>,
    pub account: Arc<Account>,
}

impl Login {
    pub fn permissions(&self) -> Option<&Arc<Permissions>> {
        self.user.as_ref().and_then(|u| u.permissions.as_ref())
    }

    pub fn user_name(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.name.as_str())
    }
}

/// What a configuration reload does to a logged-in client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterReload {
    Stays,
    /// Its user is gone or moved to another account: closed.
    Gone,
    /// Its login no longer holds as it was made: an authorization violation.
    Refused,
}

/// How clients must authenticate.
#[derive(Debug)]
pub struct Auth {
    single: Option<(String, String)>,
    token: Option<String>,
    users: HashMap<String, Arc<User>, RandomState>,
    no_auth_user: Option<Arc<User>>,
    mqtt_no_auth_user: Option<Arc<User>>,
    maps: CertMapping,
    global: Arc<Account>,
    /// Some user logs in with an nkey (asked at every connection: kept, not counted).
    has_nkey_users: bool,
}

/// Which listeners map client certificates to users (`verify_and_map`).
#[derive(Debug, Clone, Copy, Default)]
struct CertMapping {
    standard: bool,
    websocket: bool,
    mqtt: bool,
}

impl CertMapping {
    fn from_config(config: &Config) -> Self {
        let maps = |tls: &Option<crate::config::Tls>| tls.as_ref().is_some_and(|t| t.verify_and_map);
        CertMapping {
            standard: maps(&config.tls),
            websocket: config.websocket.port != 0 && maps(&config.websocket.tls),
            mqtt: config.mqtt.port != 0 && maps(&config.mqtt.tls),
        }
    }

    fn any(self) -> bool {
        self.standard || self.websocket || self.mqtt
    }

    /// Whether clients of `kind` log in by certificate.
    fn applies_to(self, kind: ConnectionKind) -> bool {
        match kind {
            ConnectionKind::Standard => self.standard,
            ConnectionKind::Websocket => self.websocket,
            // MQTT over WebSocket maps with the MQTT listener's setting (nats-server's rule).
            ConnectionKind::Mqtt | ConnectionKind::MqttWebsocket => self.mqtt,
        }
    }

    /// Whether some listener could log `user` in by certificate: such a user without a
    /// password is a certificate identity, and must not log in elsewhere with no password.
    fn could_map(self, user: &User) -> bool {
        [
            ConnectionKind::Standard,
            ConnectionKind::Websocket,
            ConnectionKind::Mqtt,
            ConnectionKind::MqttWebsocket,
        ]
        .into_iter()
        .any(|kind| self.applies_to(kind) && user.may_connect_as(kind))
    }
}

impl Auth {
    /// Builds the users of `config` into `accounts` (which must hold every configured account).
    pub fn build(config: &Config, accounts: &Accounts) -> Result<Auth, UserError> {
        let authz = &config.authorization;
        let defaults = authz.default_permissions.as_ref();
        let mut users: HashMap<String, Arc<User>, RandomState> = HashMap::default();
        let mut add = |user: User| {
            let name = user.name.clone();
            match users.insert(name.clone(), Arc::new(user)) {
                Some(_) => Err(UserError::Duplicate(name)),
                None => Ok(()),
            }
        };
        for cfg in &authz.users {
            let account = match &cfg.account {
                None => accounts.global().clone(),
                Some(name) => accounts.get(name).ok_or_else(|| UserError::UnknownAccount {
                    user: cfg.user.clone(),
                    account: name.clone(),
                })?,
            };
            add(User::from_config(cfg, account, defaults)?)?;
        }
        for (name, block) in &config.accounts {
            let account = accounts.get_or_create(name);
            for cfg in &block.users {
                add(User::from_config(cfg, account.clone(), defaults)?)?;
            }
        }
        let lookup = |name: &Option<String>| {
            name.as_ref()
                .map(|n| users.get(n).cloned().ok_or_else(|| UserError::UnknownNoAuthUser(n.clone())))
                .transpose()
        };
        let no_auth_user = lookup(&config.no_auth_user)?;
        let mqtt_no_auth_user = lookup(&config.mqtt.no_auth_user)?;
        if users.values().any(|u| u.has_plain_password())
            || authz.password.as_deref().is_some_and(|p| !p.starts_with("$2"))
        {
            tracing::warn!("Plaintext passwords detected, use bcrypt hashes");
        }
        let has_nkey_users = users.values().any(|u| u.is_nkey());
        Ok(Auth {
            single: authz.user.clone().map(|u| (u, authz.password.clone().unwrap_or_default())),
            token: authz.token.clone(),
            users,
            no_auth_user,
            mqtt_no_auth_user,
            maps: CertMapping::from_config(config),
            global: accounts.global().clone(),
            has_nkey_users,
        })
    }

    /// What becomes under `new` of a client that logged in under this configuration as
    /// `login`. It stays while it would log in the same way: its user unchanged (credentials,
    /// account, permissions, connection types), or, without a user, the same token, single
    /// user and need for credentials.
    pub fn after_reload(&self, new: &Auth, login: &Login) -> AfterReload {
        let Some(user) = &login.user else {
            let same =
                self.single == new.single && self.token == new.token && self.required() == new.required();
            return if same { AfterReload::Stays } else { AfterReload::Refused };
        };
        match new.users.get(&user.name) {
            // Gone, or now in another account: nats-server closes such clients quietly.
            None => AfterReload::Gone,
            Some(now) if now.account.name != user.account.name => AfterReload::Gone,
            Some(now) if now.same_login_as(user) => AfterReload::Stays,
            Some(_) => AfterReload::Refused,
        }
    }

    /// Whether some user logs into `account`.
    pub fn has_users_in(&self, account: &Account) -> bool {
        self.users.values().any(|u| u.account.name == account.name)
    }

    /// Whether INFO carries a nonce for nkey users to sign.
    pub fn nonce_required(&self) -> bool {
        self.has_nkey_users
    }

    /// Whether clients must send credentials in CONNECT.
    pub fn required(&self) -> bool {
        self.single.is_some() || self.token.is_some() || !self.users.is_empty() || self.maps.any()
    }

    /// Who `creds` log in as; `None` is an authorization violation.
    pub fn authenticate(&self, creds: &Credentials<'_>) -> Option<Login> {
        if !self.required() {
            return Some(Login { user: None, account: self.global.clone() });
        }
        let as_user = |user: &Arc<User>| {
            user.may_connect_as(creds.kind)
                .then(|| Login { user: Some(user.clone()), account: user.account.clone() })
        };
        if self.maps.applies_to(creds.kind) {
            let cert = creds.cert?;
            return cert.candidates().find_map(|name| self.users.get(name)).and_then(as_user);
        }
        let mqtt = matches!(creds.kind, ConnectionKind::Mqtt | ConnectionKind::MqttWebsocket);
        let no_auth_user =
            if mqtt { self.mqtt_no_auth_user.as_ref() } else { None }.or(self.no_auth_user.as_ref());
        if creds.user.is_none() && creds.pass.is_none() && creds.token.is_none() && creds.nkey.is_none() {
            if let Some(user) = no_auth_user {
                return as_user(user);
            }
        }
        if let (Some(token), Some(given)) = (&self.token, creds.token) {
            if constant_time_eq(token, given) {
                return Some(Login { user: None, account: self.global.clone() });
            }
        }
        if let (Some((user, pass)), Some(given_user)) = (&self.single, creds.user) {
            let pass_ok = creds.pass.is_some_and(|p| constant_time_eq(p, pass));
            if constant_time_eq(user, given_user) & pass_ok {
                return Some(Login { user: None, account: self.global.clone() });
            }
        }
        if let Some(key) = creds.nkey {
            let user = self.users.get(key).filter(|u| u.is_nkey())?;
            let signed = creds.nonce.zip(creds.sig).is_some_and(|(nonce, sig)| user.signed(nonce, sig));
            if !signed {
                tracing::debug!(nkey = key, "nkey signature missing or not verified");
                return None;
            }
            return as_user(user);
        }
        // An nkey user logs in only by signature (or as `no_auth_user`).
        let user = self.users.get(creds.user?).filter(|u| !u.is_nkey())?;
        let certificate_only = !user.has_password()
            && self.maps.could_map(user)
            && !no_auth_user.is_some_and(|n| Arc::ptr_eq(n, user));
        if certificate_only {
            tracing::debug!(user = %user.name, "user requires a client certificate");
            return None;
        }
        if !user.password_matches(creds.pass) {
            return None;
        }
        as_user(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AccountConfig, Authorization, UserConfig};

    fn creds<'a>(user: Option<&'a str>, pass: Option<&'a str>, token: Option<&'a str>) -> Credentials<'a> {
        Credentials {
            user,
            pass,
            token,
            cert: None,
            nkey: None,
            sig: None,
            nonce: None,
            kind: ConnectionKind::Standard,
        }
    }

    fn auth(config: &Config) -> (Auth, Accounts) {
        let accounts = Accounts::default();
        for name in config.accounts.keys() {
            accounts.get_or_create(name);
        }
        let auth = Auth::build(config, &accounts).unwrap_or_else(|e| panic!("{e}"));
        (auth, accounts)
    }

    #[test]
    fn user_password_and_token() {
        let mut config = Config {
            authorization: Authorization {
                user: Some("u".into()),
                password: Some("p".into()),
                ..Authorization::default()
            },
            ..Config::default()
        };
        let (a, _) = auth(&config);
        assert!(a.required());
        assert!(a.authenticate(&creds(Some("u"), Some("p"), None)).is_some());
        assert!(a.authenticate(&creds(Some("u"), Some("x"), None)).is_none());
        assert!(a.authenticate(&creds(None, None, None)).is_none());
        config.authorization = Authorization { token: Some("t".into()), ..Authorization::default() };
        let (a, _) = auth(&config);
        assert!(a.authenticate(&creds(None, None, Some("t"))).is_some());
        assert!(a.authenticate(&creds(None, None, Some("tt"))).is_none());
        let (open, _) = auth(&Config::default());
        assert!(!open.required());
    }

    #[test]
    fn users_log_into_their_accounts_and_no_auth_user_catches_anonymous_clients() {
        let mut config = Config::default();
        let user = |name: &str| UserConfig {
            user: name.into(),
            password: Some("pw".into()),
            ..UserConfig::default()
        };
        config.authorization.users = vec![user("root")];
        config
            .accounts
            .insert("A".into(), AccountConfig { users: vec![user("alice")], ..AccountConfig::default() });
        config.no_auth_user = Some("alice".into());
        let (a, _) = auth(&config);
        let login =
            a.authenticate(&creds(Some("alice"), Some("pw"), None)).unwrap_or_else(|| panic!("alice"));
        assert_eq!(&*login.account.name, "A");
        let login = a.authenticate(&creds(Some("root"), Some("pw"), None)).unwrap_or_else(|| panic!("root"));
        assert_eq!(&*login.account.name, "$G");
        let anonymous = a.authenticate(&creds(None, None, None)).unwrap_or_else(|| panic!("no_auth_user"));
        assert_eq!(anonymous.user_name(), Some("alice"));
        assert!(a.authenticate(&creds(Some("root"), Some("bad"), None)).is_none());
        assert!(a.authenticate(&creds(Some("nobody"), Some("pw"), None)).is_none());
    }

    #[test]
    fn configuration_mistakes_are_errors() {
        let mut config = Config { no_auth_user: Some("ghost".into()), ..Config::default() };
        let accounts = Accounts::default();
        assert!(matches!(Auth::build(&config, &accounts), Err(UserError::UnknownNoAuthUser(_))));
        config.no_auth_user = None;
        config.authorization.users =
            vec![UserConfig { user: "a".into(), account: Some("nope".into()), ..UserConfig::default() }];
        assert!(matches!(Auth::build(&config, &accounts), Err(UserError::UnknownAccount { .. })));
    }

    fn alice_cert() -> CertIdentities {
        CertIdentities { subject: "CN=alice".into(), ..CertIdentities::default() }
    }

    /// A config whose `CN=alice` user has no password, with `verify_and_map` on the MQTT
    /// listener only.
    fn mqtt_mapping() -> Config {
        let mut config = Config::default();
        config.authorization.users = vec![
            UserConfig { user: "CN=alice".into(), ..UserConfig::default() },
            UserConfig { user: "bob".into(), password: Some("pw".into()), ..UserConfig::default() },
        ];
        config.mqtt.tls = Some(crate::config::Tls { verify_and_map: true, ..crate::config::Tls::default() });
        config
    }

    #[test]
    fn each_listener_maps_certificates_with_its_own_setting() {
        let (a, _) = auth(&mqtt_mapping());
        let cert = alice_cert();
        let with_cert = |kind| Credentials { cert: Some(&cert), kind, ..creds(None, None, None) };
        let login = a.authenticate(&with_cert(ConnectionKind::Mqtt)).unwrap_or_else(|| panic!("mapped"));
        assert_eq!(login.user_name(), Some("CN=alice"));
        // MQTT over WebSocket maps with the MQTT listener's setting too.
        assert!(a.authenticate(&with_cert(ConnectionKind::MqttWebsocket)).is_some());
        // On a mapping listener, a password is no way in.
        let bob_mqtt = Credentials { kind: ConnectionKind::Mqtt, ..creds(Some("bob"), Some("pw"), None) };
        assert!(a.authenticate(&bob_mqtt).is_none());
        // The NATS port does not map: passwords work there, a certificate alone does not.
        assert!(a.authenticate(&creds(Some("bob"), Some("pw"), None)).is_some());
        assert!(a.authenticate(&with_cert(ConnectionKind::Standard)).is_none());
    }

    #[test]
    fn a_certificate_user_cannot_log_in_without_a_password_elsewhere() {
        let (a, _) = auth(&mqtt_mapping());
        assert!(a.authenticate(&creds(Some("CN=alice"), None, None)).is_none());
        assert!(a.authenticate(&creds(Some("CN=alice"), Some(""), None)).is_none());
        // Without any mapping listener, a user without a password is just that.
        let mut config = mqtt_mapping();
        config.mqtt.tls = None;
        let (open, _) = auth(&config);
        assert!(open.authenticate(&creds(Some("CN=alice"), None, None)).is_some());
    }

    #[test]
    fn websocket_clients_are_held_to_allowed_connection_types() {
        let mut config = Config::default();
        config.authorization.users = vec![UserConfig {
            user: "web".into(),
            password: Some("pw".into()),
            allowed_connection_types: Some(vec!["WEBSOCKET".into(), "MQTT_WS".into()]),
            ..UserConfig::default()
        }];
        let (a, _) = auth(&config);
        let as_kind = |kind| Credentials { kind, ..creds(Some("web"), Some("pw"), None) };
        assert!(a.authenticate(&as_kind(ConnectionKind::Websocket)).is_some());
        assert!(a.authenticate(&as_kind(ConnectionKind::MqttWebsocket)).is_some());
        assert!(a.authenticate(&as_kind(ConnectionKind::Standard)).is_none());
        assert!(a.authenticate(&as_kind(ConnectionKind::Mqtt)).is_none());
    }

    /// An nkey user of `$G` and a password user; `(config, seed of the nkey user)`.
    fn nkey_config() -> (Config, nkeys::KeyPair) {
        let key = nkeys::KeyPair::new_user();
        let mut config = Config::default();
        config.authorization.users = vec![
            UserConfig { nkey: Some(key.public_key()), ..UserConfig::default() },
            UserConfig { user: "pw".into(), password: Some("pw".into()), ..UserConfig::default() },
        ];
        (config, key)
    }

    #[test]
    fn an_nkey_user_logs_in_by_signing_the_nonce() {
        use base64::Engine;
        let (config, key) = nkey_config();
        let (a, _) = auth(&config);
        assert!(a.nonce_required());
        let public = key.public_key();
        let nonce = b"abcdefghijklmno";
        let sig =
            |data: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.sign(data).unwrap());
        let signed = |sig: Option<&str>, nonce: &[u8]| {
            a.authenticate(&Credentials {
                nkey: Some(&public),
                sig,
                nonce: Some(nonce),
                ..creds(None, None, None)
            })
        };
        let good = sig(nonce);
        let login = signed(Some(&good), nonce).unwrap_or_else(|| panic!("signed login"));
        assert_eq!(login.user_name(), Some(public.as_str()));
        // Standard base64 (with padding) is accepted too, as by nats-server.
        let std_sig = base64::engine::general_purpose::STANDARD.encode(key.sign(nonce).unwrap());
        assert!(signed(Some(&std_sig), nonce).is_some());
        // Another nonce's signature, no signature, a garbled one: refused.
        assert!(signed(Some(&sig(b"another nonce")), nonce).is_none());
        assert!(signed(None, nonce).is_none());
        assert!(signed(Some("%%%"), nonce).is_none());
        // Another key's signature of the right nonce.
        let other = nkeys::KeyPair::new_user();
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(other.sign(nonce).unwrap());
        assert!(signed(Some(&forged), nonce).is_none());
        // The public key as a user name, with or without a password, is no way in.
        assert!(a.authenticate(&creds(Some(&public), None, None)).is_none());
        assert!(a.authenticate(&creds(Some(&public), Some("x"), None)).is_none());
        // Nor is a password user's name as an nkey.
        let as_nkey =
            Credentials { nkey: Some("pw"), sig: Some(&good), nonce: Some(nonce), ..creds(None, None, None) };
        assert!(a.authenticate(&as_nkey).is_none());
        assert!(a.authenticate(&creds(Some("pw"), Some("pw"), None)).is_some());
    }

    #[test]
    fn an_nkey_no_auth_user_needs_no_signature_and_bad_nkeys_are_refused() {
        let (mut config, key) = nkey_config();
        config.no_auth_user = Some(key.public_key());
        let (a, _) = auth(&config);
        let anonymous = a.authenticate(&creds(None, None, None)).unwrap_or_else(|| panic!("no_auth_user"));
        assert_eq!(anonymous.user_name(), Some(key.public_key().as_str()));
        let bad = |cfg: UserConfig| {
            let mut config = Config::default();
            config.authorization.users = vec![cfg];
            Auth::build(&config, &Accounts::default()).err().map(|e| e.to_string())
        };
        let account_key = nkeys::KeyPair::new_account().public_key();
        assert!(bad(UserConfig { nkey: Some(account_key), ..UserConfig::default() })
            .is_some_and(|e| e.ends_with("Not a valid public nkey for a user")));
        assert!(bad(UserConfig { nkey: Some("UNOTAKEY".into()), ..UserConfig::default() }).is_some());
        let with_password =
            UserConfig { nkey: Some(key.public_key()), password: Some("p".into()), ..UserConfig::default() };
        assert!(
            bad(with_password).is_some_and(|e| e.ends_with("Nkey users do not take usernames or passwords"))
        );
        assert!(!auth(&Config::default()).0.nonce_required());
    }

    #[test]
    fn a_reload_keeps_a_login_only_if_the_new_users_grant_it_the_same_way() {
        let user = |name: &str, pass: &str| UserConfig {
            user: name.into(),
            password: Some(pass.into()),
            ..UserConfig::default()
        };
        let mut config = Config::default();
        config.authorization.users = vec![user("a", "1"), user("b", "1")];
        let (before, _) = auth(&config);
        let login_a = before.authenticate(&creds(Some("a"), Some("1"), None)).unwrap_or_else(|| panic!("a"));
        let login_b = before.authenticate(&creds(Some("b"), Some("1"), None)).unwrap_or_else(|| panic!("b"));
        config.authorization.users = vec![user("a", "1"), user("b", "2")];
        let (after, _) = auth(&config);
        assert_eq!(before.after_reload(&after, &login_a), AfterReload::Stays);
        assert_eq!(before.after_reload(&after, &login_b), AfterReload::Refused, "a changed password");
        config.authorization.default_permissions =
            Some(crate::config::PermissionsConfig { publish: None, subscribe: None, allow_responses: None });
        let (with_defaults, _) = auth(&config);
        assert_eq!(
            before.after_reload(&with_defaults, &login_a),
            AfterReload::Refused,
            "defaults now apply to a"
        );
        // Without users: the token decides.
        let token = |t: &str| Config {
            authorization: Authorization { token: Some(t.into()), ..Authorization::default() },
            ..Config::default()
        };
        let (t1, _) = auth(&token("t1"));
        let anonymous = t1.authenticate(&creds(None, None, Some("t1"))).unwrap_or_else(|| panic!("token"));
        assert_eq!(t1.after_reload(&auth(&token("t1")).0, &anonymous), AfterReload::Stays);
        assert_eq!(t1.after_reload(&auth(&token("t2")).0, &anonymous), AfterReload::Refused);
        let (open, _) = auth(&Config::default());
        let open_login = open.authenticate(&creds(None, None, None)).unwrap_or_else(|| panic!("open"));
        assert_eq!(open.after_reload(&t1, &open_login), AfterReload::Refused, "credentials are required now");
        config.authorization.users = vec![user("a", "1")];
        config.authorization.default_permissions = None;
        let (without_b, _) = auth(&config);
        assert_eq!(before.after_reload(&without_b, &login_b), AfterReload::Gone, "b removed");
    }
}
