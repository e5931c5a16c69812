//! Account key files: one JSON file per key under `<home>/keys/`, created with mode 0600 in a
//! 0700 directory and never overwritten. A file readable by others is refused at load, like
//! ssh does. The secret is held in zeroizing buffers and never printed or logged.
//!
//! The secret is stored unencrypted (protected by file permissions), which suits development
//! chains; passphrase encryption is future work.

use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tcp_state::{AccountKey, Address};
use zeroize::Zeroizing;

const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("key name {0:?} must be 1–64 characters of a-z, 0-9, '-' and '_'")]
    BadName(String),
    #[error("a key named {0:?} already exists ({1})")]
    Exists(String, PathBuf),
    #[error("no key named {0:?} in {1}")]
    NotFound(String, PathBuf),
    #[error("{0} is readable by other users (mode {1:o}); run `chmod 600` on it")]
    Permissions(PathBuf, u32),
    #[error("{0} is not a valid key file: {1}")]
    Corrupt(PathBuf, String),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    version: u32,
    name: String,
    address: String,
    secret_key: String,
}

/// A key's public facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub name: String,
    pub address: Address,
    pub path: PathBuf,
}

pub struct KeyStore {
    dir: PathBuf,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl KeyStore {
    /// The store under `home` (created, 0700, if missing).
    pub fn open(home: &Path) -> Result<KeyStore, KeyStoreError> {
        let dir = home.join("keys");
        fs::create_dir_all(&dir).map_err(|e| KeyStoreError::Io(dir.clone(), e))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(|e| KeyStoreError::Io(dir.clone(), e))?;
        Ok(KeyStore { dir })
    }

    fn path(&self, name: &str) -> Result<PathBuf, KeyStoreError> {
        if !valid_name(name) {
            return Err(KeyStoreError::BadName(name.to_string()));
        }
        Ok(self.dir.join(format!("{name}.json")))
    }

    /// A fresh key from the operating system's randomness.
    pub fn generate(&self, name: &str) -> Result<KeyInfo, KeyStoreError> {
        let key = loop {
            let mut secret = Zeroizing::new([0u8; 32]);
            getrandom::fill(secret.as_mut()).map_err(|e| KeyStoreError::Random(e.to_string()))?;
            if let Ok(key) = AccountKey::from_bytes(&secret[..]) {
                break key;
            }
        };
        self.save(name, &key)
    }

    /// Write `key` as a new file (never overwrites).
    pub fn save(&self, name: &str, key: &AccountKey) -> Result<KeyInfo, KeyStoreError> {
        let path = self.path(name)?;
        let secret = key.to_bytes();
        let file = KeyFile {
            version: FORMAT_VERSION,
            name: name.to_string(),
            address: key.address().to_string(),
            secret_key: tcp_types::hex::encode(&secret[..]),
        };
        let json = Zeroizing::new(serde_json::to_vec_pretty(&file).expect("a key file serializes"));
        let _secret_hex = Zeroizing::new(file.secret_key);
        write_private_file(&path, &json, name)?;
        Ok(KeyInfo { name: name.to_string(), address: key.address(), path })
    }

    fn read(&self, name: &str) -> Result<(KeyInfo, AccountKey), KeyStoreError> {
        let path = self.path(name)?;
        let bytes = read_private_file(&path, || KeyStoreError::NotFound(name.to_string(), self.dir.clone()))?;
        let corrupt = |why: String| KeyStoreError::Corrupt(path.clone(), why);
        let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let secret_hex = Zeroizing::new(file.secret_key);
        if file.version != FORMAT_VERSION {
            return Err(corrupt(format!("format version {} (this build reads {FORMAT_VERSION})", file.version)));
        }
        let secret = Zeroizing::new(tcp_types::hex::decode(&secret_hex).map_err(|e| corrupt(format!("secret_key: {e}")))?);
        let key = AccountKey::from_bytes(&secret).map_err(|e| corrupt(e.to_string()))?;
        if key.address().to_string() != file.address.to_ascii_lowercase() {
            return Err(corrupt(format!("address {} does not belong to its secret key ({})", file.address, key.address())));
        }
        Ok((KeyInfo { name: name.to_string(), address: key.address(), path }, key))
    }

    pub fn load(&self, name: &str) -> Result<AccountKey, KeyStoreError> {
        self.read(name).map(|(_, key)| key)
    }

    pub fn show(&self, name: &str) -> Result<KeyInfo, KeyStoreError> {
        self.read(name).map(|(info, _)| info)
    }

    /// Every readable key, by name; files that fail to load are reported, not skipped silently.
    pub fn list(&self) -> Result<Vec<Result<KeyInfo, KeyStoreError>>, KeyStoreError> {
        let mut names: Vec<String> = fs::read_dir(&self.dir)
            .map_err(|e| KeyStoreError::Io(self.dir.clone(), e))?
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| entry.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_string))
            .collect();
        names.sort();
        Ok(names.iter().map(|n| self.show(n)).collect())
    }
}

