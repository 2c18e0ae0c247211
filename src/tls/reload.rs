//! Reloading certificates: on demand (SIGHUP) and when the files change on disk.
//!
//! A reload builds a complete new config first and swaps it in only if that worked: a
//! half-written or wrong file logs an error and the old certificates stay in use. Connections
//! already established are not touched; they keep the keys they negotiated.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::acceptor::ReloadableAcceptor;
use super::config::{self, TlsError};

/// How often the watcher looks at the files' modification times.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Modification time and length of each watched file (`None` when it can't be read), enough
/// to notice a replaced file without reading it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileStamps(Vec<(PathBuf, Option<(SystemTime, u64)>)>);

impl FileStamps {
    pub fn read(paths: &[PathBuf]) -> Self {
        FileStamps(
            paths
                .iter()
                .map(|p| {
                    let stamp = std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
                    (p.clone(), stamp)
                })
                .collect(),
        )
    }
}

impl ReloadableAcceptor {
    /// Rebuilds the config from the files and uses it for new handshakes. On error the
    /// current config stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let files = config::files(self.settings());
        // Stamped before reading: a write racing with this reload changes the stamp again,
        // so the watcher reloads once more rather than missing it.
        let stamps = FileStamps::read(&files);
        let result = config::build(self.settings());
        *self.stamps.lock() = stamps;
        self.replace(result?);
        Ok(())
    }

    /// Reloads when a file changed since the last load (or attempt). `None` when nothing
    /// changed.
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let now = FileStamps::read(&config::files(self.settings()));
        if *self.stamps.lock() == now {
            return None;
        }
        Some(self.reload())
    }
}

/// Polls the acceptor's files every `every` until `stop`, reloading on change and logging
/// the outcome either way.
pub async fn watch(acceptor: Arc<ReloadableAcceptor>, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        // File reads are small and rare; blocking briefly on them here is fine.
        match acceptor.reload_if_changed() {
            None => {}
            Some(Ok(())) => tracing::info!("TLS certificate files changed: reloaded"),
            Some(Err(e)) => tracing::error!(
                "TLS certificate files changed but can't be loaded, keeping the previous ones: {e}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Tls;
    use crate::tls::testing::write_pki;

    fn acceptor(dir: &std::path::Path) -> (ReloadableAcceptor, crate::certs::Generated) {
        let pki = write_pki(dir);
        let settings = Tls {
            cert_file: Some(pki.server_cert.clone()),
            key_file: Some(pki.server_key.clone()),
            ..Tls::default()
        };
        (ReloadableAcceptor::new(&settings).unwrap_or_else(|e| panic!("{e}")), pki)
    }

    #[test]
    fn unchanged_files_are_not_reloaded() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (acceptor, _) = acceptor(dir.path());
        assert!(acceptor.reload_if_changed().is_none());
    }

    #[test]
    fn replaced_files_are_reloaded_and_a_bad_file_keeps_the_old_config() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (acceptor, pki) = acceptor(dir.path());
        let before = acceptor.server_config();

        // New certificates written over the old files.
        write_pki(dir.path());
        assert!(matches!(acceptor.reload_if_changed(), Some(Ok(()))));
        let reloaded = acceptor.server_config();
        assert!(!Arc::ptr_eq(&before, &reloaded));

        // A broken certificate: an error, and the config in use does not change.
        std::fs::write(&pki.server_cert, "garbage").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(acceptor.reload_if_changed(), Some(Err(_))));
        assert!(Arc::ptr_eq(&reloaded, &acceptor.server_config()));
        // The failed attempt is remembered: no retry until the file changes again.
        assert!(acceptor.reload_if_changed().is_none());
    }
}
