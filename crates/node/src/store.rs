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
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek, SeekFrom, Write as _};
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
const PENDING: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("pending_blocks");

const KEY_VERSION: &str = "version";
/// The layout of the database and of the blocks in it. 2: headers carry the state root.
pub const DATA_FORMAT_VERSION: u32 = 3;
const KEY_GENESIS: &str = "genesis";
const KEY_HEIGHT: &str = "height";
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
}

/// The chain database; cheap to clone and safe to read from any thread.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    /// Open (or create from the genesis) the database of `data_dir`. A directory of another
    /// chain, of another format version, or that redb cannot read is refused with the reason.
    pub fn open(data_dir: &Path, spec: &ChainSpec) -> Result<Store, NodeError> {
        std::fs::create_dir_all(data_dir).map_err(|e| NodeError::Storage(format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join("chain.redb");
        let db = Database::create(&path).map_err(|e| {
            NodeError::Corrupt(format!("{} cannot be opened ({e}); it is corrupt or in use. Move it away or start with --reset", path.display()))
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
            for table in [BLOCKS, CERTIFICATES, SIGMAS] {
                tx.open_table(table).map_err(storage)?;
            }
            tx.open_table(BLOCK_IDS).map_err(storage)?;
            tx.open_table(TRANSACTIONS).map_err(storage)?;
            tx.open_table(PENDING).map_err(storage)?;
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
            if let Some((h, sigma)) = &record.previous_sigma {
                tx.open_table(SIGMAS).map_err(storage)?.insert(h.0, sigma.as_slice()).map_err(storage)?;
            }
            // Bodies of this height (the decided one included) are no longer pending.
            let mut pending = tx.open_table(PENDING).map_err(storage)?;
            pending.retain(|_, body| crate::block::claimed_height(body).is_none_or(|h| h > record.height)).map_err(storage)?;
            tx.open_table(META).map_err(storage)?.insert(KEY_HEIGHT, &record.height.0.to_be_bytes()[..]).map_err(storage)?;
        }
        tx.commit().map_err(storage)
    }

    pub fn put_sigma(&self, height: Height, sigma: &[u8]) -> Result<(), NodeError> {
        let tx = self.db.begin_write().map_err(storage)?;
        tx.open_table(SIGMAS).map_err(storage)?.insert(height.0, sigma).map_err(storage)?;
        tx.commit().map_err(storage)
    }

    /// A block body the WAL is about to name, made durable first.
    pub fn put_pending(&self, id: Digest, body: &[u8]) -> Result<(), NodeError> {
        let tx = self.db.begin_write().map_err(storage)?;
        {
            let mut pending = tx.open_table(PENDING).map_err(storage)?;
            if pending.get(id.0).map_err(storage)?.is_some() {
                return Ok(());
            }
            if pending.len().map_err(storage)? as usize >= MAX_PENDING {
                let oldest = pending.first().map_err(storage)?.map(|(k, _)| k.value());
                if let Some(k) = oldest {
                    pending.remove(k).map_err(storage)?;
                }
            }
            pending.insert(id.0, body).map_err(storage)?;
        }
        tx.commit().map_err(storage)
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

/// The consensus WAL: `len u32 ‖ checksum [8] ‖ encoded input` frames, each synced before
/// [`WriteAheadLog::append`] returns.
pub struct FileWal {
    path: PathBuf,
    file: File,
}

fn frame_checksum(payload: &[u8]) -> [u8; 8] {
    tcp_crypto::sha256(&[payload]).0[..8].try_into().expect("8 bytes")
}

/// At most this large: a height's inputs are a few thousand small messages.
const MAX_FRAME: usize = 64 * 1024;

impl FileWal {
    /// Open the log, cutting off a torn or corrupt tail (what a crash mid-append leaves).
    /// Returns the log and how many bytes were cut.
    pub fn open(path: &Path) -> Result<(FileWal, u64), NodeError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| NodeError::Storage(format!("{}: {e}", path.display())))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| NodeError::Storage(format!("{}: {e}", path.display())))?;
        let mut good = 0usize;
        while let Some(header) = bytes.get(good..good + 12) {
            let len = u32::from_be_bytes(header[..4].try_into().expect("4")) as usize;
            let Some(payload) = bytes.get(good + 12..good + 12 + len) else { break };
            if len > MAX_FRAME || frame_checksum(payload) != header[4..12] {
                break;
            }
            good += 12 + len;
        }
        let cut = (bytes.len() - good) as u64;
        if cut > 0 {
            file.set_len(good as u64).map_err(storage)?;
            file.sync_all().map_err(storage)?;
        }
        file.seek(SeekFrom::End(0)).map_err(storage)?;
        Ok((FileWal { path: path.to_path_buf(), file }, cut))
    }
}

impl WriteAheadLog for FileWal {
    type Error = NodeError;

    fn append(&mut self, input: &Input) -> Result<(), NodeError> {
        use commonware_codec::Encode as _;
        let payload = input.encode();
        let mut frame = Vec::with_capacity(12 + payload.len());
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&frame_checksum(&payload));
        frame.extend_from_slice(&payload);
        self.file.write_all(&frame).map_err(storage)?;
        self.file.sync_data().map_err(storage)
    }

    fn entries(&self) -> Result<Vec<Input>, NodeError> {
        use commonware_codec::DecodeExt as _;
        let bytes = std::fs::read(&self.path).map_err(storage)?;
        let mut out = Vec::new();
        let mut at = 0usize;
        while at + 12 <= bytes.len() {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4")) as usize;
            let payload = &bytes[at + 12..at + 12 + len];
            let input = Input::decode(commonware_codec::Copying(payload)).map_err(|e| NodeError::Corrupt(format!("{}: entry {}: {e}", self.path.display(), out.len())))?;
            out.push(input);
            at += 12 + len;
        }
        Ok(out)
    }

    /// Everything logged belongs to the height just decided (inputs of later heights are only
    /// logged once their height starts), so the whole log goes.
    fn prune(&mut self, _decided: Height) -> Result<(), NodeError> {
        self.file.set_len(0).map_err(storage)?;
        self.file.seek(SeekFrom::Start(0)).map_err(storage)?;
        self.file.sync_all().map_err(storage)
    }
}

#[cfg(test)]
mod tests {
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
            let (mut wal, cut) = FileWal::open(&path).unwrap();
            assert_eq!(cut, 0);
            for i in &inputs {
                wal.append(i).unwrap();
            }
        }
        // A crash in the middle of a fourth append.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 40, 1, 2, 3]).unwrap();
        drop(f);
        let (mut wal, cut) = FileWal::open(&path).unwrap();
        assert_eq!(cut, 7);
        assert_eq!(wal.entries().unwrap(), inputs);
        wal.append(&inputs[0]).unwrap();
        assert_eq!(wal.entries().unwrap().len(), 4);
        // A flipped byte inside the last frame: that frame is dropped, the others kept.
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (mut wal, cut) = FileWal::open(&path).unwrap();
        assert!(cut > 0);
        assert_eq!(wal.entries().unwrap(), inputs);
        wal.prune(Height(5)).unwrap();
        assert!(wal.entries().unwrap().is_empty());
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
