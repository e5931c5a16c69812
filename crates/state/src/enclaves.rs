//! Enclaves and attestation collateral on chain (DESIGN §5.4 "Enclave registration", §5.5;
//! issue 19, item 1). A compute node registers its enclave with a registration quote binding the
//! enclave's ed25519 and X25519 keys to the chain and to a freshness value the chain chose (R of
//! a recent height, bound to the operator); validators verify it at the inclusion block's time,
//! under the genesis policy, against collateral held on chain. Anyone may post newer collateral
//! for a platform with a witness quote that verifies with it; the chain keeps the newest.
//!
//! The decisions are `tcp_dkmp`'s ([`admit_registration`], [`admit_collateral`]); this module is
//! the state they read and write:
//! * `keccak256(0x09 ‖ signing key)`: the enclave's record ([`EnclaveEntry`]);
//! * `keccak256(0x09 ‖ operator)`: the compute node's enclaves, `(signing key)*` (a 20-byte
//!   preimage where records have 32 bytes, so the two never meet);
//! * `keccak256(0x0a ‖ height)`: R of a recent height, and the quote ids registered under it;
//! * `keccak256(0x0b ‖ quote id)`: the signing key registered with that quote (replays refused);
//! * `keccak256(0x0c ‖ TEE ‖ FMSPC ‖ PCK CA)`: the newest collateral of a platform;
//! * `keccak256(0x18 ‖ signing key)`: `operator (20) ‖ measurement (32)` of the enclave's last
//!   registration, kept after its record is gone, so a compute fault stays attributable after
//!   the node replaced or unbonded the enclave that signed it.
//!
//! What bounds it: only a bonded compute node's operator can make the chain verify a quote, each
//! verification costs [`REGISTER_ENCLAVE_GAS`] or [`POST_COLLATERAL_GAS`] (so a block holds a
//! bounded number), a node keeps at most [`MAX_ENCLAVES_PER_OPERATOR`] records, and R entries
//! (with the quote ids they carry) are deleted once their height leaves the freshness window —
//! a quote naming that height is stale from then on, so its id is no longer needed.

use tcp_attestation::{ChainKeys, CollateralParts, PckCa, Tee, Verifier, quote_platform};
use tcp_dkmp::{
    CollateralKey, CollateralView, ComputeNodeRecord, EnclaveRecord, EnclaveRegistration, RegistrationRefused, RegistrationView,
    ReleasePolicy, ReleaseView, admit_collateral, admit_registration,
};
use tcp_types::{ByteReader, ChainId};

use crate::accounts::{AccountState, BlockEnv, TxError};
use crate::smt::Hash;
use crate::{Action, Address, keccak256};

pub const ENCLAVE_NAMESPACE: u8 = 0x09;
pub const RANDOMNESS_NAMESPACE: u8 = 0x0a;
pub const QUOTE_NAMESPACE: u8 = 0x0b;
pub const COLLATERAL_NAMESPACE: u8 = 0x0c;
pub const ENCLAVE_IDENTITY_NAMESPACE: u8 = 0x18;

/// Enclave records one compute node keeps: a registration beyond them replaces the oldest (an
/// enclave restarted after a crash has new keys; the dead process's record just waits to expire).
pub const MAX_ENCLAVES_PER_OPERATOR: usize = 8;
/// Registrations naming one freshness height (each adds a quote id to its R entry).
pub const MAX_REGISTRATIONS_PER_FRESHNESS: usize = 256;

/// A DCAP verification (quote signature, QE report, PCK chain and CRLs, TCB info and QE
/// identity signatures) is a few milliseconds: priced so a full block holds at most
/// `max_block_gas / 5 M` of them (84 at the default 420 M).
pub const REGISTER_ENCLAVE_GAS: u64 = 5_000_000;
pub const POST_COLLATERAL_GAS: u64 = 5_000_000;

/// The chain's attestation rules (genesis): how quotes are verified and how long a
/// registration lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnclaveRules {
    pub verifier: Verifier,
    /// Heights a registration stays current.
    pub attestation_period: u64,
    /// How many heights back a registration's freshness height may be.
    pub freshness_window: u64,
    /// The attestation policy's version, raised with every change of the policy: registrations
    /// made under an older one lapse.
    pub policy_version: u64,
    /// Contract keys a group member releases to one compute node per window of heights.
    pub release_rate_limit: u32,
    pub release_rate_window: u64,
    /// The account that may rotate any contract's key (after a TEE advisory); none by default.
    pub governance: Option<Address>,
}

