//! The beacon's chain-side schedule. Every node feeds it the same committed blocks in the same
//! order and so derives the same answers to: which ceremony runs and until when, which epoch a
//! height belongs to, its validator set and public sharing, R_h, the proposer weights, and
//! whether a block's beacon content is valid.
//!
//! Timeline (DESIGN §5.2):
//! * Bootstrap: from height 1 the genesis validators run a DKG; dealer logs are committed in
//!   blocks up to the ceremony's deadline height. Until the DKG succeeds, precommits carry no
//!   partials and R_h is a public, genesis-fixed value (a documented bootstrap weakness). A
//!   failed DKG is retried in the next window.
//! * The beacon starts at the height after the deadline of the successful DKG: its σ chains
//!   on a seed derived from the group key.
//! * Epochs last `epoch_length` heights. The set for the next epoch is planned once per epoch,
//!   `reshare_window` heights before its end (the host's staking state answers the schedule;
//!   later changes wait for the next plan). When the plan differs from the current set, the
//!   current set reshares to it (deadline: the epoch's last height). If the reshare succeeds
//!   the planned set and the new sharing take over at the boundary, with the same group key;
//!   if not, the epoch is extended by `epoch_length` heights, the old set carries on, and the
//!   set is planned and reshared again before the new end.

use crate::dkg::{Ceremony, DkgOutput, SignedLog, Transcript, group_key};
use crate::finality::{Finality, finality_message};
use crate::selection::{ValidatorRecord, WeightParams, proposer_weights, select_proposer};
use crate::signature::{BeaconSignature, GroupKey, Previous, PublicSharing, beacon_message};
use crate::verifier::{GroupKeyVerifier, SharingVerifier};
use rand_core::CryptoRng;
use std::collections::BTreeMap;
use std::sync::Arc;
use tcp_crypto::{Ed25519PublicKey, sha256};
use tcp_types::{ChainId, Digest, Height, Round, ValidatorIndex};

/// Genesis parameters of the beacon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeaconParams {
    /// Heights per epoch (validator-set changes and weight resets happen at boundaries).
    pub epoch_length: u64,
    /// Heights in which a DKG's logs may be committed (the genesis DKG and its retries).
    pub dkg_window: u64,
    /// Heights before an epoch's end at which the next set is planned and the reshare to it
    /// starts (at most `epoch_length`: the whole epoch).
    pub reshare_window: u64,
    pub weights: WeightParams,
}

impl Default for BeaconParams {
    fn default() -> Self {
        BeaconParams { epoch_length: 100, dkg_window: 8, reshare_window: 100, weights: WeightParams::default() }
    }
}

/// At most this many logs per block (a ceremony has at most one per dealer anyway).
pub const MAX_LOGS_PER_BLOCK: usize = 64;
/// Rounds per height credited in the efficiency records; rounds beyond are not counted.
const MAX_ROUNDS_RECORDED: u32 = 64;
/// R_h kept for this many heights back (proposer selection looks two back).
const RANDOMNESS_KEPT: u64 = 8;
/// Heights whose φ the ledger keeps (validation needs only the last).
const RECENT_FINALITY: usize = 4;

/// A validator of an epoch: identity and N₀ (stake plus rewards) for its weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub key: Ed25519PublicKey,
    pub coin_base: u64,
}

/// Who validates each epoch: the host's staking state answers (the simulator's plan). Called
/// with the epoch and the height whose block takes the answer (the genesis set: epoch 0,
/// height 0). An empty answer keeps the current set.
pub type SetSchedule = Arc<dyn Fn(u64, Height) -> Vec<Member> + Send + Sync>;

/// The beacon content of a block, as the host decoded it from its block format.
#[derive(Clone, Debug)]
pub struct BlockBeaconData {
    /// The round the block was built for and its builder (for efficiency records).
    pub round: Round,
    pub proposer: ValidatorIndex,
    /// σ_{h-1}, required once the beacon runs at h-1.
    pub previous_signature: Option<BeaconSignature>,
    /// The id of block h-1 (the block's parent) and φ_{h-1} on it, required once the beacon
    /// runs at h-1, of the round of the commit the block carries.
    pub parent: Digest,
    pub previous_finality: Option<Finality>,
    /// The round of the commit of h-1 the block carries, if its format has one.
    pub commit_round: Option<Round>,
    pub logs: Vec<SignedLog>,
    /// The validators (indices of h-1's set) whose precommits for h-1 the block carries, when
    /// the host's block format has them (credited only when h-1 is in the same epoch).
    pub signers: Option<Vec<ValidatorIndex>>,
}

/// Why a block's beacon content is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockRejection {
    #[error("block is not for the next height")]
    WrongHeight,
    #[error("builder is not the proposer of the round it claims")]
    WrongProposer,
    #[error("missing the previous height's beacon signature")]
    MissingSignature,
    #[error("carries a beacon signature before the beacon started")]
    UnexpectedSignature,
    #[error("the previous height's beacon signature does not verify")]
    BadSignature,
    #[error("missing the previous height's finality signature")]
    MissingFinality,
    #[error("carries a finality signature before the beacon started")]
    UnexpectedFinality,
    #[error("the previous height's finality signature is of round {finality}, its commit of round {commit}")]
    FinalityOfAnotherRound { finality: u32, commit: u32 },
    #[error("the previous height's finality signature does not verify")]
    BadFinality,
    #[error("carries DKG logs while no ceremony runs")]
    NoCeremony,
    #[error("too many DKG logs")]
    TooManyLogs,
    #[error("DKG log refused: {0}")]
    BadLog(crate::dkg::LogRejection),
}

