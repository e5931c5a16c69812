//! Staking, slashing and finalization (whitepaper §4.1.2–§4.1.3, DESIGN §5.1–§5.3): validator
//! entries in the state tree, Υ for `bond` / `unbond` / `unjail` / `submit-evidence`, and Ω, the
//! end-of-block function (block rewards, the unbonding queue, efficiency records, the validator
//! set planned for the next epoch).
//!
//! The validator set only changes at epoch boundaries, because every change needs a beacon
//! reshare: Ω writes the *plan* for epoch e+1 into the state when the beacon ledger asks for it,
//! the ledger reshares to it during epoch e, and when epoch e+1 starts Ω records the members it
//! actually got (the old set if the reshare failed). Everything here is integer arithmetic on
//! values every node holds, so every node computes the same root.
//!
//! Tree keys (values in docs/state-proofs.md):
//! * `keccak(0x02 ‖ operator)`: a validator;
//! * `keccak(0x03 ‖ consensus key)`: the operator that bonded a consensus key;
//! * `keccak(0x04 ‖ offender key ‖ height)`: evidence already used (one slash per offence);
//! * `keccak(0x05 ‖ epoch)`: the validator set an epoch started with;
//! * `keccak(0x06 ‖ name)`: chain-wide values (`registry`, `unbonding`, `epochs`, and the
//!   compute nodes' `compute-registry` and `compute-unbonding`);
//! * `keccak(0x07 ‖ height)`: the set planned for the next epoch by the block of that height
//!   (kept: a node replaying the chain asks for each plan again).

use crate::account::{Address, keccak256};
use crate::accounts::{AccountState, TxError};
use crate::smt::Hash;
use commonware_codec::{DecodeExt, Encode};
use tcp_consensus::{ConsensusDomains, Evidence, Validator as ConsensusValidator, ValidatorSet};
use tcp_crypto::{Ed25519PublicKey, Ed25519Signature, SigningDomain, namespace};
use tcp_types::{ByteReader, ChainId, Height};

pub const VALIDATOR_NAMESPACE: u8 = 0x02;
pub const CONSENSUS_KEY_NAMESPACE: u8 = 0x03;
pub const EVIDENCE_NAMESPACE: u8 = 0x04;
pub const EPOCH_SET_NAMESPACE: u8 = 0x05;
pub const GLOBAL_NAMESPACE: u8 = 0x06;
pub const PLAN_NAMESPACE: u8 = 0x07;

/// Basis points: 10 000 = 100 %.
const BPS: u128 = 10_000;
/// Epoch start heights kept for checking evidence (older evidence is stale anyway).
const EPOCHS_KEPT: usize = 16;
/// Pending unbondings chain-wide and per validator (explicit bounds on every queue).
pub const MAX_UNBONDINGS: usize = 4096;
pub const MAX_UNBONDINGS_PER_VALIDATOR: usize = 8;
/// Validators (candidates included) the registry holds.
pub const MAX_REGISTERED: usize = 1024;

pub const BOND_GAS: u64 = 60_000;
pub const UNBOND_GAS: u64 = 40_000;
pub const UNJAIL_GAS: u64 = 30_000;
pub const EVIDENCE_GAS: u64 = 100_000;

/// Genesis parameters of staking and rewards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StakingParams {
    /// The smallest stake a validator may hold.
    pub min_bond: u128,
    /// Heights between `unbond` and the stake's return.
    pub unbonding_period: u64,
    /// Heights a slashed validator stays jailed.
    pub jail_period: u64,
    /// Fraction of the bond an equivocator loses (basis points).
    pub slash_bps: u32,
    /// Fraction of the slashed amount paid to the reporter (basis points); the rest is burnt.
    pub reporter_bps: u32,
    /// Evidence older than this many heights is refused.
    pub evidence_max_age: u64,
    /// Minted each block: `proposer_bps` to the proposer, the rest split among the
    /// precommit signers of the previous height the block carries.
    pub block_reward: u128,
    pub proposer_bps: u32,
    /// The largest validator set an epoch may have (the highest stakes win).
    pub max_validators: u32,
    /// The smallest bond a compute node may hold.
    #[serde(default = "default_min_compute_bond")]
    pub min_compute_bond: u128,
}

fn default_min_compute_bond() -> u128 {
    StakingParams::default().min_bond
}

impl Default for StakingParams {
    fn default() -> Self {
        StakingParams {
            min_bond: 1_000,
            unbonding_period: 20,
            jail_period: 20,
            slash_bps: 1_000,
            reporter_bps: 1_000,
            evidence_max_age: 1_000,
            block_reward: 1_000,
            proposer_bps: 5_000,
            max_validators: 100,
            min_compute_bond: 1_000,
        }
    }
}

impl StakingParams {
    pub fn check(&self) -> Result<(), String> {
        if self.slash_bps > 10_000 || self.reporter_bps > 10_000 || self.proposer_bps > 10_000 {
            return Err("slash_bps, reporter_bps and proposer_bps are at most 10000".into());
        }
        if self.min_bond == 0 || self.min_compute_bond == 0 || self.max_validators == 0 || self.max_validators as usize > MAX_REGISTERED {
            return Err(format!("min_bond and min_compute_bond must be positive and max_validators in 1..={MAX_REGISTERED}"));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidatorStatus {
    /// Bonded, waiting for an epoch whose set includes it.
    Candidate = 0,
    /// A member of the current epoch's set.
    Active = 1,
    /// Slashed; out of every plan until `unjail`.
    Jailed = 2,
}

/// Efficiency records of the current epoch (reset when an epoch starts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EpochRecord {
    pub epoch: u64,
    /// Rounds in which the beacon selected it as proposer, in the rounds blocks committed in.
    pub proposals_assigned: u64,
    /// Committed blocks it built.
    pub proposals_made: u64,
    /// Heights of this epoch whose commit (as carried by the next block) holds its precommit.
    pub precommits_signed: u64,
    /// Heights of this epoch whose commit was recorded while it was a member.
    pub heights: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    pub operator: Address,
    pub consensus_key: Ed25519PublicKey,
    /// Its BLS12-381 public key (`MinSig`, G2, 96 bytes), proven possessed at bond time.
    pub bls_key: [u8; 96],
    pub p2p: String,
    /// Stake, block rewards included (they compound): N₀ of the coin-age weight.
    pub bonded: u128,
    pub status: ValidatorStatus,
    pub jailed_until: u64,
    /// Totals over the validator's life (statistics).
    pub rewards: u128,
    pub slashed: u128,
    pub record: EpochRecord,
}

/// Field reads over a value's bytes (entries written by this module only; a failure means a
/// corrupt store, reported as such by the callers).
struct Cursor<'a>(ByteReader<'a>);
impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Cursor(ByteReader(bytes))
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        self.0.take(n)
    }
    fn u64(&mut self) -> Option<u64> {
        self.0.u64()
    }
    fn u128(&mut self) -> Option<u128> {
        self.0.u128()
    }
    fn address(&mut self) -> Option<Address> {
        self.0.array().map(Address)
    }
    fn key(&mut self) -> Option<Ed25519PublicKey> {
        Ed25519PublicKey::decode(commonware_codec::Copying(self.take(32)?)).ok()
    }
    fn rest(&self) -> &'a [u8] {
        self.0.rest()
    }
}

