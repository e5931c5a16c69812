//! The genesis of a chain and a node's configuration, both JSON files at the edge.
//!
//! A genesis fixes the chain id, the chain parameters, the validators (consensus key, p2p
//! address, the account their fees go to, N₀ for the beacon weights), the genesis
//! allocations, and the signed dealer logs of the bootstrap DKG. `tcpchain init` ran that DKG
//! locally (it holds every validator's key on a development chain); the logs are committed in
//! the first blocks like any dealer log, so every node derives the group key and sharing from
//! the chain, and each validator received its own share in its key directory.

use crate::NodeError;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tcp_beacon::dkg::decode_log;
use tcp_beacon::{BeaconParams, SignedLog};
use tcp_consensus::TimeoutConfig;
use tcp_crypto::Ed25519PublicKey;
use tcp_state::{AccountState, Address, StakingParams, StateConfig};
use tcp_types::{ChainId, Digest, hex};

/// Bumped whenever the genesis or data format changes incompatibly.
pub const GENESIS_VERSION: u32 = 2;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChainParams {
    /// Target time between blocks; the next height starts this long after the previous one did.
    pub block_interval_ms: u64,
    pub max_block_bytes: usize,
    pub max_block_gas: u64,
    pub min_gas_price: u64,
    pub epoch_length: u64,
    pub dkg_window: u64,
    /// Heights before an epoch's end at which the next set is planned and reshared to.
    pub reshare_window: u64,
    /// Base propose timeout (grows by half of it per round); prevote/precommit use half.
    pub timeout_propose_ms: u64,
    pub staking: StakingParams,
    /// DKMP (whitepaper §4.3): members of each epoch's secret-share group, k (all validators
    /// when fewer; choose 3f + 1).
    #[serde(default = "default_sssg_size")]
    pub sssg_size: u32,
    /// Heights in which the first group's DKG logs may be committed (and each retry's).
    #[serde(default = "default_sssg_dkg_window")]
    pub sssg_dkg_window: u64,
}

fn default_sssg_size() -> u32 {
    7
}

fn default_sssg_dkg_window() -> u64 {
    10
}

impl Default for ChainParams {
    fn default() -> Self {
        ChainParams {
            block_interval_ms: 1000,
            max_block_bytes: 2 * 1024 * 1024,
            max_block_gas: 21_000 * 20_000,
            min_gas_price: 1,
            epoch_length: 1000,
            dkg_window: 2,
            reshare_window: 100,
            timeout_propose_ms: 2000,
            staking: StakingParams::default(),
            sssg_size: default_sssg_size(),
            sssg_dkg_window: default_sssg_dkg_window(),
        }
    }
}

impl ChainParams {
    pub fn block_interval(&self) -> Duration {
        Duration::from_millis(self.block_interval_ms)
    }

    pub fn timeouts(&self) -> TimeoutConfig {
        let base = Duration::from_millis(self.timeout_propose_ms);
        TimeoutConfig {
            propose: base,
            propose_delta: base / 2,
            prevote: base / 2,
            prevote_delta: base / 4,
            precommit: base / 2,
            precommit_delta: base / 4,
        }
    }

    pub fn group(&self) -> tcp_dkmp::GroupParams {
        tcp_dkmp::GroupParams { size: self.sssg_size, dkg_window: self.sssg_dkg_window }
    }

    pub fn beacon(&self) -> BeaconParams {
        BeaconParams {
            epoch_length: self.epoch_length,
            dkg_window: self.dkg_window,
            reshare_window: self.reshare_window,
            ..BeaconParams::default()
        }
    }

