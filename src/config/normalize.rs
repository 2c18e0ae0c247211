//! Rewrites nats-server's alternative spellings on the tree before serde reads it, so `Config`
//! has one field per setting: aliases (`pidfile` → `pid_file`), combined values
//! (`listen: "host:port"`), shorthands (`jetstream: enabled`), and options nats-server has but
//! Jetway does not implement yet (removed with a "not supported yet" warning).
//!
//! Key lists follow nats-server's `server/opts.go`.

use super::conf::{Entry, Map, Node, Value};
use super::load::{ConfigError, ConfigWarning, WarningKind};

/// One block's rewriting rules.
struct Block {
    /// `(alias, canonical name)`.
    aliases: &'static [(&'static str, &'static str)],
    /// Keys that take `"host:port"` (or a bare port): `(key, host field, port field)`.
    listen: &'static [(&'static str, &'static str, &'static str)],
    /// nats-server options Jetway does not implement yet.
    unsupported: &'static [&'static str],
}

const TOP: Block = Block {
    aliases: &[
        ("net", "host"),
        ("monitor_port", "http_port"),
        ("pidfile", "pid_file"),
        ("logfile", "log_file"),
        ("storedir", "store_dir"),
        ("max_conn", "max_connections"),
        ("max_subs", "max_subscriptions"),
        ("ws", "websocket"),
    ],
    listen: &[
        ("listen", "host", "port"),
        ("http", "http_host", "http_port"),
        ("https", "http_host", "https_port"),
    ],
    unsupported: &[
        "client_advertise",
        "trace_verbose",
        "trace_headers",
        "logtime_utc",
        "disable_sublist_cache",
        "no_sublist_cache",
        "default_sentinel",
        "http_base_path",
        "cluster",
        "gateway",
        "leaf",
        "leafnodes",
        "logfile_size_limit",
        "log_size_limit",
        "logfile_max_num",
        "log_max_num",
        "syslog",
        "remote_syslog",
        "ports_file_dir",
        "prof_port",
        "prof_block_rate",
        "proxy_protocol",
        "max_traced_msg_len",
        "max_sub_tokens",
        "max_subscription_tokens",
        "ocsp",
        "write_timeout",
        "operator",
        "operators",
        "roots",
        "root",
        "root_operators",
        "root_operator",
        "resolver",
        "account_resolver",
        "accounts_resolver",
        "resolver_tls",
        "resolver_preload",
        "resolver_pinned_accounts",
        "system",
        "no_system_account",
        "no_system",
        "no_sys_acc",
        "trusted",
        "trusted_keys",
        "connect_error_reports",
        "reconnect_error_reports",
        "server_tags",
        "server_metadata",
        "feature_flags",
        "default_js_domain",
        "ocsp_cache",
        "no_fast_producer_stall",
        "proxies",
    ],
};

const JETSTREAM: Block = Block {
    aliases: &[
        ("enable", "enabled"),
        ("store", "store_dir"),
        ("storedir", "store_dir"),
        ("sync", "sync_interval"),
        ("max_mem_store", "max_memory_store"),
        ("max_mem", "max_memory_store"),
        ("max_file", "max_file_store"),
    ],
    listen: &[],
    unsupported: &[
        "strict",
        "key",
        "ek",
        "encryption_key",
        "prev_key",
        "prev_ek",
        "prev_encryption_key",
        "cipher",
        "extension_hint",
        "tpm",
        "max_outstanding_catchup",
        "max_buffered_size",
        "max_buffered_msgs",
        "request_queue_limit",
        "info_queue_limit",
        "meta_compact",
        "meta_compact_size",
        "meta_compact_sync",
        "max_concurrent_io",
    ],
};

/// `jetstream { limits {} }`: the atomic batch limits go with batches, which Jetway lacks.
const JETSTREAM_LIMITS: Block = Block { aliases: &[], listen: &[], unsupported: &["batch"] };

const AUTHORIZATION: Block = Block {
    // `permissions` here are the users' defaults, as in nats-server (not the single user's).
    aliases: &[
        ("username", "user"),
        ("pass", "password"),
        ("default_permission", "default_permissions"),
        ("permissions", "default_permissions"),
    ],
    listen: &[],
    unsupported: &["auth_callout", "auth_hook", "proxy_required"],
};