impl Validator {
    /// A freshly bonded validator (no rewards, slashes or records yet).
    pub fn new(operator: Address, consensus_key: Ed25519PublicKey, bls_key: [u8; 96], p2p: String, bonded: u128, status: ValidatorStatus) -> Self {
        Validator { operator, consensus_key, bls_key, p2p, bonded, status, jailed_until: 0, rewards: 0, slashed: 0, record: EpochRecord::default() }
    }

    /// N₀ for the beacon's coin-age weight (saturating: weights are u64).
    pub fn coin_base(&self) -> u64 {
        u64::try_from(self.bonded).unwrap_or(u64::MAX)
    }

    /// `operator 20 ‖ consensus key 32 ‖ BLS key 96 ‖ bonded u128 ‖ status u8 ‖ jailed_until u64 ‖ rewards
    /// u128 ‖ slashed u128 ‖ epoch u64 ‖ assigned u64 ‖ made u64 ‖ signed u64 ‖ heights u64 ‖
    /// p2p address (the rest, UTF-8)`, all big-endian (Solidity `abi.encodePacked`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(180 + self.p2p.len());
        out.extend_from_slice(&self.operator.0);
        out.extend_from_slice(&self.consensus_key.encode());
        out.extend_from_slice(&self.bls_key);
        out.extend_from_slice(&self.bonded.to_be_bytes());
        out.push(self.status as u8);
        out.extend_from_slice(&self.jailed_until.to_be_bytes());
        out.extend_from_slice(&self.rewards.to_be_bytes());
        out.extend_from_slice(&self.slashed.to_be_bytes());
        let r = &self.record;
        for v in [r.epoch, r.proposals_assigned, r.proposals_made, r.precommits_signed, r.heights] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(self.p2p.as_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Validator> {
        let mut c = Cursor::new(bytes);
        let operator = c.address()?;
        let consensus_key = c.key()?;
        let bls_key: [u8; 96] = c.take(96)?.try_into().ok()?;
        let bonded = c.u128()?;
        let status = match c.take(1)?[0] {
            0 => ValidatorStatus::Candidate,
            1 => ValidatorStatus::Active,
            2 => ValidatorStatus::Jailed,
            _ => return None,
        };
        let jailed_until = c.u64()?;
        let rewards = c.u128()?;
        let slashed = c.u128()?;
        let record = EpochRecord { epoch: c.u64()?, proposals_assigned: c.u64()?, proposals_made: c.u64()?, precommits_signed: c.u64()?, heights: c.u64()? };
        let p2p = String::from_utf8(c.rest().to_vec()).ok()?;
        Some(Validator { operator, consensus_key, bls_key, p2p, bonded, status, jailed_until, rewards, slashed, record })
    }
}

/// A validator of the genesis (bonded from the start, active in epoch 0).
#[derive(Clone, Debug)]
pub struct GenesisValidator {
    pub operator: Address,
    pub consensus_key: Ed25519PublicKey,
    pub bls_key: [u8; 96],
    pub p2p: String,
    pub bond: u128,
}

/// A member of an epoch's validator set: its key and N₀ (coin base) for the beacon's weights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetMember {
    pub key: Ed25519PublicKey,
    pub coin_base: u64,
}

fn encode_set(members: &[SetMember]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + members.len() * 40);
    out.extend_from_slice(&(members.len() as u16).to_be_bytes());
    for m in members {
        out.extend_from_slice(&m.key.encode());
        out.extend_from_slice(&m.coin_base.to_be_bytes());
    }
    out
}

fn decode_set(bytes: &[u8]) -> Option<Vec<SetMember>> {
    let mut c = Cursor::new(bytes);
    let n = u16::from_be_bytes(c.take(2)?.try_into().ok()?) as usize;
    let members = (0..n).map(|_| Some(SetMember { key: c.key()?, coin_base: c.u64()? })).collect::<Option<Vec<_>>>()?;
    c.rest().is_empty().then_some(members)
}

/// A pending return of stake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unbonding {
    pub release_height: u64,
    pub operator: Address,
    pub amount: u128,
}

pub fn validator_key(operator: &Address) -> Hash {
    keccak256(&[&[VALIDATOR_NAMESPACE], &operator.0])
}

pub fn consensus_key_index(key: &Ed25519PublicKey) -> Hash {
    keccak256(&[&[CONSENSUS_KEY_NAMESPACE], &key.encode()])
}

fn evidence_key(offender: &Ed25519PublicKey, height: u64) -> Hash {
    keccak256(&[&[EVIDENCE_NAMESPACE], &offender.encode(), &height.to_be_bytes()])
}

pub fn epoch_set_key(epoch: u64) -> Hash {
    keccak256(&[&[EPOCH_SET_NAMESPACE], &epoch.to_be_bytes()])
}

pub fn plan_key(height: u64) -> Hash {
    keccak256(&[&[PLAN_NAMESPACE], &height.to_be_bytes()])
}

pub fn global_key(name: &str) -> Hash {
    keccak256(&[&[GLOBAL_NAMESPACE], name.as_bytes()])
}

/// The message a consensus key signs to consent to being bonded by `operator`.
pub fn bond_message(operator: &Address) -> [u8; 20] {
    operator.0
}

pub fn bond_domain(chain_id: &ChainId) -> SigningDomain {
    SigningDomain::new(namespace::STAKING_BOND, chain_id)
}

/// Why Π refused a block.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlockError {
    #[error("transaction {0} does not apply: {1}")]
    Transaction(usize, TxError),
    #[error("finalizing the block: {0}")]
    Finalize(TxError),
}

/// What the host (consensus and the beacon ledger) tells Ω about a block.
#[derive(Clone, Debug, Default)]
pub struct BlockOutcome {
    pub height: u64,
    /// The epoch `height` belongs to.
    pub epoch: u64,
    /// The block's builder.
    pub proposer: Option<Ed25519PublicKey>,
    /// The proposer the beacon assigned to each round up to the one the block committed in.
    pub assigned: Vec<Ed25519PublicKey>,
    /// Precommit signers of the previous height (the commit the block carries), and whether
    /// that height belonged to the same epoch (only then do they count for efficiency).
    pub signers: Vec<Ed25519PublicKey>,
    pub signers_same_epoch: bool,
    /// Set when `height` starts an epoch: its members, in consensus index order.
    pub epoch_started: Option<Vec<SetMember>>,
    /// Set when the ledger plans the next epoch's set from the state after this block.
    pub plan: bool,
    /// R of the height whose beacon signature the block carries (the previous one), once the
    /// beacon runs: kept for a while as enclave registrations' freshness.
    pub randomness: Option<(u64, [u8; 32])>,
    /// The beacon's group key and DKMP's master public key, once both exist (the host's ledgers
    /// as of the previous block): recorded once, for enclave registrations and clients.
    pub chain_keys: Option<tcp_attestation::ChainKeys>,
    /// The release records the block carries (the key-release ledger), checked by the host.
    pub releases: Vec<tcp_dkmp::ReleaseRecord>,
}