/// An enclave as the chain holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnclaveEntry {
    pub signing_key: [u8; 32],
    pub x25519_key: [u8; 32],
    pub tee: Tee,
    pub registered_at: u64,
    pub quote_id: [u8; 32],
    pub record: EnclaveRecord,
}

impl EnclaveEntry {
    /// The leaf value: `operator (20) ‖ x25519 key (32) ‖ measurement (32) ‖ TEE (uint8: 0 SGX,
    /// 1 TDX) ‖ TCB rank (uint8) ‖ TCB evaluation data number (uint32) ‖ debug (uint8) ‖
    /// registered_at ‖ expires_at ‖ policy version (3 × uint64) ‖ quote id (32)`.
    pub fn encode(&self) -> Vec<u8> {
        let r = &self.record;
        let mut out = Vec::with_capacity(149);
        out.extend_from_slice(&r.operator);
        out.extend_from_slice(&self.x25519_key);
        out.extend_from_slice(&r.measurement);
        out.push(tee_byte(self.tee));
        out.push(r.tcb_rank);
        out.extend_from_slice(&r.tcb_evaluation_data_number.to_be_bytes());
        out.push(u8::from(r.debug));
        out.extend_from_slice(&self.registered_at.to_be_bytes());
        out.extend_from_slice(&r.expires_at.to_be_bytes());
        out.extend_from_slice(&r.policy_version.to_be_bytes());
        out.extend_from_slice(&self.quote_id);
        out
    }

    pub fn decode(signing_key: [u8; 32], bytes: &[u8]) -> Option<EnclaveEntry> {
        let mut reader = ByteReader(bytes);
        let operator = reader.array()?;
        let x25519_key = reader.array()?;
        let measurement = reader.array()?;
        let tee = match reader.u8()? {
            0 => Tee::Sgx,
            1 => Tee::Tdx,
            _ => return None,
        };
        let tcb_rank = reader.u8()?;
        let tcb_evaluation_data_number = reader.u32()?;
        let debug = match reader.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let registered_at = reader.u64()?;
        let expires_at = reader.u64()?;
        let policy_version = reader.u64()?;
        let quote_id = reader.array()?;
        if !reader.rest().is_empty() {
            return None;
        }
        let record = EnclaveRecord { operator, measurement, tcb_rank, tcb_evaluation_data_number, debug, expires_at, policy_version };
        Some(EnclaveEntry { signing_key, x25519_key, tee, registered_at, quote_id, record })
    }
}

fn tee_byte(tee: Tee) -> u8 {
    match tee {
        Tee::Sgx => 0,
        Tee::Tdx => 1,
    }
}

pub fn enclave_identity_key(signing_key: &[u8; 32]) -> Hash {
    keccak256(&[&[ENCLAVE_IDENTITY_NAMESPACE], signing_key])
}

pub fn enclave_key(signing_key: &[u8; 32]) -> Hash {
    keccak256(&[&[ENCLAVE_NAMESPACE], signing_key])
}

fn operator_enclaves_key(operator: &Address) -> Hash {
    keccak256(&[&[ENCLAVE_NAMESPACE], &operator.0])
}

pub fn randomness_key(height: u64) -> Hash {
    keccak256(&[&[RANDOMNESS_NAMESPACE], &height.to_be_bytes()])
}

fn quote_key(id: &[u8; 32]) -> Hash {
    keccak256(&[&[QUOTE_NAMESPACE], id])
}

pub fn collateral_key(key: &CollateralKey) -> Hash {
    let ca = match key.pck_ca {
        PckCa::Processor => 0,
        PckCa::Platform => 1,
    };
    keccak256(&[&[COLLATERAL_NAMESPACE, tee_byte(key.tee)], &key.fmspc, &[ca]])
}

/// What an admitted enclave action writes.
pub(crate) enum EnclaveWrite {
    Registration { entry: EnclaveEntry, freshness_height: u64 },
    Collateral(CollateralKey, Vec<u8>),
}