/// What changed when a block was applied, for the host to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerEvent {
    /// Dealers start dealing and players accept dealings for this ceremony.
    CeremonyStarted {
        round: u64,
        reshare: bool,
    },
    /// Players finalize their shares from the ceremony's transcript.
    CeremonyCompleted {
        round: u64,
        reshare: bool,
        dealers_excluded: usize,
    },
    CeremonyFailed {
        round: u64,
        reshare: bool,
        reason: String,
    },
    EpochStarted {
        epoch: u64,
        start: Height,
        reshared: bool,
    },
    EpochExtended {
        epoch: u64,
        end: Height,
    },
}

#[derive(Clone)]
struct Epoch {
    number: u64,
    start: Height,
    end: Height,
    members: Vec<Member>,
    output: Option<DkgOutput>,
    /// Checks partials and σ under `output`'s sharing (kept across epochs while it is unchanged).
    verifier: Option<Arc<SharingVerifier>>,
    /// The ceremony round that produced `output` (a node's share is filed under it).
    output_round: Option<u64>,
}

#[derive(Clone)]
struct ActiveCeremony {
    transcript: Transcript,
    started: Height,
    deadline: Height,
    /// For a reshare: the set it deals to (it takes over at the boundary if it succeeds).
    target: Vec<Member>,
}

/// Counters a simulator or operator reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LedgerStats {
    pub ceremonies_failed: u64,
    pub reshares: u64,
    pub epochs_extended: u64,
    pub group_key_changes: u64,
}

#[derive(Clone)]
pub struct Ledger {
    chain_id: ChainId,
    params: BeaconParams,
    schedule: SetSchedule,
    height: Height,
    epoch: Epoch,
    /// The epoch before the current one: σ of its last height is signed under its sharing.
    previous_epoch: Option<Epoch>,
    ceremony: Option<ActiveCeremony>,
    /// A reshare that succeeded, waiting for the epoch boundary, with its set.
    next_output: Option<(u64, DkgOutput, Vec<Member>)>,
    /// The set planned for the next epoch (taken once per epoch, at `plan_height`).
    planned: Option<Vec<Member>>,
    /// Joining validators that failed a reshare: left out of plans until an epoch starts.
    excluded: std::collections::BTreeSet<Ed25519PublicKey>,
    /// The transcript of the last ceremony that completed: players finalize their shares from it.
    completed: Option<Transcript>,
    next_round: u64,
    group: Option<Arc<GroupKeyVerifier>>,
    beacon_start: Option<Height>,
    signatures: BTreeMap<Height, BeaconSignature>,
    /// φ of the last few heights, verified, with the header id it signs.
    finality: BTreeMap<Height, (Digest, Finality)>,
    records: Vec<ValidatorRecord>,
    /// The records as they were before the last applied block: what the weights of the next
    /// height use (DESIGN §5.2: weights at h depend only on blocks up to h−2, fixed before
    /// σ_{h-2} existed, so the builder of h−1 — who knows R_{h-2} — cannot move them, e.g. by
    /// choosing which precommits its `last_commit` carries).
    lagged_records: Vec<ValidatorRecord>,
    stats: LedgerStats,
}

/// The schedule's order is the consensus index order; a key listed twice keeps its first place.
fn deduplicated(members: Vec<Member>) -> Vec<Member> {
    let mut seen = std::collections::BTreeSet::new();
    members.into_iter().filter(|m| seen.insert(m.key.clone())).collect()
}

/// Whether two sets hold different keys (order does not matter).
fn differs(a: &[Member], b: &[Member]) -> bool {
    let keys = |s: &[Member]| s.iter().map(|m| m.key.clone()).collect::<std::collections::BTreeSet<_>>();
    keys(a) != keys(b)
}

impl Ledger {
    /// The ledger before height 1: the genesis set starts its DKG.
    pub fn genesis(chain_id: ChainId, params: BeaconParams, schedule: SetSchedule) -> (Ledger, Vec<LedgerEvent>) {
        assert!(params.epoch_length > 0 && params.dkg_window > 0, "epoch length and DKG window must be positive");
        let members = deduplicated(schedule(0, Height(0)));
        assert!(!members.is_empty(), "the genesis set is empty");
        let records: Vec<ValidatorRecord> =
            members.iter().map(|m| ValidatorRecord { coin_base: m.coin_base, ..Default::default() }).collect();
        let epoch = Epoch {
            number: 0,
            start: Height(1),
            end: Height(params.epoch_length),
            members,
            output: None,
            verifier: None,
            output_round: None,
        };
        let mut ledger = Ledger {
            chain_id,
            params,
            schedule,
            height: Height(0),
            epoch,
            previous_epoch: None,
            ceremony: None,
            next_output: None,
            planned: None,
            excluded: std::collections::BTreeSet::new(),
            completed: None,
            next_round: 0,
            group: None,
            beacon_start: None,
            signatures: BTreeMap::new(),
            finality: BTreeMap::new(),
            lagged_records: records.clone(),
            records,
            stats: LedgerStats::default(),
        };
        let mut events = Vec::new();
        ledger.start_dkg(Height(1), &mut events);
        (ledger, events)
    }

