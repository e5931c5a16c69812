//! Blocks: a header (`tcp_light::Header`), the last commit, the dealer logs the beacon commits,
//! and the transactions. A block's id (the consensus value) is the SHA-256 of its header alone;
//! the header commits to the body by roots, and decoding refuses a body that does not match
//! them, so a decoded block is exactly what its id names.
//!
//! ```text
//! block = header ‖ commit flag u8 [‖ len u32 ‖ commit certificate of h-1] ‖
//!         log count u16 ‖ (len u32 ‖ log)* ‖ tx count u32 ‖ (len u32 ‖ signed tx)*
//!         [‖ master-secret log count u16 ‖ (len u32 ‖ log)*]
//!         [‖ release record count u16 ‖ (len u32 ‖ record)*]
//!         [‖ inbox entry count u16 ‖ (inbox entry 45)*]
//! ```
//! The optional sections — dealer logs of DKMP's master-secret ceremonies
//! (`tcp_dkmp::GroupLedger`), members' release records (`tcp_dkmp::ReleaseRecord`, the
//! key-release ledger), and the root chain's inbox entries the block processes
//! (`tcp_state::bridge::InboxEntry`: deposits and account-exit events, docs/bridge.md) — are
//! each present exactly when the header carries the extra root tagged [`DKMP_LOGS_ROOT`],
//! [`RELEASES_ROOT`] or [`BRIDGE_INBOX_ROOT`] (its SHA-256, as encoded), in tag order; a block
//! without such items has none of them. Other extra-root tags are refused.
//! (header layout: `crates/light/src/header.rs`). The previous height's commit (its
//! precommits, as the proposer holds them) is in every block after the first: Ω rewards its
//! signers and credits their efficiency from it. Roots: `transactions` = SHA-256 over the
//! transactions' ids in order; `last_commit` = SHA-256 of the encoded certificate (zero when
//! none); `logs` = SHA-256 of the log section as encoded. `state_root` = the world state's
//! sparse Merkle root after the block's transactions (docs/state-proofs.md). Decoding is bounded
//! and exact: trailing bytes are refused.

use bytes::BufMut;
use commonware_codec::{DecodeExt as _, Encode as _};
use tcp_beacon::dkg::{decode_log, encode_log};
use tcp_beacon::ledger::MAX_LOGS_PER_BLOCK;
use tcp_beacon::{BlockBeaconData, SignedLog};
use tcp_consensus::{CommitCertificate, ValueId};
use tcp_crypto::sha256;
pub use tcp_light::{BodyRoots, Header, HeaderDecodeError};
use tcp_state::SignedTransaction;
use tcp_state::bridge::{InboxEntry, MAX_INBOX_PER_BLOCK};
use tcp_state::transaction::MAX_TRANSACTION_BYTES;
use tcp_types::{Digest, Height};

/// The most any genesis may allow.
pub const MAX_BLOCK_BYTES: usize = 8 * 1024 * 1024;
/// The header's extra-root tag of the master-secret dealer logs.
pub const DKMP_LOGS_ROOT: u16 = 1;
/// The header's extra-root tag of the release records.
pub const RELEASES_ROOT: u16 = 2;
/// The header's extra-root tag of the root chain's inbox entries.
pub const BRIDGE_INBOX_ROOT: u16 = 3;
/// Release records one block carries.
pub const MAX_RELEASES_PER_BLOCK: usize = 256;
const MAX_LOG_BYTES: usize = 64 * 1024;
/// A commit of the largest validator set, with extensions.
const MAX_COMMIT_BYTES: usize = tcp_consensus::MAX_VALIDATORS * 512;