    /// Whether the parameters make a chain that can run (what loading a genesis checks).
    pub fn check(&self) -> Result<(), String> {
        if self.block_interval_ms == 0 || self.block_interval_ms > 600_000 {
            return Err("block_interval_ms must be 1..=600000".into());
        }
        // Room for the largest transaction (a collateral posting) beside the header and logs.
        if !(256 * 1024..=crate::block::MAX_BLOCK_BYTES).contains(&self.max_block_bytes) {
            return Err(format!("max_block_bytes must be 262144..={}", crate::block::MAX_BLOCK_BYTES));
        }
        if self.epoch_length == 0 || self.dkg_window == 0 || self.dkg_window >= self.epoch_length {
            return Err("epoch_length and dkg_window must be positive, dkg_window < epoch_length".into());
        }
        if self.reshare_window < 4 || self.reshare_window > self.epoch_length {
            return Err("reshare_window must be 4..=epoch_length (dealing, acks and logs need a few blocks)".into());
        }
        self.staking.check()?;
        // Every reshare deals to the whole next set: a set larger than a ceremony can hold
        // would make every reshare fail and freeze the set.
        if self.staking.max_validators > tcp_beacon::dkg::MAX_PARTICIPANTS {
            return Err(format!(
                "staking.max_validators is {}, above the {} participants a beacon reshare can hold",
                self.staking.max_validators,
                tcp_beacon::dkg::MAX_PARTICIPANTS
            ));
        }
        self.group().check()?;
        if self.sssg_dkg_window < 4 {
            return Err("sssg_dkg_window must be at least 4 (dealing, acks and logs need a few blocks)".into());
        }
        if self.timeout_propose_ms < 10 {
            return Err("timeout_propose_ms must be at least 10".into());
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    pub name: String,
    /// ed25519, hex: signs votes and identifies the validator on p2p.
    pub consensus_key: String,
    /// BLS12-381 (G2, 96 bytes), hex: the validator's own BLS key (not its beacon share).
    pub bls_key: String,
    /// Where its p2p listener is.
    pub p2p_address: SocketAddr,
    /// The operator account: block fees go to it, and the validator's stake is bonded from it.
    pub reward_address: String,
    /// The genesis bond (N₀ for the first epoch's proposer weights).
    pub coin_base: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    pub address: String,
    /// Decimal (u128 does not fit a JSON number).
    pub balance: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub version: u32,
    pub chain_id: String,
    pub genesis_time_ms: u64,
    pub params: ChainParams,
    pub validators: Vec<GenesisValidator>,
    pub allocations: Vec<Allocation>,
    /// Hex of the bootstrap DKG's signed dealer logs (committed in the first blocks).
    pub bootstrap_logs: Vec<String>,
    /// Which enclaves the chain trusts (DESIGN §5.4).
    #[serde(default)]
    pub attestation: AttestationConfig,
    /// The Plasma bridge to the root chain (DESIGN §5.7, docs/bridge.md); none: no bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<BridgeConfig>,
}

/// The bridge as genesis fixes it: where the contract is, and the exit game's parameters (the
/// contract's constructor arguments, which a node checks against the deployed contract).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// The root chain's EIP-155 chain id.
    pub root_chain_id: u64,
    /// `PlasmaRoot`'s address on it, 0x-prefixed hex.
    pub contract: String,
    pub challenge_period_secs: u64,
    pub freeze_period_secs: u64,
    /// Wei, decimal.
    pub exit_bond: String,
    /// Wei, decimal.
    pub min_deposit: String,
    /// Root-chain blocks an inbox entry waits before TCP processes it.
    pub confirmation_depth: u64,
    /// The root-chain block the contract was deployed in: where followers start reading.
    #[serde(default)]
    pub start_block: u64,
}

/// Root-chain blocks a production chain waits before processing an inbox entry: two epochs,
/// Ethereum's finality.
pub const MIN_PRODUCTION_CONFIRMATIONS: u64 = 64;

/// [`BridgeConfig`] parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeSpec {
    pub root_chain_id: u64,
    pub contract: [u8; 20],
    pub challenge_period_secs: u64,
    pub freeze_period_secs: u64,
    pub exit_bond: u128,
    pub min_deposit: u128,
    pub confirmation_depth: u64,
    pub start_block: u64,
}

impl BridgeConfig {
    pub fn parse(&self) -> Result<BridgeSpec, String> {
        let contract: [u8; 20] = self
            .contract
            .strip_prefix("0x")
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| b.try_into().ok())
            .filter(|c| *c != [0u8; 20])
            .ok_or_else(|| format!("bridge.contract {:?} is not a 0x-prefixed 20-byte address", self.contract))?;
        let wei = |name: &str, v: &str| v.parse::<u128>().map_err(|e| format!("bridge.{name}: {e}"));
        let spec = BridgeSpec {
            root_chain_id: self.root_chain_id,
            contract,
            challenge_period_secs: self.challenge_period_secs,
            freeze_period_secs: self.freeze_period_secs,
            exit_bond: wei("exit_bond", &self.exit_bond)?,
            min_deposit: wei("min_deposit", &self.min_deposit)?,
            confirmation_depth: self.confirmation_depth,
            start_block: self.start_block,
        };
        if spec.root_chain_id == 0 {
            return Err("bridge.root_chain_id must be the root chain's EIP-155 id".into());
        }
        if spec.challenge_period_secs == 0 || spec.freeze_period_secs <= spec.challenge_period_secs {
            return Err("bridge: the challenge period must be positive and shorter than the freeze period".into());
        }
        if spec.exit_bond == 0 {
            return Err("bridge.exit_bond must be positive: it pays whoever disproves an exit".into());
        }
        Ok(spec)
    }
}

