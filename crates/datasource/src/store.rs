//! Owners' blobs on disk, by content hash (issue 20, item 3). A blob is kept with its owner's
//! signed terms (`tcp_state::DataUse`): `<dir>/<hash>.blob` and `<dir>/<hash>.terms`, each
//! written atomically (temporary file, sync, link, directory sync) and never overwritten. At
//! start every pair is checked — the blob hashes to its name, the terms are its owner's — and a
//! store with a damaged pair refuses to open rather than serve or drop it. (A blob without its
//! terms is an upload cut short before it was acknowledged: it is removed.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tcp_state::DataUse;
use tcp_types::ChainId;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("the blob is {len} bytes, more than this data source's limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("the data source is full: {used} of {limit} bytes stored")]
    Full { used: u64, limit: u64 },
    #[error("the terms do not decode: {0}")]
    BadTerms(String),
    #[error("the terms are not signed by the owner they name")]
    NotTheOwners,
    #[error("the terms are for chain {0:?}")]
    WrongChain(String),
    #[error("the terms name no contract (or more than {0})")]
    BadContracts(usize),
    #[error("the blob's SHA-256 is {actual}, the terms name {named}")]
    HashMismatch { named: String, actual: String },
    #[error("blob {0} is stored already, under other terms")]
    Conflict(String),
    #[error("no blob {0}")]
    Unknown(String),
    #[error("the store at {0} is damaged: {1} (refusing to start)")]
    Corrupt(PathBuf, String),
    #[error("{0}: {1}")]
    Io(PathBuf, String),
}

/// Limits of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    pub max_blob_bytes: usize,
    pub max_total_bytes: u64,
}

impl Default for StoreLimits {
    fn default() -> StoreLimits {
        StoreLimits { max_blob_bytes: 1 << 20, max_total_bytes: 1 << 30 }
    }
}

/// The blobs of one chain.
pub struct BlobStore {
    dir: PathBuf,
    chain: ChainId,
    limits: StoreLimits,
    /// hash → (terms as stored, blob size).
    index: HashMap<[u8; 32], (Vec<u8>, usize)>,
    used: u64,
}

fn hex(bytes: &[u8]) -> String {
    tcp_types::hex::encode(bytes)
}

/// Check `terms` against `blob`: decoded exactly, for this chain, signed by the owner they name,
/// naming 1..=16 contracts and the blob's hash.
pub fn check_terms(chain: &ChainId, terms: &[u8], blob: &[u8]) -> Result<DataUse, StoreError> {
    let used = DataUse::decode(terms).map_err(|e| StoreError::BadTerms(e.to_string()))?;
    if &used.terms.chain_id != chain {
        return Err(StoreError::WrongChain(used.terms.chain_id.as_str().to_string()));
    }
    if used.terms.contracts.is_empty() {
        return Err(StoreError::BadContracts(tcp_state::contracts::MAX_DATA_CONTRACTS));
    }
    let actual = tcp_crypto::sha256(&[blob]).0;
    if actual != used.terms.hash {
        return Err(StoreError::HashMismatch { named: hex(&used.terms.hash), actual: hex(&actual) });
    }
    used.owner().ok_or(StoreError::NotTheOwners)?;
    Ok(used)
}