    pub fn chain_id(&self) -> &ChainId {
        &self.chain_id
    }

    /// The last height applied.
    pub fn height(&self) -> Height {
        self.height
    }

    pub fn stats(&self) -> LedgerStats {
        self.stats
    }

    pub fn group_key(&self) -> Option<&GroupKey> {
        self.group.as_ref().map(|g| g.key())
    }

    pub fn beacon_start(&self) -> Option<Height> {
        self.beacon_start
    }

    /// The ceremony in progress, if any.
    pub fn ceremony(&self) -> Option<&Ceremony> {
        self.ceremony.as_ref().map(|c| c.transcript.ceremony())
    }

    pub fn transcript(&self) -> Option<&Transcript> {
        self.ceremony.as_ref().map(|c| &c.transcript)
    }

    pub fn ceremony_deadline(&self) -> Option<Height> {
        self.ceremony.as_ref().map(|c| c.deadline)
    }

    /// The committed height by which a dealer closes its dealing (acks or not): halfway through
    /// the ceremony's window, leaving the rest for its log to reach the chain.
    pub fn dealing_closes_at(&self) -> Option<Height> {
        self.ceremony.as_ref().map(|c| Height(c.started.0 + (c.deadline.0 - c.started.0) / 2))
    }

    /// The transcript of the last completed ceremony (a player finalizes its share from it).
    pub fn completed_transcript(&self) -> Option<&Transcript> {
        self.completed.as_ref()
    }

    /// The validators of the height in progress (the one after the last applied), in index order.
    pub fn validators(&self) -> &[Member] {
        &self.epoch.members
    }

    /// The validators of `height`'s epoch (current or previous), in index order.
    pub fn validators_at(&self, height: Height) -> Option<&[Member]> {
        self.epoch_of(height).map(|e| e.members.as_slice())
    }

    /// The last height of the epoch in force (moves if a missed reshare extends it).
    pub fn epoch_end(&self) -> Height {
        self.epoch.end
    }

    /// The epoch of the height in progress: number and first height.
    pub fn epoch(&self) -> (u64, Height) {
        (self.epoch.number, self.epoch.start)
    }

    /// The set planned for the next epoch, once planned.
    pub fn planned(&self) -> Option<&[Member]> {
        self.planned.as_deref()
    }

    /// The height at which the current epoch plans the next set.
    fn plan_height(&self) -> Height {
        Height(self.epoch.end.0.saturating_sub(self.params.reshare_window.min(self.params.epoch_length)) + 1).max(self.epoch.start)
    }

    /// Whether applying block `height` (the height in progress) takes the schedule's answer for
    /// the next epoch: the host must make the schedule answer from its state *after* that
    /// block. Returns the epoch planned for.
    pub fn plan_due(&self, height: Height) -> Option<u64> {
        (self.planned.is_none() && self.beacon_start.is_some() && self.ceremony.is_none() && height >= self.plan_height())
            .then_some(self.epoch.number + 1)
    }

    /// The proposers the beacon assigned to rounds 0..=`round` at the height in progress
    /// (efficiency records), or none if the selection randomness is unknown.
    pub fn assigned_proposers(&self, height: Height, round: Round) -> Vec<ValidatorIndex> {
        let weights = self.weights(height);
        let Some(randomness) = self.selection_randomness(height) else { return Vec::new() };
        (0..=round.0.min(MAX_ROUNDS_RECORDED)).map(|r| ValidatorIndex(select_proposer(&weights, &randomness, Round(r)) as u32)).collect()
    }

    fn epoch_of(&self, height: Height) -> Option<&Epoch> {
        if height >= self.epoch.start {
            return Some(&self.epoch);
        }
        self.previous_epoch.as_ref().filter(|e| height >= e.start && height <= e.end)
    }

    /// Whether precommits at `height` carry partials.
    pub fn beacon_active(&self, height: Height) -> bool {
        self.beacon_start.is_some_and(|start| height >= start)
    }

    /// The public sharing σ_h is signed under (current or previous epoch).
    pub fn sharing(&self, height: Height) -> Option<&PublicSharing> {
        self.verifier(height).map(|v| v.sharing())
    }

    /// The verifier of the sharing σ_h is signed under.
    pub fn verifier(&self, height: Height) -> Option<&Arc<SharingVerifier>> {
        if !self.beacon_active(height) {
            return None;
        }
        self.epoch_of(height)?.verifier.as_ref()
    }

    /// Whether φ_h on (h, its round, `header`) verifies under the group key.
    fn finality_verifies(&self, height: Height, header: &Digest, finality: &Finality) -> bool {
        let Some(verifier) = self.verifier(height) else { return false };
        let message = finality_message(&self.chain_id, height, finality.round, header);
        verifier.group().verify_point(&verifier.finality_point(&message), &finality.signature.0)
    }

    /// σ_h and φ_h in one pairing check.
    fn both_verify(&self, height: Height, sigma: &BeaconSignature, header: &Digest, finality: &Finality, rng: &mut impl CryptoRng) -> bool {
        let (Some(message), Some(verifier)) = (self.message(height), self.verifier(height)) else { return false };
        let finality_point = verifier.finality_point(&finality_message(&self.chain_id, height, finality.round, header));
        verifier.group().verify_pair(rng, (&verifier.message_point(&message), &sigma.0), (&finality_point, &finality.signature.0))
    }

