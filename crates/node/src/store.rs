//! What a node keeps on disk, under `<home>/data/`:
//!
//! * `chain.redb` (redb: ACID, one file, crash-safe commits): committed blocks, their commit
//!   certificates, the block-id and transaction indexes with receipts, the account state, the
//!   beacon values σ_h, and the bodies of blocks the WAL may name that are not yet committed.
//!   A height is committed in one write transaction, so a crash leaves either all of it or
//!   none.
//! * `consensus.wal`: the consensus write-ahead log, checksummed frames appended and synced
//!   before each input is applied; a torn tail (crash mid-write) is cut off at open.
//!
//! redb rather than commonware-storage: the node needs point lookups by height, block id,
//! transaction id and address from RPC threads while the consensus task writes, and atomic
//! multi-table commits; redb gives all of it with one dependency and no runtime coupling.

use crate::NodeError;
use crate::genesis::ChainSpec;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use crate::disk::{Disk, DiskFile};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tcp_consensus::{Input, WriteAheadLog};
use tcp_state::{Account, AccountState, Address, StateConfig};
use tcp_types::{Digest, Height};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const CERTIFICATES: TableDefinition<u64, &[u8]> = TableDefinition::new("certificates");
const BLOCK_IDS: TableDefinition<[u8; 32], u64> = TableDefinition::new("block_ids");
const TRANSACTIONS: TableDefinition<[u8; 32], [u8; 36]> = TableDefinition::new("transactions");
const ACCOUNTS: TableDefinition<[u8; 20], [u8; 24]> = TableDefinition::new("accounts");
/// The other leaves of the state tree (validators, the unbonding queue, epoch sets, …).
const STATE_ENTRIES: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("state_entries");
const SIGMAS: TableDefinition<u64, &[u8]> = TableDefinition::new("beacon");
/// φ_h (round ‖ signature, `tcp_beacon::Finality`) of each committed height, by height.
const FINALITY: TableDefinition<u64, &[u8]> = TableDefinition::new("finality");
const PENDING: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("pending_blocks");
/// The pending bodies in arrival order: sequence number → claimed height ‖ id. Eviction takes
/// the oldest and a commit drops a height's bodies without reading them.
const PENDING_ORDER: TableDefinition<u64, [u8; 40]> = TableDefinition::new("pending_order");

const KEY_VERSION: &str = "version";
/// The layout of the database and of the blocks in it. 2: headers carry the state root.
/// 4: pending bodies kept in arrival order; σ_h written with its block. 5: block id = hash of
/// the header (body by roots), φ_h in headers and stored with its block.
pub const DATA_FORMAT_VERSION: u32 = 5;
const KEY_GENESIS: &str = "genesis";
const KEY_HEIGHT: &str = "height";
/// redb's page cache.
const STORE_CACHE_BYTES: usize = 64 << 20;
/// Uncommitted bodies kept at most (proposals of a few rounds and heights).
const MAX_PENDING: usize = 256;

fn storage(e: impl std::fmt::Display) -> NodeError {
    NodeError::Storage(e.to_string())
}

/// Where a committed transaction is and what it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxRecord {
    pub height: Height,
    pub index: u32,
    pub gas_used: u64,
    pub fee: u128,
}

impl TxRecord {
    fn to_bytes(self) -> [u8; 36] {
        let mut out = [0u8; 36];
        out[..8].copy_from_slice(&self.height.0.to_be_bytes());
        out[8..12].copy_from_slice(&self.index.to_be_bytes());
        out[12..20].copy_from_slice(&self.gas_used.to_be_bytes());
        out[20..].copy_from_slice(&self.fee.to_be_bytes());
        out
    }
    fn from_bytes(b: [u8; 36]) -> TxRecord {
        TxRecord {
            height: Height(u64::from_be_bytes(b[..8].try_into().expect("8"))),
            index: u32::from_be_bytes(b[8..12].try_into().expect("4")),
            gas_used: u64::from_be_bytes(b[12..20].try_into().expect("8")),
            fee: u128::from_be_bytes(b[20..].try_into().expect("16")),
        }
    }
}

fn account_bytes(a: &Account) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..16].copy_from_slice(&a.balance.to_be_bytes());
    out[16..].copy_from_slice(&a.nonce.to_be_bytes());
    out
}

