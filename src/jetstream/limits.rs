//! Storage limits: configured, or derived from the machine as nats-server does (75% of
//! memory, 75% of the free disk under the store directory).

use std::path::Path;

use crate::config::JetStream as JetStreamConfig;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_memory: i64,
    pub max_storage: i64,
}

impl Limits {
    pub fn derive(config: &JetStreamConfig, store_dir: &Path) -> Limits {
        let max_memory = config
            .max_memory_store
            .map(|v| v as i64)
            .unwrap_or_else(|| total_memory().map_or(256 * 1024 * 1024, |m| (m / 4 * 3) as i64));
        let max_storage = config
            .max_file_store
            .map(|v| v as i64)
            .unwrap_or_else(|| free_disk(store_dir).map_or(1 << 40, |d| (d / 4 * 3) as i64));
        Limits { max_memory, max_storage }
    }
}

/// Physical memory from `/proc/meminfo`.
fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Free bytes on the file system holding `dir`.
#[allow(unsafe_code)]
fn free_disk(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `path` is a valid NUL-terminated string and `stat` a properly sized, zeroed
    // struct that statvfs fills; nothing else is touched.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    (rc == 0).then(|| stat.f_bavail as u64 * stat.f_frsize as u64)
}