impl AccountState {
    // ------------------------------------------------------------------ reading staking state

    pub fn validator(&self, operator: &Address) -> Option<Validator> {
        self.get_entry(&validator_key(operator)).and_then(|v| Validator::decode(&v))
    }

    pub fn operator_of(&self, key: &Ed25519PublicKey) -> Option<Address> {
        self.get_entry(&consensus_key_index(key)).and_then(|v| Some(Address(v.as_slice().try_into().ok()?)))
    }

    pub fn registry(&self) -> Vec<Address> {
        self.get_entry(&global_key("registry"))
            .map(|v| v.chunks_exact(20).map(|c| Address(c.try_into().expect("20 bytes"))).collect())
            .unwrap_or_default()
    }

    /// Every registered validator, in registration order.
    pub fn validators(&self) -> Vec<Validator> {
        self.registry().iter().filter_map(|a| self.validator(a)).collect()
    }

    pub fn unbondings(&self) -> Vec<Unbonding> {
        self.unbonding_queue("unbonding")
    }

    /// An unbonding queue by its global name (`unbonding` for validators, `compute-unbonding`
    /// for compute nodes: separate queues, so neither kind's limits or rules touch the other).
    pub(crate) fn unbonding_queue(&self, name: &str) -> Vec<Unbonding> {
        let Some(bytes) = self.get_entry(&global_key(name)) else { return Vec::new() };
        bytes
            .chunks_exact(44)
            .map(|c| {
                let mut cur = Cursor::new(c);
                Unbonding {
                    release_height: cur.u64().expect("8 bytes"),
                    operator: cur.address().expect("20 bytes"),
                    amount: cur.u128().expect("16 bytes"),
                }
            })
            .collect()
    }

    /// The set `epoch` started with.
    pub fn epoch_set(&self, epoch: u64) -> Option<Vec<SetMember>> {
        self.get_entry(&epoch_set_key(epoch)).and_then(|v| decode_set(&v))
    }

    /// The set the block of `height` planned for the next epoch.
    pub fn planned_set(&self, height: u64) -> Option<Vec<SetMember>> {
        self.get_entry(&plan_key(height)).and_then(|v| decode_set(&v))
    }

    /// (epoch, start height) of the last epochs, oldest first.
    pub fn epoch_starts(&self) -> Vec<(u64, u64)> {
        let Some(bytes) = self.get_entry(&global_key("epochs")) else { return Vec::new() };
        bytes.chunks_exact(16).map(|c| (u64::from_be_bytes(c[..8].try_into().unwrap()), u64::from_be_bytes(c[8..].try_into().unwrap()))).collect()
    }

    /// Stake held outside balances: validator and compute bonds and pending unbondings.
    pub fn locked_stake(&self) -> u128 {
        self.validators().iter().map(|v| v.bonded).sum::<u128>()
            + self.compute_nodes().iter().map(|n| n.bonded).sum::<u128>()
            + self.unbondings().iter().map(|u| u.amount).sum::<u128>()
            + self.compute_unbondings().iter().map(|u| u.amount).sum::<u128>()
    }

    // ------------------------------------------------------------------ writing

    fn put_validator(&mut self, v: &Validator) {
        self.put_entry(validator_key(&v.operator), Some(v.encode()));
    }

    /// A new validator: its entry, its consensus key's index, its place in the registry.
    fn register_validator(&mut self, v: Validator) {
        self.put_entry(consensus_key_index(&v.consensus_key), Some(v.operator.0.to_vec()));
        let mut registry = self.registry();
        registry.push(v.operator);
        self.put_registry(&registry);
        self.put_validator(&v);
    }

    fn put_registry(&mut self, registry: &[Address]) {
        let bytes: Vec<u8> = registry.iter().flat_map(|a| a.0).collect();
        self.put_entry(global_key("registry"), (!bytes.is_empty()).then_some(bytes));
    }

    fn put_unbondings(&mut self, queue: &[Unbonding]) {
        self.put_unbonding_queue("unbonding", queue);
    }

    pub(crate) fn put_unbonding_queue(&mut self, name: &str, queue: &[Unbonding]) {
        let mut bytes = Vec::with_capacity(queue.len() * 44);
        for u in queue {
            bytes.extend_from_slice(&u.release_height.to_be_bytes());
            bytes.extend_from_slice(&u.operator.0);
            bytes.extend_from_slice(&u.amount.to_be_bytes());
        }
        self.put_entry(global_key(name), (!bytes.is_empty()).then_some(bytes));
    }

    /// Genesis validators: bonded, active in epoch 0, with the genesis set recorded.
    pub fn add_genesis_validators(&mut self, validators: &[GenesisValidator]) -> Result<(), String> {
        let mut members = Vec::new();
        for GenesisValidator { operator, consensus_key: key, bls_key, p2p, bond } in validators {
            if self.validator(operator).is_some() || self.operator_of(key).is_some() {
                return Err(format!("validator {operator} or its key is listed twice"));
            }
            let v = Validator::new(*operator, key.clone(), *bls_key, p2p.clone(), *bond, ValidatorStatus::Active);
            members.push(SetMember { key: key.clone(), coin_base: v.coin_base() });
            self.register_validator(v);
            self.adjust_supply(*bond, 0).map_err(|e| e.to_string())?;
        }
        self.put_entry(epoch_set_key(0), Some(encode_set(&members)));
        self.put_entry(global_key("epochs"), Some([0u64.to_be_bytes(), 1u64.to_be_bytes()].concat()));
        Ok(())
    }

    // ------------------------------------------------------------------ Υ for staking actions