fn account_from(b: [u8; 24]) -> Account {
    Account { balance: u128::from_be_bytes(b[..16].try_into().expect("16")), nonce: u64::from_be_bytes(b[16..].try_into().expect("8")) }
}

/// One committed height, written atomically.
pub struct CommitRecord<'a> {
    pub height: Height,
    pub id: Digest,
    pub block: &'a [u8],
    pub certificate: &'a [u8],
    pub transactions: Vec<(Digest, TxRecord)>,
    /// Accounts the block touched, with their new values.
    pub accounts: Vec<(Address, Account)>,
    /// Other state entries the block wrote (`None`: deleted).
    pub entries: Vec<([u8; 32], Option<Vec<u8>>)>,
    /// σ_{h-1}, carried by the block.
    pub previous_sigma: Option<(Height, Vec<u8>)>,
    /// σ_h, when the decision's partials already recovered it: written with the block, so a
    /// crash cannot keep the block and lose the σ the next proposer needs.
    pub sigma: Option<Vec<u8>>,
    /// φ_h (round ‖ signature), when this node recovered it at the decision (it proposes
    /// next): written with the block, as σ_h is.
    pub finality: Option<Vec<u8>>,
    /// φ_{h-1}, carried by the block (stored unless this node already has it).
    pub previous_finality: Option<(Height, Vec<u8>)>,
}