const MQTT: Block = Block {
    aliases: &[
        ("net", "host"),
        ("ackwait", "ack_wait"),
        ("max_pending", "max_ack_pending"),
        ("max_inflight", "max_ack_pending"),
    ],
    listen: &[("listen", "host", "port")],
    unsupported: &[
        "authorization",
        "authentication",
        "js_api_timeout",
        "api_timeout",
        "js_domain",
        "consumer_replicas",
        "consumer_memory_storage",
        "consumer_inactive_threshold",
        "consumer_auto_cleanup",
        "reject_qos2_publish",
        "downgrade_qos2_subscribe",
    ],
};

const WEBSOCKET: Block = Block {
    aliases: &[
        ("net", "host"),
        ("compress", "compression"),
        ("allowed_origin", "allowed_origins"),
        ("allow_origins", "allowed_origins"),
        ("allow_origin", "allowed_origins"),
        ("origins", "allowed_origins"),
        ("origin", "allowed_origins"),
    ],
    listen: &[("listen", "host", "port")],
    unsupported: &[
        "advertise",
        "authorization",
        "authentication",
        "jwt_cookie",
        "user_cookie",
        "pass_cookie",
        "token_cookie",
        "no_auth_user",
        "headers",
        "ping_interval",
    ],
};

/// What a listener's own `tls {}` (MQTT, WebSocket) does not take on top of [`TLS`]'s rules:
/// those listeners have no INFO to send before the handshake.
const LISTENER_TLS: Block = Block { aliases: &[], listen: &[], unsupported: &["handshake_first"] };

const TLS: Block = Block {
    aliases: &[("first", "handshake_first"), ("immediate", "handshake_first")],
    listen: &[],
    unsupported: &[
        "insecure",
        "verify_cert_and_check_known_urls",
        "allow_insecure_cipher_suites",
        "cipher_suites",
        "curve_preferences",
        "connection_rate_limit",
        "pinned_certs",
        "cert_store",
        "cert_match_by",
        "cert_match",
        "ca_certs_match",
        "cert_match_skip_invalid",
        "ocsp_peer",
        "certs",
        "certificates",
    ],
};

/// Rewrites the top-level map in place, adding a warning per unsupported option.
pub fn normalize(root: &mut Map, warnings: &mut Vec<ConfigWarning>) -> Result<(), ConfigError> {
    rewrite(root, "", &TOP, warnings)?;
    expand_jetstream_shorthand(root, "jetstream")?;
    // Each account's `jetstream: enabled` too.
    if let Some(Entry { value: Node { value: Value::Map(accounts), .. }, .. }) = root.entry_mut("accounts") {
        for account in accounts.entries_mut() {
            if let Value::Map(block) = &mut account.value.value {
                let path = format!("accounts.{}.jetstream", account.key);
                expand_jetstream_shorthand(block, &path)?;
            }
        }
    }
    for (path, blocks) in [
        (&["jetstream"][..], &[&JETSTREAM][..]),
        (&["jetstream", "limits"], &[&JETSTREAM_LIMITS]),
        (&["authorization"], &[&AUTHORIZATION]),
        (&["mqtt"], &[&MQTT]),
        (&["websocket"], &[&WEBSOCKET]),
        (&["tls"], &[&TLS]),
        (&["mqtt", "tls"], &[&TLS, &LISTENER_TLS]),
        (&["websocket", "tls"], &[&TLS, &LISTENER_TLS]),
    ] {
        if let Some(inner) = block_mut(root, path) {
            for block in blocks {
                rewrite(inner, &path.join("."), block, warnings)?;
            }
        }
    }
    reject_two_store_dirs(root)
}

/// The map at `path` (nested blocks), if there is one.
fn block_mut<'a>(root: &'a mut Map, path: &[&str]) -> Option<&'a mut Map> {
    let mut map = root;
    for key in path {
        match map.entry_mut(key) {
            Some(Entry { value: Node { value: Value::Map(inner), .. }, .. }) => map = inner,
            _ => return None,
        }
    }
    Some(map)
}