#[derive(Clone, Debug)]
pub struct Block {
    pub header: Header,
    /// The commit certificate of h-1 (none in block 1).
    pub last_commit: Option<CommitCertificate>,
    pub logs: Vec<SignedLog>,
    pub transactions: Vec<SignedTransaction>,
    /// Dealer logs of DKMP's master-secret ceremony.
    pub dkmp_logs: Vec<SignedLog>,
    /// Members' records of the contract keys they released.
    pub releases: Vec<tcp_dkmp::ReleaseRecord>,
    /// The root chain's inbox entries this block processes (the next ones, in order).
    pub inbox: Vec<InboxEntry>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlockDecodeError {
    #[error("block of {0} bytes exceeds the limit of {1}")]
    TooLarge(usize, usize),
    #[error("block truncated")]
    Truncated,
    #[error("header: {0}")]
    Header(#[from] HeaderDecodeError),
    #[error("bad commit flag {0}")]
    BadFlag(u8),
    #[error("malformed last commit: {0}")]
    BadCommit(String),
    #[error("too many DKG logs ({0})")]
    TooManyLogs(usize),
    #[error("malformed DKG log: {0}")]
    BadLog(String),
    #[error("transaction {0}: {1}")]
    BadTransaction(usize, String),
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// The body does not match the header's root of that section.
    #[error("the body's {0} do not match the header's root")]
    RootMismatch(&'static str),
    #[error("unknown body section {0} (an extra root this version does not define)")]
    UnknownSection(u16),
    #[error("bad release record section: {0}")]
    BadRelease(String),
    #[error("bad inbox section: {0}")]
    BadInbox(String),
}

pub fn tx_root(transactions: &[SignedTransaction]) -> Digest {
    let ids: Vec<[u8; 32]> = transactions.iter().map(|t| t.hash().0).collect();
    let parts: Vec<&[u8]> = ids.iter().map(|h| &h[..]).collect();
    sha256(&parts)
}

fn commit_section(commit: Option<&CommitCertificate>, out: &mut Vec<u8>) {
    match commit {
        Some(commit) => {
            let bytes = commit.encode();
            out.put_u8(1);
            out.put_u32(bytes.len() as u32);
            out.put_slice(&bytes);
        }
        None => out.put_u8(0),
    }
}

fn logs_section(logs: &[SignedLog], out: &mut Vec<u8>) {
    out.put_u16(logs.len() as u16);
    for log in logs {
        let bytes = encode_log(log);
        out.put_u32(bytes.len() as u32);
        out.put_slice(&bytes);
    }
}

/// SHA-256 of the certificate's bytes, or zero when the block carries none.
fn commit_root(certificate: Option<&[u8]>) -> Digest {
    certificate.map_or(Digest([0; 32]), |bytes| sha256(&[bytes]))
}

/// The roots a header must carry for this body.
pub fn body_roots(last_commit: Option<&CommitCertificate>, logs: &[SignedLog], transactions: &[SignedTransaction]) -> BodyRoots {
    let mut logs_bytes = Vec::new();
    logs_section(logs, &mut logs_bytes);
    let commit = last_commit.map(|c| c.encode().to_vec());
    BodyRoots { transactions: tx_root(transactions), last_commit: commit_root(commit.as_deref()), logs: sha256(&[&logs_bytes]) }
}

fn releases_section(releases: &[tcp_dkmp::ReleaseRecord], out: &mut Vec<u8>) {
    out.put_u16(releases.len() as u16);
    for record in releases {
        let bytes = record.encode();
        out.put_u32(bytes.len() as u32);
        out.put_slice(&bytes);
    }
}

fn inbox_section(entries: &[InboxEntry], out: &mut Vec<u8>) {
    out.put_u16(entries.len() as u16);
    for entry in entries {
        out.put_slice(&entry.encode());
    }
}

/// The header's extra roots for a body with these master-secret logs, release records and
/// inbox entries (in tag order; a section with no items has no root).
pub fn extra_roots(dkmp_logs: &[SignedLog], releases: &[tcp_dkmp::ReleaseRecord], inbox: &[InboxEntry]) -> Vec<(u16, Digest)> {
    let mut roots = Vec::new();
    if !dkmp_logs.is_empty() {
        let mut bytes = Vec::new();
        logs_section(dkmp_logs, &mut bytes);
        roots.push((DKMP_LOGS_ROOT, sha256(&[&bytes])));
    }
    if !releases.is_empty() {
        let mut bytes = Vec::new();
        releases_section(releases, &mut bytes);
        roots.push((RELEASES_ROOT, sha256(&[&bytes])));
    }
    if !inbox.is_empty() {
        let mut bytes = Vec::new();
        inbox_section(inbox, &mut bytes);
        roots.push((BRIDGE_INBOX_ROOT, sha256(&[&bytes])));
    }
    roots
}

/// Read the inbox section: its bytes and each entry's.
fn scan_inbox<'a>(r: &mut tcp_types::ByteReader<'a>) -> Result<(&'a [u8], Vec<&'a [u8]>), BlockDecodeError> {
    let start = r.0;
    let count = r.u16().ok_or(BlockDecodeError::Truncated)? as usize;
    if count > MAX_INBOX_PER_BLOCK {
        return Err(BlockDecodeError::BadInbox(format!("{count} entries, more than {MAX_INBOX_PER_BLOCK}")));
    }
    let entries = (0..count).map(|_| r.take(InboxEntry::BYTES).ok_or(BlockDecodeError::Truncated)).collect::<Result<Vec<_>, _>>()?;
    Ok((&start[..start.len() - r.0.len()], entries))
}

/// Read the release-record section: its bytes and each record's.
fn scan_releases<'a>(r: &mut tcp_types::ByteReader<'a>) -> Result<(&'a [u8], Vec<&'a [u8]>), BlockDecodeError> {
    let start = r.0;
    let count = r.u16().ok_or(BlockDecodeError::Truncated)? as usize;
    if count > MAX_RELEASES_PER_BLOCK {
        return Err(BlockDecodeError::BadRelease(format!("{count} records, more than {MAX_RELEASES_PER_BLOCK}")));
    }
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        let len = r.u32().ok_or(BlockDecodeError::Truncated)? as usize;
        if len > tcp_dkmp::record::MAX_RECORD_BYTES {
            return Err(BlockDecodeError::BadRelease(format!("a record of {len} bytes")));
        }
        records.push(r.take(len).ok_or(BlockDecodeError::Truncated)?);
    }
    Ok((&start[..start.len() - r.0.len()], records))
}