    /// Checks of a staking action against the state, before anything is written. Returns the
    /// validator entry the action works on.
    pub(crate) fn check_staking(&self, sender: &Address, action: &crate::Action, height: u64) -> Result<(), TxError> {
        use crate::Action;
        let params = self.staking_params();
        match action {
            Action::Transfer { .. } => Ok(()),
            Action::Bond { consensus_key, bls_key, p2p, amount, possession, bls_possession } => {
                if self.validator(sender).is_some() {
                    return Err(TxError::AlreadyBonded);
                }
                if self.operator_of(consensus_key).is_some() {
                    return Err(TxError::ConsensusKeyInUse);
                }
                if *amount < params.min_bond {
                    return Err(TxError::BondTooSmall { amount: *amount, minimum: params.min_bond });
                }
                if p2p.parse::<std::net::SocketAddr>().is_err() {
                    return Err(TxError::BadP2pAddress(p2p.clone()));
                }
                if self.registry().len() >= MAX_REGISTERED {
                    return Err(TxError::RegistryFull);
                }
                if !bond_domain(self.chain_id()).verify(consensus_key, &bond_message(sender), possession) {
                    return Err(TxError::BadPossessionProof);
                }
                if self.validators().iter().any(|v| v.bls_key == *bls_key) {
                    return Err(TxError::ConsensusKeyInUse);
                }
                if !tcp_beacon::validator_key::verify_possession(bls_key, self.chain_id(), &sender.0, bls_possession) {
                    return Err(TxError::BadBlsPossessionProof);
                }
                Ok(())
            }
            Action::Unbond { amount } => {
                let v = self.validator(sender).ok_or(TxError::NotAValidator)?;
                let amount = &if *amount == crate::transaction::UNBOND_ALL { v.bonded } else { *amount };
                if *amount == 0 || *amount > v.bonded {
                    return Err(TxError::UnbondExceedsBond { amount: *amount, bonded: v.bonded });
                }
                let rest = v.bonded - amount;
                if rest != 0 && rest < params.min_bond {
                    return Err(TxError::BondTooSmall { amount: rest, minimum: params.min_bond });
                }
                let queue = self.unbondings();
                if queue.len() >= MAX_UNBONDINGS || queue.iter().filter(|u| u.operator == *sender).count() >= MAX_UNBONDINGS_PER_VALIDATOR {
                    return Err(TxError::TooManyUnbondings);
                }
                Ok(())
            }
            Action::Unjail => {
                let v = self.validator(sender).ok_or(TxError::NotAValidator)?;
                if v.status != ValidatorStatus::Jailed {
                    return Err(TxError::NotJailed);
                }
                if height < v.jailed_until {
                    return Err(TxError::StillJailed { until: v.jailed_until });
                }
                if v.bonded < params.min_bond {
                    return Err(TxError::BondTooSmall { amount: v.bonded, minimum: params.min_bond });
                }
                Ok(())
            }
            Action::SubmitEvidence { evidence } => self.check_evidence(evidence, height).map(|_| ()),
            Action::RegisterCompute { .. } | Action::UnbondCompute { .. } => self.check_compute(sender, action, height),
            Action::RegisterEnclave { .. }
            | Action::PostCollateral { .. }
            | Action::Compute { .. }
            | Action::RotateKey { .. }
            | Action::ComputeFault { .. }
            | Action::BridgeTransfer { .. }
            | Action::Withdraw { .. } => {
                unreachable!("enclave and contract actions are admitted on their own")
            }
        }
    }

    /// Decode and verify evidence against the set of the epoch its height belongs to; refuse it
    /// if stale, from the future, already used, or against a validator with nothing bonded.
    fn check_evidence(&self, bytes: &[u8], height: u64) -> Result<(Address, Ed25519PublicKey, u64), TxError> {
        let params = self.staking_params();
        let evidence = Evidence::decode(bytes).map_err(|e| TxError::BadEvidence(e.to_string()))?;
        let at = evidence.height().0;
        if at >= height {
            return Err(TxError::BadEvidence(format!("evidence of height {at} is not in the past of height {height}")));
        }
        if height - at > params.evidence_max_age {
            return Err(TxError::StaleEvidence { height: at, max_age: params.evidence_max_age });
        }
        let epoch = self
            .epoch_starts()
            .iter()
            .rev()
            .find(|(_, start)| *start <= at)
            .map(|(e, _)| *e)
            .ok_or(TxError::StaleEvidence { height: at, max_age: params.evidence_max_age })?;
        let members = self.epoch_set(epoch).ok_or(TxError::StaleEvidence { height: at, max_age: params.evidence_max_age })?;
        let set = ValidatorSet::new(members.iter().map(|m| ConsensusValidator { public_key: m.key.clone(), voting_power: 1 }).collect())
            .map_err(|e| TxError::BadEvidence(e.to_string()))?;
        evidence.verify(&ConsensusDomains::new(self.chain_id()), &set).map_err(|e| TxError::BadEvidence(e.to_string()))?;
        let offender = set.get(evidence.offender()).expect("verified evidence names a member").public_key.clone();
        if self.get_entry(&evidence_key(&offender, at)).is_some() {
            return Err(TxError::DuplicateEvidence);
        }
        let operator = self.operator_of(&offender).ok_or(TxError::BadEvidence("the offender has nothing bonded".into()))?;
        Ok((operator, offender, at))
    }

