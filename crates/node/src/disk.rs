//! The node's disk, behind one narrow trait so that the node runs unchanged on the operating
//! system's file system ([`OsDisk`]) and in the simulator ([`MemoryDisk`]), whose crashes lose
//! exactly what a real disk may lose: writes not yet synced.
//!
//! Two kinds of file: random-access files that are synced explicitly (the chain database and
//! the consensus WAL), and small secret files written whole, atomically and durably (beacon
//! shares, dealer seeds, a player's accepted dealings).

use crate::keystore::{KeyStoreError, read_private_file, remove_stale_temporaries, replace_private_file, write_private_file};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// What the node keeps its data on.
pub trait Disk: Send + Sync + 'static {
    /// The random-access file at `path`, created empty if missing.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>>;
    /// A secret file's bytes, `None` if there is none. Refused when others may read it.
    fn read_private(&self, path: &Path) -> io::Result<Option<Zeroizing<Vec<u8>>>>;
    /// Write a secret file (0600) whole: after a crash it holds the old bytes or the new, never
    /// a mix, and it is durable when this returns. Without `replace`, an existing file is an
    /// `AlreadyExists` error.
    fn write_private(&self, path: &Path, bytes: &[u8], replace: bool) -> io::Result<()>;
    /// Remove a file; a missing one is not an error.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// The names of the files in `dir` (none if it does not exist), dropping what an
    /// interrupted atomic write left behind.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Create `dir` (0700) and its parents.
    fn create_dir(&self, dir: &Path) -> io::Result<()>;
}

/// A file read and written at offsets; nothing written is durable before [`DiskFile::sync`].
pub trait DiskFile: Send + Sync + fmt::Debug {
    fn len(&self) -> io::Result<u64>;
    /// Fill `out` from `offset`; reading past the end is an error.
    fn read_at(&self, offset: u64, out: &mut [u8]) -> io::Result<()>;
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Truncate or extend (with zeros).
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn sync(&self) -> io::Result<()>;

    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The whole file.
    fn read_all(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.len()?).map_err(|_| io::Error::other("file too large"))?;
        let mut bytes = vec![0u8; len];
        self.read_at(0, &mut bytes)?;
        Ok(bytes)
    }
}

/// The operating system's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsDisk;

#[derive(Debug)]
struct OsFile(std::fs::File);

impl DiskFile for OsFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn read_at(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.read_exact_at(out, offset)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_all_at(data, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

fn keystore_io(e: KeyStoreError) -> io::Error {
    match e {
        KeyStoreError::Io(_, e) => e,
        KeyStoreError::Exists(..) => io::Error::new(io::ErrorKind::AlreadyExists, e.to_string()),
        KeyStoreError::NotFound(..) => io::Error::new(io::ErrorKind::NotFound, e.to_string()),
        KeyStoreError::Permissions(..) => io::Error::new(io::ErrorKind::PermissionDenied, e.to_string()),
        other => io::Error::other(other.to_string()),
    }
}

impl Disk for OsDisk {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        Ok(Arc::new(OsFile(file)))
    }

    fn read_private(&self, path: &Path) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
        match read_private_file(path, || KeyStoreError::NotFound("file".into(), path.to_path_buf())) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(KeyStoreError::NotFound(..)) => Ok(None),
            Err(e) => Err(keystore_io(e)),
        }
    }

    fn write_private(&self, path: &Path, bytes: &[u8], replace: bool) -> io::Result<()> {
        if replace { replace_private_file(path, bytes) } else { write_private_file(path, bytes, "file") }.map_err(keystore_io)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        if !dir.exists() {
            return Ok(Vec::new());
        }
        remove_stale_temporaries(dir).map_err(keystore_io)?;
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }
}

/// A disk in memory for the simulator. Every file keeps what is durable apart from the writes
/// since its last sync; [`MemoryDisk::crash`] keeps a chosen prefix of those writes (none, some
/// — a torn tail — or all) and invalidates every handle the crashed process held.
/// [`MemoryDisk::cut_power_after`] makes the disk fail from a chosen operation on, so a crash
/// can fall between any two steps of a commit.
#[derive(Clone, Default)]
pub struct MemoryDisk {
    inner: Arc<Mutex<MemoryInner>>,
    /// Operations left before the power cut, when one is armed.
    power: Arc<PowerSwitch>,
}