/// The chain database; cheap to clone and safe to read from any thread.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    /// Open (or create from the genesis) the database of `data_dir`. A directory of another
    /// chain, of another format version, or that redb cannot read is refused with the reason.
    pub fn open(disk: &dyn Disk, data_dir: &Path, spec: &ChainSpec) -> Result<Store, NodeError> {
        disk.create_dir(data_dir).map_err(|e| NodeError::Storage(format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join("chain.redb");
        let file = disk.open(&path).map_err(|e| NodeError::Storage(format!("cannot open {}: {e}", path.display())))?;
        // redb's default page cache may grow to 1 GiB; the node's working set is far smaller.
        let db = redb::Builder::new().set_cache_size(STORE_CACHE_BYTES).create_with_backend(RedbFile(file)).map_err(|e| {
            NodeError::Corrupt(format!(
                "{} cannot be opened ({e}); it is corrupt or in use. Move it away or start with --reset",
                path.display()
            ))
        })?;
        let store = Store { db: Arc::new(db) };
        let version = store.meta(KEY_VERSION)?;
        match version {
            None => store.initialise(spec)?,
            Some(v) => {
                let v = u32::from_be_bytes(v.as_slice().try_into().map_err(|_| NodeError::Corrupt("bad version record".into()))?);
                if v != DATA_FORMAT_VERSION {
                    return Err(NodeError::Corrupt(format!(
                        "{} holds data format {v}; this build uses {DATA_FORMAT_VERSION}. Start from an empty data directory",
                        path.display()
                    )));
                }
                let genesis = store.meta(KEY_GENESIS)?.unwrap_or_default();
                if genesis != spec.hash.0 {
                    return Err(NodeError::Corrupt(format!(
                        "{} belongs to another chain (genesis {}), not to this genesis ({})",
                        path.display(),
                        tcp_types::hex::encode(&genesis),
                        spec.hash.to_hex()
                    )));
                }
            }
        }
        Ok(store)
    }

    fn initialise(&self, spec: &ChainSpec) -> Result<(), NodeError> {
        let tx = self.db.begin_write().map_err(storage)?;
        {
            let mut meta = tx.open_table(META).map_err(storage)?;
            meta.insert(KEY_VERSION, &DATA_FORMAT_VERSION.to_be_bytes()[..]).map_err(storage)?;
            meta.insert(KEY_GENESIS, &spec.hash.0[..]).map_err(storage)?;
            meta.insert(KEY_HEIGHT, &0u64.to_be_bytes()[..]).map_err(storage)?;
            let genesis = spec.genesis_state();
            let mut accounts = tx.open_table(ACCOUNTS).map_err(storage)?;
            for (address, account) in genesis.accounts() {
                accounts.insert(address.0, account_bytes(&account)).map_err(storage)?;
            }
            let mut entries = tx.open_table(STATE_ENTRIES).map_err(storage)?;
            for (key, value) in genesis.entries() {
                entries.insert(key, value.as_slice()).map_err(storage)?;
            }
            for table in [BLOCKS, CERTIFICATES, SIGMAS, FINALITY] {
                tx.open_table(table).map_err(storage)?;
            }
            tx.open_table(BLOCK_IDS).map_err(storage)?;
            tx.open_table(TRANSACTIONS).map_err(storage)?;
            tx.open_table(PENDING).map_err(storage)?;
            tx.open_table(PENDING_ORDER).map_err(storage)?;
        }
        tx.commit().map_err(storage)
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, NodeError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = match tx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(storage(e)),
        };
        Ok(table.get(key).map_err(storage)?.map(|v| v.value().to_vec()))
    }

    /// The last committed height (0 before block 1).
    pub fn height(&self) -> Result<Height, NodeError> {
        let bytes = self.meta(KEY_HEIGHT)?.ok_or_else(|| NodeError::Corrupt("height record missing".into()))?;
        Ok(Height(u64::from_be_bytes(bytes.as_slice().try_into().map_err(|_| NodeError::Corrupt("bad height record".into()))?)))
    }

    pub fn commit(&self, record: CommitRecord<'_>) -> Result<(), NodeError> {
        let expected = self.height()?.next();
        assert_eq!(record.height, expected, "heights are committed in order");
        let tx = self.db.begin_write().map_err(storage)?;
        {
            tx.open_table(BLOCKS).map_err(storage)?.insert(record.height.0, record.block).map_err(storage)?;
            tx.open_table(CERTIFICATES).map_err(storage)?.insert(record.height.0, record.certificate).map_err(storage)?;
            tx.open_table(BLOCK_IDS).map_err(storage)?.insert(record.id.0, record.height.0).map_err(storage)?;
            let mut txs = tx.open_table(TRANSACTIONS).map_err(storage)?;
            for (hash, rec) in &record.transactions {
                txs.insert(hash.0, rec.to_bytes()).map_err(storage)?;
            }
            let mut accounts = tx.open_table(ACCOUNTS).map_err(storage)?;
            for (address, account) in &record.accounts {
                accounts.insert(address.0, account_bytes(account)).map_err(storage)?;
            }
            let mut entries = tx.open_table(STATE_ENTRIES).map_err(storage)?;
            for (key, value) in &record.entries {
                match value {
                    Some(value) => entries.insert(key, value.as_slice()).map_err(storage)?,
                    None => entries.remove(key).map_err(storage)?,
                };
            }
            let mut sigmas = tx.open_table(SIGMAS).map_err(storage)?;
            if let Some((h, sigma)) = &record.previous_sigma {
                sigmas.insert(h.0, sigma.as_slice()).map_err(storage)?;
            }
            if let Some(sigma) = &record.sigma {
                sigmas.insert(record.height.0, sigma.as_slice()).map_err(storage)?;
            }
            let mut finality = tx.open_table(FINALITY).map_err(storage)?;
            if let Some((h, previous)) = &record.previous_finality
                && finality.get(h.0).map_err(storage)?.is_none()
            {
                finality.insert(h.0, previous.as_slice()).map_err(storage)?;
            }
            if let Some(own) = &record.finality {
                finality.insert(record.height.0, own.as_slice()).map_err(storage)?;
            }
            // Bodies of this height (the decided one included) are no longer pending.
            let mut order = tx.open_table(PENDING_ORDER).map_err(storage)?;
            let mut pending = tx.open_table(PENDING).map_err(storage)?;
            let mut done = Vec::new();
            for item in order.iter().map_err(storage)? {
                let (seq, entry) = item.map_err(storage)?;
                let entry = entry.value();
                if u64::from_be_bytes(entry[..8].try_into().expect("8")) <= record.height.0 {
                    done.push((seq.value(), <[u8; 32]>::try_from(&entry[8..]).expect("32")));
                }
            }
            for (seq, id) in done {
                order.remove(seq).map_err(storage)?;
                pending.remove(id).map_err(storage)?;
            }
            tx.open_table(META).map_err(storage)?.insert(KEY_HEIGHT, &record.height.0.to_be_bytes()[..]).map_err(storage)?;
        }
        tx.commit().map_err(storage)
    }

    pub fn put_sigma(&self, height: Height, sigma: &[u8]) -> Result<(), NodeError> {
        let tx = self.db.begin_write().map_err(storage)?;
        tx.open_table(SIGMAS).map_err(storage)?.insert(height.0, sigma).map_err(storage)?;
        tx.commit().map_err(storage)
    }

    /// A block body of `height` the WAL is about to name, made durable first. When
    /// [`MAX_PENDING`] bodies are held, the one stored longest ago makes room.
    pub fn put_pending(&self, id: Digest, height: Height, body: &[u8]) -> Result<(), NodeError> {
        let tx = self.db.begin_write().map_err(storage)?;
        {
            let mut pending = tx.open_table(PENDING).map_err(storage)?;
            if pending.get(id.0).map_err(storage)?.is_some() {
                return Ok(());
            }
            let mut order = tx.open_table(PENDING_ORDER).map_err(storage)?;
            while order.len().map_err(storage)? as usize >= MAX_PENDING {
                let Some((seq, entry)) = order.pop_first().map_err(storage)? else { break };
                let (_, entry) = (seq.value(), entry.value());
                pending.remove(<[u8; 32]>::try_from(&entry[8..]).expect("32")).map_err(storage)?;
            }
            let next = order.last().map_err(storage)?.map_or(0, |(seq, _)| seq.value() + 1);
            let mut entry = [0u8; 40];
            entry[..8].copy_from_slice(&height.0.to_be_bytes());
            entry[8..].copy_from_slice(&id.0);
            order.insert(next, entry).map_err(storage)?;
            pending.insert(id.0, body).map_err(storage)?;
        }
        tx.commit().map_err(storage)
    }

    /// The pending body `id`, if stored.
    pub fn pending_block(&self, id: &Digest) -> Result<Option<Vec<u8>>, NodeError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(PENDING).map_err(storage)?;
        Ok(table.get(id.0).map_err(storage)?.map(|v| v.value().to_vec()))
    }

    #[cfg(test)]
    pub(crate) fn remove_pending(&self, id: &Digest) {
        let tx = self.db.begin_write().unwrap();
        tx.open_table(PENDING).unwrap().remove(id.0).unwrap();
        tx.commit().unwrap();
    }

    pub fn pending_blocks(&self) -> Result<Vec<(Digest, Vec<u8>)>, NodeError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(PENDING).map_err(storage)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(storage)? {
            let (k, v) = item.map_err(storage)?;
            out.push((Digest(k.value()), v.value().to_vec()));
        }
        Ok(out)
    }

    fn get_u64(&self, table: TableDefinition<u64, &[u8]>, key: u64) -> Result<Option<Vec<u8>>, NodeError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(table).map_err(storage)?;
        Ok(table.get(key).map_err(storage)?.map(|v| v.value().to_vec()))
    }

    pub fn block(&self, height: Height) -> Result<Option<Vec<u8>>, NodeError> {
        self.get_u64(BLOCKS, height.0)
    }

    pub fn certificate(&self, height: Height) -> Result<Option<Vec<u8>>, NodeError> {
        self.get_u64(CERTIFICATES, height.0)
    }

    pub fn sigma(&self, height: Height) -> Result<Option<Vec<u8>>, NodeError> {
        self.get_u64(SIGMAS, height.0)
    }

    /// φ_h as stored (round ‖ signature).
    pub fn finality(&self, height: Height) -> Result<Option<Vec<u8>>, NodeError> {
        self.get_u64(FINALITY, height.0)
    }

    pub fn put_finality(&self, height: Height, finality: &[u8]) -> Result<(), NodeError> {
        let tx = self.db.begin_write().map_err(storage)?;
        tx.open_table(FINALITY).map_err(storage)?.insert(height.0, finality).map_err(storage)?;
        tx.commit().map_err(storage)
    }

    pub fn height_of_block(&self, id: &Digest) -> Result<Option<Height>, NodeError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(BLOCK_IDS).map_err(storage)?;
        Ok(table.get(id.0).map_err(storage)?.map(|v| Height(v.value())))
    }

    pub fn transaction(&self, hash: &Digest) -> Result<Option<TxRecord>, NodeError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(TRANSACTIONS).map_err(storage)?;
        Ok(table.get(hash.0).map_err(storage)?.map(|v| TxRecord::from_bytes(v.value())))
    }

    pub fn account(&self, address: &Address) -> Result<Account, NodeError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(ACCOUNTS).map_err(storage)?;
        Ok(table.get(address.0).map_err(storage)?.map(|v| account_from(v.value())).unwrap_or_default())
    }

    /// The committed account state, read back at start.
    pub fn account_state(&self, config: StateConfig) -> Result<AccountState, NodeError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(ACCOUNTS).map_err(storage)?;
        let mut accounts = Vec::new();
        for item in table.iter().map_err(storage)? {
            let (k, v) = item.map_err(storage)?;
            accounts.push((Address(k.value()), account_from(v.value())));
        }
        let table = tx.open_table(STATE_ENTRIES).map_err(storage)?;
        let mut entries = Vec::new();
        for item in table.iter().map_err(storage)? {
            let (k, v) = item.map_err(storage)?;
            entries.push((k.value(), v.value().to_vec()));
        }
        AccountState::restore(config, accounts, entries).map_err(|e| NodeError::Corrupt(format!("state tables: {e}")))
    }
}