    /// φ_h with the header id it signs, if known (the last few heights).
    pub fn finality(&self, height: Height) -> Option<(Digest, Finality)> {
        self.finality.get(&height).copied()
    }

    /// Accept φ_h on `header` (recovered locally or read from a block) if it verifies.
    /// Returns whether it is now known.
    pub fn offer_finality(&mut self, height: Height, header: Digest, finality: Finality) -> bool {
        if self.finality.get(&height) == Some(&(header, finality)) {
            return true;
        }
        if !self.finality_verifies(height, &header, &finality) {
            return false;
        }
        self.keep_finality(height, header, finality);
        true
    }

    fn keep_finality(&mut self, height: Height, header: Digest, finality: Finality) {
        self.finality.insert(height, (header, finality));
        while self.finality.len() > RECENT_FINALITY {
            self.finality.pop_first();
        }
    }

    /// Whether σ_h verifies under the group key.
    fn signature_verifies(&self, height: Height, sigma: &BeaconSignature) -> bool {
        let (Some(message), Some(verifier)) = (self.message(height), self.verifier(height)) else { return false };
        verifier.verify_signature(&verifier.message_point(&message), sigma)
    }

    /// The ceremony round whose output signs at `height` (a node's share is filed under it).
    pub fn output_round(&self, height: Height) -> Option<u64> {
        if !self.beacon_active(height) {
            return None;
        }
        self.epoch_of(height)?.output_round
    }

    /// The share index of each validator of `height`'s epoch, by consensus index.
    pub fn participants(&self, height: Height) -> Vec<Option<u32>> {
        let Some(epoch) = self.epoch_of(height) else { return Vec::new() };
        let Some(output) = &epoch.output else { return vec![None; epoch.members.len()] };
        epoch.members.iter().map(|m| crate::dkg::share_index(output, &m.key)).collect()
    }

    /// The link σ_h chains on, if known: the seed for the first beacon height, else σ_{h-1}.
    pub fn previous_link(&self, height: Height) -> Option<Previous> {
        let start = self.beacon_start?;
        if height < start {
            return None;
        }
        if height == start {
            let key = self.group_key().expect("the beacon runs with a group key");
            return Some(Previous::Seed(sha256(&[
                b"tcp/beacon/seed",
                self.chain_id.as_str().as_bytes(),
                &crate::signature::group_key_to_bytes(key),
            ])));
        }
        self.signatures.get(&Height(height.0 - 1)).map(|s| Previous::Signature(*s))
    }

    /// The bytes σ_h signs, once its link is known.
    pub fn message(&self, height: Height) -> Option<Vec<u8>> {
        self.previous_link(height).map(|link| beacon_message(&self.chain_id, height, &link))
    }

    /// σ_h, if known.
    pub fn signature(&self, height: Height) -> Option<BeaconSignature> {
        self.signatures.get(&height).copied()
    }

    /// σ_h and φ_h (on `header`) that this node interpolated from partials it verified itself:
    /// kept without another pairing check (interpolating verified partials is exact; a debug
    /// build checks anyway). What comes from anywhere else goes through `offer_signature` /
    /// `offer_finality`.
    pub fn accept_recovered(&mut self, height: Height, sigma: Option<BeaconSignature>, finality: Option<(Digest, Finality)>) {
        if self.verifier(height).is_none() {
            return;
        }
        if let Some(sigma) = sigma {
            debug_assert!(self.signature_verifies(height, &sigma), "a recovered σ verifies");
            self.signatures.insert(height, sigma);
        }
        if let Some((header, finality)) = finality {
            debug_assert!(self.finality_verifies(height, &header, &finality), "a recovered φ verifies");
            self.keep_finality(height, header, finality);
        }
    }

    /// Accept σ_h (recovered locally or read from a block) if it verifies. Returns whether it
    /// is now known.
    pub fn offer_signature(&mut self, height: Height, sigma: BeaconSignature) -> bool {
        if self.signatures.get(&height) == Some(&sigma) {
            return true;
        }
        if !self.signature_verifies(height, &sigma) {
            return false;
        }
        self.signatures.insert(height, sigma);
        true
    }

    /// R_h: SHA-256(σ_h) once the beacon runs; before, a value fixed by genesis (public and
    /// predictable: the bootstrap's documented weakness).
    pub fn randomness(&self, height: Height) -> Option<Digest> {
        if self.beacon_active(height) {
            return self.signatures.get(&height).map(BeaconSignature::randomness);
        }
        Some(sha256(&[b"tcp/beacon/bootstrap", self.chain_id.as_str().as_bytes(), &height.0.to_be_bytes()]))
    }

    /// The proposer weights at `height` (must be the height in progress).
    pub fn weights(&self, height: Height) -> Vec<u128> {
        debug_assert_eq!(height, self.height.next());
        proposer_weights(&self.params.weights, &self.lagged_records, height.0.saturating_sub(self.epoch.start.0))
    }

    /// R_{h-2}, the randomness proposer selection at `height` draws from. Always known on a
    /// consistent chain (σ_{h-2} is in block h-1, applied before height h starts); `None` only
    /// if blocks from different forks were applied.
    pub fn selection_randomness(&self, height: Height) -> Option<Digest> {
        self.randomness(Height(height.0.saturating_sub(2)))
    }