/// The chain's attestation policy: the root CAs quotes must chain to and what they must say.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AttestationConfig {
    /// A production chain accepts only Intel's root CA and no debug enclaves.
    #[serde(default)]
    pub production: bool,
    /// Accepted root CA certificates, DER in hex. A development chain names its development
    /// root (`tcpchain init`); its quotes are simulated and prove nothing about hardware.
    #[serde(default)]
    pub root_cas: Vec<String>,
    /// Allowed enclave identities, hex: for SGX, MRENCLAVE (the `tcp-enclave` binary's hash
    /// under simulation); for TDX, the TD identity over MRTD, RTMR0–3, the configuration
    /// registers, attributes and XFAM (`tcpchain attest identity` prints it from a quote;
    /// docs/attestation.md).
    #[serde(default)]
    pub measurements: Vec<String>,
    /// The worst TCB status accepted, in Intel's words ("UpToDate", "SWHardeningNeeded", …);
    /// empty means "UpToDate".
    #[serde(default)]
    pub min_tcb: String,
    #[serde(default)]
    pub allow_debug: bool,
    /// The TEE types accepted: "sgx", "tdx".
    #[serde(default = "both_tees")]
    pub tees: Vec<String>,
    /// The oldest TCB evaluation data number accepted (Intel raises it at each TCB recovery);
    /// a production chain must set it.
    #[serde(default)]
    pub min_tcb_evaluation_data_number: Option<u32>,
    /// Intel security advisories (INTEL-SA-…) a platform must not be affected by.
    #[serde(default)]
    pub rejected_advisories: Vec<String>,
    /// Accept platforms whose PCK certificate says SMT is on, that their package membership
    /// can change, or that their keys are cached (multi-package platforms only).
    #[serde(default)]
    pub allow_smt: bool,
    #[serde(default)]
    pub allow_dynamic_platform: bool,
    #[serde(default)]
    pub allow_cached_keys: bool,
    /// The oldest TCB info and QE identity accepted, in seconds since their issue date
    /// (absent: until their own `nextUpdate`).
    #[serde(default)]
    pub max_collateral_age_secs: Option<u64>,
    /// Heights an enclave registration stays current; the compute node re-registers before.
    #[serde(default = "default_attestation_period")]
    pub attestation_period: u64,
    /// How many heights back the beacon value a registration quote is fresh with may be.
    #[serde(default = "default_freshness_window")]
    pub freshness_window: u64,
    /// Raised with every change of this policy: registrations made under an older version
    /// lapse, and their enclaves register again.
    #[serde(default)]
    pub policy_version: u64,
    /// Contract keys a secret-share group member releases to one compute node's enclaves per
    /// `release_rate_window` heights.
    #[serde(default = "default_release_rate_limit")]
    pub release_rate_limit: u32,
    #[serde(default = "default_release_rate_window")]
    pub release_rate_window: u64,
    /// The account (0x address) that may rotate any contract's key, e.g. after a TEE advisory
    /// exposed a measurement (`tcpchain tx rotate-key --exposed-measurement`); absent: only
    /// each contract's owner rotates its key.
    #[serde(default)]
    pub governance: Option<String>,
}

fn default_release_rate_limit() -> u32 {
    600
}

fn default_release_rate_window() -> u64 {
    100
}

fn default_attestation_period() -> u64 {
    86_400
}

fn default_freshness_window() -> u64 {
    100
}

fn both_tees() -> Vec<String> {
    vec!["sgx".into(), "tdx".into()]
}

impl Default for AttestationConfig {
    fn default() -> AttestationConfig {
        AttestationConfig {
            production: false,
            root_cas: Vec::new(),
            measurements: Vec::new(),
            min_tcb: String::new(),
            allow_debug: false,
            tees: both_tees(),
            min_tcb_evaluation_data_number: None,
            rejected_advisories: Vec::new(),
            allow_smt: false,
            allow_dynamic_platform: false,
            allow_cached_keys: false,
            max_collateral_age_secs: None,
            attestation_period: default_attestation_period(),
            freshness_window: default_freshness_window(),
            policy_version: 0,
            release_rate_limit: default_release_rate_limit(),
            release_rate_window: default_release_rate_window(),
            governance: None,
        }
    }
}

