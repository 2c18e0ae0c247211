//! Loading through the public API: both formats, aliases, warnings and errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn conf(text: &str) -> Loaded {
    Config::from_conf_str(text, Path::new("test.conf"))
        .unwrap_or_else(|e| panic!("{text:?} should load: {e}"))
}

fn toml(text: &str) -> Loaded {
    Config::from_toml_str(text, Path::new("test.toml"))
        .unwrap_or_else(|e| panic!("{text:?} should load: {e}"))
}

fn conf_error(text: &str) -> ConfigError {
    match Config::from_conf_str(text, Path::new("test.conf")) {
        Ok(loaded) => panic!("{text:?} should not load, got {loaded:?}"),
        Err(e) => e,
    }
}

fn toml_error(text: &str) -> ConfigError {
    match Config::from_toml_str(text, Path::new("test.toml")) {
        Ok(loaded) => panic!("{text:?} should not load, got {loaded:?}"),
        Err(e) => e,
    }
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn warnings(loaded: &Loaded) -> Vec<String> {
    loaded.warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn example_conf_and_example_toml_produce_the_same_config() {
    let from_conf = Config::load(&example("jetway.example.conf")).unwrap_or_else(|e| panic!("{e}"));
    let from_toml = Config::load(&example("jetway.example.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(from_conf.config, from_toml.config);
    assert_eq!(warnings(&from_conf), Vec::<String>::new());
    assert_eq!(warnings(&from_toml), Vec::<String>::new());
    // The examples set values away from the defaults, so equality means something.
    let config = from_toml.config;
    assert_ne!(config, Config::default());
    assert_eq!(config.server_name.as_deref(), Some("jetway-1"));
    assert_eq!(config.http_host, "127.0.0.1");
    assert_eq!(config.pid_file, Some(PathBuf::from("/tmp/jetway.pid")));
    assert_eq!(config.authorization.password.as_deref(), Some("s3cret"));
    assert_eq!(config.jetstream.max_memory_store, Some(1 << 30));
    assert_eq!(config.jetstream.max_file_store, Some(10 << 30));
    assert_eq!(config.jetstream.domain.as_deref(), Some("hub"));
}

#[test]
fn monitoring_options_load_from_both_formats_with_nats_server_defaults() {
    assert_eq!(Config::default().max_closed_clients, 10_000);
    assert_eq!(Config::default().system_account, "$SYS");
    let loaded = conf("max_closed_clients: 50\nsystem_account: SYS\n");
    assert_eq!(warnings(&loaded), Vec::<String>::new());
    let from_conf = loaded.config;
    let from_toml = toml("max_closed_clients = 50\nsystem_account = \"SYS\"\n").config;
    assert_eq!(from_conf, from_toml);
    assert_eq!((from_conf.max_closed_clients, from_conf.system_account.as_str()), (50, "SYS"));
}

#[test]
fn empty_files_give_the_defaults() {
    assert_eq!(conf("").config, Config::default());
    assert_eq!(toml("").config, Config::default());
    assert_eq!(conf("# only a comment\n").warnings, vec![]);
}

#[test]
fn an_unknown_key_is_a_warning_with_its_location() {
    let loaded = conf("port = 4222\n\njetstream {\n  store_dir: /tmp/js\n  bogus: 1\n}\nfoo { bar = 1 }\n");
    assert_eq!(loaded.config.port, 4222);
    assert_eq!(loaded.config.jetstream.store_dir, Some(PathBuf::from("/tmp/js")));
    assert_eq!(
        warnings(&loaded),
        vec![r#"test.conf:5:3: unknown option "jetstream.bogus""#, r#"test.conf:7:1: unknown option "foo""#]
    );
    assert!(loaded.warnings.iter().all(|w| w.kind == WarningKind::Unknown));
}

#[test]
fn an_unknown_key_in_toml_is_a_warning_with_its_location() {
    let loaded = toml("port = 1\n[mqtt]\nport = 1884\nqos = 2\n");
    assert_eq!(loaded.config.mqtt.port, 1884);
    assert_eq!(warnings(&loaded), vec![r#"test.toml:4:1: unknown option "mqtt.qos""#]);
}

#[test]
fn nats_server_options_not_implemented_yet_warn_and_are_ignored() {
    let loaded = conf(
        "tls { cert_file: x, key_file: y, cipher_suites: [a] }\ncluster { name: c }\njetstream { tpm { keys_file: x } }\nport: 4333",
    );
    assert_eq!(loaded.config.port, 4333);
    assert_eq!(
        warnings(&loaded),
        vec![
            r#"test.conf:1:34: option "tls.cipher_suites" is not supported yet, ignored"#,
            r#"test.conf:2:1: option "cluster" is not supported yet, ignored"#,
            r#"test.conf:3:13: option "jetstream.tpm" is not supported yet, ignored"#,
        ]
    );
    assert!(loaded.warnings.iter().all(|w| w.kind == WarningKind::Unsupported));
}

#[test]
fn keys_used_as_variables_are_not_unknown_options() {
    let loaded = conf("base_port = 5000\nport = $base_port\nunused = 1");
    assert_eq!(loaded.config.port, 5000);
    assert_eq!(warnings(&loaded), vec![r#"test.conf:3:1: unknown option "unused""#]);
}

#[test]
fn a_bad_value_is_an_error_naming_the_key_and_its_location() {
    let e = conf_error("port = 1\njetstream {\n  max_memory_store: \"lots\"\n}");
    let ConfigError::Invalid { key, location, reason } = &e else { panic!("expected Invalid, got {e:?}") };
    assert_eq!(key, "jetstream.max_memory_store");
    assert_eq!(location.as_ref().map(|l| (l.line, l.column)), Some((3, 21)));
    assert!(reason.contains("invalid size"), "{reason}");
    assert!(
        e.to_string().starts_with(r#"test.conf:3:21: invalid value for "jetstream.max_memory_store": "#),
        "{e}"
    );

    let e = toml_error("[mqtt]\nport = \"abc\"\n");
    assert!(
        e.to_string().starts_with(r#"test.toml:2:8: invalid value for "mqtt.port": invalid type: string"#),
        "{e}"
    );

    let e = conf_error("ping_interval: \"5 parsecs\"");
    assert!(e.to_string().contains(r#""ping_interval""#), "{e}");
    let e = conf_error("max_connections: -1");
    assert!(e.to_string().starts_with(r#"test.conf:1:18: invalid value for "max_connections""#), "{e}");
    let e = conf_error("authorization: 5");
    assert!(e.to_string().starts_with(r#"test.conf:1:16: invalid value for "authorization""#), "{e}");
}

#[test]
fn syntax_errors_carry_file_line_and_column() {
    let e = conf_error("port = 1\nhost = \"unterminated");
    assert!(matches!(&e, ConfigError::Conf(_)));
    assert_eq!(e.location().map(|l| l.line), Some(2));
    let e = toml_error("port = 1\nhost = = 2\n");
    assert!(matches!(&e, ConfigError::Toml(_)));
    assert_eq!(e.location().map(|l| l.line), Some(2));
}

#[test]
fn listen_and_http_set_host_and_port() {
    let config =
        conf("listen: \"127.0.0.1:5222\"\nhttp: \"localhost:9222\"\nmqtt { listen: \":1884\" }").config;
    assert_eq!((config.host.as_str(), config.port), ("127.0.0.1", 5222));
    assert_eq!((config.http_host.as_str(), config.http_port), ("localhost", 9222));
    assert_eq!((config.mqtt.host.as_str(), config.mqtt.port), ("0.0.0.0", 1884));
    let config = conf("listen: \"[::1]:4223\"").config;
    assert_eq!((config.host.as_str(), config.port), ("::1", 4223));
    assert_eq!(conf("listen: 4224").config.port, 4224);
    let e = conf_error("listen: \"nohost\"");
    assert!(e.to_string().contains(r#"invalid value for "listen""#), "{e}");
}

#[test]
fn https_monitoring_replaces_the_default_http_port_and_both_are_refused() {
    let config = conf("https: \"127.0.0.1:8443\"").config;
    assert_eq!((config.http_host.as_str(), config.https_port, config.http_port), ("127.0.0.1", 8443, 0));
    assert_eq!(toml("https_port = -1").config.http_port, 0);
    let e = conf_error("http_port: 8222\nhttps_port: 8443");
    assert!(e.to_string().contains("both HTTP (8222) and HTTPS (8443)"), "{e}");
    assert_eq!(conf("http_port: 0\nhttps_port: 8443").config.https_port, 8443);
}

#[test]
fn nats_server_aliases_are_accepted() {
    let config = conf(
        "net: 10.0.0.1\nmonitor_port: 8333\npidfile: /run/j.pid\nlogfile: /var/log/j.log\nmax_conn: 10\nmax_subs: 20\n\
         authorization { username: u, pass: p }\nmqtt { net: 10.0.0.2, ackwait: \"5s\", max_inflight: 7 }",
    )
    .config;
    assert_eq!(config.host, "10.0.0.1");
    assert_eq!(config.http_port, 8333);
    assert_eq!(config.pid_file, Some(PathBuf::from("/run/j.pid")));
    assert_eq!(config.log_file, Some(PathBuf::from("/var/log/j.log")));
    assert_eq!((config.max_connections, config.max_subscriptions), (10, 20));
    assert_eq!(config.authorization.user.as_deref(), Some("u"));
    assert_eq!(config.authorization.password.as_deref(), Some("p"));
    assert_eq!(config.mqtt.host, "10.0.0.2");
    assert_eq!(config.mqtt.ack_wait, Duration::from_secs(5));
    assert_eq!(config.mqtt.max_ack_pending, 7);
}

#[test]
fn jetstream_accepts_shorthands_and_block_aliases() {
    assert!(!conf("jetstream: disabled").config.jetstream.enabled);
    assert!(conf("jetstream: enabled").config.jetstream.enabled);
    assert!(!conf("jetstream: false").config.jetstream.enabled);
    assert!(!toml("jetstream = false").config.jetstream.enabled);
    assert!(toml("jetstream = \"enabled\"").config.jetstream.enabled);
    let js =
        conf("jetstream { max_mem_store: 1G, max_file: 2G, storedir: /js, sync: \"1s\" }").config.jetstream;
    assert_eq!(js.max_memory_store, Some(1_000_000_000));
    assert_eq!(js.max_file_store, Some(2_000_000_000));
    assert_eq!(js.store_dir, Some(PathBuf::from("/js")));
    assert_eq!(js.sync_interval, SyncInterval::Every(Duration::from_secs(1)));
    assert_eq!(conf("jetstream { max_mem: 512MB }").config.jetstream.max_memory_store, Some(512 << 20));
    let e = conf_error("jetstream: maybe");
    assert!(e.to_string().starts_with(r#"test.conf:1:12: invalid value for "jetstream""#), "{e}");
}

#[test]
fn store_dir_at_the_top_level_and_in_jetstream_is_an_error() {
    assert_eq!(conf("store_dir: /top").config.store_dir, Some(PathBuf::from("/top")));
    let e = conf_error("store_dir: /a\njetstream { store_dir: /b }");
    assert!(e.to_string().contains(r#""jetstream.store_dir""#), "{e}");
}

#[test]
fn durations_are_go_strings_or_seconds() {
    let config = conf("ping_interval: \"1h30m\"\nwrite_deadline: \"500ms\"\nlame_duck_duration: 30\nauthorization { timeout: 0.5 }").config;
    assert_eq!(config.ping_interval, Duration::from_secs(5400));
    assert_eq!(config.write_deadline, Duration::from_millis(500));
    assert_eq!(config.lame_duck_duration, Duration::from_secs(30));
    assert_eq!(config.authorization.timeout, Duration::from_millis(500));
    assert_eq!(toml("ping_interval = \"10s\"").config.ping_interval, Duration::from_secs(10));
    assert_eq!(toml("ping_interval = 10").config.ping_interval, Duration::from_secs(10));
}

#[test]
fn sizes_take_suffixes_in_both_formats() {
    assert_eq!(conf("max_payload: 8MB\nmax_pending: 100MB").config.max_payload, 8 * 1024 * 1024);
    assert_eq!(toml("max_payload = \"8MB\"\nmax_pending = \"100MB\"").config.max_payload, 8 * 1024 * 1024);
    assert_eq!(conf("max_control_line: 2k").config.max_control_line, 2000);
    assert_eq!(toml("max_control_line = \"2KiB\"").config.max_control_line, 2048);
}

#[test]
fn sync_interval_is_always_or_a_duration() {
    assert_eq!(
        toml("[jetstream]\nsync_interval = \"always\"").config.jetstream.sync_interval,
        SyncInterval::Always
    );
    assert_eq!(
        toml("[jetstream]\nsync_interval = \"2m\"").config.jetstream.sync_interval,
        SyncInterval::Every(Duration::from_secs(120))
    );
    let e = toml_error("[jetstream]\nsync_interval = 0");
    assert!(e.to_string().contains(r#""jetstream.sync_interval""#), "{e}");
}

#[test]
fn values_that_contradict_each_other_or_exceed_ranges_are_errors() {
    let e = conf_error("port: 70000");
    assert!(e.to_string().starts_with(r#"test.conf:1:7: invalid value for "port""#), "{e}");
    let e = conf_error("max_payload: 2MB\nmax_pending: 1MB");
    assert!(e.to_string().starts_with(r#"test.conf:1:14: invalid value for "max_payload""#), "{e}");
    let e = conf_error("server_name: \"has space\"");
    assert!(e.to_string().contains(r#""server_name""#), "{e}");
}

#[test]
fn includes_resolve_relative_to_the_including_file_on_disk() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        path
    };
    write("conf.d/auth.conf", "user: alice\npassword: secret\nextra: 1\n");
    write("conf.d/limits.conf", "max_payload: 2MB\n");
    let main =
        write("main.conf", "include ./conf.d/limits.conf\nauthorization {\n  include conf.d/auth.conf\n}\n");
    let loaded = Config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.config.max_payload, 2 << 20);
    assert_eq!(loaded.config.authorization.user.as_deref(), Some("alice"));
    // The warning points into the included file.
    let auth = dir.path().join("conf.d/auth.conf");
    assert_eq!(
        warnings(&loaded),
        vec![format!(r#"{}:3:1: unknown option "authorization.extra""#, auth.display())]
    );
}

#[test]
fn load_chooses_the_format_by_extension() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let as_toml = dir.path().join("j.toml");
    std::fs::write(&as_toml, "port = 1234\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Config::load(&as_toml).map(|l| l.config.port).ok(), Some(1234));
    let as_conf = dir.path().join("j.cfg");
    std::fs::write(&as_conf, "port: 4321\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Config::load(&as_conf).map(|l| l.config.port).ok(), Some(4321));
    let missing = Config::load(&dir.path().join("missing.conf"));
    assert!(matches!(missing, Err(ConfigError::Read { .. })));
}

#[test]
fn the_tls_block_reads_the_same_from_conf_and_toml() {
    let from_conf = conf(
        "tls {\n  cert_file: \"/c/server.pem\"\n  key_file: /c/key.pem\n  ca_file: /c/ca.pem\n  verify: true\n  \
         timeout: 0.5\n  handshake_first: true\n  min_version: \"1.3\"\n}\nallow_non_tls: true",
    );
    assert_eq!(warnings(&from_conf), Vec::<String>::new());
    let from_toml = toml(
        "allow_non_tls = true\n[tls]\ncert_file = \"/c/server.pem\"\nkey_file = \"/c/key.pem\"\nca_file = \"/c/ca.pem\"\n\
         verify = true\ntimeout = 0.5\nhandshake_first = true\nmin_version = \"1.3\"\n",
    );
    assert_eq!(from_conf.config, from_toml.config);
    let tls = from_conf.config.tls.unwrap_or_else(|| panic!("tls block read"));
    assert_eq!(tls.cert_file, Some(PathBuf::from("/c/server.pem")));
    assert_eq!(tls.ca_file, Some(PathBuf::from("/c/ca.pem")));
    assert!(tls.verify && !tls.verify_and_map && tls.handshake_first);
    assert_eq!(tls.timeout, Duration::from_millis(500));
    assert_eq!(tls.min_version, TlsVersion::V1_3);
    assert!(from_conf.config.allow_non_tls);
}

#[test]
fn tls_defaults_and_nats_server_spellings() {
    let tls = conf("tls { cert_file: a, key_file: b }").config.tls.unwrap_or_else(|| panic!("tls"));
    assert_eq!(tls.timeout, Duration::from_secs(2));
    assert_eq!(tls.min_version, TlsVersion::V1_2);
    assert!(!tls.verifies_clients() && !tls.handshake_first);
    assert_eq!(conf("").config.tls, None);
    let tls =
        conf("tls { cert_file: a, key_file: b, first: \"on\", min_version: 1.2, timeout: 3 }").config.tls;
    let tls = tls.unwrap_or_else(|| panic!("tls"));
    assert!(tls.handshake_first);
    assert_eq!(tls.min_version, TlsVersion::V1_2);
    assert_eq!(tls.timeout, Duration::from_secs(3));
}

#[test]
fn an_incomplete_tls_block_is_an_error() {
    let e = conf_error("tls { key_file: b }");
    assert!(e.to_string().starts_with(r#"test.conf:1:1: invalid value for "tls.cert_file""#), "{e}");
    let e = conf_error("tls { cert_file: a }");
    assert!(e.to_string().contains(r#""tls.key_file""#), "{e}");
    let e = conf_error("tls { cert_file: a, key_file: b, verify_and_map: true }");
    assert!(e.to_string().contains(r#""tls.ca_file""#), "{e}");
    let e = toml_error("[tls]\ncert_file = \"a\"\nkey_file = \"b\"\nmin_version = \"1.0\"\n");
    assert!(e.to_string().contains("not supported"), "{e}");
}

proptest! {
    #[test]
    fn any_conf_text_loads_or_fails_without_panicking(text in "[a-z_$ {}\\[\\]=:;,#\"\n0-9.kKmMbB-]{0,200}") {
        let _ = Config::from_conf_str(&text, Path::new("/nonexistent/p.conf"));
    }
}

#[test]
fn users_permissions_and_accounts_read_the_same_from_conf_and_toml() {
    let from_conf = conf(
        r#"
authorization {
  users: [
    { user: alice, password: "$2a$04$abc", allowed_connection_types: [STANDARD, MQTT],
      permissions: { publish: "a.>", subscribe: { allow: ["b", "jobs v1"], deny: "b.x" },
                     allow_responses: { max: 3, expires: "1m" } } }
    { user: bob, password: pw, account: ACC }
  ]
  default_permission: { publish: ["x", "y"] }
}
no_auth_user: bob
accounts {
  ACC { users: [ { user: carol, password: pw } ], max_connections: 5,
        jetstream: { max_mem: 1MB, max_file: 10MB, max_streams: 3, max_consumers: 4 },
        exports: [ { stream: "t.>" }, { service: "svc", accounts: [OTHER], response_type: stream } ] }
  OTHER { jetstream: enabled,
          imports: [ { stream: { account: ACC, subject: "t.>" }, prefix: acc },
                     { service: { account: ACC, subject: "svc" }, to: "acc.svc" } ] }
}
"#,
    );
    assert_eq!(warnings(&from_conf), Vec::<String>::new());
    let from_toml = toml(
        r#"
no_auth_user = "bob"
[authorization]
default_permissions = { publish = ["x", "y"] }
[[authorization.users]]
user = "alice"
password = "$2a$04$abc"
allowed_connection_types = ["STANDARD", "MQTT"]
permissions = { publish = "a.>", subscribe = { allow = ["b", "jobs v1"], deny = "b.x" }, allow_responses = { max = 3, expires = "1m" } }
[[authorization.users]]
user = "bob"
password = "pw"
account = "ACC"
[accounts.ACC]
users = [{ user = "carol", password = "pw" }]
max_connections = 5
jetstream = { max_mem = "1MB", max_file = "10MB", max_streams = 3, max_consumers = 4 }
exports = [{ stream = "t.>" }, { service = "svc", accounts = ["OTHER"], response_type = "stream" }]
[accounts.OTHER]
jetstream = "enabled"
imports = [{ stream = { account = "ACC", subject = "t.>" }, prefix = "acc" }, { service = { account = "ACC", subject = "svc" }, to = "acc.svc" }]
"#,
    );
    assert_eq!(warnings(&from_toml), Vec::<String>::new());
    assert_eq!(from_conf.config, from_toml.config);
    let config = from_conf.config;
    let alice = &config.authorization.users[0];
    let perms = alice.permissions.as_ref().unwrap_or_else(|| panic!("permissions"));
    assert_eq!(
        perms.publish,
        Some(SubjectPermissionConfig { allow: Some(vec!["a.>".into()]), deny: vec![] })
    );
    assert_eq!(
        perms.subscribe,
        Some(SubjectPermissionConfig {
            allow: Some(vec!["b".into(), "jobs v1".into()]),
            deny: vec!["b.x".into()]
        })
    );
    assert_eq!(perms.allow_responses.map(|r| (r.max, r.expires)), Some((3, Duration::from_secs(60))));
    assert_eq!(config.no_auth_user.as_deref(), Some("bob"));
    let acc = &config.accounts["ACC"];
    assert_eq!(acc.max_connections, Some(5));
    let js = acc.jetstream.as_ref().unwrap_or_else(|| panic!("jetstream"));
    assert_eq!((js.enabled, js.max_mem, js.max_streams), (true, Some(1 << 20), Some(3)));
    assert!(config.accounts["OTHER"]
        .jetstream
        .as_ref()
        .is_some_and(|j| j.enabled && j.max_streams.is_none()));
    assert_eq!(config.accounts["OTHER"].imports[0].prefix.as_deref(), Some("acc"));
}

#[test]
fn a_malformed_permission_is_an_error_naming_the_key() {
    let e = conf_error("authorization { users: [ { user: a, permissions: { publish: 5 } } ] }");
    assert!(e.to_string().contains("publish"), "{e}");
}

/// The fenced block after the README's `<!-- example: NAME ... -->` marker.
fn readme_example(name: &str) -> &'static str {
    let readme = include_str!("../../README.md");
    let marker = format!("<!-- example: {name}");
    let after = readme.split_once(marker.as_str()).map(|(_, rest)| rest).unwrap_or_default();
    let block = after.split_once("```").map(|(_, rest)| rest).unwrap_or_default();
    let body = block.split_once('\n').map(|(_, rest)| rest).unwrap_or_default();
    let text = body.split_once("```").map(|(text, _)| text).unwrap_or_default();
    assert!(!text.trim().is_empty(), "README has no {name} example");
    text
}

#[test]
fn readme_secure_iot_example_loads_the_same_in_both_formats() {
    let from_conf = Config::from_conf_str(readme_example("secure-iot.conf"), Path::new("secure-iot.conf"))
        .unwrap_or_else(|e| panic!("secure-iot.conf: {e}"));
    let from_toml = Config::from_toml_str(readme_example("secure-iot.toml"), Path::new("secure-iot.toml"))
        .unwrap_or_else(|e| panic!("secure-iot.toml: {e}"));
    for loaded in [&from_conf, &from_toml] {
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }
    assert_eq!(from_conf.config, from_toml.config, "the two forms say the same");

    let c = from_conf.config;
    let tls = c.tls.as_ref().unwrap_or_else(|| panic!("tls block"));
    assert!(tls.verify_and_map && tls.ca_file.is_some());
    assert_eq!((c.http_host.as_str(), c.http_port, c.https_port), ("127.0.0.1", 8222, 0));
    assert_eq!(c.mqtt.port, 8883);
    let mqtt_tls = c.mqtt.tls.as_ref().unwrap_or_else(|| panic!("mqtt tls block"));
    assert!(mqtt_tls.verify_and_map && mqtt_tls.ca_file.is_some());
    let fleet = &c.accounts["FLEET"];
    assert_eq!(fleet.users.len(), 2);
    assert_eq!(fleet.users[0].user, "CN=sensor-0001,O=Jetway Development");
    assert_eq!(fleet.users[0].allowed_connection_types.as_deref(), Some(&["MQTT".to_string()][..]));
    assert_eq!(fleet.jetstream.as_ref().and_then(|j| j.max_file), Some(2 * 1024 * 1024 * 1024));
    let ops = &c.accounts["OPS"];
    assert_eq!(ops.imports.len(), 1);
    assert_eq!(ops.users[0].user, "CN=ops-service,O=Jetway Development");
    // The server can be assembled from it (users, accounts and imports resolve).
    let accounts = crate::account::Accounts::default();
    crate::account::auth::Auth::build(&c, &accounts).unwrap_or_else(|e| panic!("users: {e}"));
    let stats = std::sync::Arc::new(crate::stats::ServerStats::default());
    crate::account::imports::install(&c.accounts, &accounts, &stats)
        .unwrap_or_else(|e| panic!("imports: {e}"));
}

#[test]
fn websocket_and_mqtt_tls_load_from_both_formats_with_nats_server_names() {
    let loaded = conf(
        r#"
mqtt {
  port: 8883
  tls { cert_file: "s.pem", key_file: "k.pem", ca_file: "ca.pem", verify_and_map: true, timeout: 3 }
}
ws {
  listen: "127.0.0.1:8443"
  tls { cert_file: "s.pem", key_file: "k.pem" }
  handshake_timeout: "5s"
  same_origin: true
  allowed_origin: "https://app.example"
  compress: true
}
"#,
    );
    assert_eq!(warnings(&loaded), Vec::<String>::new());
    let from_toml = toml(
        r#"
[mqtt]
port = 8883
[mqtt.tls]
cert_file = "s.pem"
key_file = "k.pem"
ca_file = "ca.pem"
verify_and_map = true
timeout = 3
[websocket]
host = "127.0.0.1"
port = 8443
handshake_timeout = "5s"
same_origin = true
allowed_origins = ["https://app.example"]
compression = true
[websocket.tls]
cert_file = "s.pem"
key_file = "k.pem"
"#,
    );
    assert_eq!(warnings(&from_toml), Vec::<String>::new());
    let config = loaded.config;
    assert_eq!(config, from_toml.config);
    let mqtt_tls = config.mqtt.tls.clone().unwrap_or_default();
    assert!(mqtt_tls.verify_and_map && mqtt_tls.timeout == Duration::from_secs(3));
    let ws = &config.websocket;
    assert_eq!((ws.host.as_str(), ws.port), ("127.0.0.1", 8443));
    assert_eq!(ws.tls.as_ref().and_then(|t| t.cert_file.clone()), Some(PathBuf::from("s.pem")));
    assert_eq!(ws.handshake_timeout, Duration::from_secs(5));
    assert!(ws.same_origin && ws.compression && !ws.no_tls);
    assert_eq!(ws.allowed_origins, vec!["https://app.example".to_string()]);
    assert_eq!(Config::default().websocket.port, 0, "off by default");
}

#[test]
fn websocket_without_tls_needs_no_tls_and_bad_listener_tls_blocks_are_errors() {
    let e = conf_error("websocket { port: 8080 }").to_string();
    assert!(e.contains("websocket") && e.contains("no_tls"), "{e}");
    assert!(conf("websocket { port: 8080, no_tls: true }").config.websocket.no_tls);
    let e = toml_error("[websocket]\nport = 8080\nno_tls = true\nallowed_origins = \"app.example\"\n")
        .to_string();
    assert!(e.contains("app.example"), "{e}");
    let e = conf_error("mqtt { tls { cert_file: s.pem } }").to_string();
    assert!(e.contains("mqtt.tls.key_file"), "{e}");
    let e = conf_error("websocket { port: 1, tls { cert_file: s, key_file: k, verify: true } }").to_string();
    assert!(e.contains("websocket.tls.ca_file"), "{e}");
}

#[test]
fn websocket_options_not_implemented_are_reported() {
    let loaded = conf(
        "websocket {\n  port: 8080\n  no_tls: true\n  no_auth_user: x\n  headers { a: b }\n  bogus: 1\n  tls { cert_file: s, key_file: k, handshake_first: true }\n}\n",
    );
    assert_eq!(
        warnings(&loaded),
        vec![
            r#"test.conf:4:3: option "websocket.no_auth_user" is not supported yet, ignored"#,
            r#"test.conf:5:3: option "websocket.headers" is not supported yet, ignored"#,
            r#"test.conf:6:3: unknown option "websocket.bogus""#,
            r#"test.conf:7:36: option "websocket.tls.handshake_first" is not supported yet, ignored"#,
        ]
    );
}

#[test]
fn mappings_load_from_both_formats_at_the_top_and_in_accounts() {
    use crate::config::{MapDestination, MappingConfig, MappingWeight};
    let from_conf = conf(
        r#"
mappings = {
  "foo": "bar"
  "split": [{destination: "a", weight: 30%}, {dest: "b", weight: 70}]
}
accounts { A { maps { "x.*": {destination: "y.$1", weight: 100%, cluster: "east"} } } }
"#,
    );
    assert!(from_conf.warnings.is_empty(), "{:?}", warnings(&from_conf));
    let from_toml = toml(
        r#"
[mappings]
foo = "bar"
split = [{destination = "a", weight = "30%"}, {dest = "b", weight = 70}]
[accounts.A.mappings]
"x.*" = {destination = "y.$1", weight = "100%", cluster = "east"}
"#,
    );
    assert!(from_toml.warnings.is_empty(), "{:?}", warnings(&from_toml));
    let weighted =
        |d: &str, w: MappingWeight| MapDestination { destination: d.into(), weight: Some(w), cluster: None };
    let top = &from_conf.config.mappings;
    assert_eq!(top["foo"], MappingConfig::Subject("bar".into()));
    assert_eq!(
        top["split"],
        MappingConfig::Weighted(vec![
            weighted("a", MappingWeight::Text("30%".into())),
            weighted("b", MappingWeight::Number(70))
        ])
    );
    assert_eq!(from_toml.config.mappings, from_conf.config.mappings);
    let account = &from_conf.config.accounts["A"].mappings["x.*"];
    let MappingConfig::One(dest) = account else { panic!("one destination: {account:?}") };
    assert_eq!((dest.destination.as_str(), dest.cluster.as_deref()), ("y.$1", Some("east")));
    assert_eq!(from_toml.config.accounts["A"].mappings, from_conf.config.accounts["A"].mappings);
}

#[test]
fn permissions_in_the_authorization_block_are_the_users_defaults() {
    let loaded = conf("authorization { permissions: { publish: \"p.>\" }, users: [{user: a, password: b}] }");
    assert!(loaded.warnings.is_empty(), "{:?}", warnings(&loaded));
    let defaults = loaded.config.authorization.default_permissions.expect("defaults");
    assert_eq!(
        defaults,
        conf("authorization { default_permissions: { publish: \"p.>\" } }")
            .config
            .authorization
            .default_permissions
            .expect("same")
    );
}

#[test]
fn jetstream_limits_load_from_both_formats() {
    let from_conf = conf(
        "jetstream { limits { max_ack_pending: 500, max_request_batch: 100, duplicate_window: \"1m\", max_ha_assets: 2, batch { max_msgs: 10 } } }",
    );
    let limits = &from_conf.config.jetstream.limits;
    assert_eq!((limits.max_ack_pending, limits.max_request_batch, limits.max_ha_assets), (500, 100, 2));
    assert_eq!(limits.duplicate_window, Duration::from_secs(60));
    // Atomic batches are not there yet: their limits warn.
    assert_eq!(
        warnings(&from_conf),
        vec![r#"test.conf:1:110: option "jetstream.limits.batch" is not supported yet, ignored"#]
    );
    let from_toml = toml(
        "[jetstream.limits]\nmax_ack_pending = 500\nmax_request_batch = 100\nduplicate_window = \"1m\"\nmax_ha_assets = 2\n",
    );
    assert_eq!(from_toml.config.jetstream.limits, from_conf.config.jetstream.limits);
}