    /// Proposer(h, r) for the height in progress.
    pub fn proposer(&self, height: Height, round: Round) -> Option<ValidatorIndex> {
        let weights = self.weights(height);
        Some(ValidatorIndex(select_proposer(&weights, &self.selection_randomness(height)?, round) as u32))
    }

    /// Check a block's beacon content for the height in progress: proposer, σ_{h-1} and φ_{h-1}
    /// (one pairing check for both when neither is known yet; `rng` draws the secret weight
    /// that combines them), DKG logs. σ_{h-1} and φ_{h-1} that verify are kept even if the block
    /// is refused for another reason (σ_{h-1} is unique, φ_{h-1} signs the parent named), so
    /// applying the block or the next proposal's copy of them costs no second check — this is
    /// how a validator that did not interpolate σ_{h-1} itself learns it.
    pub fn validate_block(&mut self, height: Height, data: &BlockBeaconData, rng: &mut impl CryptoRng) -> Result<(), BlockRejection> {
        if height != self.height.next() {
            return Err(BlockRejection::WrongHeight);
        }
        if Some(data.proposer) != self.proposer(height, data.round) {
            return Err(BlockRejection::WrongProposer);
        }
        let previous = Height(height.0 - 1);
        let active = self.beacon_active(previous);
        match (active, &data.previous_signature, &data.previous_finality) {
            (false, None, None) => {}
            (false, Some(_), _) => return Err(BlockRejection::UnexpectedSignature),
            (false, None, Some(_)) => return Err(BlockRejection::UnexpectedFinality),
            (true, None, _) => return Err(BlockRejection::MissingSignature),
            (true, Some(_), None) => return Err(BlockRejection::MissingFinality),
            (true, Some(sigma), Some(finality)) => {
                if let Some(commit) = data.commit_round
                    && commit != finality.round
                {
                    return Err(BlockRejection::FinalityOfAnotherRound { finality: finality.round.0, commit: commit.0 });
                }
                let sigma_known = self.signatures.get(&previous) == Some(sigma);
                let finality_known = self.finality.get(&previous) == Some(&(data.parent, *finality));
                match (sigma_known, finality_known) {
                    (true, true) => {}
                    (true, false) => {
                        if !self.finality_verifies(previous, &data.parent, finality) {
                            return Err(BlockRejection::BadFinality);
                        }
                    }
                    (false, true) => {
                        if !self.signature_verifies(previous, sigma) {
                            return Err(BlockRejection::BadSignature);
                        }
                    }
                    (false, false) => {
                        if !self.both_verify(previous, sigma, &data.parent, finality, rng) {
                            // Tell which one is bad (the rare path: a faulty proposer).
                            return Err(if self.signature_verifies(previous, sigma) {
                                self.signatures.insert(previous, *sigma);
                                BlockRejection::BadFinality
                            } else {
                                BlockRejection::BadSignature
                            });
                        }
                    }
                }
                self.signatures.insert(previous, *sigma);
                self.keep_finality(previous, data.parent, *finality);
            }
        }
        if data.logs.len() > MAX_LOGS_PER_BLOCK {
            return Err(BlockRejection::TooManyLogs);
        }
        if !data.logs.is_empty() {
            let Some(ceremony) = &self.ceremony else { return Err(BlockRejection::NoCeremony) };
            let mut transcript = ceremony.transcript.clone();
            for log in &data.logs {
                transcript.record(log.clone()).map_err(BlockRejection::BadLog)?;
            }
        }
        Ok(())
    }

    /// Apply a committed block of the next height (already validated by consensus). `rng`
    /// drives the randomized batch checks of a ceremony's transcript.
    pub fn apply_block(&mut self, height: Height, data: &BlockBeaconData, rng: &mut impl CryptoRng) -> Vec<LedgerEvent> {
        assert_eq!(height, self.height.next(), "blocks are applied in height order");
        // Decided on the state before the block, as the host's `plan_due` saw it.
        let plan = self.plan_due(height);
        let mut events = Vec::new();
        // σ_{h-1} and φ_{h-1}: known now to everyone (validated with the block).
        let previous = Height(height.0 - 1);
        if let Some(sigma) = data.previous_signature {
            let known = self.offer_signature(previous, sigma);
            debug_assert!(known, "a committed block's beacon signature verifies");
        }
        if let Some(finality) = data.previous_finality {
            let known = self.offer_finality(previous, data.parent, finality);
            debug_assert!(known, "a committed block's finality signature verifies");
        }
        let before = self.records.clone();
        self.record_efficiency(height, data);
        self.lagged_records = before;
        if let Some(ceremony) = &mut self.ceremony {
            for log in &data.logs {
                // Validated with the block; a duplicate from a faulty host changes nothing.
                let _ = ceremony.transcript.record(log.clone());
            }
        }
        self.height = height;
        self.signatures.retain(|h, _| h.0 + RANDOMNESS_KEPT > height.0);
        if self.ceremony.as_ref().is_some_and(|c| c.deadline == height) {
            self.close_ceremony(height, rng, &mut events);
        }
        if height == self.epoch.end {
            self.end_epoch(height, &mut events);
        } else if plan.is_some() {
            self.plan_next_epoch(height, &mut events);
        }
        events
    }