/// redb's view of a [`DiskFile`].
#[derive(Debug)]
struct RedbFile(Arc<dyn DiskFile>);

impl redb::StorageBackend for RedbFile {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.0.read_at(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.0.sync()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.0.write_at(offset, data)
    }
}

/// The consensus WAL: `len u32 ‖ checksum [8] ‖ encoded input` frames, each synced before
/// [`WriteAheadLog::append`] returns.
pub struct FileWal {
    path: PathBuf,
    file: Arc<dyn DiskFile>,
    /// Where the next frame goes.
    end: u64,
}

fn frame_checksum(payload: &[u8]) -> [u8; 8] {
    tcp_crypto::sha256(&[payload]).0[..8].try_into().expect("8 bytes")
}

/// The largest frame: a commit certificate of the largest validator set the core accepts
/// (1 024 precommits of about 230 bytes with their partials) fits with room to spare.
pub const MAX_FRAME: usize = 1 << 20;
const FRAME_HEADER: usize = 12;

/// Where the valid frames of a log end, or why the log is damaged. Appends are sequential and
/// each is synced before the next, so only the last frame can be torn: a bad frame is a torn
/// tail when it reaches the end of the file (cut short) or when nothing but zeros follows its
/// start (space allocated, data never written). Anything else — a bad frame with data after
/// it — is corruption, and cutting there would silently drop inputs the node acted on.
fn scan_frames(bytes: &[u8]) -> Result<usize, String> {
    let mut good = 0usize;
    while good < bytes.len() {
        let rest = &bytes[good..];
        let torn = |why: &str| -> Result<usize, String> {
            if rest.iter().all(|b| *b == 0) {
                return Ok(good);
            }
            Err(format!("{why} at offset {good}, with {} bytes after it: only a torn last frame may be cut", rest.len()))
        };
        let Some(header) = rest.get(..FRAME_HEADER) else { return Ok(good) };
        let len = u32::from_be_bytes(header[..4].try_into().expect("4")) as usize;
        if len > MAX_FRAME {
            // No append writes such a length: a flipped length is not a torn write.
            return torn(&format!("frame length {len} beyond the limit {MAX_FRAME}"));
        }
        let Some(payload) = rest.get(FRAME_HEADER..FRAME_HEADER + len) else { return Ok(good) };
        if frame_checksum(payload) != header[4..FRAME_HEADER] {
            if FRAME_HEADER + len == rest.len() {
                return Ok(good);
            }
            return torn("frame checksum mismatch");
        }
        good += FRAME_HEADER + len;
    }
    Ok(good)
}