    /// Apply a checked staking action (the sender already paid its fee and nonce).
    pub(crate) fn apply_staking(&mut self, sender: Address, action: &crate::Action, height: u64) -> Result<(), TxError> {
        use crate::Action;
        let params = self.staking_params();
        match action {
            Action::Transfer { .. } => unreachable!("transfers are not staking actions"),
            Action::Bond { consensus_key, bls_key, p2p, amount, .. } => {
                let mut account = self.account(&sender);
                account.balance -= amount; // checked: balance ≥ amount + max fee
                self.set_account_unchecked(sender, account);
                self.register_validator(Validator::new(sender, consensus_key.clone(), *bls_key, p2p.clone(), *amount, ValidatorStatus::Candidate));
            }
            Action::Unbond { amount } => {
                let mut v = self.validator(&sender).expect("checked");
                let amount = &if *amount == crate::transaction::UNBOND_ALL { v.bonded } else { *amount };
                v.bonded -= amount;
                let mut queue = self.unbondings();
                queue.push(Unbonding { release_height: height.saturating_add(params.unbonding_period), operator: sender, amount: *amount });
                queue.sort_by_key(|u| u.release_height);
                self.put_unbondings(&queue);
                // The entry stays while the validator may still sit in a set (until the next
                // epoch boundary); a zero bond keeps it out of every plan.
                self.put_validator(&v);
            }
            Action::Unjail => {
                let mut v = self.validator(&sender).expect("checked");
                v.status = ValidatorStatus::Candidate;
                self.put_validator(&v);
            }
            Action::SubmitEvidence { evidence } => {
                let (operator, offender, at) = self.check_evidence(evidence, height)?;
                let mut v = self.validator(&operator).expect("the key index names a validator");
                let slash = v.bonded * u128::from(params.slash_bps) / BPS;
                let reward = slash * u128::from(params.reporter_bps) / BPS;
                v.bonded -= slash;
                v.slashed += slash;
                v.status = ValidatorStatus::Jailed;
                v.jailed_until = height + params.jail_period;
                self.put_validator(&v);
                self.put_entry(evidence_key(&offender, at), Some(vec![1]));
                let mut reporter = self.account(&sender);
                reporter.balance += reward;
                self.set_account_unchecked(sender, reporter);
                // The rest is burnt.
                self.adjust_supply(0, slash - reward)?;
            }
            Action::RegisterCompute { .. } | Action::UnbondCompute { .. } => self.apply_compute(sender, action, height),
            Action::RegisterEnclave { .. }
            | Action::PostCollateral { .. }
            | Action::Compute { .. }
            | Action::RotateKey { .. }
            | Action::ComputeFault { .. }
            | Action::BridgeTransfer { .. }
            | Action::Withdraw { .. } => {
                unreachable!("enclave and contract actions are applied on their own")
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ Ω

    /// Ω: finalize a block after its transactions: release matured unbondings, mint the block
    /// reward to the proposer and the previous height's signers, update efficiency records,
    /// start an epoch's records and record its set, and plan the next epoch's set.
    pub fn finalize_block(&mut self, outcome: &BlockOutcome) -> Result<(), TxError> {
        let params = self.staking_params();
        let height = outcome.height;
        self.record_randomness(outcome.randomness, height);
        self.record_chain_keys(outcome.chain_keys.as_ref());
        self.record_releases(&outcome.releases, height);
        // Unbondings whose period is over return to their operators' balances (validators' and
        // compute nodes' queues alike).
        for name in ["unbonding", "compute-unbonding"] {
            let queue = self.unbonding_queue(name);
            let (due, rest): (Vec<_>, Vec<_>) = queue.into_iter().partition(|u| u.release_height <= height);
            if !due.is_empty() {
                for u in &due {
                    let mut account = self.account(&u.operator);
                    account.balance += u.amount; // part of the supply already
                    self.set_account_unchecked(u.operator, account);
                }
                self.put_unbonding_queue(name, &rest);
            }
        }
        // A new epoch: members become active, records restart, the set and its start are kept.
        if let Some(members) = &outcome.epoch_started {
            // Validators that left (nothing bonded, nothing unbonding, not in the new set) are
            // removed, so the bounded registry does not fill up with empty entries.
            let unbonding = self.unbondings();
            let (gone, staying): (Vec<Validator>, Vec<Validator>) = self.validators().into_iter().partition(|v| {
                v.bonded == 0 && !members.iter().any(|m| m.key == v.consensus_key) && !unbonding.iter().any(|u| u.operator == v.operator)
            });
            if !gone.is_empty() {
                for v in &gone {
                    self.put_entry(validator_key(&v.operator), None);
                    self.put_entry(consensus_key_index(&v.consensus_key), None);
                }
                self.put_registry(&staying.iter().map(|v| v.operator).collect::<Vec<_>>());
            }
            for v in staying {
                let member = members.iter().any(|m| m.key == v.consensus_key);
                let mut v = v;
                v.record = EpochRecord { epoch: outcome.epoch, ..Default::default() };
                if v.status != ValidatorStatus::Jailed {
                    v.status = if member { ValidatorStatus::Active } else { ValidatorStatus::Candidate };
                }
                self.put_validator(&v);
            }
            self.put_entry(epoch_set_key(outcome.epoch), Some(encode_set(members)));
            let mut starts = self.epoch_starts();
            starts.push((outcome.epoch, height));
            if starts.len() > EPOCHS_KEPT {
                starts.remove(0);
            }
            self.put_entry(global_key("epochs"), Some(starts.iter().flat_map(|(e, s)| [e.to_be_bytes(), s.to_be_bytes()].concat()).collect()));
        }
        // Efficiency records and rewards, by consensus key.
        let credit = |state: &mut AccountState, key: &Ed25519PublicKey, f: &dyn Fn(&mut Validator)| {
            if let Some(operator) = state.operator_of(key)
                && let Some(mut v) = state.validator(&operator)
            {
                f(&mut v);
                state.put_validator(&v);
            }
        };
        for key in &outcome.assigned {
            credit(self, key, &|v| v.record.proposals_assigned += 1);
        }
        if let Some(proposer) = &outcome.proposer {
            credit(self, proposer, &|v| v.record.proposals_made += 1);
        }
        if outcome.signers_same_epoch
            && let Some(members) = self.epoch_set(outcome.epoch)
        {
            for m in &members {
                let signed = outcome.signers.contains(&m.key);
                credit(self, &m.key, &|v| {
                    v.record.heights += 1;
                    if signed {
                        v.record.precommits_signed += 1;
                    }
                });
            }
        }
        if params.block_reward > 0
            && let Some(proposer) = &outcome.proposer
        {
            let signers: Vec<&Ed25519PublicKey> = outcome.signers.iter().filter(|k| self.operator_of(k).is_some()).collect();
            let mut to_proposer = params.block_reward * u128::from(params.proposer_bps) / BPS;
            let to_signers = params.block_reward - to_proposer;
            let each = if signers.is_empty() { 0 } else { to_signers / signers.len() as u128 };
            to_proposer += to_signers - each * signers.len() as u128;
            let mut minted = 0;
            for key in signers {
                if each > 0 && self.operator_of(key).is_some() {
                    credit(self, key, &|v| {
                        v.bonded += each;
                        v.rewards += each;
                    });
                    minted += each;
                }
            }
            if self.operator_of(proposer).is_some() {
                credit(self, proposer, &|v| {
                    v.bonded += to_proposer;
                    v.rewards += to_proposer;
                });
                minted += to_proposer;
            }
            self.adjust_supply(minted, 0)?;
        }
        if outcome.plan {
            let plan = self.plan_set();
            self.put_entry(plan_key(height), Some(encode_set(&plan)));
        }
        Ok(())
    }

    /// Π: apply a block's transactions in order (Υ each), then Ω. With `skip_failing` (a
    /// proposer building the block) a transaction that does not apply is left out; otherwise it
    /// fails the whole block (leaving this state partly applied: run it on a copy). Returns the
    /// applied transactions with their receipts.
    pub fn apply_block(
        &mut self,
        candidates: Vec<crate::VerifiedTransaction>,
        env: &crate::BlockEnv,
        outcome: &BlockOutcome,
        skip_failing: bool,
    ) -> Result<(Vec<crate::VerifiedTransaction>, Vec<crate::Receipt>), BlockError> {
        let mut transactions = Vec::with_capacity(candidates.len());
        let mut receipts = Vec::with_capacity(candidates.len());
        for (index, tx) in candidates.into_iter().enumerate() {
            match self.apply_transaction(&tx, env) {
                Ok(receipt) => {
                    receipts.push(receipt);
                    transactions.push(tx);
                }
                Err(_) if skip_failing => {}
                Err(e) => return Err(BlockError::Transaction(index, e)),
            }
        }
        self.finalize_block(outcome).map_err(BlockError::Finalize)?;
        Ok((transactions, receipts))
    }

    /// The set the next epoch should have: bonded, unjailed validators with at least the minimum
    /// bond, the largest stakes first (ties by key), at most `max_validators`.
    pub fn plan_set(&self) -> Vec<SetMember> {
        let params = self.staking_params();
        let mut eligible: Vec<Validator> =
            self.validators().into_iter().filter(|v| v.status != ValidatorStatus::Jailed && v.bonded >= params.min_bond).collect();
        eligible.sort_by(|a, b| b.bonded.cmp(&a.bonded).then_with(|| a.consensus_key.cmp(&b.consensus_key)));
        eligible.truncate(params.max_validators as usize);
        eligible.into_iter().map(|v| SetMember { coin_base: v.coin_base(), key: v.consensus_key }).collect()
    }
}

/// Sign the bond consent of `operator` with a consensus key (the CLI and tests).
pub fn sign_bond(key: &tcp_crypto::Ed25519PrivateKey, chain_id: &ChainId, operator: &Address) -> Ed25519Signature {
    bond_domain(chain_id).sign(key, &bond_message(operator))
}

/// The height evidence is about, for callers that decode it themselves.
pub fn evidence_height(bytes: &[u8]) -> Option<Height> {
    Evidence::decode(bytes).ok().map(|e| e.height())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::{BlockEnv, StateConfig};
    use crate::{AccountKey, Action, Transaction, VerifiedTransaction};
    use commonware_cryptography::Signer as _;
    use proptest::prelude::*;
    use tcp_consensus::{Vote, VoteType};
    use tcp_crypto::{Ed25519PrivateKey, insecure_ed25519_from_seed, sha256};
    use tcp_types::{Round, ValidatorIndex};

    fn chain() -> ChainId {
        ChainId::new("staking-test").unwrap()
    }

    fn account(i: u8) -> AccountKey {
        AccountKey::from_bytes(&[i + 1; 32]).unwrap()
    }

    fn consensus(i: u64) -> Ed25519PrivateKey {
        insecure_ed25519_from_seed(100 + i)
    }

    /// Accounts 0..4 funded; accounts 0 and 1 are genesis validators with consensus keys 0, 1.
    fn genesis() -> AccountState {
        let config = StateConfig { chain_id: chain(), min_gas_price: 1, staking: StakingParams::default(), enclaves: None };
        let allocations: Vec<(Address, u128)> = (0..4).map(|i| (account(i).address(), 10_000_000)).collect();
        let mut state = AccountState::genesis(config, &allocations).unwrap();
        let validators: Vec<_> = (0..2)
            .map(|i| GenesisValidator {
                operator: account(i as u8).address(),
                consensus_key: consensus(i).public_key(),
                bls_key: tcp_beacon::validator_key::public_key_bytes(&tcp_beacon::validator_key::public_key(&bls(i))),
                p2p: format!("127.0.0.1:{}", 9000 + i),
                bond: 5_000,
            })
            .collect();
        state.add_genesis_validators(&validators).unwrap();
        state
    }

    fn send(state: &mut AccountState, from: &AccountKey, action: Action, height: u64) -> Result<(), TxError> {
        let nonce = state.account(&from.address()).nonce;
        let tx: VerifiedTransaction = Transaction { chain_id: chain(), nonce, gas_price: 1, gas_limit: 200_000, action }.sign(from).verify(&chain()).unwrap();
        state.apply_transaction(&tx, &BlockEnv { height, time_secs: 0, fee_recipient: account(0).address() }).map(|_| ())
    }

    /// The BLS key of validator `i` (deterministic for the tests).
    fn bls(i: u64) -> tcp_beacon::validator_key::BlsPrivateKey {
        use rand_core::SeedableRng;
        tcp_beacon::validator_key::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(500 + i)).0
    }

    /// A bond by `from` of consensus key `key` (its seed's BLS key comes along).
    fn bond(from: &AccountKey, key: &Ed25519PrivateKey, amount: u128) -> Action {
        let seed = (0..8).find(|i| consensus(*i).public_key() == key.public_key()).unwrap_or(99);
        bond_with(from, key, &bls(seed), amount)
    }

    fn bond_with(from: &AccountKey, key: &Ed25519PrivateKey, bls_key: &tcp_beacon::validator_key::BlsPrivateKey, amount: u128) -> Action {
        use tcp_beacon::validator_key::{public_key, public_key_bytes, sign_possession};
        Action::Bond {
            consensus_key: key.public_key(),
            bls_key: public_key_bytes(&public_key(bls_key)),
            p2p: "127.0.0.1:9100".into(),
            amount,
            possession: sign_bond(key, &chain(), &from.address()),
            bls_possession: sign_possession(bls_key, &chain(), &from.address().0),
        }
    }

    fn equivocation(key: &Ed25519PrivateKey, index: u32, height: u64) -> Vec<u8> {
        let domains = ConsensusDomains::new(&chain());
        let vote = |v: u8| Vote {
            vote_type: VoteType::Prevote,
            height: Height(height),
            round: Round(0),
            value: Some(sha256(&[&[v]])),
            validator: ValidatorIndex(index),
            extension: Default::default(),
        };
        Evidence::ConflictingVotes(Box::new(domains.sign_vote(key, vote(1))), Box::new(domains.sign_vote(key, vote(2)))).encode()
    }

    #[test]
    fn bond_unbond_and_the_stake_returns_after_the_period() {
        let mut state = genesis();
        let supply = state.total_supply();
        let (alice, key) = (account(2), consensus(2));
        send(&mut state, &alice, bond(&alice, &key, 3_000), 5).unwrap();
        let v = state.validator(&alice.address()).unwrap();
        assert_eq!((v.bonded, v.status), (3_000, ValidatorStatus::Candidate));
        assert_eq!(state.operator_of(&key.public_key()), Some(alice.address()));
        assert_eq!(state.total_supply(), supply);
        // The plan holds the highest stakes first.
        let plan: Vec<_> = state.plan_set().iter().map(|m| (m.key.clone(), m.coin_base)).collect();
        assert_eq!(plan.len(), 3);
        assert_eq!(plan[2], (key.public_key(), 3_000));
        send(&mut state, &alice, Action::Unbond { amount: 3_000 }, 6).unwrap();
        let balance = state.account(&alice.address()).balance;
        assert_eq!(state.unbondings(), vec![Unbonding { release_height: 26, operator: alice.address(), amount: 3_000 }]);
        assert_eq!(state.plan_set().len(), 2, "a zero bond is out of the plan");
        state.finalize_block(&BlockOutcome { height: 25, ..Default::default() }).unwrap();
        assert_eq!(state.account(&alice.address()).balance, balance);
        state.finalize_block(&BlockOutcome { height: 26, ..Default::default() }).unwrap();
        assert_eq!(state.account(&alice.address()).balance, balance + 3_000);
        assert!(state.unbondings().is_empty());
        assert_eq!(state.total_supply(), supply);
        assert_eq!(state.computed_supply(), supply);
        // At the next epoch start the empty entry is removed; she may bond again afterwards.
        assert!(state.validator(&alice.address()).is_some());
        let members = state.epoch_set(0).unwrap();
        state.finalize_block(&BlockOutcome { height: 27, epoch: 1, epoch_started: Some(members), ..Default::default() }).unwrap();
        assert_eq!(state.validator(&alice.address()), None);
        assert_eq!(state.operator_of(&key.public_key()), None);
        assert_eq!(state.registry().len(), 2);
        send(&mut state, &alice, bond(&alice, &key, 3_000), 28).unwrap();
        assert_eq!(state.computed_supply(), state.total_supply());
    }

    #[test]
    fn bad_staking_transactions_fail_with_their_reason_and_change_nothing() {
        let state = genesis();
        let (alice, bob, v0) = (account(2), account(3), account(0));
        let cases: Vec<(AccountKey, Action, TxError)> = vec![
            (v0.clone(), bond(&v0, &consensus(5), 3_000), TxError::AlreadyBonded),
            (alice.clone(), bond(&alice, &consensus(0), 3_000), TxError::ConsensusKeyInUse),
            (alice.clone(), bond(&alice, &consensus(2), 10), TxError::BondTooSmall { amount: 10, minimum: 1_000 }),
            (alice.clone(), bond(&bob, &consensus(2), 3_000), TxError::BadPossessionProof),
            (
                alice.clone(),
                match bond(&alice, &consensus(2), 3_000) {
                    Action::Bond { p2p: _, consensus_key, bls_key, amount, possession, bls_possession } => {
                        Action::Bond { consensus_key, bls_key, p2p: "nowhere".into(), amount, possession, bls_possession }
                    }
                    _ => unreachable!(),
                },
                TxError::BadP2pAddress("nowhere".into()),
            ),
            // Another account's BLS proof, or validator 0's BLS key again.
            (
                alice.clone(),
                match (bond(&alice, &consensus(2), 3_000), bond(&bob, &consensus(2), 3_000)) {
                    (Action::Bond { bls_possession: _, consensus_key, bls_key, p2p, amount, possession }, Action::Bond { bls_possession, .. }) => {
                        Action::Bond { consensus_key, bls_key, p2p, amount, possession, bls_possession }
                    }
                    _ => unreachable!(),
                },
                TxError::BadBlsPossessionProof,
            ),
            (alice.clone(), bond_with(&alice, &consensus(2), &bls(0), 3_000), TxError::ConsensusKeyInUse),
            (alice.clone(), bond(&alice, &consensus(2), 20_000_000), TxError::InsufficientBalance { needed: 20_000_000 + 200_000, available: 10_000_000 }),
            (alice.clone(), Action::Unbond { amount: 1 }, TxError::NotAValidator),
            (v0.clone(), Action::Unbond { amount: 5_001 }, TxError::UnbondExceedsBond { amount: 5_001, bonded: 5_000 }),
            (v0.clone(), Action::Unbond { amount: 4_500 }, TxError::BondTooSmall { amount: 500, minimum: 1_000 }),
            (v0.clone(), Action::Unjail, TxError::NotJailed),
            (alice.clone(), Action::SubmitEvidence { evidence: vec![0, 1, 2] }, TxError::BadEvidence("malformed evidence: end of buffer".into())),
        ];
        for (from, action, error) in cases {
            let mut copy = state.clone();
            let got = send(&mut copy, &from, action.clone(), 10);
            match (&got, &error) {
                (Err(TxError::BadEvidence(_)), TxError::BadEvidence(_)) => {}
                _ => assert_eq!(got, Err(error), "{action:?}"),
            }
            assert_eq!(copy, state, "{action:?} changed the state");
        }
        // Unbonding everything names no amount: rewards compound into the bond every block, so
        // an amount read earlier would leave a rest below the minimum.
        let mut copy = state.clone();
        send(&mut copy, &v0, Action::Unbond { amount: crate::transaction::UNBOND_ALL }, 10).unwrap();
        assert_eq!(copy.validator(&v0.address()).unwrap().bonded, 0);
        assert_eq!(copy.unbondings().iter().map(|u| u.amount).collect::<Vec<_>>(), vec![5_000]);
    }

    #[test]
    fn evidence_slashes_jails_rewards_the_reporter_once_and_expires() {
        let mut state = genesis();
        let supply = state.total_supply();
        let reporter = account(3);
        let before = state.account(&reporter.address()).balance;
        // Forged: signed by a key that is not validator 1's.
        let forged = equivocation(&consensus(7), 1, 4);
        assert_eq!(send(&mut state.clone(), &reporter, Action::SubmitEvidence { evidence: forged }, 10), Err(TxError::BadEvidence("a signature does not verify".into())));
        // Not an equivocation: the same vote twice.
        let evidence = equivocation(&consensus(1), 1, 4);
        let mut same = Evidence::decode(&evidence).unwrap();
        if let Evidence::ConflictingVotes(a, b) = &mut same {
            *b = a.clone();
        }
        assert!(matches!(send(&mut state.clone(), &reporter, Action::SubmitEvidence { evidence: same.encode() }, 10), Err(TxError::BadEvidence(_))));
        // Stale.
        assert_eq!(
            send(&mut state.clone(), &reporter, Action::SubmitEvidence { evidence: evidence.clone() }, 4 + 1_001),
            Err(TxError::StaleEvidence { height: 4, max_age: 1_000 })
        );
        send(&mut state, &reporter, Action::SubmitEvidence { evidence: evidence.clone() }, 10).unwrap();
        let v = state.validator(&account(1).address()).unwrap();
        assert_eq!((v.bonded, v.slashed, v.status, v.jailed_until), (4_500, 500, ValidatorStatus::Jailed, 30));
        assert_eq!(state.account(&reporter.address()).balance, before - 100_000 + 50);
        assert_eq!(state.total_supply(), supply - 450, "the slash less the reporter's reward is burnt");
        assert_eq!(state.computed_supply(), state.total_supply());
        assert_eq!(send(&mut state.clone(), &reporter, Action::SubmitEvidence { evidence }, 11), Err(TxError::DuplicateEvidence));
        assert!(state.plan_set().iter().all(|m| m.key != consensus(1).public_key()), "jailed validators are out of the plan");
        let jailed = account(1);
        assert_eq!(send(&mut state.clone(), &jailed, Action::Unjail, 29), Err(TxError::StillJailed { until: 30 }));
        send(&mut state, &jailed, Action::Unjail, 30).unwrap();
        assert_eq!(state.validator(&jailed.address()).unwrap().status, ValidatorStatus::Candidate);
    }

    #[test]
    fn finalize_pays_rewards_keeps_records_and_plans_the_next_set() {
        let mut state = genesis();
        let supply = state.total_supply();
        let (k0, k1) = (consensus(0).public_key(), consensus(1).public_key());
        let members = state.epoch_set(0).unwrap();
        state
            .finalize_block(&BlockOutcome {
                height: 2,
                epoch: 0,
                proposer: Some(k0.clone()),
                assigned: vec![k1.clone(), k0.clone()],
                signers: vec![k1.clone()],
                signers_same_epoch: true,
                epoch_started: None,
                plan: true,
                randomness: None,
                chain_keys: None,
                releases: Vec::new(),
            })
            .unwrap();
        let (v0, v1) = (state.validator(&account(0).address()).unwrap(), state.validator(&account(1).address()).unwrap());
        assert_eq!((v0.bonded, v1.bonded), (5_500, 5_500));
        assert_eq!((v0.record.proposals_made, v0.record.proposals_assigned, v0.record.precommits_signed, v0.record.heights), (1, 1, 0, 1));
        assert_eq!((v1.record.proposals_made, v1.record.proposals_assigned, v1.record.precommits_signed, v1.record.heights), (0, 1, 1, 1));
        assert_eq!(state.total_supply(), supply + 1_000);
        assert_eq!(state.planned_set(2).unwrap().iter().map(|m| m.coin_base).collect::<Vec<_>>(), vec![5_500, 5_500]);
        state.finalize_block(&BlockOutcome { height: 3, epoch: 1, epoch_started: Some(members), ..Default::default() }).unwrap();
        assert_eq!(state.validator(&account(0).address()).unwrap().record, EpochRecord { epoch: 1, ..Default::default() });
        assert_eq!(state.epoch_starts(), vec![(0, 1), (1, 3)]);
    }

    #[test]
    fn a_block_applies_its_transactions_in_order_then_finalizes() {
        let state = genesis();
        let (alice, bob) = (account(2), account(3));
        let tx = |from: &AccountKey, nonce: u64, action: Action| -> VerifiedTransaction {
            Transaction { chain_id: chain(), nonce, gas_price: 1, gas_limit: 200_000, action }.sign(from).verify(&chain()).unwrap()
        };
        let txs = vec![
            tx(&alice, 0, bond(&alice, &consensus(2), 3_000)),
            tx(&alice, 1, Action::Unbond { amount: 5_000 }), // more than bonded
            tx(&bob, 0, Action::Transfer { to: alice.address(), amount: 7 }),
        ];
        let env = BlockEnv { height: 9, time_secs: 0, fee_recipient: account(0).address() };
        let outcome = BlockOutcome { height: 9, proposer: Some(consensus(0).public_key()), ..Default::default() };
        // Validating: the bad unbond fails the block, naming it.
        assert_eq!(
            state.clone().apply_block(txs.clone(), &env, &outcome, false).unwrap_err(),
            BlockError::Transaction(1, TxError::UnbondExceedsBond { amount: 5_000, bonded: 3_000 })
        );
        // Building: it is left out, the others apply, then Ω mints the block reward.
        let mut built = state.clone();
        let (applied, receipts) = built.apply_block(txs.clone(), &env, &outcome, true).unwrap();
        assert_eq!(applied, vec![txs[0].clone(), txs[2].clone()]);
        assert_eq!(receipts.len(), 2);
        assert_eq!(built.validator(&alice.address()).unwrap().bonded, 3_000);
        assert_eq!(built.total_supply(), state.total_supply() + 1_000);
        assert_eq!(built.computed_supply(), built.total_supply());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Transfer(u8, u8, u128),
        Bond(u8, u128),
        Unbond(u8, u128),
        Unjail(u8),
        Evidence(u8, u8),
        Finalize { proposer: u8, signers: u8, new_epoch: bool, plan: bool },
        RegisterCompute(u8, u128),
        UnbondCompute(u8, u128),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..4, 0u8..4, 0u128..200_000).prop_map(|(a, b, x)| Op::Transfer(a, b, x)),
            (0u8..4, 0u128..8_000).prop_map(|(a, x)| Op::Bond(a, x)),
            (0u8..4, 0u128..8_000).prop_map(|(a, x)| Op::Unbond(a, x)),
            (0u8..4).prop_map(Op::Unjail),
            (0u8..4, 0u8..4).prop_map(|(a, b)| Op::Evidence(a, b)),
            (0u8..4, 0u128..8_000).prop_map(|(a, x)| Op::RegisterCompute(a, x)),
            (0u8..4, 0u128..8_000).prop_map(|(a, x)| Op::UnbondCompute(a, x)),
            (0u8..4, any::<u8>(), any::<bool>(), any::<bool>()).prop_map(|(p, s, e, pl)| Op::Finalize { proposer: p, signers: s, new_epoch: e, plan: pl }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever staking (validators' and compute nodes'), slashing and finalization happens,
        /// the recorded supply equals the balances plus the stake, grows exactly by what Ω mints
        /// and shrinks exactly by what slashing burns; a failed transaction changes nothing; the root equals the root of
        /// the same entries restored from scratch.
        #[test]
        fn supply_is_balances_plus_stake(ops in proptest::collection::vec(op(), 1..40)) {
            let mut state = genesis();
            let mut height = 2u64;
            let mut epoch = 0u64;
            let mut expected = state.total_supply();
            for op in ops {
                height += 1;
                let before = state.clone();
                let result = match op {
                    Op::Transfer(a, b, x) => send(&mut state, &account(a), Action::Transfer { to: account(b).address(), amount: x }, height),
                    Op::Bond(a, x) => send(&mut state, &account(a), bond(&account(a), &consensus(u64::from(a)), x), height),
                    Op::Unbond(a, x) => send(&mut state, &account(a), Action::Unbond { amount: x }, height),
                    Op::Unjail(a) => send(&mut state, &account(a), Action::Unjail, height),
                    Op::RegisterCompute(a, x) => {
                        send(&mut state, &account(a), Action::RegisterCompute { endpoint: format!("https://compute-{a}"), amount: x }, height)
                    }
                    Op::UnbondCompute(a, x) => send(&mut state, &account(a), Action::UnbondCompute { amount: x }, height),
                    Op::Evidence(reporter, offender) => {
                        let index = state.epoch_set(epoch).and_then(|s| s.iter().position(|m| m.key == consensus(u64::from(offender)).public_key()));
                        let evidence = equivocation(&consensus(u64::from(offender)), index.unwrap_or(0) as u32, height - 1);
                        let result = send(&mut state, &account(reporter), Action::SubmitEvidence { evidence }, height);
                        if result.is_ok() {
                            let slashed = state.validator(&account(offender).address()).unwrap().slashed - before.validator(&account(offender).address()).unwrap().slashed;
                            expected -= slashed - slashed * 1_000 / 10_000;
                        }
                        result
                    }
                    Op::Finalize { proposer, signers, new_epoch, plan } => {
                        let keys: Vec<Ed25519PublicKey> = (0..4).map(|i| consensus(i).public_key()).collect();
                        let signer_keys: Vec<_> = keys.iter().enumerate().filter(|(i, _)| signers & (1 << i) != 0).map(|(_, k)| k.clone()).collect();
                        let proposer_key = keys[proposer as usize].clone();
                        let bonded = |k: &Ed25519PublicKey| state.operator_of(k).is_some();
                        // The proposer takes its half and the signers' remainder; without a bonded
                        // proposer only the signers' equal parts are minted.
                        let counted = signer_keys.iter().filter(|k| bonded(k)).count() as u128;
                        let minted = if bonded(&proposer_key) { 1_000 } else if counted == 0 { 0 } else { (500 / counted) * counted };
                        expected += minted;
                        if new_epoch {
                            epoch += 1;
                        }
                        let started = new_epoch.then(|| state.epoch_set(epoch).unwrap_or_else(|| state.plan_set()));
                        state.finalize_block(&BlockOutcome {
                            height,
                            epoch,
                            proposer: Some(proposer_key),
                            assigned: vec![keys[(proposer as usize + 1) % 4].clone()],
                            signers: signer_keys,
                            signers_same_epoch: !new_epoch,
                            epoch_started: started,
                            plan,
                            randomness: None,
                            chain_keys: None,
                            releases: Vec::new(),
                        })
                    }
                };
                if result.is_err() {
                    prop_assert_eq!(&state, &before);
                }
                prop_assert_eq!(state.total_supply(), expected);
                prop_assert_eq!(state.computed_supply(), expected);
            }
            let root = state.state_root();
            let restored = AccountState::restore(
                StateConfig { chain_id: chain(), min_gas_price: 1, staking: StakingParams::default(), enclaves: None },
                state.accounts(),
                state.entries(),
            ).unwrap();
            prop_assert_eq!(restored.total_supply(), expected);
            prop_assert_eq!(restored.clone().state_root(), root);
        }
    }
}