/// Read one log section (count ‖ (len ‖ log)*): the section's bytes and each log's.
fn scan_logs<'a>(r: &mut tcp_types::ByteReader<'a>) -> Result<(&'a [u8], Vec<&'a [u8]>), BlockDecodeError> {
    let start = r.0;
    let count = r.u16().ok_or(BlockDecodeError::Truncated)? as usize;
    if count > MAX_LOGS_PER_BLOCK {
        return Err(BlockDecodeError::TooManyLogs(count));
    }
    let mut logs = Vec::with_capacity(count);
    for _ in 0..count {
        let len = r.u32().ok_or(BlockDecodeError::Truncated)? as usize;
        if len > MAX_LOG_BYTES {
            return Err(BlockDecodeError::BadLog(format!("{len} bytes")));
        }
        logs.push(r.take(len).ok_or(BlockDecodeError::Truncated)?);
    }
    Ok((&start[..start.len() - r.0.len()], logs))
}

/// A block's body split into its sections' raw bytes by their length prefixes alone (no item
/// is decoded): what the roots are checked on before any decoding work.
struct RawBody<'a> {
    /// The certificate's bytes, if the block carries one.
    commit: Option<&'a [u8]>,
    /// The log section as encoded (count ‖ (len ‖ log)*) and each log's bytes.
    logs_section: &'a [u8],
    logs: Vec<&'a [u8]>,
    transactions: Vec<&'a [u8]>,
    /// The master-secret log section, when the header names one.
    dkmp: Option<(&'a [u8], Vec<&'a [u8]>)>,
    /// The release-record section, when the header names one.
    releases: Option<(&'a [u8], Vec<&'a [u8]>)>,
    /// The inbox section, when the header names one.
    inbox: Option<(&'a [u8], Vec<&'a [u8]>)>,
}

/// Which optional sections a header names: (master-secret logs, release records, inbox).
fn named_sections(header: &Header) -> (bool, bool, bool) {
    let named = |tag| header.extra_roots.iter().any(|(t, _)| *t == tag);
    (named(DKMP_LOGS_ROOT), named(RELEASES_ROOT), named(BRIDGE_INBOX_ROOT))
}

