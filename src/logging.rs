//! Log output in nats-server's format: `[pid] 2026/11/27 12:00:00.000000 [INF] message`, so
//! tooling that watches nats-server's log (for "Server is ready", "Listening for client
//! connections on …") works unchanged.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How much to log: nats-server's `-D` (debug) and `-V` (trace) flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogLevel {
    pub debug: bool,
    pub trace: bool,
}

struct NatsFormat {
    pid: u32,
    logtime: bool,
}

impl<S, N> FormatEvent<S, N> for NatsFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "[{}] ", self.pid)?;
        if self.logtime {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            // 2026-11-27T12:00:00.123456789Z -> 2026/11/27 12:00:00.123456
            let iso = crate::time::format_rfc3339(now);
            let date = iso.get(0..10).unwrap_or_default().replace('-', "/");
            let time = iso.get(11..26).unwrap_or_default();
            write!(writer, "{date} {time} ")?;
        }
        let tag = match *event.metadata().level() {
            Level::ERROR => "[ERR]",
            Level::WARN => "[WRN]",
            Level::INFO => "[INF]",
            Level::DEBUG => "[DBG]",
            Level::TRACE => "[TRC]",
        };
        write!(writer, "{tag} ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Installs the global subscriber writing to stderr or to `file`.
pub fn init(level: LogLevel, logtime: bool, file: Option<&Path>) -> std::io::Result<()> {
    let max = if level.trace {
        Level::TRACE
    } else if level.debug {
        Level::DEBUG
    } else {
        Level::INFO
    };
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("jetway", max)
        .with_target("jetway_storage", max)
        .with_default(Level::WARN);
    let format = NatsFormat { pid: std::process::id(), logtime };
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let builder = tracing_subscriber::fmt::layer().event_format(format);
    let result = match file {
        Some(path) => {
            let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            let file = Arc::new(file);
            tracing_subscriber::registry()
                .with(builder.with_writer(move || LogFile(file.clone())).with_ansi(false))
                .with(filter)
                .try_init()
        }
        None => tracing_subscriber::registry()
            .with(builder.with_writer(std::io::stderr).with_ansi(false))
            .with(filter)
            .try_init(),
    };
    result.map_err(std::io::Error::other)
}

/// Fatal error line, printed before a non-zero exit (nats-server's `[FTL]`).
pub fn fatal(message: &str) {
    let _ = writeln!(std::io::stderr(), "[{}] [FTL] {message}", std::process::id());
}

struct LogFile(Arc<std::fs::File>);

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}