impl AttestationConfig {
    /// The verifier this policy describes; a production chain naming another root than
    /// Intel's, or allowing debug enclaves, is refused here.
    pub fn verifier(&self) -> Result<tcp_attestation::Verifier, String> {
        let roots =
            self.root_cas.iter().map(|r| hex::decode(r).map_err(|e| format!("attestation root CA: {e}"))).collect::<Result<Vec<_>, _>>()?;
        let measurements = self
            .measurements
            .iter()
            .map(|m| {
                hex::decode(m)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| format!("attestation measurement {m:?} is not 32 bytes of hex"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let min_tcb = match self.min_tcb.as_str() {
            "" => tcp_attestation::TcbRank::UpToDate,
            name => tcp_attestation::TcbRank::parse(name).ok_or_else(|| format!("attestation min_tcb {name:?} is not a TCB status"))?,
        };
        let tees = self
            .tees
            .iter()
            .map(|name| tcp_attestation::Tee::parse(name).ok_or_else(|| format!("attestation tees: {name:?} is not \"sgx\" or \"tdx\"")))
            .collect::<Result<Vec<_>, _>>()?;
        let policy = tcp_attestation::Policy {
            measurements,
            signers: Vec::new(),
            min_tcb,
            allow_debug: self.allow_debug,
            tees,
            min_tcb_evaluation_data_number: self.min_tcb_evaluation_data_number,
            rejected_advisories: self.rejected_advisories.clone(),
            allow_smt: self.allow_smt,
            allow_dynamic_platform: self.allow_dynamic_platform,
            allow_cached_keys: self.allow_cached_keys,
            max_collateral_age_secs: self.max_collateral_age_secs,
        };
        tcp_attestation::Verifier::new(roots, policy, self.production).map_err(|e| format!("attestation: {e}"))
    }

    /// The rules enclaves register under; none when no root CA is named (no quote could
    /// verify, so the chain registers no enclave).
    pub fn enclave_rules(&self) -> Result<Option<tcp_state::EnclaveRules>, String> {
        let verifier = self.verifier()?;
        if self.root_cas.is_empty() {
            return Ok(None);
        }
        // R of the block before last is the newest a registration can name.
        if !(2..=10_000).contains(&self.freshness_window) {
            return Err("attestation freshness_window must be 2..=10000 heights".into());
        }
        if self.attestation_period == 0 {
            return Err("attestation attestation_period must be at least 1 height".into());
        }
        if self.release_rate_limit == 0 || !(1..=100_000).contains(&self.release_rate_window) {
            return Err("attestation release_rate_limit must be at least 1 and release_rate_window 1..=100000 heights".into());
        }
        let governance = match &self.governance {
            None => None,
            Some(address) => Some(address.parse::<tcp_state::Address>().map_err(|e| format!("attestation governance: {e}"))?),
        };
        Ok(Some(tcp_state::EnclaveRules {
            governance,
            verifier,
            attestation_period: self.attestation_period,
            freshness_window: self.freshness_window,
            policy_version: self.policy_version,
            release_rate_limit: self.release_rate_limit,
            release_rate_window: self.release_rate_window,
        }))
    }
}

/// A validator as the node uses it.
#[derive(Clone, Debug)]
pub struct ValidatorEntry {
    pub name: String,
    pub key: Ed25519PublicKey,
    pub bls_key: [u8; 96],
    pub p2p_address: SocketAddr,
    pub reward_address: Address,
    pub coin_base: u64,
}

/// A genesis checked and decoded.
#[derive(Clone)]
pub struct ChainSpec {
    pub genesis: Genesis,
    /// SHA-256 of the genesis file's bytes: the parent of block 1, and the data directory's
    /// identity.
    pub hash: Digest,
    pub chain_id: ChainId,
    pub validators: Vec<ValidatorEntry>,
    pub allocations: Vec<(Address, u128)>,
    pub bootstrap_logs: Vec<SignedLog>,
    pub enclave_rules: Option<tcp_state::EnclaveRules>,
    pub bridge: Option<BridgeSpec>,
}

pub fn decode_ed25519_public(hex_key: &str) -> Result<Ed25519PublicKey, String> {
    use commonware_codec::DecodeExt as _;
    let bytes = hex::decode(hex_key)?;
    Ed25519PublicKey::decode(commonware_codec::Copying(bytes.as_slice())).map_err(|e| format!("not an ed25519 public key: {e}"))
}

pub fn encode_ed25519_public(key: &Ed25519PublicKey) -> String {
    use commonware_codec::Encode as _;
    hex::encode(&key.encode())
}

impl ChainSpec {
    pub fn load(path: &Path) -> Result<ChainSpec, NodeError> {
        let bytes = std::fs::read(path).map_err(|e| NodeError::Config(format!("cannot read genesis {}: {e}", path.display())))?;
        ChainSpec::from_bytes(&bytes).map_err(|e| NodeError::Config(format!("genesis {}: {e}", path.display())))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<ChainSpec, String> {
        let genesis: Genesis = serde_json::from_slice(bytes).map_err(|e| format!("not a valid genesis: {e}"))?;
        if genesis.version != GENESIS_VERSION {
            return Err(format!("genesis version {} is not supported (this build reads {GENESIS_VERSION})", genesis.version));
        }
        genesis.params.check()?;
        let enclave_rules = genesis.attestation.enclave_rules()?;
        let bridge = genesis.bridge.as_ref().map(BridgeConfig::parse).transpose()?;
        if genesis.attestation.production && bridge.is_some_and(|b| b.confirmation_depth < MIN_PRODUCTION_CONFIRMATIONS) {
            return Err(format!("a production genesis needs bridge.confirmation_depth ≥ {MIN_PRODUCTION_CONFIRMATIONS} (Ethereum's finality): a shallower root-chain reorganisation would freeze the bridge"));
        }
        let chain_id = ChainId::new(&genesis.chain_id).map_err(|e| format!("chain id: {e}"))?;
        if genesis.validators.is_empty() || genesis.validators.len() > 64 {
            return Err("a genesis needs 1..=64 validators".into());
        }
        let mut validators = Vec::with_capacity(genesis.validators.len());
        for v in &genesis.validators {
            let key = decode_ed25519_public(&v.consensus_key).map_err(|e| format!("validator {}: consensus key: {e}", v.name))?;
            let reward_address: Address = v.reward_address.parse().map_err(|e| format!("validator {}: reward address: {e}", v.name))?;
            let bls_key: [u8; 96] = hex::decode(&v.bls_key)
                .ok()
                .and_then(|b| b.try_into().ok())
                .filter(|k: &[u8; 96]| {
                    use commonware_codec::DecodeExt as _;
                    tcp_beacon::validator_key::BlsPublicKey::decode(commonware_codec::Copying(&k[..])).is_ok()
                })
                .ok_or_else(|| format!("validator {}: bls_key is not a BLS12-381 G2 public key (96 bytes hex)", v.name))?;
            if validators.iter().any(|w: &ValidatorEntry| w.key == key) {
                return Err(format!("validator {}: consensus key listed twice", v.name));
            }
            validators.push(ValidatorEntry {
                name: v.name.clone(),
                key,
                bls_key,
                p2p_address: v.p2p_address,
                reward_address,
                coin_base: v.coin_base.max(1),
            });
        }
        let mut allocations = Vec::with_capacity(genesis.allocations.len());
        for a in &genesis.allocations {
            let address: Address = a.address.parse().map_err(|e| format!("allocation {}: {e}", a.address))?;
            let balance: u128 = a.balance.parse().map_err(|e| format!("allocation {}: balance: {e}", a.address))?;
            allocations.push((address, balance));
        }
        if validators.iter().enumerate().any(|(i, v)| validators[..i].iter().any(|w| w.reward_address == v.reward_address)) {
            return Err("two validators share a reward address (it is the operator account their stake is bonded from)".into());
        }
        let mut bootstrap_logs = Vec::with_capacity(genesis.bootstrap_logs.len());
        for (i, log) in genesis.bootstrap_logs.iter().enumerate() {
            let bytes = hex::decode(log).map_err(|e| format!("bootstrap log {i}: {e}"))?;
            bootstrap_logs.push(decode_log(&bytes).map_err(|e| format!("bootstrap log {i}: {e}"))?);
        }
        let hash = tcp_crypto::sha256(&[bytes]);
        let spec = ChainSpec { genesis, hash, chain_id, validators, allocations, bootstrap_logs, enclave_rules, bridge };
        spec.build_genesis_state()?;
        Ok(spec)
    }

    /// The group key the genesis's bootstrap DKG produces (its logs are committed in the first
    /// blocks, so every node derives the same key): a light client's trust anchor read from the
    /// genesis file alone.
    pub fn bootstrap_group_key(&self) -> Result<tcp_beacon::GroupKey, String> {
        use rand_core::SeedableRng as _;
        let keys: Vec<Ed25519PublicKey> = self.validators.iter().map(|v| v.key.clone()).collect();
        let ceremony = tcp_beacon::Ceremony::new(0, None, &keys, &keys).map_err(|e| e.to_string())?;
        let mut transcript = tcp_beacon::Transcript::new(ceremony);
        for log in &self.bootstrap_logs {
            transcript.record(log.clone()).map_err(|e| format!("bootstrap log: {e}"))?;
        }
        // The randomizers of the transcript's batch checks must be unpredictable to whoever
        // wrote the logs.
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(crate::node::random_seed());
        let output = transcript.finish(&mut rng).map_err(|e| format!("the bootstrap DKG does not complete: {e}"))?;
        Ok(tcp_beacon::dkg::group_key(&output))
    }

    pub fn state_config(&self) -> StateConfig {
        StateConfig {
            chain_id: self.chain_id.clone(),
            min_gas_price: self.genesis.params.min_gas_price,
            staking: self.genesis.params.staking,
            enclaves: self.enclave_rules.clone(),
        }
    }

    fn build_genesis_state(&self) -> Result<AccountState, String> {
        let mut state = AccountState::genesis(self.state_config(), &self.allocations).map_err(|e| e.to_string())?;
        let validators: Vec<_> = self
            .validators
            .iter()
            .map(|v| tcp_state::staking::GenesisValidator {
                operator: v.reward_address,
                consensus_key: v.key.clone(),
                bls_key: v.bls_key,
                p2p: v.p2p_address.to_string(),
                bond: u128::from(v.coin_base),
            })
            .collect();
        state.add_genesis_validators(&validators)?;
        if let Some(bridge) = &self.bridge {
            state.enable_bridge(bridge.root_chain_id, bridge.contract);
        }
        Ok(state)
    }

    /// σ at genesis: the allocations and the genesis validators' bonds (stake on top of the
    /// allocations: minted at genesis).
    pub fn genesis_state(&self) -> AccountState {
        self.build_genesis_state().expect("checked at load")
    }

    pub fn params(&self) -> &ChainParams {
        &self.genesis.params
    }
}

/// What a node does.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Votes, proposes and signs beacon partials.
    Validator,
    /// Follows the chain (verifies every block and certificate) without voting.
    Full,
    /// A full node that also runs an enclave and serves confidential computations: it bonds as
    /// a compute node and registers its enclave (the `compute` section of its config).
    Compute,
}

/// A compute node's own settings (`config.json`'s `compute`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ComputeConfig {
    /// The operator account's key, by name in this home's key store (`<home>/keys`): it bonds
    /// the node and registers its enclave.
    pub operator_key: String,
    /// Where clients reach this compute node (http:// or https://).
    pub endpoint: String,
    /// The compute bond, in base units.
    pub bond: String,
    /// The enclave's quoting backend: "simulated" (a development platform) or "tsm" (TDX
    /// through configfs-tsm).
    #[serde(default = "default_quote_backend")]
    pub quote_backend: String,
    /// "sgx" or "tdx" (simulated backend).
    #[serde(default = "default_tee")]
    pub tee: String,
    /// The simulated platform (relative to the home).
    #[serde(default)]
    pub dev_platform: Option<PathBuf>,
    /// The platform's collateral (dcap-qvl JSON from a PCCS; tsm backend).
    #[serde(default)]
    pub collateral: Option<PathBuf>,
    /// What this node charges a client per deploy or execution, in base units (within the
    /// client's max fee, which also covers the data owners' prices).
    #[serde(default = "default_compute_fee")]
    pub fee: String,
    /// Data sources this node fetches data from when a client names none.
    #[serde(default)]
    pub datasources: Vec<String>,
}

fn default_compute_fee() -> String {
    "1000".into()
}

fn default_quote_backend() -> String {
    "simulated".into()
}

fn default_tee() -> String {
    "sgx".into()
}

/// A peer that is not a validator (a full node) that validators accept connections from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FollowerPeer {
    pub name: String,
    pub key: String,
    pub p2p_address: SocketAddr,
}

/// `<home>/config.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub name: String,
    pub role: Role,
    /// Relative paths are relative to the node's home.
    pub genesis: PathBuf,
    pub p2p_listen: SocketAddr,
    /// This node's own p2p address as peers dial it.
    pub p2p_address: SocketAddr,
    pub rpc_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    /// Full nodes the validators let in (they dial the validators).
    #[serde(default)]
    pub followers: Vec<FollowerPeer>,
    /// "info", "debug", …
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Required for the compute role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<ComputeConfig>,
    /// How this node reaches the root chain of the chain's bridge (a validator of a bridged
    /// chain needs it: it checks every block's inbox entries against its own view), and
    /// whether it relays checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<BridgeNodeConfig>,
}

