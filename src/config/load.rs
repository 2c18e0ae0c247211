//! Loading a `Config` from a file or text: read the format into the located tree, rewrite
//! nats-server aliases, let serde fill the structs (defaults for what is absent), collect keys
//! nothing read as warnings, then check values that depend on each other.

use std::path::{Path, PathBuf};
use std::{fmt, io};

use super::conf::{self, Location, Map, SystemEnvironment};
use super::{de, normalize, toml_tree, Config};

/// A loaded configuration and what the operator should be told about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    /// Unknown and not-yet-supported options, in file order. Never fatal.
    pub warnings: Vec<ConfigWarning>,
}

/// An option that was read but has no effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Dotted key path, e.g. `jetstream.foo`.
    pub key: String,
    pub location: Option<Location>,
    pub kind: WarningKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningKind {
    /// Neither Jetway nor nats-server has this option (often a typo).
    Unknown,
    /// A nats-server option Jetway does not implement yet; it is ignored.
    Unsupported,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        match self.kind {
            WarningKind::Unknown => write!(f, "unknown option {:?}", self.key),
            WarningKind::Unsupported => {
                write!(f, "option {:?} is not supported yet, ignored", self.key)
            }
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("error reading config file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// The `.conf` text is malformed (or an include or variable could not be resolved).
    #[error(transparent)]
    Conf(#[from] conf::ParseError),
    #[error(transparent)]
    Toml(#[from] toml_tree::TomlError),
    /// A known option has a value it cannot take.
    #[error("{}invalid value for {key:?}: {reason}", location.as_ref().map(|l| format!("{l}: ")).unwrap_or_default())]
    Invalid { key: String, location: Option<Location>, reason: String },
}

impl ConfigError {
    /// Where in which file the problem is, when known.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Conf(e) => Some(&e.location),
            ConfigError::Toml(e) => Some(&e.location),
            ConfigError::Invalid { location, .. } => location.as_ref(),
        }
    }
}

impl Config {
    /// Reads TOML text; `origin` names it in messages.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Loaded, ConfigError> {
        let tree = toml_tree::parse(text, origin)?;
        from_tree(tree, origin)
    }

    /// Reads nats-server `.conf` text; `include` paths are relative to `origin`'s folder and
    /// `$name` falls back to the process environment.
    pub fn from_conf_str(text: &str, origin: &Path) -> Result<Loaded, ConfigError> {
        let tree = conf::parse(text, origin, &SystemEnvironment)?;
        from_tree(tree, origin)
    }

    /// Reads a file: `.toml` is TOML, anything else is nats-server's `.conf` format.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        if path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("toml")) {
            Config::from_toml_str(&text, path)
        } else {
            Config::from_conf_str(&text, path)
        }
    }
}

/// The one path both formats take from the tree to a checked `Config`.
fn from_tree(mut tree: Map, origin: &Path) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    normalize::normalize(&mut tree, &mut warnings)?;
    let top = Location { file: origin.into(), line: 1, column: 1 };
    let (config, ignored) = de::from_map::<Config>(&tree, &top).map_err(|e| ConfigError::Invalid {
        key: e.path.join("."),
        location: e.location,
        reason: e.message,
    })?;
    warnings.extend(ignored.into_iter().map(|key| ConfigWarning {
        key: key.path,
        location: Some(key.location),
        kind: WarningKind::Unknown,
    }));
    warnings.sort_by(|a, b| a.location.cmp(&b.location));
    let mut config = config;
    choose_monitoring_port(&mut config, &tree)?;
    check(&config, &tree)?;
    Ok(Loaded { config, warnings })
}

/// nats-server serves monitoring over HTTP or HTTPS, not both. Jetway's `http_port` has a
/// default (8222) where nats-server's has none, so an `https_port` turns that default off; both
/// written in the file is nats-server's error.
fn choose_monitoring_port(config: &mut Config, tree: &Map) -> Result<(), ConfigError> {
    if config.https_port == 0 {
        return Ok(());
    }
    match tree.lookup(&["http_port"]) {
        Some(entry) if config.http_port != 0 => Err(ConfigError::Invalid {
            key: "https_port".into(),
            location: Some(entry.value.location.clone()),
            reason: format!(
                "can't specify both HTTP ({}) and HTTPS ({}) monitoring ports",
                config.http_port, config.https_port
            ),
        }),
        _ => {
            config.http_port = 0;
            Ok(())
        }
    }
}

/// Checks serde cannot express: ranges and relations between options.
fn check(config: &Config, tree: &Map) -> Result<(), ConfigError> {
    let invalid = |key: &str, reason: String| {
        let path: Vec<&str> = key.split('.').collect();
        ConfigError::Invalid {
            key: key.to_string(),
            location: tree.lookup(&path).map(|e| e.value.location.clone()),
            reason,
        }
    };
    for (key, port) in [
        ("port", config.port),
        ("http_port", config.http_port),
        ("https_port", config.https_port),
        ("mqtt.port", config.mqtt.port),
        ("websocket.port", config.websocket.port),
    ] {
        if !(-1..=65535).contains(&port) {
            return Err(invalid(key, format!("port {port} is outside -1..=65535")));
        }
    }
    if let Some(name) = &config.server_name {
        if name.contains(char::is_whitespace) {
            return Err(invalid("server_name", format!("server name {name:?} contains spaces")));
        }
    }
    for (block, tls) in
        [("tls", &config.tls), ("mqtt.tls", &config.mqtt.tls), ("websocket.tls", &config.websocket.tls)]
    {
        if let Some(tls) = tls {
            check_tls(block, tls, tree)?;
        }
    }
    if let Err(reason) = crate::websocket::check_settings(&config.websocket) {
        return Err(ConfigError::Invalid {
            key: "websocket".into(),
            location: tree.lookup(&["websocket"]).map(|e| e.key_location.clone()),
            reason,
        });
    }
    if config.max_payload > config.max_pending {
        return Err(invalid(
            "max_payload",
            format!(
                "max_payload ({}) cannot be larger than max_pending ({})",
                config.max_payload, config.max_pending
            ),
        ));
    }
    Ok(())
}

/// A `tls {}` block at `block` (a dotted path) needs a certificate and its key, and a CA when
/// it verifies clients.
fn check_tls(block: &str, tls: &super::Tls, tree: &Map) -> Result<(), ConfigError> {
    // Point at the block: the missing key has no location of its own.
    let path: Vec<&str> = block.split('.').collect();
    let in_block = |key: &str, reason: &str| ConfigError::Invalid {
        key: format!("{block}.{key}"),
        location: tree.lookup(&path).map(|e| e.key_location.clone()),
        reason: reason.into(),
    };
    if tls.cert_file.is_none() {
        return Err(in_block("cert_file", "cert_file is required in the tls block"));
    }
    if tls.key_file.is_none() {
        return Err(in_block("key_file", "key_file is required in the tls block"));
    }
    if tls.verifies_clients() && tls.ca_file.is_none() {
        return Err(in_block("ca_file", "verify needs ca_file to check client certificates against"));
    }
    Ok(())
}