    /// Take the next epoch's set from the schedule; reshare to it if it differs.
    fn plan_next_epoch(&mut self, height: Height, events: &mut Vec<LedgerEvent>) {
        let excluded = &self.excluded;
        let planned: Vec<Member> =
            deduplicated((self.schedule)(self.epoch.number + 1, height)).into_iter().filter(|m| !excluded.contains(&m.key)).collect();
        if !planned.is_empty() && differs(&planned, &self.epoch.members) {
            self.start_reshare(planned.clone(), self.epoch.end, events);
        }
        self.planned = Some(planned);
    }

    fn record_efficiency(&mut self, height: Height, data: &BlockBeaconData) {
        if self.selection_randomness(height).is_none() {
            return;
        }
        for assigned in self.assigned_proposers(height, data.round) {
            self.records[assigned.as_usize()].proposals_assigned += 1;
        }
        if let Some(record) = self.records.get_mut(data.proposer.as_usize()) {
            record.proposals_made += 1;
        }
        // Precommits of h-1 count when h-1 belongs to this epoch (same indices).
        if let Some(signers) = &data.signers
            && height > self.epoch.start
        {
            for (i, record) in self.records.iter_mut().enumerate() {
                record.heights += 1;
                if signers.contains(&ValidatorIndex(i as u32)) {
                    record.precommits_signed += 1;
                }
            }
        }
    }

    fn start_dkg(&mut self, from: Height, events: &mut Vec<LedgerEvent>) {
        let keys: Vec<Ed25519PublicKey> = self.epoch.members.iter().map(|m| m.key.clone()).collect();
        let round = self.next_round;
        self.next_round += 1;
        let ceremony = Ceremony::new(round, None, &keys, &keys).expect("the genesis set makes a valid ceremony");
        let deadline = Height(from.0 + self.params.dkg_window - 1);
        self.ceremony = Some(ActiveCeremony { transcript: Transcript::new(ceremony), started: from, deadline, target: Vec::new() });
        events.push(LedgerEvent::CeremonyStarted { round, reshare: false });
    }

    fn start_reshare(&mut self, target: Vec<Member>, deadline: Height, events: &mut Vec<LedgerEvent>) {
        let previous = self.epoch.output.clone().expect("reshares start once the beacon runs");
        let dealers: Vec<Ed25519PublicKey> = previous.players().iter().cloned().collect();
        let players: Vec<Ed25519PublicKey> = target.iter().map(|m| m.key.clone()).collect();
        let round = self.next_round;
        self.next_round += 1;
        match Ceremony::new(round, Some(previous), &dealers, &players) {
            Ok(ceremony) => {
                self.ceremony =
                    Some(ActiveCeremony { transcript: Transcript::new(ceremony), started: self.height.next(), deadline, target });
                events.push(LedgerEvent::CeremonyStarted { round, reshare: true });
            }
            Err(e) => events.push(LedgerEvent::CeremonyFailed { round, reshare: true, reason: e.to_string() }),
        }
    }

    fn close_ceremony(&mut self, height: Height, rng: &mut impl CryptoRng, events: &mut Vec<LedgerEvent>) {
        let ceremony = self.ceremony.take().expect("a ceremony is closing");
        let round = ceremony.transcript.ceremony().round();
        let reshare = ceremony.transcript.ceremony().is_reshare();
        // A joining validator whose share some dealer had to reveal (it never acked: offline or
        // faulty) would enter the set with a public share: the reshare fails for it, and it is
        // left out of the retry (DESIGN §5.2: the old set carries on meanwhile).
        let result = ceremony.transcript.finish(rng).and_then(|output| {
            let absent: Vec<Ed25519PublicKey> = ceremony
                .target
                .iter()
                .filter(|m| !self.epoch.members.iter().any(|c| c.key == m.key) && output.revealed().position(&m.key).is_some())
                .map(|m| m.key.clone())
                .collect();
            if absent.is_empty() {
                Ok(output)
            } else {
                let reason = format!("{} joining validator(s) did not take part (their shares were revealed)", absent.len());
                self.excluded.extend(absent);
                Err(crate::BeaconError::Ceremony(reason))
            }
        });
        match result {
            Ok(output) => {
                let key = group_key(&output);
                let dealers_excluded = ceremony.transcript.ceremony().dealers().len() - output.dealers().len();
                if let Some(existing) = self.group_key()
                    && *existing != key
                {
                    self.stats.group_key_changes += 1;
                }
                // The transcript stays readable for players finalizing their shares.
                self.completed = Some(ceremony.transcript);
                events.push(LedgerEvent::CeremonyCompleted { round, reshare, dealers_excluded });
                if reshare {
                    self.next_output = Some((round, output, ceremony.target));
                } else {
                    let verifier = Arc::new(SharingVerifier::new(output.public().clone(), None));
                    self.group = Some(verifier.group().clone());
                    self.epoch.verifier = Some(verifier);
                    self.epoch.output = Some(output);
                    self.epoch.output_round = Some(round);
                    self.beacon_start = Some(height.next());
                }
            }
            Err(e) => {
                self.stats.ceremonies_failed += 1;
                events.push(LedgerEvent::CeremonyFailed { round, reshare, reason: e.to_string() });
                if !reshare {
                    self.start_dkg(height.next(), events);
                }
            }
        }
    }