/// A node's part in the bridge (docs/bridge.md).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BridgeNodeConfig {
    /// The root chain's JSON-RPC endpoint (http://host:port).
    pub root_rpc: String,
    /// Relay a checkpoint whenever the chain is this many blocks past the contract's latest
    /// (0: do not relay).
    #[serde(default)]
    pub relay_every: u64,
    /// The account key, by name in this home's key store, that pays for relayed checkpoints
    /// on the root chain (needed when relaying).
    #[serde(default)]
    pub relayer_key: Option<String>,
    /// Name `root_rpc` in the `bridge` RPC answer, so clients reach the same root chain without
    /// being told (a devnet's; leave it off when the URL holds a provider's key).
    #[serde(default)]
    pub advertise_root_rpc: bool,
}

fn default_log_level() -> String {
    "info".into()
}

impl NodeConfig {
    pub fn load(home: &Path) -> Result<NodeConfig, NodeError> {
        let path = home.join("config.json");
        let bytes = std::fs::read(&path).map_err(|e| NodeError::Config(format!("cannot read {}: {e}", path.display())))?;
        let config: NodeConfig = serde_json::from_slice(&bytes).map_err(|e| NodeError::Config(format!("{}: {e}", path.display())))?;
        config.check().map_err(|e| NodeError::Config(format!("{}: {e}", path.display())))?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if let Some(bridge) = &self.bridge {
            if !bridge.root_rpc.starts_with("http://") {
                return Err(format!("bridge.root_rpc {:?} is not an http:// URL", bridge.root_rpc));
            }
            if bridge.relay_every > 0 && bridge.relayer_key.is_none() {
                return Err("bridge.relay_every needs bridge.relayer_key (the account that pays for checkpoints)".into());
            }
        }
        match (&self.role, &self.compute) {
            (Role::Compute, None) => Err("the compute role needs a `compute` section".into()),
            (Role::Validator | Role::Full, Some(_)) => Err("a `compute` section needs \"role\": \"compute\"".into()),
            (_, Some(compute)) => {
                tcp_state::compute::check_endpoint(&compute.endpoint).map_err(|e| format!("compute.endpoint: {e}"))?;
                compute.bond.parse::<u128>().map_err(|_| "compute.bond must be a decimal integer".to_string())?;
                if !["simulated", "tsm"].contains(&compute.quote_backend.as_str()) {
                    return Err("compute.quote_backend must be \"simulated\" or \"tsm\"".into());
                }
                tcp_attestation::Tee::parse(&compute.tee).ok_or("compute.tee must be \"sgx\" or \"tdx\"")?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub fn genesis_path(&self, home: &Path) -> PathBuf {
        if self.genesis.is_absolute() { self.genesis.clone() } else { home.join(&self.genesis) }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The consensus key of test validator `i`.
    pub(crate) fn test_key(i: u64) -> tcp_crypto::Ed25519PrivateKey {
        tcp_crypto::insecure_ed25519_from_seed(1 + i)
    }

    /// A genesis of `n` validators ([`test_key`]) without bootstrap logs (the beacon does not
    /// start), for tests of storage, parameters and the node's handling of messages.
    pub(crate) fn test_genesis_of(n: u64) -> Genesis {
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(1);
        let validators: Vec<GenesisValidator> = (0..n)
            .map(|i| {
                let (_, bls) = tcp_beacon::validator_key::generate(&mut rng);
                let operator = tcp_state::AccountKey::from_bytes(&[3 + i as u8; 32]).expect("a valid key").address();
                GenesisValidator {
                    name: format!("v{i}"),
                    consensus_key: encode_ed25519_public(&commonware_cryptography::Signer::public_key(&test_key(i))),
                    bls_key: hex::encode(&tcp_beacon::validator_key::public_key_bytes(&bls)),
                    p2p_address: SocketAddr::from(([127, 0, 0, 1], 1 + i as u16)),
                    reward_address: operator.to_string(),
                    coin_base: 1_000_000,
                }
            })
            .collect();
        let allocations = validators.iter().map(|v| Allocation { address: v.reward_address.clone(), balance: "1000".into() }).collect();
        Genesis {
            version: GENESIS_VERSION,
            chain_id: "test-chain".into(),
            genesis_time_ms: 1,
            params: ChainParams::default(),
            validators,
            allocations,
            bootstrap_logs: Vec::new(),
            attestation: AttestationConfig::default(),
            bridge: None,
        }
    }

    pub(crate) fn test_genesis() -> Genesis {
        test_genesis_of(1)
    }

    pub(crate) fn test_spec() -> ChainSpec {
        ChainSpec::from_bytes(&serde_json::to_vec(&test_genesis()).expect("serializes")).expect("a valid genesis")
    }

    #[test]
    fn a_set_larger_than_a_reshare_can_hold_is_refused() {
        let mut genesis = test_genesis();
        genesis.params.staking.max_validators = tcp_beacon::dkg::MAX_PARTICIPANTS;
        assert!(ChainSpec::from_bytes(&serde_json::to_vec(&genesis).unwrap()).is_ok());
        genesis.params.staking.max_validators = tcp_beacon::dkg::MAX_PARTICIPANTS + 1;
        let err = ChainSpec::from_bytes(&serde_json::to_vec(&genesis).unwrap()).err().expect("refused");
        assert!(err.contains("max_validators") && err.contains("256"), "{err}");
    }

    /// Issue 18, item 5: a production chain's genesis must name a minimum TCB evaluation data
    /// number (at least 17): without one the chain would accept collateral from before Intel's
    /// TCB recoveries, so the node refuses to load it.
    /// A bridged genesis writes the bridge status into the state; a bridge section that would
    /// break the exit game, or names no contract, does not load.
    #[test]
    fn a_bridge_section_is_checked_and_written_into_the_genesis_state() {
        let config = BridgeConfig {
            root_chain_id: 31337,
            contract: format!("0x{}", "ab".repeat(20)),
            challenge_period_secs: 3600,
            freeze_period_secs: 7200,
            exit_bond: "100".into(),
            min_deposit: "1".into(),
            confirmation_depth: 64,
            start_block: 0,
        };
        let with = |bridge: BridgeConfig| {
            let mut genesis = test_genesis();
            genesis.bridge = Some(bridge);
            ChainSpec::from_bytes(&serde_json::to_vec(&genesis).unwrap())
        };
        let spec = with(config.clone()).unwrap();
        let status = spec.genesis_state().bridge_status().unwrap();
        assert_eq!((status.root_chain_id, status.contract, status.inbox_processed), (31337, [0xab; 20], 0));
        assert!(ChainSpec::from_bytes(&serde_json::to_vec(&test_genesis()).unwrap()).unwrap().genesis_state().bridge_status().is_none());
        for bad in [
            BridgeConfig { contract: "ab".repeat(20), ..config.clone() },
            BridgeConfig { contract: format!("0x{}", "00".repeat(20)), ..config.clone() },
            BridgeConfig { challenge_period_secs: 7200, ..config.clone() },
            BridgeConfig { exit_bond: "0".into(), ..config.clone() },
            BridgeConfig { exit_bond: "lots".into(), ..config.clone() },
            BridgeConfig { root_chain_id: 0, ..config.clone() },
        ] {
            assert!(with(bad.clone()).is_err(), "{bad:?} loaded");
        }
    }

    #[test]
    fn a_production_genesis_without_a_minimum_tcb_evaluation_data_number_is_refused() {
        let mut genesis = test_genesis();
        genesis.attestation.production = true;
        genesis.attestation.root_cas = vec![hex::encode(tcp_attestation::INTEL_ROOT_CA_DER)];
        genesis.attestation.measurements = vec!["ab".repeat(32)];
        let load = |g: &Genesis| ChainSpec::from_bytes(&serde_json::to_vec(g).unwrap()).err();
        let err = load(&genesis).expect("refused without a minimum");
        assert!(err.contains("minimum TCB evaluation data number"), "{err}");
        genesis.attestation.min_tcb_evaluation_data_number = Some(16);
        assert!(load(&genesis).is_some(), "a minimum below 17 is refused too");
        genesis.attestation.min_tcb_evaluation_data_number = Some(17);
        assert_eq!(load(&genesis), None, "17 loads");
    }
}