/// The state as `tcp_dkmp`'s rules read it, at the block being built or checked.
struct View<'a> {
    state: &'a AccountState,
    rules: &'a EnclaveRules,
    env: &'a BlockEnv,
}

impl RegistrationView for View<'_> {
    fn chain_id(&self) -> &ChainId {
        self.state.chain_id()
    }
    fn height(&self) -> u64 {
        self.env.height
    }
    fn block_time_secs(&self) -> u64 {
        self.env.time_secs
    }
    fn freshness_at(&self, height: u64) -> Option<[u8; 32]> {
        let current = height < self.env.height && self.env.height - height <= self.rules.freshness_window;
        if !current {
            return None;
        }
        self.state.get_entry(&randomness_key(height)).and_then(|v| v.get(..32).and_then(|r| r.try_into().ok()))
    }
    fn compute_node_in_service(&self, operator: &[u8; 20]) -> bool {
        let min_bond = self.state.staking_params().min_compute_bond;
        self.state.compute_node(&Address(*operator)).is_some_and(|n| n.in_service(self.env.height, min_bond))
    }
    fn quote_registered(&self, id: &[u8; 32]) -> bool {
        self.state.get_entry(&quote_key(id)).is_some()
    }
    fn collateral_for(&self, quote: &[u8]) -> Option<Vec<u8>> {
        let (tee, fmspc, pck_ca) = quote_platform(quote).ok()?;
        self.state.collateral(&CollateralKey { tee, fmspc, pck_ca })
    }
    fn policy_version(&self) -> u64 {
        self.rules.policy_version
    }
    fn verifier(&self) -> &Verifier {
        &self.rules.verifier
    }
    fn attestation_period(&self) -> u64 {
        self.rules.attestation_period
    }
    fn chain_keys(&self) -> Option<[u8; 32]> {
        self.state.chain_keys().map(|k| k.digest())
    }
}

/// The committed state as a secret-share group member's release rules read it
/// (`tcp_dkmp::ReleaseGate::admit`).
pub struct ReleaseStateView<'a> {
    state: &'a AccountState,
    height: u64,
    policy: ReleasePolicy,
    /// The member deciding (its own records count as replays).
    member: Option<tcp_crypto::Ed25519PublicKey>,
}

impl<'a> ReleaseStateView<'a> {
    /// The state committed at `height`; None on a chain that registers no enclaves.
    pub fn new(state: &'a AccountState, height: u64) -> Option<ReleaseStateView<'a>> {
        let rules = state.enclave_rules()?;
        let policy = rules.verifier.policy();
        let policy = ReleasePolicy {
            policy_version: rules.policy_version,
            measurements: policy.measurements.clone(),
            max_tcb_rank: policy.min_tcb as u8,
            min_tcb_evaluation_data_number: policy.min_tcb_evaluation_data_number.unwrap_or(0),
            min_bond: state.staking_params().min_compute_bond,
            rate_limit: rules.release_rate_limit,
            rate_window: rules.release_rate_window,
        };
        Some(ReleaseStateView { state, height, policy, member: None })
    }

    /// As `member` decides: a request it already recorded on chain is a replay.
    pub fn for_member(mut self, member: tcp_crypto::Ed25519PublicKey) -> Self {
        self.member = Some(member);
        self
    }
}

impl ReleaseView for ReleaseStateView<'_> {
    fn chain_id(&self) -> &ChainId {
        self.state.chain_id()
    }
    fn height(&self) -> u64 {
        self.height
    }
    fn policy(&self) -> &ReleasePolicy {
        &self.policy
    }
    fn enclave(&self, key: &tcp_crypto::Ed25519PublicKey) -> Option<EnclaveRecord> {
        let key: [u8; 32] = commonware_codec::Encode::encode(key).as_ref().try_into().ok()?;
        self.state.enclave(&key).map(|e| e.record)
    }
    fn compute_node(&self, operator: &[u8; 20]) -> Option<ComputeNodeRecord> {
        let node = self.state.compute_node(&Address(*operator))?;
        Some(ComputeNodeRecord { bonded: node.bonded, jailed: self.height < node.jailed_until })
    }
    fn contract_generation(&self, cid: &[u8; 32]) -> Option<u64> {
        self.state.contract(cid).map(|c| c.generation)
    }
    fn released_by_me(&self, request: &tcp_types::Digest) -> bool {
        self.member.as_ref().is_some_and(|m| self.state.release_recorded_by(&request.0, m))
    }
}