impl BlobStore {
    /// Open (or create) the store in `dir`, checking every stored pair.
    pub fn open(dir: &Path, chain: ChainId, limits: StoreLimits) -> Result<BlobStore, StoreError> {
        let io = |e: std::io::Error| StoreError::Io(dir.to_path_buf(), e.to_string());
        std::fs::create_dir_all(dir).map_err(io)?;
        tcp_node::keystore::remove_stale_temporaries(dir).map_err(|e| StoreError::Io(dir.to_path_buf(), e.to_string()))?;
        let mut store = BlobStore { dir: dir.to_path_buf(), chain, limits, index: HashMap::new(), used: 0 };
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let corrupt = |why: String| StoreError::Corrupt(path.clone(), why);
            let (stem, kind) = name.rsplit_once('.').ok_or_else(|| corrupt("a file the store did not write".into()))?;
            let hash: [u8; 32] = tcp_types::hex::decode(stem)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt("a file the store did not write".into()))?;
            match kind {
                "blob" => {
                    // A blob without terms is an upload cut short before it was acknowledged
                    // (the terms are written last): nothing was promised, so it goes.
                    if !store.pair_path(&hash, "terms").exists() {
                        tracing::warn!(blob = %stem, "removing an upload that did not complete");
                        std::fs::remove_file(&path).map_err(|e| corrupt(e.to_string()))?;
                    }
                }
                "terms" => {
                    let blob = std::fs::read(store.pair_path(&hash, "blob")).map_err(|e| corrupt(format!("its blob: {e}")))?;
                    let terms = std::fs::read(&path).map_err(|e| corrupt(e.to_string()))?;
                    let used = check_terms(&store.chain, &terms, &blob).map_err(|e| corrupt(e.to_string()))?;
                    if used.terms.hash != hash {
                        return Err(corrupt("terms stored under another hash".into()));
                    }
                    store.used += blob.len() as u64;
                    store.index.insert(hash, (terms, blob.len()));
                }
                _ => return Err(corrupt("a file the store did not write".into())),
            }
        }
        Ok(store)
    }

    fn pair_path(&self, hash: &[u8; 32], kind: &str) -> PathBuf {
        self.dir.join(format!("{}.{kind}", hex(hash)))
    }

    /// Keep `blob` under `terms` (checked); its hash. The same blob again under the same terms
    /// is accepted (an upload retried); under other terms it is refused.
    pub fn put(&mut self, terms: &[u8], blob: &[u8]) -> Result<[u8; 32], StoreError> {
        if blob.len() > self.limits.max_blob_bytes {
            return Err(StoreError::TooLarge { len: blob.len(), limit: self.limits.max_blob_bytes });
        }
        let used = check_terms(&self.chain, terms, blob)?;
        let hash = used.terms.hash;
        if let Some((stored, _)) = self.index.get(&hash) {
            return if stored.as_slice() == terms { Ok(hash) } else { Err(StoreError::Conflict(hex(&hash))) };
        }
        if self.used + blob.len() as u64 > self.limits.max_total_bytes {
            return Err(StoreError::Full { used: self.used, limit: self.limits.max_total_bytes });
        }
        let write = |path: PathBuf, bytes: &[u8]| {
            tcp_node::keystore::write_private_file(&path, bytes, "blob").map_err(|e| StoreError::Io(path.clone(), e.to_string()))
        };
        // The blob first: terms on disk mean a whole pair (`open` checks it).
        write(self.pair_path(&hash, "blob"), blob)?;
        write(self.pair_path(&hash, "terms"), terms)?;
        self.used += blob.len() as u64;
        self.index.insert(hash, (terms.to_vec(), blob.len()));
        Ok(hash)
    }

    /// The terms of a stored blob (public: owner, price, contracts).
    pub fn terms(&self, hash: &[u8; 32]) -> Option<&[u8]> {
        self.index.get(hash).map(|(t, _)| t.as_slice())
    }

    /// A stored blob with its terms, read from disk and checked against its hash.
    pub fn get(&self, hash: &[u8; 32]) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        let (terms, _) = self.index.get(hash).ok_or_else(|| StoreError::Unknown(hex(hash)))?;
        let path = self.pair_path(hash, "blob");
        let blob = std::fs::read(&path).map_err(|e| StoreError::Io(path.clone(), e.to_string()))?;
        if tcp_crypto::sha256(&[&blob]).0 != *hash {
            return Err(StoreError::Corrupt(path, "the blob no longer hashes to its name".into()));
        }
        Ok((terms.clone(), blob))
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn used_bytes(&self) -> u64 {
        self.used
    }
}
