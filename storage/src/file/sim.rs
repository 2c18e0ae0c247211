//! A simulated file system that can crash: it keeps what was written ("live") apart from what
//! an fsync made durable, and [`SimIo::crash`] returns the durable image, optionally with torn
//! writes (a random prefix of the unsynced bytes from the first one that differs, appended or
//! written in place, possibly garbled), as a real power loss may leave. File contents become durable with `sync_data`; names (creates, renames, removals)
//! only when their parent folder is synced.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::file::io::{Io, IoFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(u64),
    Dir,
}

#[derive(Debug, Default, Clone)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default, Clone)]
struct DirState {
    live: BTreeMap<String, Node>,
    durable: BTreeMap<String, Node>,
}

#[derive(Debug, Default)]
struct FsState {
    dirs: HashMap<PathBuf, DirState>,
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
}

/// How a crash treats data that was written but not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Only synced data survives.
    Clean,
    /// Each file may also keep a random prefix of its unsynced bytes (from the first byte that
    /// differs from the synced image), whose last byte may be garbage (a torn write). `seed`
    /// picks the outcome.
    Torn {
        /// Random seed.
        seed: u64,
    },
}

/// The simulated file system; clones share state.
#[derive(Clone, Default)]
pub struct SimIo {
    state: Arc<Mutex<FsState>>,
    /// Number of successful syncs left before syncs fail (u64::MAX: never fail).
    syncs_left: Arc<AtomicU64>,
}

impl std::fmt::Debug for SimIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimIo")
    }
}

fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let parent = path.parent().ok_or_else(|| io::Error::other("no parent"))?;
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| io::Error::other("bad name"))?;
    Ok((parent.to_path_buf(), name.to_string()))
}

fn not_found() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "not found")
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

impl SimIo {
    /// An empty file system with a durable root `/`.
    pub fn new() -> SimIo {
        let sim = SimIo::default();
        sim.syncs_left.store(u64::MAX, Ordering::SeqCst);
        sim.state.lock().dirs.insert(PathBuf::from("/"), DirState::default());
        sim
    }

    /// Makes every sync after the next `n` fail with an I/O error.
    pub fn fail_syncs_after(&self, n: u64) {
        self.syncs_left.store(n, Ordering::SeqCst);
    }

    fn take_sync(&self) -> io::Result<()> {
        let ok = self
            .syncs_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                u64::MAX => Some(n),
                0 => None,
                n => Some(n - 1),
            })
            .is_ok();
        if ok {
            Ok(())
        } else {
            Err(io::Error::other("injected fsync failure"))
        }
    }

    /// The file system a machine would find after losing power now.
    pub fn crash(&self, mode: CrashMode) -> SimIo {
        let old = self.state.lock();
        let mut rng = XorShift(match mode {
            CrashMode::Clean => 1,
            CrashMode::Torn { seed } => seed | 1,
        });
        let mut new = FsState { next_inode: old.next_inode, ..FsState::default() };
        let mut stack = vec![PathBuf::from("/")];
        while let Some(dir) = stack.pop() {
            let Some(d) = old.dirs.get(&dir) else {
                continue;
            };
            for (name, node) in &d.durable {
                match node {
                    Node::Dir => stack.push(dir.join(name)),
                    Node::File(ino) => {
                        if new.inodes.contains_key(ino) {
                            continue;
                        }
                        let Some(inode) = old.inodes.get(ino) else {
                            continue;
                        };
                        let mut content = inode.durable.clone();
                        if let CrashMode::Torn { .. } = mode {
                            // Unsynced writes from the first byte that differs (appended, or
                            // written over prefilled zeros) to the end of the live file: a
                            // random prefix of them persisted, its last byte maybe garbled.
                            let (live, durable) = (&inode.live, &inode.durable);
                            let from = live.iter().zip(durable.iter()).position(|(a, b)| a != b);
                            let from = from.unwrap_or(durable.len());
                            let extra = live.get(from..).unwrap_or_default();
                            if !extra.is_empty() && live.len() >= durable.len() {
                                let keep = (rng.next() % (extra.len() as u64 + 1)) as usize;
                                content.truncate(from);
                                content.extend_from_slice(extra.get(..keep).unwrap_or_default());
                                if keep > 0 && rng.next() % 2 == 0 {
                                    if let Some(b) = content.last_mut() {
                                        *b ^= 0x5a;
                                    }
                                }
                                // What the writes did not reach keeps its durable bytes.
                                if let Some(rest) = durable.get(content.len()..) {
                                    content.extend_from_slice(rest);
                                }
                            }
                        }
                        new.inodes.insert(*ino, Inode { live: content.clone(), durable: content });
                    }
                }
            }
            new.dirs.insert(dir, DirState { live: d.durable.clone(), durable: d.durable.clone() });
        }
        let sim = SimIo::new();
        *sim.state.lock() = new;
        sim
    }

    /// Overwrites bytes of a file (live and durable), for corruption tests.
    pub fn corrupt(&self, path: &Path, offset: usize, bytes: &[u8]) -> io::Result<()> {
        let (parent, name) = split(path)?;
        let mut st = self.state.lock();
        let Some(Node::File(ino)) = st.dirs.get(&parent).and_then(|d| d.live.get(&name)).copied() else {
            return Err(not_found());
        };
        let inode = st.inodes.get_mut(&ino).ok_or_else(not_found)?;
        for content in [&mut inode.live, &mut inode.durable] {
            for (i, b) in bytes.iter().enumerate() {
                if let Some(slot) = content.get_mut(offset + i) {
                    *slot = *b;
                }
            }
        }
        Ok(())
    }
}

