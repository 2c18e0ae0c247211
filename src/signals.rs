//! Process signals: waiting for them (the server) and sending them (`--signal`).

use std::path::Path;

/// How the server should end.
pub enum Exit {
    /// SIGINT / SIGTERM: graceful shutdown.
    Shutdown,
    /// SIGUSR2: lame-duck mode, then shutdown.
    LameDuck,
}

/// Waits for SIGINT, SIGTERM or SIGUSR2, calling `reload` on each SIGHUP meanwhile.
pub async fn wait_for_exit(reload: impl Fn()) -> Exit {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut usr2), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined2()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("can't install signal handlers; stop with SIGKILL");
        std::future::pending::<()>().await;
        return Exit::Shutdown;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return Exit::Shutdown,
            _ = int.recv() => return Exit::Shutdown,
            _ = usr2.recv() => return Exit::LameDuck,
            _ = hup.recv() => {
                tracing::info!("Trapped \"hangup\" signal, reloading");
                reload();
            }
        }
    }
}

/// `--signal CMD[=PID]`: sends the signal nats-server maps to CMD.
pub fn send_signal(arg: &str, pid_file: Option<&Path>) -> Result<(), String> {
    let (cmd, pid) = match arg.split_once('=') {
        Some((c, p)) => (c, Some(p.trim().to_string())),
        None => (arg, None),
    };
    let sig = match cmd {
        "stop" => libc::SIGKILL,
        "quit" => libc::SIGINT,
        "term" => libc::SIGTERM,
        "reopen" => libc::SIGUSR1,
        "reload" => libc::SIGHUP,
        "ldm" => libc::SIGUSR2,
        other => return Err(format!("unknown signal {other:?}")),
    };
    let pid = match (pid, pid_file) {
        (Some(p), _) => p,
        (None, Some(file)) => std::fs::read_to_string(file)
            .map_err(|e| format!("can't read pid file {}: {e}", file.display()))?
            .trim()
            .to_string(),
        (None, None) => return Err("no pid given: use --signal CMD=PID or -P pidfile".into()),
    };
    let pid: i32 = pid.parse().map_err(|_| format!("invalid pid {pid:?}"))?;
    if pid <= 0 {
        return Err(format!("invalid pid {pid}"));
    }
    kill(pid, sig)
}

#[allow(unsafe_code)]
fn kill(pid: i32, sig: i32) -> Result<(), String> {
    // SAFETY: kill(2) takes plain integers and has no memory effects in this process.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("can't signal pid {pid}: {}", std::io::Error::last_os_error()))
    }
}

/// Raises the soft limit of open files to the hard limit, as Go programs such as nats-server
/// do at startup: every connection, and every stream block and consumer file, is a
/// descriptor, and distributions default the soft limit to 1,024.
#[allow(unsafe_code)]
pub fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit(2) writes one `rlimit` through a valid pointer to a local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur >= limit.rlim_max {
        return;
    }
    let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
    // SAFETY: setrlimit(2) reads one `rlimit` through a valid pointer to a local.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        tracing::debug!(from = limit.rlim_cur, to = limit.rlim_max, "raised the open files limit");
    } else {
        tracing::warn!(
            "can't raise the open files limit from {}: {}",
            limit.rlim_cur,
            std::io::Error::last_os_error()
        );
    }
}
