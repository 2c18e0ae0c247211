//! Command-line flags, as nats-server spells them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use jetway::config::{Config, Tls};

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
// Server flags need no subcommand (nats-server's command line); a subcommand takes none of them.
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
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
    /// HTTPS monitoring port (uses the tls block's certificate; replaces HTTP monitoring)
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
    /// Enable TLS for client connections
    #[arg(long = "tls")]
    pub tls: bool,
    /// Server certificate file (PEM)
    #[arg(long = "tlscert")]
    pub tlscert: Option<PathBuf>,
    /// Private key of the server certificate (PEM)
    #[arg(long = "tlskey")]
    pub tlskey: Option<PathBuf>,
    /// Require and verify client certificates (mutual TLS)
    #[arg(long = "tlsverify")]
    pub tlsverify: bool,
    /// CA certificates that client certificates must chain to (PEM)
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

/// Commands other than running the server.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a development CA, a server certificate and client certificates (PEM)
    Certs(CertsArgs),
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Folder to write into (created if missing; existing files are overwritten)
    #[arg(long, default_value = "certs")]
    pub out: PathBuf,
    /// Host name or IP address the server certificate is valid for (repeat for more)
    #[arg(long = "host", default_values = ["localhost", "127.0.0.1", "::1"])]
    pub hosts: Vec<String>,
    /// Make a client certificate with this common name (repeat for more)
    #[arg(long = "client")]
    pub clients: Vec<String>,
    /// Validity in days
    #[arg(long, default_value_t = 825)]
    pub days: u32,
}

impl Cli {
    /// Applies flags over the file configuration (flags win, as in nats-server).
    pub fn apply(&self, c: &mut Config) -> Result<(), String> {
        self.apply_tls(c)?;
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
        if let Some(port) = self.https_port {
            // One or the other, as in nats-server; `-ms` alone replaces the default HTTP port.
            if self.http_port.is_some_and(|p| p != 0) && port != 0 {
                return Err(format!(
                    "can't specify both HTTP ({}) and HTTPS ({port}) monitoring ports",
                    c.http_port
                ));
            }
            c.https_port = port;
            if port != 0 {
                c.http_port = 0;
            }
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
        for port in [c.port, c.http_port, c.https_port, c.mqtt.port] {
            if !(-1..=65535).contains(&port) {
                return Err(format!("invalid port {port}"));
            }
        }
        Ok(())
    }
}

impl Cli {
    /// `--tls`, `--tlscert`, `--tlskey`, `--tlsverify`, `--tlscacert`: any of them turns TLS
    /// on, over (and merged with) a `tls {}` block from the file.
    fn apply_tls(&self, c: &mut Config) -> Result<(), String> {
        let any = self.tls
            || self.tlscert.is_some()
            || self.tlskey.is_some()
            || self.tlsverify
            || self.tlscacert.is_some();
        if !any {
            return Ok(());
        }
        let tls = c.tls.get_or_insert_with(Tls::default);
        if let Some(cert) = &self.tlscert {
            tls.cert_file = Some(cert.clone());
        }
        if let Some(key) = &self.tlskey {
            tls.key_file = Some(key.clone());
        }
        if let Some(ca) = &self.tlscacert {
            tls.ca_file = Some(ca.clone());
        }
        tls.verify |= self.tlsverify;
        if tls.cert_file.is_none() || tls.key_file.is_none() {
            return Err("TLS needs a certificate and its key: --tlscert FILE --tlskey FILE".into());
        }
        if tls.verifies_clients() && tls.ca_file.is_none() {
            return Err("--tlsverify needs --tlscacert FILE to check client certificates against".into());
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
    fn https_port_replaces_http_monitoring_and_both_are_refused() {
        let mut c = Config::default();
        parse(&["-ms", "8443"]).apply(&mut c).unwrap();
        assert_eq!((c.http_port, c.https_port), (0, 8443));
        let mut c = Config::default();
        let e = parse(&["-m", "8222", "--https_port", "8443"]).apply(&mut c).unwrap_err();
        assert!(e.contains("both HTTP (8222) and HTTPS (8443)"), "{e}");
    }

    #[test]
    fn tls_flags_configure_tls() {
        let mut c = Config::default();
        parse(&["--tlscert", "s.pem", "--tlskey", "k.pem", "--tlsverify", "--tlscacert", "ca.pem"])
            .apply(&mut c)
            .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert_file, Some(PathBuf::from("s.pem")));
        assert_eq!(tls.key_file, Some(PathBuf::from("k.pem")));
        assert_eq!(tls.ca_file, Some(PathBuf::from("ca.pem")));
        assert!(tls.verify);
    }

    #[test]
    fn tls_without_a_certificate_or_verify_without_a_ca_is_refused() {
        let mut c = Config::default();
        assert!(parse(&["--tls"]).apply(&mut c).unwrap_err().contains("--tlscert"));
        let mut c = Config::default();
        let e =
            parse(&["--tls", "--tlscert", "a", "--tlskey", "b", "--tlsverify"]).apply(&mut c).unwrap_err();
        assert!(e.contains("--tlscacert"), "{e}");
    }

    #[test]
    fn certs_is_a_subcommand_and_server_flags_need_none() {
        let cli =
            parse(&["certs", "--out", "/tmp/c", "--host", "example.com", "--client", "alice", "--days", "7"]);
        let Some(Command::Certs(args)) = cli.command else { panic!("expected certs") };
        assert_eq!(args.out, PathBuf::from("/tmp/c"));
        assert_eq!(args.hosts, vec!["example.com"]);
        assert_eq!(args.clients, vec!["alice"]);
        assert_eq!(args.days, 7);
        assert!(parse(&["-p", "4333"]).command.is_none());
        let args = std::iter::once("jetway").chain(["-p", "1", "certs"]).map(String::from);
        assert!(Cli::try_parse_from(normalize_args(args)).is_err());
    }

    #[test]
    fn cluster_flags_are_refused_clearly() {
        let mut c = Config::default();
        assert!(parse(&["--cluster", "nats://127.0.0.1:6222"])
            .apply(&mut c)
            .unwrap_err()
            .contains("clustering"));
    }
}