#[derive(Default)]
struct PowerSwitch {
    armed: AtomicBool,
    left: AtomicU64,
}

impl PowerSwitch {
    fn spend(&self) -> io::Result<()> {
        if !self.armed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let left = self.left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(io::Error::other("power cut (simulated)"));
        }
        self.left.store(left - 1, Ordering::SeqCst);
        Ok(())
    }
}

#[derive(Default)]
struct MemoryInner {
    files: BTreeMap<PathBuf, Arc<MemoryFile>>,
    private: BTreeMap<PathBuf, Zeroizing<Vec<u8>>>,
    dirs: std::collections::BTreeSet<PathBuf>,
}

struct MemoryFile {
    state: Mutex<FileState>,
    /// False once the process that opened it crashed: its handles fail.
    live: AtomicBool,
    power: Arc<PowerSwitch>,
}

impl fmt::Debug for MemoryFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemoryFile")
    }
}

#[derive(Default, Clone)]
struct FileState {
    durable: Vec<u8>,
    current: Vec<u8>,
    unsynced: Vec<FileOp>,
}

#[derive(Clone)]
enum FileOp {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

impl FileOp {
    fn apply(&self, bytes: &mut Vec<u8>) {
        match self {
            FileOp::Write(offset, data) => {
                let end = *offset as usize + data.len();
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[*offset as usize..end].copy_from_slice(data);
            }
            FileOp::SetLen(len) => bytes.resize(*len as usize, 0),
        }
    }
}

impl MemoryFile {
    fn check(&self) -> io::Result<()> {
        if self.live.load(Ordering::SeqCst) { Ok(()) } else { Err(io::Error::other("the process that opened this file crashed")) }
    }

    fn mutate(&self, op: FileOp) -> io::Result<()> {
        self.check()?;
        self.power.spend()?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        op.apply(&mut state.current);
        state.unsynced.push(op);
        Ok(())
    }
}

impl DiskFile for MemoryFile {
    fn len(&self) -> io::Result<u64> {
        self.check()?;
        Ok(self.state.lock().unwrap_or_else(|e| e.into_inner()).current.len() as u64)
    }
    fn read_at(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.check()?;
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let start = offset as usize;
        let bytes = state.current.get(start..start + out.len()).ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        out.copy_from_slice(bytes);
        Ok(())
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.mutate(FileOp::Write(offset, data.to_vec()))
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.mutate(FileOp::SetLen(len))
    }
    fn sync(&self) -> io::Result<()> {
        self.check()?;
        self.power.spend()?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.durable = state.current.clone();
        state.unsynced.clear();
        Ok(())
    }
}

impl MemoryDisk {
    pub fn new() -> MemoryDisk {
        MemoryDisk::default()
    }

    /// From the next `operations` writes, syncs and file writes on, every one fails, as if the
    /// machine lost power there (the process dies; see [`MemoryDisk::crash`]).
    /// A cut already armed stays as it is (the machine is already going down).
    pub fn cut_power_after(&self, operations: u64) {
        if self.power.armed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.power.left.store(operations, Ordering::SeqCst);
    }

    pub fn power_cut(&self) -> bool {
        self.power.armed.load(Ordering::SeqCst) && self.power.left.load(Ordering::SeqCst) == 0
    }