fn scan_body(body: &[u8], (dkmp, releases, inbox): (bool, bool, bool)) -> Result<RawBody<'_>, BlockDecodeError> {
    let mut r = tcp_types::ByteReader(body);
    let commit = match r.u8().ok_or(BlockDecodeError::Truncated)? {
        0 => None,
        1 => {
            let len = r.u32().ok_or(BlockDecodeError::Truncated)? as usize;
            if len > MAX_COMMIT_BYTES {
                return Err(BlockDecodeError::BadCommit(format!("{len} bytes")));
            }
            Some(r.take(len).ok_or(BlockDecodeError::Truncated)?)
        }
        f => return Err(BlockDecodeError::BadFlag(f)),
    };
    let (logs_section, logs) = scan_logs(&mut r)?;
    let tx_count = r.u32().ok_or(BlockDecodeError::Truncated)? as usize;
    // Each transaction takes at least 4 + 1 bytes: a count above that is a lie.
    if tx_count > r.0.len() / 5 {
        return Err(BlockDecodeError::Truncated);
    }
    let mut transactions = Vec::with_capacity(tx_count);
    for i in 0..tx_count {
        let len = r.u32().ok_or(BlockDecodeError::Truncated)? as usize;
        if len > MAX_TRANSACTION_BYTES {
            return Err(BlockDecodeError::BadTransaction(i, format!("{len} bytes")));
        }
        transactions.push(r.take(len).ok_or(BlockDecodeError::Truncated)?);
    }
    let dkmp = if dkmp { Some(scan_logs(&mut r)?) } else { None };
    let releases = if releases { Some(scan_releases(&mut r)?) } else { None };
    let inbox = if inbox { Some(scan_inbox(&mut r)?) } else { None };
    if !r.0.is_empty() {
        return Err(BlockDecodeError::Trailing(r.0.len()));
    }
    Ok(RawBody { commit, logs_section, logs, transactions, dkmp, releases, inbox })
}

/// The body's raw sections hash to the header's roots (a transaction's id is the SHA-256 of
/// its exact bytes: decoding is exact).
fn check_roots(header: &Header, body: &RawBody<'_>) -> Result<(), BlockDecodeError> {
    if commit_root(body.commit) != header.roots.last_commit {
        return Err(BlockDecodeError::RootMismatch("last commit"));
    }
    if sha256(&[body.logs_section]) != header.roots.logs {
        return Err(BlockDecodeError::RootMismatch("DKG logs"));
    }
    let ids: Vec<[u8; 32]> = body.transactions.iter().map(|t| sha256(&[t]).0).collect();
    let parts: Vec<&[u8]> = ids.iter().map(|h| &h[..]).collect();
    if sha256(&parts) != header.roots.transactions {
        return Err(BlockDecodeError::RootMismatch("transactions"));
    }
    // Tags strictly ascending: one encoding per header.
    if header.extra_roots.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(BlockDecodeError::RootMismatch("extra roots out of order"));
    }
    for (tag, root) in &header.extra_roots {
        let (section, what) = match *tag {
            DKMP_LOGS_ROOT => (&body.dkmp, "master-secret logs"),
            RELEASES_ROOT => (&body.releases, "release records"),
            BRIDGE_INBOX_ROOT => (&body.inbox, "inbox entries"),
            other => return Err(BlockDecodeError::UnknownSection(other)),
        };
        match section {
            Some((bytes, items)) if !items.is_empty() => {
                if sha256(&[bytes]) != *root {
                    return Err(BlockDecodeError::RootMismatch(what));
                }
            }
            // An empty section is named by no root: one encoding per body.
            _ => return Err(BlockDecodeError::RootMismatch(what)),
        }
    }
    Ok(())
}

/// The id of the block whose bytes these are — SHA-256 of the header at their front — once the
/// body's sections are checked against the header's roots: hashing only, nothing decoded but
/// the header and the length prefixes. `None` for bytes that are not a block. Two different
/// byte strings never get the same id.
pub fn block_id(bytes: &[u8]) -> Option<ValueId> {
    if bytes.len() > MAX_BLOCK_BYTES {
        return None;
    }
    let (header, body) = Header::decode_prefix(bytes).ok()?;
    check_roots(&header, &scan_body(body, named_sections(&header)).ok()?).ok()?;
    Some(sha256(&[&bytes[..bytes.len() - body.len()]]))
}

impl Block {
    /// The block id: SHA-256 of the header.
    pub fn id(&self) -> ValueId {
        self.header.id()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.header.encode();
        out.reserve(256 + self.transactions.len() * 160);
        commit_section(self.last_commit.as_ref(), &mut out);
        logs_section(&self.logs, &mut out);
        out.put_u32(self.transactions.len() as u32);
        for tx in &self.transactions {
            let bytes = tx.encode();
            out.put_u32(bytes.len() as u32);
            out.put_slice(&bytes);
        }
        if !self.dkmp_logs.is_empty() {
            logs_section(&self.dkmp_logs, &mut out);
        }
        if !self.releases.is_empty() {
            releases_section(&self.releases, &mut out);
        }
        if !self.inbox.is_empty() {
            inbox_section(&self.inbox, &mut out);
        }
        out
    }