impl CollateralView for View<'_> {
    fn block_time_secs(&self) -> u64 {
        self.env.time_secs
    }
    fn verifier(&self) -> &Verifier {
        &self.rules.verifier
    }
    fn stored(&self, key: &CollateralKey) -> Option<CollateralParts> {
        self.state.collateral(key).and_then(|c| CollateralParts::parse(&c).ok())
    }
}

impl AccountState {
    pub fn enclave_rules(&self) -> Option<&EnclaveRules> {
        self.config.enclaves.as_ref()
    }

    pub fn enclave(&self, signing_key: &[u8; 32]) -> Option<EnclaveEntry> {
        self.get_entry(&enclave_key(signing_key)).and_then(|v| EnclaveEntry::decode(*signing_key, &v))
    }

    /// The compute node and identity an enclave key was last registered under, even after its
    /// record is gone.
    pub fn enclave_identity(&self, signing_key: &[u8; 32]) -> Option<(Address, [u8; 32])> {
        let v = self.get_entry(&enclave_identity_key(signing_key))?;
        let (operator, measurement) = (v.get(..20)?, v.get(20..52)?);
        (v.len() == 52).then(|| (Address(operator.try_into().expect("20 bytes")), measurement.try_into().expect("32 bytes")))
    }

    /// The signing keys of `operator`'s enclaves, oldest first.
    pub fn enclaves_of(&self, operator: &Address) -> Vec<[u8; 32]> {
        self.get_entry(&operator_enclaves_key(operator))
            .map(|v| v.chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect())
            .unwrap_or_default()
    }

    /// The chain's beacon group key and DKMP master public key, once both exist: written by Ω
    /// when the host first reports them, never changed (neither key changes with a reshare).
    /// Enclaves pin them at registration; clients read the master key here, with a proof.
    pub fn chain_keys(&self) -> Option<ChainKeys> {
        let bytes = self.get_entry(&crate::staking::global_key("chain-keys"))?;
        Some(ChainKeys { group_key: bytes.get(..96)?.try_into().ok()?, master_key: bytes.get(96..192)?.try_into().ok()? })
    }

    pub(crate) fn record_chain_keys(&mut self, keys: Option<&ChainKeys>) {
        if let Some(keys) = keys
            && self.chain_keys().is_none()
        {
            self.put_entry(crate::staking::global_key("chain-keys"), Some([keys.group_key, keys.master_key].concat()));
        }
    }

    /// The newest collateral the chain holds for a platform (dcap-qvl JSON).
    pub fn collateral(&self, key: &CollateralKey) -> Option<Vec<u8>> {
        self.get_entry(&collateral_key(key))
    }

    /// R of `height` while it can serve as a registration's freshness.
    pub fn registration_randomness(&self, height: u64) -> Option<[u8; 32]> {
        self.get_entry(&randomness_key(height)).and_then(|v| v.get(..32).and_then(|r| r.try_into().ok()))
    }

    fn put_enclaves_of(&mut self, operator: &Address, keys: &[[u8; 32]]) {
        let bytes: Vec<u8> = keys.concat();
        self.put_entry(operator_enclaves_key(operator), (!bytes.is_empty()).then_some(bytes));
    }

