//! The security part of the configuration: users, permissions and accounts (nats-server's
//! `authorization { users }`, `accounts {}` and `no_auth_user`).
//!
//! nats-server accepts several spellings for a permission (`publish: "a.>"`, `publish: ["a",
//! "b"]`, `publish: { allow: …, deny: … }`) and for `allow_responses` (`true` or `{ max,
//! expires }`); the custom `Deserialize` impls here fold them into one shape, so both file
//! formats and every spelling produce the same value.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::units;

/// One entry of a `users` list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserConfig {
    #[serde(alias = "username")]
    pub user: String,
    /// Plain text or a bcrypt hash (`$2a$…`, `$2b$…`).
    #[serde(alias = "pass")]
    pub password: Option<String>,
    pub permissions: Option<PermissionsConfig>,
    /// `STANDARD`, `WEBSOCKET`, `MQTT`, `MQTT_WS`, `LEAFNODE`; all when absent.
    pub allowed_connection_types: Option<Vec<String>>,
    /// Account of a user of the `authorization` block; users listed inside an account belong
    /// to that account.
    pub account: Option<String>,
    /// A user's public nkey (`U…`): the user logs in by signing the INFO nonce with its seed,
    /// and takes no name or password.
    pub nkey: Option<String>,
}

/// `permissions { publish, subscribe, allow_responses }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PermissionsConfig {
    #[serde(alias = "pub")]
    pub publish: Option<SubjectPermissionConfig>,
    #[serde(alias = "sub")]
    pub subscribe: Option<SubjectPermissionConfig>,
    #[serde(alias = "publish_allow_responses")]
    pub allow_responses: Option<ResponsePermissionConfig>,
}

/// Allow and deny lists. `allow: None` allows everything the deny list does not name;
/// `Some(vec![])` allows nothing (what `allow_responses` implies for publish).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SubjectPermissionConfig {
    pub allow: Option<Vec<String>>,
    pub deny: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A string or a list of strings, read as a list (nats-server accepts both for its lists).
pub(super) fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    OneOrMany::deserialize(d)
        .map(Into::into)
        .map_err(|_| serde::de::Error::custom("expected a string or a list of strings"))
}

impl From<OneOrMany> for Vec<String> {
    fn from(v: OneOrMany) -> Self {
        match v {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowDeny {
    allow: Option<OneOrMany>,
    deny: Option<OneOrMany>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SubjectPermissionForms {
    /// The old style: a subject or a list of subjects is an allow list.
    Allow(OneOrMany),
    Rules(AllowDeny),
}

impl<'de> Deserialize<'de> for SubjectPermissionConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let form = SubjectPermissionForms::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a subject, a list of subjects, or a block with `allow` and/or `deny`",
            )
        })?;
        Ok(match form {
            SubjectPermissionForms::Allow(list) => {
                SubjectPermissionConfig { allow: Some(list.into()), deny: Vec::new() }
            }
            SubjectPermissionForms::Rules(AllowDeny { allow, deny }) => SubjectPermissionConfig {
                allow: allow.map(Into::into),
                deny: deny.map(Into::into).unwrap_or_default(),
            },
        })
    }
}

/// `allow_responses`: publish to the reply subjects of requests received, at most `max`
/// times each, within `expires` (nats-server's defaults: 1 and 2 minutes; negative values
/// mean unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ResponsePermissionConfig {
    pub max: i64,
    #[serde(with = "units::duration")]
    pub expires: Duration,
    /// `expires` was negative: responses never expire.
    pub never_expires: bool,
}

