//! Command-line flags, as nats-server spells them.

use std::path::PathBuf;

use clap::Parser;
use jetway::config::Config;

/// nats-server spells some long flags with one dash (`-js`, `-sd`, `-DV`); clap wants two.
/// This pre-pass rewrites them before parsing.
pub fn normalize_args(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    for arg in args {
        match arg.as_str() {
            "-js" => out.push("--jetstream".into()),
            "-sd" => out.push("--store_dir".into()),
            "-sl" => out.push("--signal".into()),
            "-ms" => out.push("--https_port".into()),
            "-DV" | "-DVV" => out.extend(["-D".to_string(), "-V".to_string()]),
            "-VV" => out.push("-V".into()),
            _ => out.push(arg),
        }
    }
    out
}

#[derive(Debug, Parser)]
#[command(name = "jetway", disable_version_flag = true, allow_negative_numbers = true)]
#[command(about = "Jetway: a NATS-compatible server with JetStream and an MQTT gateway")]
pub struct Cli {
    /// Bind to host address
    #[arg(short = 'a', long = "addr", visible_alias = "net", value_name = "HOST")]
    pub addr: Option<String>,
    /// Client port (-1 for a random port)
    #[arg(short = 'p', long = "port")]
    pub port: Option<i32>,
    /// Server name
    #[arg(short = 'n', long = "name", visible_alias = "server_name")]
    pub name: Option<String>,
    /// File to store the process id
    #[arg(short = 'P', long = "pid")]
    pub pid_file: Option<PathBuf>,
    /// HTTP monitoring port (0 disables, -1 random)
    #[arg(short = 'm', long = "http_port")]
    pub http_port: Option<i32>,
    /// HTTPS monitoring port (needs TLS)
    #[arg(long = "https_port")]
    pub https_port: Option<i32>,
    /// Configuration file (TOML by .toml extension, otherwise nats-server .conf)
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// Test the configuration and exit
    #[arg(short = 't')]
    pub test_config: bool,
    /// Send a signal to a running server: ldm, stop, quit, term, reopen, reload [=pid]
    #[arg(long = "signal")]
    pub signal: Option<String>,
    /// Log file
    #[arg(short = 'l', long = "log")]
    pub log: Option<PathBuf>,
    /// Timestamp log entries (default true)
    #[arg(short = 'T', long = "logtime", num_args = 0..=1, default_missing_value = "true")]
    pub logtime: Option<bool>,
    /// Enable debug output
    #[arg(short = 'D', long = "debug")]
    pub debug: bool,
    /// Enable trace output
    #[arg(short = 'V', long = "trace")]
    pub trace: bool,
    /// Enable JetStream
    #[arg(long = "jetstream")]
    pub jetstream: bool,
    /// JetStream store directory
    #[arg(long = "store_dir")]
    pub store_dir: Option<PathBuf>,
    /// MQTT port (0 disables, -1 random)
    #[arg(long = "mqtt_port")]
    pub mqtt_port: Option<i32>,
    /// Username required for connections
    #[arg(long = "user")]
    pub user: Option<String>,
    /// Password required for connections
    #[arg(long = "pass")]
    pub pass: Option<String>,
    /// Authorization token required for connections
    #[arg(long = "auth")]
    pub auth: Option<String>,
    /// Show version
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    /// Enable TLS (not supported yet)
    #[arg(long = "tls")]
    pub tls: bool,
    #[arg(long = "tlscert")]
    pub tlscert: Option<PathBuf>,
    #[arg(long = "tlskey")]
    pub tlskey: Option<PathBuf>,
    #[arg(long = "tlsverify")]
    pub tlsverify: bool,
    #[arg(long = "tlscacert")]
    pub tlscacert: Option<PathBuf>,
    /// Cluster URL for solicited routes (clustering is not supported yet)
    #[arg(long = "cluster", visible_alias = "cluster_listen")]
    pub cluster: Option<String>,
    #[arg(long = "cluster_name")]
    pub cluster_name: Option<String>,
    #[arg(long = "routes")]
    pub routes: Option<String>,
    #[arg(long = "no_advertise")]
    pub no_advertise: bool,
    #[arg(long = "cluster_advertise")]
    pub cluster_advertise: Option<String>,
    #[arg(long = "connect_retries")]
    pub connect_retries: Option<u32>,
}

impl Cli {
    /// Applies flags over the file configuration (flags win, as in nats-server).
    pub fn apply(&self, c: &mut Config) -> Result<(), String> {
        if self.tls
            || self.tlscert.is_some()
            || self.tlskey.is_some()
            || self.tlsverify
            || self.tlscacert.is_some()
        {
            return Err(
                "TLS is not supported by this version of jetway yet (see README, feature status)".into()
            );
        }
        if self.https_port.is_some() {
            return Err(
                "HTTPS monitoring needs TLS, which is not supported by this version of jetway yet".into()
            );
        }
        if self.cluster.is_some()
            || self.cluster_name.is_some()
            || self.routes.is_some()
            || self.no_advertise
            || self.cluster_advertise.is_some()
            || self.connect_retries.is_some()
        {
            return Err(
                "clustering is not supported by this version of jetway yet (see README, feature status)"
                    .into(),
            );
        }
        if let Some(addr) = &self.addr {
            c.host = addr.clone();
        }
        if let Some(port) = self.port {
            c.port = port;
        }
        if let Some(name) = &self.name {
            c.server_name = Some(name.clone());
        }
        if let Some(pid) = &self.pid_file {
            c.pid_file = Some(pid.clone());
        }
        if let Some(port) = self.http_port {
            c.http_port = port;
        }
        if let Some(log) = &self.log {
            c.log_file = Some(log.clone());
        }
        if let Some(t) = self.logtime {
            c.logtime = t;
        }
        c.debug |= self.debug;
        c.trace |= self.trace;
        if self.jetstream {
            c.jetstream.enabled = true;
        }
        if let Some(dir) = &self.store_dir {
            c.jetstream.store_dir = Some(dir.clone());
        }
        if let Some(port) = self.mqtt_port {
            c.mqtt.port = port;
        }
        if let Some(user) = &self.user {
            c.authorization.user = Some(user.clone());
        }
        if let Some(pass) = &self.pass {
            c.authorization.password = Some(pass.clone());
        }
        if let Some(token) = &self.auth {
            c.authorization.token = Some(token.clone());
        }
        for port in [c.port, c.http_port, c.mqtt.port] {
            if !(-1..=65535).contains(&port) {
                return Err(format!("invalid port {port}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let args = std::iter::once("jetway").chain(args.iter().copied()).map(String::from);
        Cli::try_parse_from(normalize_args(args)).unwrap()
    }

    #[test]
    fn nats_server_single_dash_flags() {
        let cli = parse(&["-js", "-sd", "/tmp/x", "-DV", "-p", "-1", "-a", "127.0.0.1", "-m", "8223"]);
        let mut c = Config::default();
        cli.apply(&mut c).unwrap();
        assert!(c.jetstream.enabled && c.debug && c.trace);
        assert_eq!(c.port, -1);
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.http_port, 8223);
        assert_eq!(c.jetstream.store_dir, Some(PathBuf::from("/tmp/x")));
    }

    #[test]
    fn tls_and_cluster_flags_are_refused_clearly() {
        let mut c = Config::default();
        assert!(parse(&["--tls"]).apply(&mut c).unwrap_err().contains("TLS"));
        assert!(parse(&["--cluster", "nats://127.0.0.1:6222"])
            .apply(&mut c)
            .unwrap_err()
            .contains("clustering"));
    }
}