struct SimFile {
    sim: SimIo,
    ino: u64,
}

impl IoFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let st = self.sim.state.lock();
        let inode = st.inodes.get(&self.ino).ok_or_else(not_found)?;
        let src = inode.live.get(offset as usize..).unwrap_or_default();
        let n = src.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), src.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.sim.state.lock();
        let inode = st.inodes.get_mut(&self.ino).ok_or_else(not_found)?;
        let end = offset as usize + buf.len();
        if inode.live.len() < end {
            inode.live.resize(end, 0);
        }
        if let Some(dst) = inode.live.get_mut(offset as usize..end) {
            dst.copy_from_slice(buf);
        }
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.sim.take_sync()?;
        let mut st = self.sim.state.lock();
        let inode = st.inodes.get_mut(&self.ino).ok_or_else(not_found)?;
        inode.durable = inode.live.clone();
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        let st = self.sim.state.lock();
        Ok(st.inodes.get(&self.ino).ok_or_else(not_found)?.live.len() as u64)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.sim.state.lock();
        st.inodes.get_mut(&self.ino).ok_or_else(not_found)?.live.resize(len as usize, 0);
        Ok(())
    }
}

impl Io for SimIo {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        let mut cur = PathBuf::from("/");
        for comp in path.components().skip(1) {
            let name = comp.as_os_str().to_string_lossy().to_string();
            let next = cur.join(&name);
            let parent = st.dirs.get_mut(&cur).ok_or_else(not_found)?;
            parent.live.entry(name).or_insert(Node::Dir);
            st.dirs.entry(next.clone()).or_default();
            cur = next;
        }
        Ok(())
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let st = self.state.lock();
        Ok(st.dirs.get(path).ok_or_else(not_found)?.live.keys().cloned().collect())
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn IoFile>> {
        let (parent, name) = split(path)?;
        let mut st = self.state.lock();
        let existing = st.dirs.get(&parent).ok_or_else(not_found)?.live.get(&name).copied();
        let ino = match existing {
            Some(Node::File(ino)) => ino,
            Some(Node::Dir) => return Err(io::Error::other("is a folder")),
            None if create => {
                st.next_inode += 1;
                let ino = st.next_inode;
                st.inodes.insert(ino, Inode::default());
                st.dirs.get_mut(&parent).ok_or_else(not_found)?.live.insert(name, Node::File(ino));
                ino
            }
            None => return Err(not_found()),
        };
        Ok(Box::new(SimFile { sim: self.clone(), ino }))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let (parent, name) = split(path)?;
        let mut st = self.state.lock();
        st.dirs.get_mut(&parent).ok_or_else(not_found)?.live.remove(&name).map(|_| ()).ok_or_else(not_found)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (fp, fname) = split(from)?;
        let (tp, tname) = split(to)?;
        let mut st = self.state.lock();
        let node = st.dirs.get_mut(&fp).ok_or_else(not_found)?.live.remove(&fname).ok_or_else(not_found)?;
        st.dirs.get_mut(&tp).ok_or_else(not_found)?.live.insert(tname, node);
        Ok(())
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.take_sync()?;
        let mut st = self.state.lock();
        let d = st.dirs.get_mut(path).ok_or_else(not_found)?;
        d.durable = d.live.clone();
        Ok(())
    }
    fn exists(&self, path: &Path) -> bool {
        let Ok((parent, name)) = split(path) else {
            return path == Path::new("/");
        };
        self.state.lock().dirs.get(&parent).is_some_and(|d| d.live.contains_key(&name))
    }
}
