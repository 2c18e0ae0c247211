//! Configured users: name, password (plain or bcrypt), account, permissions and the kinds of
//! connection they may use.

use std::sync::Arc;

use super::permissions::{PermissionError, Permissions};
use super::Account;
use crate::config::{PermissionsConfig, UserConfig};

/// The listener a client came through (nats-server's `allowed_connection_types` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    Standard,
    Websocket,
    Mqtt,
    MqttWebsocket,
}

impl ConnectionKind {
    fn bit(self) -> u8 {
        match self {
            ConnectionKind::Standard => 1,
            ConnectionKind::Websocket => 2,
            ConnectionKind::Mqtt => 4,
            ConnectionKind::MqttWebsocket => 8,
        }
    }
}

/// Why a user could not be built from the config.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user {user:?}: {source}")]
    Permissions { user: String, source: PermissionError },
    #[error("user {user:?}: unknown connection type {kind:?} in allowed_connection_types")]
    ConnectionType { user: String, kind: String },
    #[error("user {0:?} is configured twice")]
    Duplicate(String),
    #[error("user {user:?} names account {account:?}, which is not configured")]
    UnknownAccount { user: String, account: String },
    #[error("no_auth_user {0:?} is not a configured user")]
    UnknownNoAuthUser(String),
    #[error("a user needs a name")]
    Unnamed,
    #[error("{0:?}: Not a valid public nkey for a user")]
    InvalidNkey(String),
    #[error("{0:?}: Nkey users do not take usernames or passwords")]
    NkeyWithPassword(String),
}

/// A password as configured.
#[derive(Clone)]
enum Password {
    Plain(String),
    Bcrypt(String),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Password::Plain(_) => "Plain(..)",
            Password::Bcrypt(_) => "Bcrypt(..)",
        })
    }
}

/// One configured user.
#[derive(Debug)]
pub struct User {
    /// The name, or the public nkey of an nkey user.
    pub name: String,
    password: Option<Password>,
    /// An nkey user's public key, which checks the signature of its login.
    nkey: Option<nkeys::KeyPair>,
    pub account: Arc<Account>,
    pub permissions: Option<Arc<Permissions>>,
    /// Bit set of [`ConnectionKind`]s; `None` allows every kind.
    allowed_kinds: Option<u8>,
    /// The entry as configured, with the permissions it ended up with (its own or the
    /// defaults): what a configuration reload compares.
    source: UserConfig,
}

impl User {
    /// Builds a user of `account`; `defaults` apply when the user has no permissions of its own.
    pub fn from_config(
        cfg: &UserConfig,
        account: Arc<Account>,
        defaults: Option<&PermissionsConfig>,
    ) -> Result<User, UserError> {
        let nkey = match &cfg.nkey {
            None if cfg.user.is_empty() => return Err(UserError::Unnamed),
            None => None,
            Some(key) if !cfg.user.is_empty() || cfg.password.is_some() => {
                return Err(UserError::NkeyWithPassword(key.clone()))
            }
            Some(key) => Some(
                nkeys::KeyPair::from_public_key(key)
                    .ok()
                    .filter(|k| k.key_pair_type() == nkeys::KeyPairType::User)
                    .ok_or_else(|| UserError::InvalidNkey(key.clone()))?,
            ),
        };
        let name = cfg.nkey.clone().unwrap_or_else(|| cfg.user.clone());
        let effective = cfg.permissions.as_ref().or(defaults);
        let permissions = effective
            .map(|p| Permissions::compile(p).map(Arc::new))
            .transpose()
            .map_err(|source| UserError::Permissions { user: name.clone(), source })?;
        let allowed_kinds = match &cfg.allowed_connection_types {
            None => None,
            Some(kinds) => {
                let mut bits = 0u8;
                for kind in kinds {
                    bits |= match kind.to_ascii_uppercase().as_str() {
                        "STANDARD" => ConnectionKind::Standard.bit(),
                        "WEBSOCKET" => ConnectionKind::Websocket.bit(),
                        "MQTT" => ConnectionKind::Mqtt.bit(),
                        "MQTT_WS" => ConnectionKind::MqttWebsocket.bit(),
                        // Accepted for nats-server compatibility; Jetway has no leaf nodes.
                        "LEAFNODE" | "IN_PROCESS" => 0,
                        _ => {
                            return Err(UserError::ConnectionType { user: name.clone(), kind: kind.clone() })
                        }
                    };
                }
                Some(bits)
            }
        };
        let password = cfg.password.clone().map(|p| {
            if p.starts_with("$2a$") || p.starts_with("$2b$") || p.starts_with("$2y$") {
                Password::Bcrypt(p)
            } else {
                Password::Plain(p)
            }
        });
        let source = UserConfig { permissions: effective.cloned(), ..cfg.clone() };
        Ok(User { name, password, nkey, account, permissions, allowed_kinds, source })
    }