/// Write a new secret file, mode 0600; never overwrites (`what` names it in the error).
/// Atomic: the bytes go to a temporary file in the same directory, synced, which is then
/// linked under its name (a link fails if the name exists, so a racing writer cannot be
/// overwritten either) and the directory synced. A crash leaves the whole file or none, and
/// at most a temporary file that [`remove_stale_temporaries`] clears.
pub fn write_private_file(path: &Path, bytes: &[u8], what: &str) -> Result<(), KeyStoreError> {
    let temporary = write_temporary(path, bytes)?;
    let linked = fs::hard_link(&temporary, path);
    let _ = fs::remove_file(&temporary);
    linked.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyStoreError::Exists(what.to_string(), path.to_path_buf())
        } else {
            KeyStoreError::Io(path.to_path_buf(), e)
        }
    })?;
    sync_parent(path)
}

/// Write or replace a secret file (0600) atomically: a reader sees the old bytes or the new,
/// never a mix, also after a crash.
pub fn replace_private_file(path: &Path, bytes: &[u8]) -> Result<(), KeyStoreError> {
    let temporary = write_temporary(path, bytes)?;
    if let Err(e) = fs::rename(&temporary, path) {
        let _ = fs::remove_file(&temporary);
        return Err(KeyStoreError::Io(path.to_path_buf(), e));
    }
    sync_parent(path)
}

const TEMPORARY_MARK: &str = ".tmp-";

/// `bytes` in a fresh 0600 file beside `path`, synced; returns its path.
fn write_temporary(path: &Path, bytes: &[u8]) -> Result<PathBuf, KeyStoreError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| KeyStoreError::Io(path.to_path_buf(), std::io::ErrorKind::InvalidInput.into()))?;
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| KeyStoreError::Random(e.to_string()))?;
    let temporary = path.with_file_name(format!(".{name}{TEMPORARY_MARK}{}", tcp_types::hex::encode(&suffix)));
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| KeyStoreError::Io(temporary.clone(), e))?;
    if let Err(e) = out.write_all(bytes).and_then(|_| out.sync_all()) {
        let _ = fs::remove_file(&temporary);
        return Err(KeyStoreError::Io(temporary, e));
    }
    Ok(temporary)
}

fn sync_parent(path: &Path) -> Result<(), KeyStoreError> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::File::open(parent).and_then(|d| d.sync_all()).map_err(|e| KeyStoreError::Io(parent.to_path_buf(), e))
}

