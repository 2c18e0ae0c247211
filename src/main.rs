//! The `jetway` binary: nats-server-compatible command line, config loading, signals.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use jetway::config::{Config, SyncInterval};
use jetway::logging::{self, LogLevel};

// `--features system-alloc` leaves the system allocator in place, so heap profilers that
// intercept malloc (heaptrack, valgrind) see every allocation.
// Built with lazy arena commit (`.cargo/config.toml`): idle memory is not committed up front.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Run-time settings of the allocator, made before any other thread starts.
#[cfg(not(feature = "system-alloc"))]
mod allocator {
    /// mimalloc's `purge_delay` option (its place in `mi_option_e`, mimalloc v3).
    pub const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

    /// Pages left empty are given back to the OS at once. mimalloc's default delays that by a
    /// second and only acts on the delay when the thread allocates again: a server going
    /// idle (thousands of idle MQTT sessions after their setup) then kept every page its
    /// setup emptied, ~0.9 KB per session. Measured: no throughput change in the JetStream
    /// and MQTT benchmarks. `MIMALLOC_PURGE_DELAY` in the environment still decides.
    #[allow(unsafe_code)] // a plain FFI setter
    pub fn configure() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: sets one option, before the server starts any thread; no pointers.
            unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
        }
    }
}

#[cfg(feature = "system-alloc")]
mod allocator {
    pub fn configure() {}
}

#[cfg(all(test, not(feature = "system-alloc")))]
mod allocator_tests {
    /// mimalloc's `arena_eager_commit` option (its place in `mi_option_e`, mimalloc v3).
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

    /// An idle MQTT session costs ~10 KB more RSS when mimalloc commits whole arenas up
    /// front (its default on Linux); the build must keep the lazy default in place.
    #[test]
    #[allow(unsafe_code)] // a plain FFI getter
    fn mimalloc_commits_arenas_lazily() {
        if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_some() {
            return; // explicitly chosen at run time
        }
        // SAFETY: reads one option; no pointers involved.
        let eager = unsafe { libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT) };
        assert_eq!(eager, 0, "mimalloc was built without MI_DEFAULT_ARENA_EAGER_COMMIT=0");
    }

    #[test]
    #[allow(unsafe_code)] // a plain FFI getter
    fn empty_pages_go_back_to_the_os_at_once() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // explicitly chosen at run time
        }
        super::allocator::configure();
        // SAFETY: reads one option; no pointers involved.
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::allocator::PURGE_DELAY) };
        assert_eq!(delay, 0);
    }
}

mod cli;
mod signals;

use cli::Cli;

fn main() -> ExitCode {
    allocator::configure();
    let cli = match Cli::try_parse_from(cli::normalize_args(std::env::args())) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(1) } else { ExitCode::SUCCESS };
        }
    };
    if let Some(cli::Command::Certs(args)) = &cli.command {
        return certs(args);
    }
    if cli.version {
        println!(
            "jetway: v{} (nats-server v{} compatible)",
            jetway::server::JETWAY_VERSION,
            jetway::server::NATS_COMPAT_VERSION
        );
        return ExitCode::SUCCESS;
    }
    if let Some(signal) = &cli.signal {
        return match signals::send_signal(signal, cli.pid_file.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                logging::fatal(&e);
                ExitCode::from(1)
            }
        };
    }
    let config = match build_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            logging::fatal(&e);
            return ExitCode::from(1);
        }
    };
    if cli.test_config {
        println!(
            "jetway: configuration file {} is valid",
            cli.config.as_deref().map_or("-".into(), |p| p.display().to_string())
        );
        return ExitCode::SUCCESS;
    }
    let level = LogLevel { debug: config.debug, trace: config.trace };
    if let Err(e) = logging::init(level, config.logtime, config.log_file.as_deref()) {
        logging::fatal(&format!("can't open log: {e}"));
        return ExitCode::from(1);
    }
    signals::raise_open_files_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            logging::fatal(&format!("can't start runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(config, &cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            logging::fatal(&e);
            ExitCode::from(1)
        }
    }
}

/// `jetway certs`: writes development certificates and says where.
fn certs(args: &cli::CertsArgs) -> ExitCode {
    match jetway::certs::generate(&args.out, &args.hosts, &args.clients, args.days) {
        Ok(generated) => {
            println!("CA certificate:     {}", generated.ca_cert.display());
            println!("CA key:             {}", generated.ca_key.display());
            println!(
                "server certificate: {} (for {})",
                generated.server_cert.display(),
                args.hosts.join(", ")
            );
            println!("server key:         {}", generated.server_key.display());
            for (name, cert, key) in &generated.clients {
                println!("client {name}:  {} {}", cert.display(), key.display());
            }
            println!("For development only: the CA key is not protected.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            logging::fatal(&e.to_string());
            ExitCode::from(1)
        }
    }
}

async fn serve(config: Config, cli: &Cli) -> Result<(), String> {
    let pid_file = config.pid_file.clone();
    let handle = jetway::run(config).await.map_err(|e| e.to_string())?;
    if let Some(path) = &pid_file {
        std::fs::write(path, std::process::id().to_string())
            .map_err(|e| format!("can't write pid file {}: {e}", path.display()))?;
    }
    // SIGHUP reads the configuration again, the same way as at startup.
    let action = signals::wait_for_exit(|| match build_config(cli) {
        Ok(config) => handle.reload_with(config),
        Err(e) => tracing::error!("Failed to reload the configuration, keeping the running one: {e}"),
    })
    .await;
    match action {
        signals::Exit::Shutdown => {
            tracing::info!("Trapped signal, shutting down");
            handle.shutdown().await;
        }
        signals::Exit::LameDuck => handle.lame_duck().await,
    }
    if let Some(path) = &pid_file {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// The config file (if any) with command-line flags applied on top.
fn build_config(cli: &Cli) -> Result<Config, String> {
    let mut config = match &cli.config {
        Some(path) => load_file(path)?,
        None => Config::default(),
    };
    cli.apply(&mut config)?;
    if config.jetstream.sync_interval == SyncInterval::Every(std::time::Duration::ZERO) {
        return Err("jetstream.sync_interval must be positive".into());
    }
    Ok(config)
}

fn load_file(path: &Path) -> Result<Config, String> {
    let loaded = Config::load(path).map_err(|e| e.to_string())?;
    for warning in &loaded.warnings {
        eprintln!("[{}] [WRN] {warning}", std::process::id());
    }
    Ok(loaded.config)
}