    /// Whether `other` logs in exactly as this user does: same credentials, account,
    /// permissions and connection types (a client logged in as one may stay as the other).
    pub fn same_login_as(&self, other: &User) -> bool {
        self.source == other.source && self.account.name == other.account.name
    }

    /// Whether the user logs in with an nkey (only by a signed nonce, or as `no_auth_user`).
    pub fn is_nkey(&self) -> bool {
        self.nkey.is_some()
    }

    /// Whether `sig` (base64, URL-safe or standard, as nats-server accepts) is this nkey
    /// user's signature of `nonce`.
    pub fn signed(&self, nonce: &[u8], sig: &str) -> bool {
        use base64::Engine;
        let Some(key) = &self.nkey else { return false };
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(sig));
        decoded.is_ok_and(|sig| key.verify(nonce, &sig).is_ok())
    }

    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// Whether the user's password is stored in plain text in the config.
    pub fn has_plain_password(&self) -> bool {
        matches!(self.password, Some(Password::Plain(_)))
    }

    pub fn may_connect_as(&self, kind: ConnectionKind) -> bool {
        self.allowed_kinds.is_none_or(|bits| bits & kind.bit() != 0)
    }

    /// Checks a password. A bcrypt check takes milliseconds by design (cost factor).
    pub fn password_matches(&self, given: Option<&str>) -> bool {
        match (&self.password, given) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(Password::Plain(p)), Some(given)) => constant_time_eq(p, given),
            (Some(Password::Bcrypt(hash)), Some(given)) => bcrypt::verify(given, hash).unwrap_or(false),
        }
    }
}

/// Compares without an early exit, so timing does not reveal how much of a secret matched.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(cfg: UserConfig) -> User {
        User::from_config(&cfg, Account::new("A"), None).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn plain_and_bcrypt_passwords() {
        let plain =
            user(UserConfig { user: "a".into(), password: Some("pw".into()), ..UserConfig::default() });
        assert!(plain.has_plain_password());
        assert!(plain.password_matches(Some("pw")));
        assert!(!plain.password_matches(Some("px")));
        assert!(!plain.password_matches(None));
        let hash = bcrypt::hash("s3cret", 4).unwrap_or_else(|e| panic!("{e}"));
        let hashed = user(UserConfig { user: "b".into(), password: Some(hash), ..UserConfig::default() });
        assert!(!hashed.has_plain_password());
        assert!(hashed.password_matches(Some("s3cret")));
        assert!(!hashed.password_matches(Some("wrong")));
    }

    #[test]
    fn allowed_connection_types_restrict_listeners() {
        let mqtt_only = user(UserConfig {
            user: "d".into(),
            allowed_connection_types: Some(vec!["MQTT".into(), "LEAFNODE".into()]),
            ..UserConfig::default()
        });
        assert!(mqtt_only.may_connect_as(ConnectionKind::Mqtt));
        assert!(!mqtt_only.may_connect_as(ConnectionKind::Standard));
        let any = user(UserConfig { user: "e".into(), ..UserConfig::default() });
        assert!(any.may_connect_as(ConnectionKind::Standard));
        let bad = UserConfig {
            user: "f".into(),
            allowed_connection_types: Some(vec!["CARRIER_PIGEON".into()]),
            ..UserConfig::default()
        };
        assert!(User::from_config(&bad, Account::new("A"), None).is_err());
    }
}