    /// The process using this disk died: each file keeps its durable bytes plus the first
    /// `keep(unsynced)` of the writes made since its last sync, and of the write after those
    /// its first `keep(length)` bytes (a torn write); `keep` returns at most its argument.
    /// Every open handle fails from now on, and power is back.
    pub fn crash(&self, mut keep: impl FnMut(usize) -> usize) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let paths: Vec<PathBuf> = inner.files.keys().cloned().collect();
        for path in paths {
            let old = inner.files.remove(&path).expect("listed");
            old.live.store(false, Ordering::SeqCst);
            let state = old.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut bytes = state.durable;
            let kept = keep(state.unsynced.len()).min(state.unsynced.len());
            for op in &state.unsynced[..kept] {
                op.apply(&mut bytes);
            }
            if let Some(FileOp::Write(offset, data)) = state.unsynced.get(kept) {
                let torn = keep(data.len()).min(data.len());
                FileOp::Write(*offset, data[..torn].to_vec()).apply(&mut bytes);
            }
            let file = MemoryFile {
                state: Mutex::new(FileState { durable: bytes.clone(), current: bytes, unsynced: Vec::new() }),
                live: AtomicBool::new(true),
                power: self.power.clone(),
            };
            inner.files.insert(path, Arc::new(file));
        }
        self.power.armed.store(false, Ordering::SeqCst);
    }

    /// Bytes held, durable or not (for the simulator's memory report).
    pub fn bytes(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.files.values().map(|f| f.state.lock().unwrap_or_else(|e| e.into_inner()).current.len()).sum::<usize>()
            + inner.private.values().map(|v| v.len()).sum::<usize>()
    }
}

impl Disk for MemoryDisk {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let power = self.power.clone();
        let file = inner.files.entry(path.to_path_buf()).or_insert_with(|| {
            Arc::new(MemoryFile { state: Mutex::new(FileState::default()), live: AtomicBool::new(true), power })
        });
        Ok(file.clone())
    }

    fn read_private(&self, path: &Path) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
        Ok(self.inner.lock().unwrap_or_else(|e| e.into_inner()).private.get(path).cloned())
    }

    fn write_private(&self, path: &Path, bytes: &[u8], replace: bool) -> io::Result<()> {
        self.power.spend()?;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !replace && inner.private.contains_key(path) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", path.display())));
        }
        inner.private.insert(path.to_path_buf(), Zeroizing::new(bytes.to_vec()));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.power.spend()?;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.private.remove(path);
        if let Some(file) = inner.files.remove(path) {
            file.live.store(false, Ordering::SeqCst);
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let names = inner
            .private
            .keys()
            .chain(inner.files.keys())
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect::<std::collections::BTreeSet<_>>();
        Ok(names.into_iter().collect())
    }

    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).dirs.insert(dir.to_path_buf());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_keeps_synced_bytes_and_the_chosen_prefix_of_the_rest() {
        let disk = MemoryDisk::new();
        let path = Path::new("/n/wal");
        let file = disk.open(path).unwrap();
        file.write_at(0, b"abc").unwrap();
        file.sync().unwrap();
        file.write_at(3, b"def").unwrap();
        file.write_at(6, b"ghi").unwrap();
        disk.crash(|_| 0);
        assert!(file.len().is_err(), "a crashed process's handle fails");
        let reopened = disk.open(path).unwrap();
        assert_eq!(reopened.read_all().unwrap(), b"abc");
        reopened.write_at(3, b"def").unwrap();
        reopened.write_at(6, b"ghi").unwrap();
        let mut choices = [1usize, 2].into_iter();
        disk.crash(|_| choices.next().unwrap());
        assert_eq!(disk.open(path).unwrap().read_all().unwrap(), b"abcdefgh", "one write of two kept, then two bytes of the next");
    }

    #[test]
    fn a_power_cut_fails_every_later_write() {
        let disk = MemoryDisk::new();
        let file = disk.open(Path::new("/f")).unwrap();
        disk.cut_power_after(2);
        file.write_at(0, b"a").unwrap();
        file.sync().unwrap();
        assert!(file.write_at(1, b"b").is_err());
        assert!(disk.write_private(Path::new("/s"), b"x", false).is_err());
        assert!(disk.power_cut());
        disk.crash(|n| n);
        assert_eq!(disk.open(Path::new("/f")).unwrap().read_all().unwrap(), b"a");
        assert!(disk.write_private(Path::new("/s"), b"x", false).is_ok(), "power is back after the crash");
        assert!(disk.write_private(Path::new("/s"), b"y", false).is_err(), "never overwritten without replace");
    }
}
