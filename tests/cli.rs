//! The binary as tooling built for nats-server drives it: log lines, pid file, signals,
//! lame-duck mode, config errors.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

fn jetway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jetway"))
}

/// Starts the binary with `args` and waits for "Server is ready" in `log`.
fn start(args: &[&str], dir: &Path, log: &Path) -> Child {
    let child = jetway()
        .args(["-a", "127.0.0.1", "-p", "-1", "-m", "0", "--mqtt_port", "0", "-sd"])
        .arg(dir.join("js"))
        .arg("-l")
        .arg(log)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("jetway starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(log).unwrap_or_default().contains("Server is ready") {
        assert!(Instant::now() < deadline, "no 'Server is ready' in the log");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn port_from_log(log: &Path) -> u16 {
    let text = std::fs::read_to_string(log).unwrap();
    let line =
        text.lines().find(|l| l.contains("Listening for client connections on ")).expect("listen line");
    line.rsplit(':').next().and_then(|p| p.trim().parse().ok()).expect("port")
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn log_file_pid_file_and_signal_quit() {
    let dir = tempfile::tempdir().unwrap();
    let (log, pid) = (dir.path().join("jetway.log"), dir.path().join("jetway.pid"));
    let mut child = start(&["-P", pid.to_str().unwrap()], dir.path(), &log);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("[INF] Listening for client connections on 127.0.0.1:"), "{text}");
    assert!(text.contains("[INF] Server is ready"), "{text}");
    let written: u32 = std::fs::read_to_string(&pid).unwrap().trim().parse().unwrap();
    assert_eq!(written, child.id());
    let status = jetway().args(["--signal", "quit", "-P", pid.to_str().unwrap()]).status().unwrap();
    assert!(status.success());
    let exit = wait_exit(&mut child, Duration::from_secs(10));
    assert!(exit.success(), "graceful exit: {exit:?}");
    assert!(!pid.exists(), "pid file removed on exit");
    assert!(std::fs::read_to_string(&log).unwrap().contains("Server Exiting"));
}

#[test]
fn lame_duck_mode_tells_clients_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("jetway.log");
    let conf = dir.path().join("ldm.toml");
    std::fs::write(&conf, "lame_duck_duration = \"2s\"\nlame_duck_grace_period = \"500ms\"\n").unwrap();
    let mut child = start(&["-c", conf.to_str().unwrap()], dir.path(), &log);
    let port = port_from_log(&log);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // First INFO on connect.
        while !seen.windows(2).any(|w| w == b"\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
        let status = jetway().arg("--signal").arg(format!("ldm={}", child.id())).status().unwrap();
        assert!(status.success());
        // A second INFO announces lame-duck mode, then the server closes the connection.
        let text = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            String::from_utf8_lossy(&seen).into_owned()
        })
        .await
        .expect("closed by the server");
        assert!(text.contains("\"ldm\":true"), "{text}");
    });
    let exit = wait_exit(&mut child, Duration::from_secs(10));
    assert!(exit.success());
    assert!(std::fs::read_to_string(&log).unwrap().contains("Entering lame duck mode"));
}

#[test]
fn version_flag_names_both_versions() {
    let out = jetway().arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("jetway: v") && text.contains("nats-server v"), "{text}");
}

#[test]
fn bad_config_value_is_fatal_and_unknown_key_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, "port: 4333\nmax_payload: lots\n").unwrap();
    let out = jetway().args(["-c", bad.to_str().unwrap(), "-t"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[FTL]") && err.contains("max_payload") && err.contains(":2:"), "{err}");

    let odd = dir.path().join("odd.conf");
    std::fs::write(&odd, "port: 4333\nbogus_option: 1\n").unwrap();
    let out = jetway().args(["-c", odd.to_str().unwrap(), "-t"]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[WRN]") && err.contains("bogus_option") && err.contains(":2:"), "{err}");
}

#[test]
fn random_port_and_plain_stderr_log_like_nats_server() {
    let mut child = jetway()
        .args(["-a", "127.0.0.1", "-p", "-1", "-m", "0", "--mqtt_port", "0", "-sd"])
        .arg(tempfile::tempdir().unwrap().path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listen =
        lines.by_ref().map_while(Result::ok).find(|l| l.contains("Listening for client connections on"));
    let listen = listen.expect("listen line");
    let port: u16 = listen.rsplit(':').next().unwrap().trim().parse().unwrap();
    assert_ne!(port, 4222);
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads a process's soft and hard limits of open files from /proc.
fn open_files_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("open files line");
    let mut fields = line.split_whitespace().skip(3);
    (fields.next().unwrap().to_string(), fields.next().unwrap().to_string())
}

#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("jetway.log");
    // prlimit lowers the soft limit, then execs the server in the same process.
    let mut child = Command::new("prlimit")
        .arg("--nofile=256:")
        .arg(env!("CARGO_BIN_EXE_jetway"))
        .args(["-a", "127.0.0.1", "-p", "-1", "-m", "0", "--mqtt_port", "0", "-sd"])
        .arg(dir.path().join("js"))
        .arg("-l")
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prlimit starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("Server is ready") {
        assert!(Instant::now() < deadline, "no 'Server is ready' in the log");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (soft, hard) = open_files_limits(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(soft, hard, "soft limit raised to the hard limit");
}

/// SIGHUP (`--signal reload=PID`) reads the config file again: a user added to it can log in,
/// a removed one is closed with nats-server's error.
#[test]
fn reload_signal_applies_the_users_of_the_rewritten_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("jetway.log");
    let conf = dir.path().join("users.conf");
    let users = |list: &str| format!("authorization {{ users: [{list}] }}\n");
    std::fs::write(&conf, users("{user: old, password: o}")).unwrap();
    let mut child = start(&["-c", conf.to_str().unwrap()], dir.path(), &log);
    let port = port_from_log(&log);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let login = |user: &'static str, pass: &'static str| async move {
            let url = format!("nats://127.0.0.1:{port}");
            async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into()).connect(url).await
        };
        let old = login("old", "o").await.expect("old user logs in");
        assert!(login("new", "n").await.is_err(), "not a user yet");
        std::fs::write(&conf, users("{user: new, password: n}")).unwrap();
        let status = jetway().arg("--signal").arg(format!("reload={}", child.id())).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while old.connection_state() == async_nats::connection::State::Connected {
            assert!(Instant::now() < deadline, "the removed user's connection stays");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        login("new", "n").await.expect("the added user logs in");
        assert!(login("old", "o").await.is_err(), "the removed user logs in");
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(std::fs::read_to_string(&log).unwrap().contains("Reloaded: authorization and users"));
}