/// Remove the temporary files a crash between writing and linking (or renaming) a secret
/// file left in `dir`. Returns how many there were.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize, KeyStoreError> {
    let mut removed = 0;
    for entry in fs::read_dir(dir).map_err(|e| KeyStoreError::Io(dir.to_path_buf(), e))? {
        let entry = entry.map_err(|e| KeyStoreError::Io(dir.to_path_buf(), e))?;
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| n.starts_with('.') && n.contains(TEMPORARY_MARK)) {
            fs::remove_file(entry.path()).map_err(|e| KeyStoreError::Io(entry.path(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Read a secret file, refusing it (like ssh) when others may read it.
pub(crate) fn read_private_file(path: &Path, not_found: impl FnOnce() -> KeyStoreError) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
    let meta = fs::metadata(path)
        .map_err(|e| if e.kind() == std::io::ErrorKind::NotFound { not_found() } else { KeyStoreError::Io(path.to_path_buf(), e) })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyStoreError::Permissions(path.to_path_buf(), mode));
    }
    Ok(Zeroizing::new(fs::read(path).map_err(|e| KeyStoreError::Io(path.to_path_buf(), e))?))
}

/// A node's own secrets (`<home>/node_key.json`, 0600): its ed25519 consensus key (votes and
/// p2p identity) and, for a validator of the genesis set, its share of the beacon key from the
/// bootstrap DKG with the ceremony round it belongs to.
pub struct NodeSecrets {
    pub consensus_key: tcp_crypto::Ed25519PrivateKey,
    /// The validator's own BLS key (registered when it bonds; see `tcp_beacon::validator_key`).
    pub bls_key: tcp_beacon::validator_key::BlsPrivateKey,
    pub beacon_share: Option<(u64, tcp_beacon::dkg::BeaconShare)>,
}

#[derive(Serialize, Deserialize)]
struct NodeSecretsFile {
    version: u32,
    consensus_key: String,
    bls_key: String,
    beacon_share_round: Option<u64>,
    beacon_share: Option<String>,
}

impl NodeSecrets {
    /// Write as a new 0600 file (never overwrites).
    pub fn save(&self, path: &Path) -> Result<(), KeyStoreError> {
        use commonware_codec::Encode as _;
        let file = NodeSecretsFile {
            version: FORMAT_VERSION,
            consensus_key: tcp_types::hex::encode(&self.consensus_key.encode()),
            bls_key: tcp_types::hex::encode(&self.bls_key.encode()),
            beacon_share_round: self.beacon_share.as_ref().map(|(r, _)| *r),
            beacon_share: self.beacon_share.as_ref().map(|(_, s)| tcp_types::hex::encode(&s.encode())),
        };
        let _key_hex = Zeroizing::new(file.consensus_key.clone());
        let _bls_hex = Zeroizing::new(file.bls_key.clone());
        let _share_hex = Zeroizing::new(file.beacon_share.clone().unwrap_or_default());
        let json = Zeroizing::new(serde_json::to_vec_pretty(&file).expect("serializes"));
        write_private_file(path, &json, "node key")
    }

    pub fn load(path: &Path) -> Result<NodeSecrets, KeyStoreError> {
        use commonware_codec::DecodeExt as _;
        let bytes = read_private_file(path, || KeyStoreError::NotFound("node key".into(), path.to_path_buf()))?;
        let corrupt = |why: String| KeyStoreError::Corrupt(path.to_path_buf(), why);
        let file: NodeSecretsFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let key_hex = Zeroizing::new(file.consensus_key);
        let bls_hex = Zeroizing::new(file.bls_key);
        let share_hex = Zeroizing::new(file.beacon_share.unwrap_or_default());
        if file.version != FORMAT_VERSION {
            return Err(corrupt(format!("format version {} (this build reads {FORMAT_VERSION})", file.version)));
        }
        let key_bytes = Zeroizing::new(tcp_types::hex::decode(&key_hex).map_err(|e| corrupt(format!("consensus_key: {e}")))?);
        let consensus_key = tcp_crypto::Ed25519PrivateKey::decode(commonware_codec::Copying(&key_bytes[..]))
            .map_err(|e| corrupt(format!("consensus_key: {e}")))?;
        let bls_bytes = Zeroizing::new(tcp_types::hex::decode(&bls_hex).map_err(|e| corrupt(format!("bls_key: {e}")))?);
        let bls_key = tcp_beacon::validator_key::BlsPrivateKey::decode(commonware_codec::Copying(&bls_bytes[..]))
            .map_err(|e| corrupt(format!("bls_key: {e}")))?;
        let beacon_share = match file.beacon_share_round {
            Some(round) if !share_hex.is_empty() => {
                let share_bytes = Zeroizing::new(tcp_types::hex::decode(&share_hex).map_err(|e| corrupt(format!("beacon_share: {e}")))?);
                let share = tcp_beacon::dkg::BeaconShare::decode(commonware_codec::Copying(&share_bytes[..]))
                    .map_err(|e| corrupt(format!("beacon_share: {e}")))?;
                Some((round, share))
            }
            _ => None,
        };
        Ok(NodeSecrets { consensus_key, bls_key, beacon_share })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_home(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tcp-keystore-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn keys_are_created_0600_never_overwritten_and_round_trip() {
        let home = temp_home("roundtrip");
        let store = KeyStore::open(&home).unwrap();
        let info = store.generate("alice").unwrap();
        assert_eq!(fs::metadata(&info.path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(home.join("keys")).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(store.load("alice").unwrap().address(), info.address);
        assert!(matches!(store.generate("alice"), Err(KeyStoreError::Exists(..))));
        assert_eq!(store.load("alice").unwrap().address(), info.address, "the first key survives");
        store.generate("bob").unwrap();
        let listed: Vec<String> = store.list().unwrap().into_iter().map(|r| r.unwrap().name).collect();
        assert_eq!(listed, vec!["alice", "bob"]);
        // The file names the address but the listing never carries the secret.
        let text = fs::read_to_string(&info.path).unwrap();
        assert!(text.contains(&info.address.to_string()));
        fs::remove_dir_all(&home).unwrap();
    }

    #[test]
    fn a_secret_file_appears_whole_or_not_at_all() {
        let home = temp_home("atomic");
        fs::create_dir_all(&home).unwrap();
        let path = home.join("share-7");
        // A crash after the bytes were written but before they were linked: nothing under the
        // final name (an in-place write would have left a partial file there).
        let temporary = write_temporary(&path, b"secret bytes").unwrap();
        assert!(!path.exists());
        assert_eq!(fs::metadata(&temporary).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(remove_stale_temporaries(&home).unwrap(), 1);
        write_private_file(&path, b"secret bytes", "share").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"secret bytes");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(matches!(write_private_file(&path, b"other", "share"), Err(KeyStoreError::Exists(..))));
        assert_eq!(fs::read(&path).unwrap(), b"secret bytes", "never overwritten");
        let names: Vec<_> = fs::read_dir(&home).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("share-7")], "no temporary left behind");
        fs::remove_dir_all(&home).unwrap();
    }

    #[test]
    fn bad_names_loose_permissions_and_corrupt_files_are_refused_clearly() {
        let home = temp_home("bad");
        let store = KeyStore::open(&home).unwrap();
        for name in ["", "../etc/passwd", "Upper", "a b", &"x".repeat(65)] {
            assert!(matches!(store.generate(name), Err(KeyStoreError::BadName(_))), "{name:?}");
        }
        assert!(matches!(store.load("nobody"), Err(KeyStoreError::NotFound(..))));
        let info = store.generate("carol").unwrap();
        fs::set_permissions(&info.path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(store.load("carol"), Err(KeyStoreError::Permissions(_, 0o644))));
        fs::set_permissions(&info.path, fs::Permissions::from_mode(0o600)).unwrap();
        let text = fs::read_to_string(&info.path).unwrap();
        let other = AccountKey::from_bytes(&[5; 32]).unwrap().address().to_string();
        fs::write(&info.path, text.replace(&info.address.to_string(), &other)).unwrap();
        assert!(matches!(store.load("carol"), Err(KeyStoreError::Corrupt(..))));
        fs::write(&info.path, b"{not json").unwrap();
        assert!(matches!(store.load("carol"), Err(KeyStoreError::Corrupt(..))));
        fs::remove_dir_all(&home).unwrap();
    }
}