    /// Decode a block: the header, the body's sections checked against its roots by hashing
    /// (before anything in them is decoded), then each item, bounded and exact.
    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Block, BlockDecodeError> {
        if bytes.len() > max_bytes {
            return Err(BlockDecodeError::TooLarge(bytes.len(), max_bytes));
        }
        let (header, body) = Header::decode_prefix(bytes)?;
        let raw = scan_body(body, named_sections(&header))?;
        check_roots(&header, &raw)?;
        let last_commit = match raw.commit {
            Some(bytes) => {
                Some(CommitCertificate::decode(commonware_codec::Copying(bytes)).map_err(|e| BlockDecodeError::BadCommit(e.to_string()))?)
            }
            None => None,
        };
        let logs = raw
            .logs
            .iter()
            .map(|bytes| decode_log(bytes).map_err(|e| BlockDecodeError::BadLog(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let transactions = raw
            .transactions
            .iter()
            .enumerate()
            .map(|(i, bytes)| SignedTransaction::decode(bytes).map_err(|e| BlockDecodeError::BadTransaction(i, e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let dkmp_logs = raw
            .dkmp
            .iter()
            .flat_map(|(_, logs)| logs.iter())
            .map(|bytes| decode_log(bytes).map_err(|e| BlockDecodeError::BadLog(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let releases = raw
            .releases
            .iter()
            .flat_map(|(_, records)| records.iter())
            .map(|bytes| {
                tcp_dkmp::ReleaseRecord::decode(commonware_codec::Copying(*bytes)).map_err(|e| BlockDecodeError::BadRelease(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let inbox = raw
            .inbox
            .iter()
            .flat_map(|(_, entries)| entries.iter())
            .map(|bytes| InboxEntry::decode(bytes).ok_or_else(|| BlockDecodeError::BadInbox("an entry of unknown kind".into())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Block { header, last_commit, logs, transactions, dkmp_logs, releases, inbox })
    }

    pub fn beacon_data(&self) -> BlockBeaconData {
        BlockBeaconData {
            round: self.header.round,
            proposer: self.header.proposer,
            previous_signature: self.header.previous_signature,
            parent: self.header.parent,
            previous_finality: self.header.previous_finality,
            commit_round: self.last_commit.as_ref().map(|c| c.round),
            logs: self.logs.clone(),
            signers: self.last_commit.as_ref().map(|c| c.precommits.iter().map(|p| p.vote.validator).collect()),
        }
    }
}

/// The height a block claims, read before anything else is decoded (routing).
pub fn claimed_height(bytes: &[u8]) -> Option<Height> {
    bytes.get(..8).map(|b| Height(u64::from_be_bytes(b.try_into().expect("8 bytes"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tcp_state::{AccountKey, Action, Address, Transaction};
    use tcp_types::{ChainId, Round, ValidatorIndex};

    fn block(txs: usize) -> Block {
        let key = AccountKey::from_bytes(&[7; 32]).unwrap();
        let chain_id = ChainId::new("test").unwrap();
        let transactions: Vec<_> = (0..txs)
            .map(|n| {
                Transaction {
                    chain_id: chain_id.clone(),
                    nonce: n as u64,
                    gas_price: 1,
                    gas_limit: 21_000,
                    action: Action::Transfer { to: Address([9; 20]), amount: 5 },
                }
                .sign(&key)
            })
            .collect();
        Block {
            header: Header {
                height: Height(3),
                round: Round(1),
                proposer: ValidatorIndex(2),
                parent: Digest([1; 32]),
                timestamp_ms: 1_700_000_000_000,
                state_root: Digest([4; 32]),
                roots: body_roots(None, &[], &transactions),
                previous_signature: None,
                previous_finality: None,
                extra_roots: Vec::new(),
            },
            last_commit: None,
            logs: vec![],
            transactions,
            dkmp_logs: vec![],
            releases: vec![],
            inbox: vec![],
        }
    }

    /// Master-secret dealer logs travel in a section of their own, named by an extra root:
    /// round trip, and each way the section and its root can disagree is refused.
    #[test]
    fn master_secret_logs_are_a_section_named_by_an_extra_root() {
        use commonware_cryptography::Signer as _;
        use rand_core::SeedableRng as _;
        let keys: Vec<_> = (0..4).map(tcp_crypto::insecure_ed25519_from_seed).collect();
        let set: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
        let ceremony = tcp_beacon::Ceremony::in_namespace(b"tcp/dkmp/dkg", 0, None, &set, &set).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let (logs, _, _) = tcp_beacon::dkg::run_local_ceremony(&ceremony, &keys, &[], &mut rng).unwrap();
        let mut b = block(1);
        b.dkmp_logs = logs[..2].to_vec();
        b.header.extra_roots = extra_roots(&b.dkmp_logs, &[], &[]);
        let bytes = b.encode();
        let back = Block::decode(&bytes, MAX_BLOCK_BYTES).unwrap();
        assert_eq!(back.dkmp_logs, b.dkmp_logs);
        assert_eq!(back.encode(), bytes);
        assert_eq!(block_id(&bytes), Some(b.header.id()));
        // Another log under the same root; the section without its root; a root without its
        // section; an unknown section.
        let mut swapped = b.clone();
        swapped.dkmp_logs[1] = logs[2].clone();
        assert_eq!(Block::decode(&swapped.encode(), MAX_BLOCK_BYTES).unwrap_err(), BlockDecodeError::RootMismatch("master-secret logs"));
        let mut unnamed = b.clone();
        unnamed.header.extra_roots.clear();
        assert!(matches!(Block::decode(&unnamed.encode(), MAX_BLOCK_BYTES).unwrap_err(), BlockDecodeError::Trailing(_)));
        let mut empty = b.clone();
        empty.dkmp_logs.clear();
        assert_eq!(Block::decode(&empty.encode(), MAX_BLOCK_BYTES).unwrap_err(), BlockDecodeError::Truncated);
        let mut unknown = block(1);
        unknown.header.extra_roots = vec![(4, Digest([1; 32]))];
        assert_eq!(Block::decode(&unknown.encode(), MAX_BLOCK_BYTES).unwrap_err(), BlockDecodeError::UnknownSection(4));

        // Release records beside them, in a section named by tag 2 after tag 1.
        let enclave = tcp_crypto::ed25519_from_secret(&[9; 32]);
        let request = tcp_dkmp::KeyRequest {
            key: tcp_dkmp::ContractKeyId { chain_id: tcp_types::ChainId::new("test").unwrap(), cid: [3; 32], generation: 0 },
            epoch: 1,
            purpose: tcp_dkmp::KeyPurpose::Execute,
            enclave_key: enclave.public_key(),
            answer_key: [4; 32],
            nonce: [5; 16],
        }
        .sign(&enclave);
        let to = tcp_dkmp::ReleasedTo { operator: [6; 20], measurement: [7; 32], tcb_rank: 0, tcb_evaluation_data_number: 1 };
        let record = tcp_dkmp::ReleaseRecord::sign(request, to, &keys[0]);
        let mut both = b.clone();
        both.releases = vec![record.clone()];
        both.header.extra_roots = extra_roots(&both.dkmp_logs, &both.releases, &[]);
        assert_eq!(both.header.extra_roots.iter().map(|(t, _)| *t).collect::<Vec<_>>(), vec![DKMP_LOGS_ROOT, RELEASES_ROOT]);
        let bytes = both.encode();
        let back = Block::decode(&bytes, MAX_BLOCK_BYTES).unwrap();
        assert_eq!((back.dkmp_logs.len(), back.releases.clone()), (2, vec![record.clone()]));
        assert_eq!(block_id(&bytes), Some(both.header.id()));
        // The roots in the other order: another encoding of the same header, refused.
        let mut reordered = both.clone();
        reordered.header.extra_roots.reverse();
        assert!(matches!(Block::decode(&reordered.encode(), MAX_BLOCK_BYTES).unwrap_err(), BlockDecodeError::Header(_)));
        // A record changed under its root.
        let mut changed = both.clone();
        changed.releases[0].released_to.tcb_rank = 6;
        assert_eq!(Block::decode(&changed.encode(), MAX_BLOCK_BYTES).unwrap_err(), BlockDecodeError::RootMismatch("release records"));
    }

    /// The root chain's inbox entries: a section named by tag 3, exact, each entry of a known
    /// kind, at most [`MAX_INBOX_PER_BLOCK`].
    #[test]
    fn inbox_entries_are_a_section_named_by_an_extra_root() {
        use tcp_state::bridge::InboxKind;
        let entry = |id| InboxEntry { id, kind: InboxKind::Deposit, account: Address([id as u8; 20]), amount: 1_000 + u128::from(id) };
        let mut b = block(2);
        b.inbox = vec![entry(0), entry(1)];
        b.header.extra_roots = extra_roots(&[], &[], &b.inbox);
        assert_eq!(b.header.extra_roots.iter().map(|(t, _)| *t).collect::<Vec<_>>(), vec![BRIDGE_INBOX_ROOT]);
        let bytes = b.encode();
        let back = Block::decode(&bytes, MAX_BLOCK_BYTES).unwrap();
        assert_eq!(back.inbox, b.inbox);
        assert_eq!(back.encode(), bytes);
        assert_eq!(block_id(&bytes), Some(b.header.id()));
        // An entry changed under its root.
        let mut changed = b.clone();
        changed.inbox[1].amount += 1;
        assert_eq!(Block::decode(&changed.encode(), MAX_BLOCK_BYTES).unwrap_err(), BlockDecodeError::RootMismatch("inbox entries"));
        // The section without its root, and a root over no section.
        let mut unnamed = b.clone();
        unnamed.header.extra_roots.clear();
        assert!(matches!(Block::decode(&unnamed.encode(), MAX_BLOCK_BYTES).unwrap_err(), BlockDecodeError::Trailing(_)));
        // An entry of an unknown kind, under a root that matches it.
        let mut odd = block(0);
        let mut section = Vec::new();
        inbox_section(&[entry(0)], &mut section);
        section[2 + 8] = 9;
        odd.header.extra_roots = vec![(BRIDGE_INBOX_ROOT, sha256(&[&section]))];
        let mut odd_bytes = odd.encode();
        odd_bytes.extend_from_slice(&section);
        assert!(matches!(Block::decode(&odd_bytes, MAX_BLOCK_BYTES).unwrap_err(), BlockDecodeError::BadInbox(_)));
        // More entries than a block may carry.
        let mut many = block(0);
        many.inbox = (0..=MAX_INBOX_PER_BLOCK as u64).map(entry).collect();
        many.header.extra_roots = extra_roots(&[], &[], &many.inbox);
        assert!(matches!(Block::decode(&many.encode(), MAX_BLOCK_BYTES).unwrap_err(), BlockDecodeError::BadInbox(_)));
    }

    #[test]
    fn round_trips_exactly() {
        let b = block(3);
        let bytes = b.encode();
        let back = Block::decode(&bytes, MAX_BLOCK_BYTES).unwrap();
        assert_eq!(back.header, b.header);
        assert_eq!(back.transactions, b.transactions);
        assert_eq!(back.encode(), bytes);
        assert_eq!(claimed_height(&bytes), Some(Height(3)));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Block::decode(&longer, MAX_BLOCK_BYTES).unwrap_err(), BlockDecodeError::Trailing(1));
        assert_eq!(Block::decode(&bytes[..bytes.len() - 1], MAX_BLOCK_BYTES).unwrap_err(), BlockDecodeError::Truncated);
        assert!(matches!(Block::decode(&bytes, 100), Err(BlockDecodeError::TooLarge(_, 100))));
        // The id is the header's hash: the body is bound by the roots, checked on decoding.
        assert_eq!(block_id(&bytes), Some(b.header.id()));
        let mut fewer = b.clone();
        fewer.transactions.pop();
        assert_eq!(Block::decode(&fewer.encode(), MAX_BLOCK_BYTES).unwrap_err(), BlockDecodeError::RootMismatch("transactions"));
        let mut with_log_root = b.clone();
        with_log_root.header.roots.logs = Digest([9; 32]);
        assert_eq!(Block::decode(&with_log_root.encode(), MAX_BLOCK_BYTES).unwrap_err(), BlockDecodeError::RootMismatch("DKG logs"));
        let mut with_commit_root = b.clone();
        with_commit_root.header.roots.last_commit = Digest([9; 32]);
        assert_eq!(
            Block::decode(&with_commit_root.encode(), MAX_BLOCK_BYTES).unwrap_err(),
            BlockDecodeError::RootMismatch("last commit")
        );
    }

    proptest! {
        #[test]
        fn garbage_and_mutations_never_panic(cut in 0usize..2000, flip in 0usize..2000, junk in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Block::decode(&junk, MAX_BLOCK_BYTES);
            let mut bytes = block(2).encode();
            let at = flip % bytes.len();
            bytes[at] ^= 0x5a;
            let _ = Block::decode(&bytes, MAX_BLOCK_BYTES);
            let _ = Block::decode(&bytes[..cut.min(bytes.len())], MAX_BLOCK_BYTES);
        }
    }
}