fn rewrite(
    map: &mut Map,
    prefix: &str,
    block: &Block,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<(), ConfigError> {
    let path = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    for (alias, canonical) in block.aliases {
        if let Some(mut entry) = map.remove(alias) {
            entry.key = canonical.to_string();
            map.insert(entry);
        }
    }
    for (key, host_key, port_key) in block.listen {
        if let Some(entry) = map.remove(key) {
            split_listen(map, entry, &path(key), host_key, port_key)?;
        }
    }
    for key in block.unsupported {
        if let Some(entry) = map.remove(key) {
            // A key used as `$key` is a variable, not a setting.
            if !entry.used_as_variable {
                warnings.push(ConfigWarning {
                    key: path(key),
                    location: Some(entry.key_location),
                    kind: WarningKind::Unsupported,
                });
            }
        }
    }
    Ok(())
}

/// `listen: "host:port"`, `":port"`, `"[::1]:port"` or a bare port number.
fn split_listen(
    map: &mut Map,
    entry: Entry,
    path: &str,
    host_key: &str,
    port_key: &str,
) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        key: path.to_string(),
        location: Some(entry.value.location.clone()),
        reason,
    };
    let (host, port) = match &entry.value.value {
        Value::Integer(port) => (None, *port),
        Value::String(text) => {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| invalid(format!("expected \"host:port\", got {text:?}")))?;
            let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
            let port =
                port.parse::<i64>().map_err(|_| invalid(format!("invalid port {port:?} in {text:?}")))?;
            // An empty host (":4222") means every interface, as in Go's listen.
            (Some(if host.is_empty() { "0.0.0.0" } else { host }.to_string()), port)
        }
        other => return Err(invalid(format!("expected \"host:port\" or a port, found {}", other.kind()))),
    };
    let derived = |key: &str, value| Entry {
        key: key.to_string(),
        key_location: entry.key_location.clone(),
        value: Node { value, location: entry.value.location.clone() },
        used_as_variable: false,
    };
    if let Some(host) = host {
        map.insert(derived(host_key, Value::String(host)));
    }
    map.insert(derived(port_key, Value::Integer(port)));
    Ok(())
}

/// `jetstream: enabled | disabled | true | false` becomes `jetstream { enabled: … }`.
fn expand_jetstream_shorthand(root: &mut Map, path: &str) -> Result<(), ConfigError> {
    let Some(entry) = root.entry_mut("jetstream") else {
        return Ok(());
    };
    let enabled = match &entry.value.value {
        Value::Bool(b) => *b,
        Value::String(word) => match word.to_ascii_lowercase().as_str() {
            "enabled" | "enable" | "true" | "yes" | "on" => true,
            "disabled" | "disable" | "false" | "no" | "off" => false,
            _ => {
                return Err(ConfigError::Invalid {
                    key: path.into(),
                    location: Some(entry.value.location.clone()),
                    reason: format!("expected \"enabled\", \"disabled\", a boolean or a block, got {word:?}"),
                })
            }
        },
        _ => return Ok(()),
    };
    let location = entry.value.location.clone();
    let mut block = Map::new();
    block.insert(Entry {
        key: "enabled".into(),
        key_location: entry.key_location.clone(),
        value: Node { value: Value::Bool(enabled), location: location.clone() },
        used_as_variable: false,
    });
    entry.value = Node { value: Value::Map(block), location };
    Ok(())
}

/// nats-server refuses `store_dir` both at the top level and in the `jetstream` block: which
/// one wins would be a guess.
fn reject_two_store_dirs(root: &Map) -> Result<(), ConfigError> {
    if root.entry("store_dir").is_none() {
        return Ok(());
    }
    match root.lookup(&["jetstream", "store_dir"]) {
        Some(inner) => Err(ConfigError::Invalid {
            key: "jetstream.store_dir".into(),
            location: Some(inner.key_location.clone()),
            reason: "store_dir is also set at the top level; set it in one place".into(),
        }),
        None => Ok(()),
    }
}