impl Default for ResponsePermissionConfig {
    fn default() -> Self {
        ResponsePermissionConfig { max: 1, expires: Duration::from_secs(120), never_expires: false }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ResponseForms {
    Flag(bool),
    Limits(ResponseLimits),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseLimits {
    #[serde(alias = "max_msgs", alias = "max_messages", alias = "max_responses")]
    max: Option<i64>,
    #[serde(alias = "expiration", alias = "ttl")]
    expires: Option<String>,
}

impl<'de> Deserialize<'de> for ResponsePermissionConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let form = ResponseForms::deserialize(d)
            .map_err(|_| D::Error::custom("expected a boolean or a block with `max` and/or `expires`"))?;
        let mut rp = ResponsePermissionConfig::default();
        match form {
            // `false` is the same as leaving it out; the caller sees `max: 0` and drops it.
            ResponseForms::Flag(false) => rp.max = 0,
            ResponseForms::Flag(true) => {}
            ResponseForms::Limits(ResponseLimits { max, expires }) => {
                // 0 means the default, as in nats-server.
                if let Some(max) = max.filter(|m| *m != 0) {
                    rp.max = max;
                }
                if let Some(text) = expires {
                    match text.strip_prefix('-') {
                        Some(_) => rp.never_expires = true,
                        None => {
                            let d = units::parse_duration(&text).map_err(D::Error::custom)?;
                            if !d.is_zero() {
                                rp.expires = d;
                            }
                        }
                    }
                }
            }
        }
        Ok(rp)
    }
}

/// One block of `accounts { NAME { … } }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountConfig {
    pub users: Vec<UserConfig>,
    pub exports: Vec<ExportConfig>,
    pub imports: Vec<ImportConfig>,
    /// JetStream for this account; `jetstream: enabled` is rewritten into a block by
    /// `normalize`.
    pub jetstream: Option<AccountJetStreamConfig>,
    /// Connections this account may have at once; unlimited when absent.
    pub max_connections: Option<u64>,
    /// Subject mappings of what this account's clients publish.
    #[serde(alias = "maps")]
    pub mappings: MappingsConfig,
}

/// `mappings { source: destination | {destination, weight} | [{destination, weight}, …] }`
/// (sorted by source, so both formats compare equal).
pub type MappingsConfig = BTreeMap<String, MappingConfig>;

/// Where one mapping's source subject goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MappingConfig {
    /// Every message to one destination.
    Subject(String),
    /// Each message to one of these, at random by weight.
    Weighted(Vec<MapDestination>),
    One(MapDestination),
}

/// One weighted destination of a mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapDestination {
    #[serde(alias = "dest")]
    pub destination: String,
    /// Percent of the messages (`50` or `"50%"`); required.
    pub weight: Option<MappingWeight>,
    /// Used only inside a cluster of that name; a server without a cluster ignores it.
    pub cluster: Option<String>,
}

/// A weight as a number or as text with a `%`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MappingWeight {
    Number(i64),
    Text(String),
}

/// `exports: [{stream: subj} | {service: subj, response_type}]`, with an optional list of
/// the accounts allowed to import (everyone when absent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExportConfig {
    pub stream: Option<String>,
    pub service: Option<String>,
    pub accounts: Option<Vec<String>>,
    /// `singleton` (default), `stream` or `chunked`.
    pub response_type: Option<String>,
}

/// `imports: [{stream: {account, subject}, prefix|to} | {service: {account, subject}, to}]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImportConfig {
    pub stream: Option<ImportSource>,
    pub service: Option<ImportSource>,
    pub prefix: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImportSource {
    pub account: String,
    pub subject: String,
}

/// An account's JetStream limits (nats-server's `max_mem`, `max_file`, `max_streams`,
/// `max_consumers`; absent or negative means unlimited).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountJetStreamConfig {
    pub enabled: bool,
    #[serde(
        alias = "max_memory",
        alias = "max_memory_store",
        alias = "max_mem_store",
        with = "units::size_opt"
    )]
    pub max_mem: Option<u64>,
    #[serde(alias = "max_store", alias = "max_file_store", alias = "max_disk", with = "units::size_opt")]
    pub max_file: Option<u64>,
    pub max_streams: Option<i64>,
    pub max_consumers: Option<i64>,
}

impl Default for AccountJetStreamConfig {
    fn default() -> Self {
        AccountJetStreamConfig {
            enabled: true,
            max_mem: None,
            max_file: None,
            max_streams: None,
            max_consumers: None,
        }
    }
}

/// Accounts by name (sorted, so both formats compare equal).
pub type AccountsConfig = BTreeMap<String, AccountConfig>;