impl FileWal {
    /// Open the log, cutting off a torn tail (what a crash mid-append leaves). A log damaged
    /// anywhere else is refused with the reason: the node stops instead of forgetting inputs.
    /// Returns the log and how many bytes were cut.
    pub fn open(disk: &dyn Disk, path: &Path) -> Result<(FileWal, u64), NodeError> {
        let storage = |e: std::io::Error| NodeError::Storage(format!("{}: {e}", path.display()));
        let file = disk.open(path).map_err(storage)?;
        let bytes = file.read_all().map_err(storage)?;
        let good = scan_frames(&bytes).map_err(|why| {
            NodeError::Corrupt(format!(
                "{} is damaged: {why}. Restore the data directory from a backup or resync it from peers",
                path.display()
            ))
        })?;
        let cut = (bytes.len() - good) as u64;
        if cut > 0 {
            file.set_len(good as u64).map_err(storage)?;
            file.sync().map_err(storage)?;
        }
        Ok((FileWal { path: path.to_path_buf(), file, end: good as u64 }, cut))
    }
}

impl WriteAheadLog for FileWal {
    type Error = NodeError;

    fn append(&mut self, input: &Input) -> Result<(), NodeError> {
        use commonware_codec::Encode as _;
        let payload = input.encode();
        if payload.len() > MAX_FRAME {
            return Err(NodeError::Storage(format!(
                "a consensus input of {} bytes exceeds the WAL frame limit {MAX_FRAME}",
                payload.len()
            )));
        }
        let mut frame = Vec::with_capacity(12 + payload.len());
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&frame_checksum(&payload));
        frame.extend_from_slice(&payload);
        self.file.write_at(self.end, &frame).map_err(storage)?;
        self.file.sync().map_err(storage)?;
        self.end += frame.len() as u64;
        Ok(())
    }

    fn entries(&self) -> Result<Vec<Input>, NodeError> {
        use commonware_codec::DecodeExt as _;
        let bytes = self.file.read_all().map_err(storage)?;
        let end = scan_frames(&bytes).map_err(|why| NodeError::Corrupt(format!("{}: {why}", self.path.display())))?;
        let mut out = Vec::new();
        let mut at = 0usize;
        while at < end {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("scanned")) as usize;
            let payload = &bytes[at + FRAME_HEADER..at + FRAME_HEADER + len];
            let input = Input::decode(commonware_codec::Copying(payload))
                .map_err(|e| NodeError::Corrupt(format!("{}: entry {}: {e}", self.path.display(), out.len())))?;
            out.push(input);
            at += FRAME_HEADER + len;
        }
        Ok(out)
    }

    /// Everything logged belongs to the height just decided (inputs of later heights are only
    /// logged once their height starts), so the whole log goes.
    fn prune(&mut self, _decided: Height) -> Result<(), NodeError> {
        self.file.set_len(0).map_err(storage)?;
        self.file.sync().map_err(storage)?;
        self.end = 0;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tcp_consensus::TimeoutKind;
    use tcp_types::Round;

    #[test]
    fn wal_survives_a_torn_tail_and_prunes() {
        let dir = tempdir();
        let path = dir.join("wal");
        let inputs: Vec<Input> =
            (0..3).map(|r| Input::Timeout { height: Height(5), round: Round(r), kind: TimeoutKind::Prevote }).collect();
        {
            let (mut wal, cut) = FileWal::open(&crate::disk::OsDisk, &path).unwrap();
            assert_eq!(cut, 0);
            for i in &inputs {
                wal.append(i).unwrap();
            }
        }
        // A crash in the middle of a fourth append.
        let mut torn = std::fs::read(&path).unwrap();
        torn.extend_from_slice(&[0, 0, 0, 40, 1, 2, 3]);
        std::fs::write(&path, &torn).unwrap();
        let (mut wal, cut) = FileWal::open(&crate::disk::OsDisk, &path).unwrap();
        assert_eq!(cut, 7);
        assert_eq!(wal.entries().unwrap(), inputs);
        wal.append(&inputs[0]).unwrap();
        assert_eq!(wal.entries().unwrap().len(), 4);
        // A flipped byte inside the last frame: that frame is dropped, the others kept.
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (mut wal, cut) = FileWal::open(&crate::disk::OsDisk, &path).unwrap();
        assert!(cut > 0);
        assert_eq!(wal.entries().unwrap(), inputs);
        wal.prune(Height(5)).unwrap();
        assert!(wal.entries().unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn wal_refuses_a_bad_frame_in_the_middle_instead_of_cutting_there() {
        let dir = tempdir();
        let path = dir.join("wal");
        let inputs: Vec<Input> =
            (0..4).map(|r| Input::Timeout { height: Height(5), round: Round(r), kind: TimeoutKind::Prevote }).collect();
        {
            let (mut wal, _) = FileWal::open(&crate::disk::OsDisk, &path).unwrap();
            for i in &inputs {
                wal.append(i).unwrap();
            }
        }
        let clean = std::fs::read(&path).unwrap();
        // A flipped byte in the second frame's payload, and a flipped length in the first.
        for at in [clean.len() / 4 + FRAME_HEADER + 2, 1] {
            let mut bytes = clean.clone();
            bytes[at] ^= 0x40;
            std::fs::write(&path, &bytes).unwrap();
            match FileWal::open(&crate::disk::OsDisk, &path) {
                Err(NodeError::Corrupt(why)) => assert!(why.contains("only a torn last frame may be cut"), "{why}"),
                Err(e) => panic!("expected a corruption error, got {e}"),
                Ok((_, cut)) => panic!("a damaged log was opened, cutting {cut} bytes"),
            }
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "a refused log is left as it was");
        }
        // Zeros after the last frame (space allocated, never written) are a torn tail.
        let mut bytes = clean.clone();
        bytes.extend_from_slice(&[0u8; 300]);
        std::fs::write(&path, &bytes).unwrap();
        let (wal, cut) = FileWal::open(&crate::disk::OsDisk, &path).unwrap();
        assert_eq!(cut, 300);
        assert_eq!(wal.entries().unwrap(), inputs);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn wal_holds_the_commit_of_a_large_validator_set() {
        use commonware_codec::Encode as _;
        use tcp_consensus::CommitCertificate;
        let dir = tempdir();
        let path = dir.join("wal");
        let key = tcp_crypto::insecure_ed25519_from_seed(1);
        let domains = tcp_consensus::ConsensusDomains::new(&tcp_types::ChainId::new("test").unwrap());
        let value = tcp_consensus::ValueId::from(Digest([7; 32]));
        let precommits = (0..1024u32)
            .map(|i| {
                domains.sign_vote(
                    &key,
                    tcp_consensus::Vote {
                        vote_type: tcp_consensus::VoteType::Precommit,
                        height: Height(9),
                        round: Round(0),
                        value: Some(value),
                        validator: tcp_types::ValidatorIndex(i),
                        extension: bytes::Bytes::from(vec![0xab; 48]),
                    },
                )
            })
            .collect();
        let commit =
            Input::Commit { certificate: CommitCertificate { height: Height(9), round: Round(0), value, precommits }, valid: true };
        assert!(commit.encode().len() > 64 * 1024, "larger than the old frame limit");
        {
            let (mut wal, _) = FileWal::open(&crate::disk::OsDisk, &path).unwrap();
            wal.append(&commit).unwrap();
        }
        let (wal, cut) = FileWal::open(&crate::disk::OsDisk, &path).unwrap();
        assert_eq!(cut, 0, "a large frame is not mistaken for a torn one");
        assert_eq!(wal.entries().unwrap(), vec![commit]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn pending_bodies_make_room_by_evicting_the_oldest() {
        let dir = tempdir();
        let spec = crate::genesis::tests::test_spec();
        let store = Store::open(&crate::disk::OsDisk, &dir, &spec).unwrap();
        // Ids in decreasing order, so "the smallest id" and "the oldest" differ.
        let id = |i: usize| {
            let mut d = [0u8; 32];
            d[..2].copy_from_slice(&(u16::MAX - i as u16).to_be_bytes());
            Digest(d)
        };
        for i in 0..MAX_PENDING {
            store.put_pending(id(i), Height(3), &[i as u8]).unwrap();
        }
        store.put_pending(id(MAX_PENDING), Height(3), b"new").unwrap();
        let held: std::collections::HashSet<Digest> = store.pending_blocks().unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(held.len(), MAX_PENDING);
        assert!(!held.contains(&id(0)), "the first stored is evicted");
        assert!(held.contains(&id(MAX_PENDING - 1)) && held.contains(&id(MAX_PENDING)), "the newest stay");
        std::fs::remove_dir_all(dir).unwrap();
    }

    pub(crate) fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tcp-node-test-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn rand_suffix() -> u64 {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        u64::from_le_bytes(b)
    }
}