    /// Decide on an enclave action at the block `env` (a DCAP verification, once the cheap
    /// checks pass): what it will write.
    pub(crate) fn admit_enclave_action(&self, sender: &Address, action: &Action, env: &BlockEnv) -> Result<EnclaveWrite, TxError> {
        let rules = self.enclave_rules().ok_or(TxError::EnclavesDisabled)?;
        let view = View { state: self, rules, env };
        match action {
            Action::RegisterEnclave { freshness_height, signing_key, x25519_key, quote } => {
                // The sender is the operator: a quote is bound to its operator by the freshness
                // value, so nobody registers an enclave under another node.
                let registration = EnclaveRegistration {
                    operator: sender.0,
                    freshness_height: *freshness_height,
                    signing_key: *signing_key,
                    x25519_key: *x25519_key,
                    quote: quote.clone(),
                };
                let listed = self.get_entry(&randomness_key(*freshness_height)).map_or(0, |v| v.len().saturating_sub(32) / 32);
                if listed >= MAX_REGISTRATIONS_PER_FRESHNESS {
                    return Err(TxError::FreshnessCrowded(*freshness_height));
                }
                // One enclave key serves one compute node: a host relaying another node's enclave
                // cannot take over (or later delete) its record.
                if let Some(held) = self.enclave(signing_key)
                    && held.record.operator != sender.0
                    && held.record.expires_at >= env.height
                {
                    return Err(TxError::EnclaveKeyTaken);
                }
                // Nor ever after: a key's outcomes stay the first node's to answer for (a node
                // must not hand its enclave to a throwaway node to take the blame for a fault).
                if self.enclave_identity(signing_key).is_some_and(|(operator, _)| operator != *sender) {
                    return Err(TxError::EnclaveKeyTaken);
                }
                let (tee, _, _) = quote_platform(quote).map_err(|e| TxError::Registration(RegistrationRefused::Attestation(e)))?;
                let (record, quote_id) = admit_registration(&view, &registration).map_err(TxError::Registration)?;
                let entry = EnclaveEntry { signing_key: *signing_key, x25519_key: *x25519_key, tee, registered_at: env.height, quote_id, record };
                Ok(EnclaveWrite::Registration { entry, freshness_height: *freshness_height })
            }
            Action::PostCollateral { collateral, witness } => {
                let (key, _) = admit_collateral(&view, collateral, witness).map_err(TxError::Collateral)?;
                Ok(EnclaveWrite::Collateral(key, collateral.clone()))
            }
            _ => unreachable!("only enclave actions are admitted here"),
        }
    }

    /// Write an admitted enclave action (the sender already paid its fee and nonce).
    pub(crate) fn apply_enclave_write(&mut self, sender: Address, write: EnclaveWrite, height: u64) {
        match write {
            EnclaveWrite::Registration { entry, freshness_height } => {
                // The node's list: this enclave last, its expired records dropped, and the oldest
                // replaced when the list is full.
                let mut kept: Vec<[u8; 32]> = Vec::new();
                for key in self.enclaves_of(&sender) {
                    if key == entry.signing_key {
                        continue;
                    }
                    match self.enclave(&key) {
                        Some(e) if e.record.expires_at >= height && e.record.operator == sender.0 => kept.push(key),
                        Some(e) if e.record.operator != sender.0 => {} // another node's now: not ours to delete
                        _ => self.put_entry(enclave_key(&key), None),
                    }
                }
                while kept.len() >= MAX_ENCLAVES_PER_OPERATOR {
                    let oldest = kept.remove(0);
                    self.put_entry(enclave_key(&oldest), None);
                }
                kept.push(entry.signing_key);
                self.put_enclaves_of(&sender, &kept);
                let freshness = randomness_key(freshness_height);
                let mut r_entry = self.get_entry(&freshness).expect("admitted: the freshness height's R is kept");
                r_entry.extend_from_slice(&entry.quote_id);
                self.put_entry(freshness, Some(r_entry));
                self.put_entry(quote_key(&entry.quote_id), Some(entry.signing_key.to_vec()));
                self.put_entry(enclave_identity_key(&entry.signing_key), Some([&entry.record.operator[..], &entry.record.measurement].concat()));
                self.put_entry(enclave_key(&entry.signing_key), Some(entry.encode()));
            }
            EnclaveWrite::Collateral(key, collateral) => self.put_entry(collateral_key(&key), Some(collateral)),
        }
    }

