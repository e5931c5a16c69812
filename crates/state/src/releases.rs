//! The key-release ledger in the state (DESIGN §5.5; issue 19, item 5). Ω records the release
//! records a block carries (the node checked each: both signatures, the member served the
//! request's epoch, new): one entry per request, naming every member that recorded it, and
//! indexes by contract, enclave identity (measurement) and enclave key — what
//! `query releases` reads — and, for `query exposure`, the distinct (contract, generation)
//! pairs that reached each measurement and each TCB evaluation data number.
//!
//! Indexes are append-only lists in pages of [`PAGE`] items (one page rewritten per
//! record), each with a count, so a contract executed a million times still costs one small
//! write per release, and every answer is a handful of entries with their proofs.

use tcp_dkmp::ReleaseRecord;

use crate::accounts::AccountState;
use crate::smt::Hash;
use crate::keccak256;

pub const RELEASE_NAMESPACE: u8 = 0x0d;
pub const RELEASE_INDEX_NAMESPACE: u8 = 0x0e;
pub const EXPOSURE_NAMESPACE: u8 = 0x0f;
pub const EXPOSURE_MARK_NAMESPACE: u8 = 0x10;
/// Items per index page.
pub const PAGE: usize = 64;
/// Members named in one release (the largest group).
const MAX_MEMBERS: usize = tcp_dkmp::derivation::MAX_GROUP_MEMBERS as usize;

/// What a release index lists requests by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseIndex {
    Contract = 0,
    Measurement = 1,
    Enclave = 2,
}

/// What an exposure list is kept by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExposureIndex {
    Measurement = 0,
    /// The TCB evaluation data number the enclave was judged under (big-endian, in the
    /// id's last 4 bytes).
    TcbEvaluation = 1,
}

/// A release as the ledger holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    pub request: [u8; 32],
    pub enclave_key: [u8; 32],
    pub operator: [u8; 20],
    pub measurement: [u8; 32],
    pub tcb_rank: u8,
    pub tcb_evaluation_data_number: u32,
    pub cid: [u8; 32],
    pub generation: u64,
    pub epoch: u64,
    /// 0 execute, 1 deploy.
    pub purpose: u8,
    /// The height of the block that first recorded it.
    pub height: u64,
    /// The members that recorded it (consensus keys), in the order their records came.
    pub members: Vec<[u8; 32]>,
}

const FIXED: usize = 32 + 20 + 32 + 1 + 4 + 32 + 8 + 8 + 1 + 8;

impl Release {
    /// The leaf value: `enclave key (32) ‖ operator (20) ‖ measurement (32) ‖ TCB rank (uint8) ‖
    /// TCB evaluation data number (uint32) ‖ cid (32) ‖ generation ‖ epoch (2 × uint64) ‖
    /// purpose (uint8) ‖ height (uint64) ‖ (member consensus key (32))*`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED + 32 * self.members.len());
        out.extend_from_slice(&self.enclave_key);
        out.extend_from_slice(&self.operator);
        out.extend_from_slice(&self.measurement);
        out.push(self.tcb_rank);
        out.extend_from_slice(&self.tcb_evaluation_data_number.to_be_bytes());
        out.extend_from_slice(&self.cid);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.push(self.purpose);
        out.extend_from_slice(&self.height.to_be_bytes());
        for m in &self.members {
            out.extend_from_slice(m);
        }
        out
    }

    pub fn decode(request: [u8; 32], v: &[u8]) -> Option<Release> {
        let mut r = tcp_types::ByteReader(v);
        let release = Release {
            request,
            enclave_key: r.array()?,
            operator: r.array()?,
            measurement: r.array()?,
            tcb_rank: r.u8()?,
            tcb_evaluation_data_number: r.u32()?,
            cid: r.array()?,
            generation: r.u64()?,
            epoch: r.u64()?,
            purpose: r.u8()?,
            height: r.u64()?,
            members: Vec::new(),
        };
        let rest = r.rest();
        if rest.len() % 32 != 0 {
            return None;
        }
        Some(Release { members: rest.chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect(), ..release })
    }
}

pub fn release_key(request: &[u8; 32]) -> Hash {
    keccak256(&[&[RELEASE_NAMESPACE], request])
}

pub fn release_index_key(index: ReleaseIndex, id: &[u8; 32], page: Option<u64>) -> Hash {
    match page {
        None => keccak256(&[&[RELEASE_INDEX_NAMESPACE, index as u8], id]),
        Some(p) => keccak256(&[&[RELEASE_INDEX_NAMESPACE, index as u8], id, &p.to_be_bytes()]),
    }
}

pub fn exposure_key(index: ExposureIndex, id: &[u8; 32], page: Option<u64>) -> Hash {
    match page {
        None => keccak256(&[&[EXPOSURE_NAMESPACE, index as u8], id]),
        Some(p) => keccak256(&[&[EXPOSURE_NAMESPACE, index as u8], id, &p.to_be_bytes()]),
    }
}

fn exposure_mark_key(index: ExposureIndex, id: &[u8; 32], cid: &[u8; 32], generation: u64) -> Hash {
    keccak256(&[&[EXPOSURE_MARK_NAMESPACE, index as u8], id, cid, &generation.to_be_bytes()])
}