    fn end_epoch(&mut self, height: Height, events: &mut Vec<LedgerEvent>) {
        let planned = self.planned.take();
        let set_changes = planned.as_ref().is_some_and(|p| !p.is_empty() && differs(p, &self.epoch.members));
        let ready = self.beacon_start.is_some() && planned.is_some() && (!set_changes || self.next_output.is_some());
        if !ready {
            // DESIGN §5.2: the reshare missed its deadline (or the beacon has not started): the
            // old set carries on for another epoch length; the set is planned and reshared again.
            self.next_output = None;
            self.epoch.end = Height(self.epoch.end.0 + self.params.epoch_length);
            self.stats.epochs_extended += 1;
            events.push(LedgerEvent::EpochExtended { epoch: self.epoch.number, end: self.epoch.end });
            return;
        }
        let (output_round, output, verifier, members) = match self.next_output.take().filter(|_| set_changes) {
            Some((round, output, target)) => {
                self.stats.reshares += 1;
                let verifier = Arc::new(SharingVerifier::new(output.public().clone(), self.group.as_ref()));
                (Some(round), Some(output), Some(verifier), target)
            }
            None => {
                // Same keys: N₀ comes fresh from the plan, the order stays.
                let planned = planned.expect("ready means planned");
                let members = self
                    .epoch
                    .members
                    .iter()
                    .map(|m| Member {
                        key: m.key.clone(),
                        coin_base: planned.iter().find(|p| p.key == m.key).map_or(m.coin_base, |p| p.coin_base),
                    })
                    .collect();
                (self.epoch.output_round, self.epoch.output.clone(), self.epoch.verifier.clone(), members)
            }
        };
        let next = Epoch {
            number: self.epoch.number + 1,
            start: height.next(),
            end: Height(height.0 + self.params.epoch_length),
            members,
            output,
            verifier,
            output_round,
        };
        self.records = next.members.iter().map(|m| ValidatorRecord { coin_base: m.coin_base, ..Default::default() }).collect();
        self.lagged_records = self.records.clone();
        self.previous_epoch = Some(std::mem::replace(&mut self.epoch, next));
        self.excluded.clear();
        events.push(LedgerEvent::EpochStarted { epoch: self.epoch.number, start: self.epoch.start, reshared: set_changes });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dkg::{BeaconShare, run_local_ceremony};
    use crate::signature::{recover_signature, sign_partial};
    use commonware_cryptography::Signer as _;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use tcp_crypto::{Ed25519PrivateKey, insecure_ed25519_from_seed};

    #[test]
    fn the_builder_of_h_minus_1_cannot_move_the_weights_of_h() {
        let public: Vec<Ed25519PublicKey> = (0..4).map(|i| insecure_ed25519_from_seed(i).public_key()).collect();
        let schedule: SetSchedule = Arc::new(move |_, _| public.iter().map(|k| Member { key: k.clone(), coin_base: 1000 }).collect());
        let params = BeaconParams { epoch_length: 100, dkg_window: 50, reshare_window: 100, weights: WeightParams::default() };
        let ledger = || Ledger::genesis(ChainId::new("grind-test").unwrap(), params, schedule.clone()).0;
        let block = |ledger: &Ledger, h: u64, signers: Option<Vec<u32>>| BlockBeaconData {
            round: Round::ZERO,
            proposer: ledger.proposer(Height(h), Round::ZERO).unwrap(),
            previous_signature: None,
            parent: Digest([0; 32]),
            previous_finality: None,
            commit_round: None,
            logs: Vec::new(),
            signers: signers.map(|s| s.into_iter().map(ValidatorIndex).collect()),
        };
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (mut a, mut b) = (ledger(), ledger());
        for h in 1..=3 {
            let signers = (h > 1).then(|| vec![0, 1, 2, 3]);
            a.apply_block(Height(h), &block(&a, h, signers.clone()), &mut rng);
            b.apply_block(Height(h), &block(&b, h, signers), &mut rng);
        }
        // The builder of 4 carries every precommit of 3 in one world, leaves validator 3's
        // out in the other: the weights (and so the proposers) of height 5 are the same.
        a.apply_block(Height(4), &block(&a, 4, Some(vec![0, 1, 2, 3])), &mut rng);
        b.apply_block(Height(4), &block(&b, 4, Some(vec![0, 1, 2])), &mut rng);
        assert_eq!(a.weights(Height(5)), b.weights(Height(5)));
        // The records still count, one block later: at 6 the omission lowers validator 3.
        a.apply_block(Height(5), &block(&a, 5, Some(vec![0, 1, 2, 3])), &mut rng);
        b.apply_block(Height(5), &block(&b, 5, Some(vec![0, 1, 2, 3])), &mut rng);
        let (wa, wb) = (a.weights(Height(6)), b.weights(Height(6)));
        assert!(wb[3] < wa[3], "{wa:?} vs {wb:?}");
    }

    #[test]
    fn a_missed_reshare_extends_the_epoch_and_a_later_one_keeps_the_group_key() {
        let keys: Vec<Ed25519PrivateKey> = (0..5).map(insecure_ed25519_from_seed).collect();
        let public: Vec<Ed25519PublicKey> = keys.iter().map(|k| k.public_key()).collect();
        let keys_for_schedule = public.clone();
        let schedule: SetSchedule = Arc::new(move |epoch, _| {
            let range = if epoch == 0 { 0..4 } else { 1..5 };
            range.map(|i| Member { key: keys_for_schedule[i].clone(), coin_base: 1000 }).collect()
        });
        let params = BeaconParams { epoch_length: 10, dkg_window: 4, reshare_window: 10, weights: WeightParams::default() };
        let (mut ledger, events) = Ledger::genesis(ChainId::new("ledger-test").unwrap(), params, schedule);
        assert_eq!(events, vec![LedgerEvent::CeremonyStarted { round: 0, reshare: false }]);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut shares: Vec<(Ed25519PublicKey, BeaconShare)> = Vec::new();
        // Shares dealt in a ceremony whose logs are on chain, handed out when it completes.
        let mut pending: Option<Vec<(Ed25519PublicKey, BeaconShare)>> = None;
        // Shares of a completed reshare, used from the epoch boundary on.
        let mut next_shares: Vec<(Ed25519PublicKey, BeaconShare)> = Vec::new();
        let mut all_events = Vec::new();
        let mut group_key = None;
        for h in 1..=22u64 {
            let height = Height(h);
            // Logs: the DKG's at height 1, the first reshare's never (it misses its deadline),
            // the retry's at height 12.
            let logs = if h == 1 || h == 12 {
                let ceremony = ledger.ceremony().expect("a ceremony runs").clone();
                let (logs, _, dealt) = run_local_ceremony(&ceremony, &keys, &shares, &mut rng).unwrap();
                pending = Some(dealt);
                logs
            } else {
                Vec::new()
            };
            let previous = Height(h - 1);
            let previous_signature = ledger.beacon_active(previous).then(|| {
                let message = ledger.message(previous).unwrap();
                let sharing = ledger.sharing(previous).unwrap().clone();
                let partials: Vec<_> = shares.iter().map(|(_, s)| sign_partial(s, &message)).collect();
                recover_signature(&sharing, &partials).unwrap()
            });
            // φ_{h-1} on a header id of h-1, committed in round 1.
            let parent = Digest([h as u8; 32]);
            let previous_finality = ledger.beacon_active(previous).then(|| {
                let point = crate::finality::finality_point(&finality_message(ledger.chain_id(), previous, Round(1), &parent));
                let sharing = ledger.sharing(previous).unwrap().clone();
                let partials: Vec<_> = shares.iter().map(|(_, s)| point.sign(s)).collect();
                Finality { round: Round(1), signature: crate::FinalitySignature(recover_signature(&sharing, &partials).unwrap().0) }
            });
            let data = BlockBeaconData {
                round: Round::ZERO,
                proposer: ledger.proposer(height, Round::ZERO).unwrap(),
                previous_signature,
                parent,
                previous_finality,
                commit_round: Some(Round(1)),
                logs,
                signers: None,
            };
            ledger.validate_block(height, &data, &mut rng).unwrap();
            if data.previous_finality.is_some() {
                let mut reject = |d: BlockBeaconData| ledger.validate_block(height, &d, &mut ChaCha20Rng::seed_from_u64(h)).unwrap_err();
                assert_eq!(reject(BlockBeaconData { previous_finality: None, ..data.clone() }), BlockRejection::MissingFinality);
                assert_eq!(
                    reject(BlockBeaconData { commit_round: Some(Round(2)), ..data.clone() }),
                    BlockRejection::FinalityOfAnotherRound { finality: 1, commit: 2 }
                );
                assert_eq!(reject(BlockBeaconData { parent: Digest([0xee; 32]), ..data.clone() }), BlockRejection::BadFinality);
                let relabelled = data.previous_finality.map(|f| Finality { round: Round(2), ..f });
                assert_eq!(
                    reject(BlockBeaconData { previous_finality: relabelled, commit_round: Some(Round(2)), ..data.clone() }),
                    BlockRejection::BadFinality
                );
            }
            // A block with another height's σ is refused.
            if let Some(sigma) = ledger.signature(Height(h.saturating_sub(2))).filter(|_| data.previous_signature.is_some()) {
                let forged = BlockBeaconData { previous_signature: Some(sigma), ..data.clone() };
                assert_eq!(ledger.validate_block(height, &forged, &mut rng), Err(BlockRejection::BadSignature));
            }
            let events = ledger.apply_block(height, &data, &mut rng);
            for event in &events {
                if let LedgerEvent::CeremonyCompleted { .. } = event {
                    // Shares move to the new set only at the boundary; keep old ones until then.
                    let new = pending.take().unwrap();
                    if shares.is_empty() {
                        shares = new;
                    } else {
                        next_shares = new;
                    }
                }
                if let LedgerEvent::EpochStarted { reshared: true, .. } = event {
                    shares = std::mem::take(&mut next_shares);
                }
            }
            if let Some(key) = ledger.group_key() {
                assert_eq!(*group_key.get_or_insert(*key), *key, "the group key never changes");
            }
            all_events.extend(events);
        }
        assert!(all_events.iter().any(|e| matches!(e, LedgerEvent::CeremonyFailed { round: 1, reshare: true, .. })));
        assert!(all_events.contains(&LedgerEvent::EpochExtended { epoch: 0, end: Height(20) }));
        assert!(all_events.contains(&LedgerEvent::EpochStarted { epoch: 1, start: Height(21), reshared: true }));
        assert_eq!(ledger.stats().reshares, 1);
        assert_eq!(ledger.stats().epochs_extended, 1);
        // The new set signs from height 21 on, under the same group key.
        assert_eq!(ledger.validators().iter().map(|m| m.key.clone()).collect::<Vec<_>>(), public[1..5].to_vec());
        assert!(ledger.signature(Height(21)).is_some());
    }
}