    /// Ω's part: keep R of the height the block's beacon signature is for, and forget the R
    /// (and the quote ids registered under it) that leaves the freshness window.
    pub(crate) fn record_randomness(&mut self, randomness: Option<(u64, [u8; 32])>, height: u64) {
        let Some(window) = self.enclave_rules().map(|r| r.freshness_window) else { return };
        if let Some((at, r)) = randomness {
            if self.get_entry(&randomness_key(at)).is_none() {
                self.put_entry(randomness_key(at), Some(r.to_vec()));
            }
        }
        // From the next block on, heights below `height + 1 - window` are stale.
        if let Some(gone) = (height + 1).checked_sub(window.saturating_add(1)) {
            if let Some(entry) = self.get_entry(&randomness_key(gone)) {
                for id in entry.get(32..).unwrap_or_default().chunks_exact(32) {
                    self.put_entry(quote_key(id.try_into().expect("32 bytes")), None);
                }
                self.put_entry(randomness_key(gone), None);
            }
        }
    }

    /// A compute node that left the registry takes its enclaves with it.
    pub(crate) fn remove_enclaves_of(&mut self, operator: &Address) {
        for key in self.enclaves_of(operator) {
            if self.enclave(&key).is_some_and(|e| e.record.operator == operator.0) {
                self.put_entry(enclave_key(&key), None);
            }
        }
        self.put_enclaves_of(operator, &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountKey, SignedTransaction, Transaction};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn enclave_transactions_round_trip(
            height in any::<u64>(),
            keys in any::<([u8; 32], [u8; 32])>(),
            quote in proptest::collection::vec(any::<u8>(), 0..2048),
            witness in proptest::collection::vec(any::<u8>(), 0..2048),
            register in any::<bool>(),
        ) {
            let action = if register {
                Action::RegisterEnclave { freshness_height: height, signing_key: keys.0, x25519_key: keys.1, quote }
            } else {
                Action::PostCollateral { collateral: quote, witness }
            };
            let chain = ChainId::new("enclaves").unwrap();
            let key = AccountKey::from_bytes(&[7; 32]).unwrap();
            let signed = Transaction { chain_id: chain, nonce: 1, gas_price: 1, gas_limit: 5_000_000, action }.sign(&key);
            prop_assert_eq!(SignedTransaction::decode(&signed.encode()).unwrap(), signed);
        }

        #[test]
        fn an_enclave_entry_round_trips_and_refuses_trailing_bytes(
            keys in any::<([u8; 32], [u8; 32], [u8; 32], [u8; 32])>(),
            operator in any::<[u8; 20]>(),
            numbers in any::<(u8, u32, u64, u64, u64)>(),
            flags in any::<(bool, bool)>(),
        ) {
            let record = EnclaveRecord {
                operator,
                measurement: keys.2,
                tcb_rank: numbers.0,
                tcb_evaluation_data_number: numbers.1,
                debug: flags.0,
                expires_at: numbers.3,
                policy_version: numbers.4,
            };
            let tee = if flags.1 { Tee::Tdx } else { Tee::Sgx };
            let entry = EnclaveEntry { signing_key: keys.0, x25519_key: keys.1, tee, registered_at: numbers.2, quote_id: keys.3, record };
            let mut bytes = entry.encode();
            prop_assert_eq!(EnclaveEntry::decode(keys.0, &bytes), Some(entry));
            bytes.push(0);
            prop_assert_eq!(EnclaveEntry::decode(keys.0, &bytes), None);
        }
    }

    /// Oversized fields are refused when the transaction is decoded, before any check.
    #[test]
    fn oversized_quotes_and_collateral_do_not_decode() {
        let chain = ChainId::new("enclaves").unwrap();
        let key = AccountKey::from_bytes(&[7; 32]).unwrap();
        let quote = vec![0; tcp_dkmp::registration::MAX_QUOTE_BYTES + 1];
        let action = Action::RegisterEnclave { freshness_height: 1, signing_key: [0; 32], x25519_key: [0; 32], quote };
        let signed = Transaction { chain_id: chain.clone(), nonce: 1, gas_price: 1, gas_limit: 1, action }.sign(&key);
        assert!(SignedTransaction::decode(&signed.encode()).is_err());
        let collateral = vec![b' '; tcp_dkmp::collateral::MAX_COLLATERAL_BYTES + 1];
        let action = Action::PostCollateral { collateral, witness: Vec::new() };
        let signed = Transaction { chain_id: chain, nonce: 1, gas_price: 1, gas_limit: 1, action }.sign(&key);
        assert!(SignedTransaction::decode(&signed.encode()).is_err());
    }
}