/// The id an exposure by TCB evaluation data number is kept under.
pub fn tcb_evaluation_id(number: u32) -> [u8; 32] {
    let mut id = [0u8; 32];
    id[28..].copy_from_slice(&number.to_be_bytes());
    id
}

fn bytes32(key: &tcp_crypto::Ed25519PublicKey) -> [u8; 32] {
    commonware_codec::Encode::encode(key).as_ref().try_into().expect("ed25519 keys are 32 bytes")
}

impl AccountState {
    pub fn release(&self, request: &[u8; 32]) -> Option<Release> {
        self.get_entry(&release_key(request)).and_then(|v| Release::decode(*request, &v))
    }

    /// Whether `member` already recorded its release for `request`.
    pub fn release_recorded_by(&self, request: &[u8; 32], member: &tcp_crypto::Ed25519PublicKey) -> bool {
        self.release(request).is_some_and(|r| r.members.contains(&bytes32(member)))
    }

    fn count(&self, key: &Hash) -> u64 {
        self.get_entry(key).and_then(|v| Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))).unwrap_or(0)
    }

    /// How many items the list holds, and page `page` of it (items of `item` bytes).
    fn page(&self, count_key: Hash, page_key: Hash, item: usize) -> (u64, Vec<Vec<u8>>) {
        let items = self.get_entry(&page_key).map(|v| v.chunks_exact(item).map(<[u8]>::to_vec).collect()).unwrap_or_default();
        (self.count(&count_key), items)
    }

    fn append(&mut self, count_key: Hash, page_key: impl Fn(u64) -> Hash, item: &[u8]) {
        let count = self.count(&count_key);
        let page = page_key(count / PAGE as u64);
        let mut items = self.get_entry(&page).unwrap_or_default();
        items.extend_from_slice(item);
        self.put_entry(page, Some(items));
        self.put_entry(count_key, Some((count + 1).to_be_bytes().to_vec()));
    }

    /// The requests released under an index, page by page: (count, request digests of `page`).
    pub fn releases_by(&self, index: ReleaseIndex, id: &[u8; 32], page: u64) -> (u64, Vec<[u8; 32]>) {
        let (count, items) = self.page(release_index_key(index, id, None), release_index_key(index, id, Some(page)), 32);
        (count, items.into_iter().map(|i| i.try_into().expect("32 bytes")).collect())
    }

    /// The distinct (contract, generation) pairs released under an exposure index, page by page.
    pub fn exposure(&self, index: ExposureIndex, id: &[u8; 32], page: u64) -> (u64, Vec<([u8; 32], u64)>) {
        let (count, items) = self.page(exposure_key(index, id, None), exposure_key(index, id, Some(page)), 40);
        (count, items.into_iter().map(|i| (i[..32].try_into().expect("32"), u64::from_be_bytes(i[32..].try_into().expect("8")))).collect())
    }

    /// The TCB evaluation data numbers any release was made under, ascending.
    pub fn release_tcb_evaluations(&self) -> Vec<u32> {
        self.get_entry(&crate::staking::global_key("release-tcb-evaluations"))
            .map(|v| v.chunks_exact(4).map(|c| u32::from_be_bytes(c.try_into().expect("4"))).collect())
            .unwrap_or_default()
    }

    fn expose(&mut self, index: ExposureIndex, id: &[u8; 32], cid: &[u8; 32], generation: u64) {
        let mark = exposure_mark_key(index, id, cid, generation);
        if self.get_entry(&mark).is_some() {
            return;
        }
        self.put_entry(mark, Some(vec![1]));
        self.append(exposure_key(index, id, None), |p| exposure_key(index, id, Some(p)), &[cid.as_slice(), &generation.to_be_bytes()].concat());
    }

    /// Ω: record the release records of block `height`. A member's second record of the same
    /// request, or records beyond a group's size, change nothing.
    pub(crate) fn record_releases(&mut self, records: &[ReleaseRecord], height: u64) {
        for record in records {
            let request = &record.request.request;
            let digest = request.digest().0;
            let member = bytes32(&record.member);
            match self.release(&digest) {
                Some(mut release) => {
                    if release.members.contains(&member) || release.members.len() >= MAX_MEMBERS {
                        continue;
                    }
                    release.members.push(member);
                    self.put_entry(release_key(&digest), Some(release.encode()));
                }
                None => {
                    let to = &record.released_to;
                    let release = Release {
                        request: digest,
                        enclave_key: bytes32(&request.enclave_key),
                        operator: to.operator,
                        measurement: to.measurement,
                        tcb_rank: to.tcb_rank,
                        tcb_evaluation_data_number: to.tcb_evaluation_data_number,
                        cid: request.key.cid,
                        generation: request.key.generation,
                        epoch: request.epoch,
                        purpose: request.purpose.code(),
                        height,
                        members: vec![member],
                    };
                    self.put_entry(release_key(&digest), Some(release.encode()));
                    for (index, id) in [
                        (ReleaseIndex::Contract, release.cid),
                        (ReleaseIndex::Measurement, release.measurement),
                        (ReleaseIndex::Enclave, release.enclave_key),
                    ] {
                        self.append(release_index_key(index, &id, None), |p| release_index_key(index, &id, Some(p)), &digest);
                    }
                    self.expose(ExposureIndex::Measurement, &release.measurement, &release.cid, release.generation);
                    let number = release.tcb_evaluation_data_number;
                    self.expose(ExposureIndex::TcbEvaluation, &tcb_evaluation_id(number), &release.cid, release.generation);
                    let mut numbers = self.release_tcb_evaluations();
                    if let Err(at) = numbers.binary_search(&number) {
                        numbers.insert(at, number);
                        let bytes = numbers.iter().flat_map(|n| n.to_be_bytes()).collect();
                        self.put_entry(crate::staking::global_key("release-tcb-evaluations"), Some(bytes));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::StateConfig;
    use crate::staking::StakingParams;
    use tcp_dkmp::{ContractKeyId, KeyPurpose, KeyRequest, ReleasedTo};
    use tcp_types::ChainId;

    fn chain() -> ChainId {
        ChainId::new("release-test").unwrap()
    }

    fn state() -> AccountState {
        let config = StateConfig { chain_id: chain(), min_gas_price: 1, staking: StakingParams::default(), enclaves: None };
        AccountState::genesis(config, &[]).unwrap()
    }

    /// Member `member`'s record of a request for (cid, generation) by enclave `enclave`,
    /// identity `measurement`, judged under TCB evaluation `tcb`.
    fn record(nonce: u16, cid: u8, generation: u64, enclave: u8, measurement: u8, tcb: u32, member: u8) -> ReleaseRecord {
        let key = tcp_crypto::ed25519_from_secret(&[enclave; 32]);
        let mut n = [0u8; 16];
        n[..2].copy_from_slice(&nonce.to_be_bytes());
        let request = KeyRequest {
            key: ContractKeyId { chain_id: chain(), cid: [cid; 32], generation },
            epoch: 1,
            purpose: KeyPurpose::Execute,
            enclave_key: commonware_cryptography::Signer::public_key(&key),
            answer_key: [9; 32],
            nonce: n,
        }
        .sign(&key);
        let to = ReleasedTo { operator: [5; 20], measurement: [measurement; 32], tcb_rank: 0, tcb_evaluation_data_number: tcb };
        ReleaseRecord::sign(request, to, &tcp_crypto::ed25519_from_secret(&[0x80 | member; 32]))
    }

    #[test]
    fn releases_are_listed_by_contract_identity_and_enclave_and_exposure_lists_each_pair_once() {
        let mut s = state();
        let first = record(0, 1, 0, 1, 0xa, 17, 0);
        let digest = first.request.request.digest().0;
        // Three members record the same release; one of them twice.
        s.record_releases(&[first.clone(), record(0, 1, 0, 1, 0xa, 17, 1), first.clone()], 10);
        s.record_releases(&[record(0, 1, 0, 1, 0xa, 17, 2)], 11);
        let release = s.release(&digest).unwrap();
        assert_eq!(release.members.len(), 3, "one entry per member");
        assert_eq!((release.cid, release.generation, release.height, release.measurement), ([1; 32], 0, 10, [0xa; 32]));
        assert!(s.release_recorded_by(&digest, &first.member));
        assert_eq!(s.releases_by(ReleaseIndex::Contract, &[1; 32], 0), (1, vec![digest]));

        // More requests than a page: the index rolls over to the next page, the count is exact;
        // exposure lists (contract, generation) pairs once each.
        let more: Vec<ReleaseRecord> = (1..=PAGE as u16 + 3).map(|n| record(n, 1, u64::from(n % 2), 1, 0xa, 17, 0)).collect();
        s.record_releases(&more, 12);
        let (count, page0) = s.releases_by(ReleaseIndex::Contract, &[1; 32], 0);
        let (_, page1) = s.releases_by(ReleaseIndex::Contract, &[1; 32], 1);
        assert_eq!((count, page0.len(), page1.len()), (PAGE as u64 + 4, PAGE, 4));
        assert_eq!(s.releases_by(ReleaseIndex::Measurement, &[0xa; 32], 0).0, PAGE as u64 + 4);
        assert_eq!(s.exposure(ExposureIndex::Measurement, &[0xa; 32], 0), (2, vec![([1; 32], 0), ([1; 32], 1)]));
        assert_eq!(s.exposure(ExposureIndex::Measurement, &[0xb; 32], 0), (0, vec![]));

        // Another identity under an older TCB evaluation: its own exposure, and the number listed.
        s.record_releases(&[record(500, 2, 3, 2, 0xb, 15, 0)], 13);
        assert_eq!(s.exposure(ExposureIndex::TcbEvaluation, &tcb_evaluation_id(15), 0), (1, vec![([2; 32], 3)]));
        assert_eq!(s.release_tcb_evaluations(), vec![15, 17]);
        assert_eq!(s.releases_by(ReleaseIndex::Enclave, &bytes32(&record(500, 2, 3, 2, 0xb, 15, 0).request.request.enclave_key), 0).0, 1);
    }
}
