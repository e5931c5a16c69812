//! The simulated chain: a genesis made the way `tcpchain init` makes one (the bootstrap DKG run
//! locally), with deterministic keys for every identity of the run, and the setup each node
//! starts from.

use crate::SimConfig;
use commonware_cryptography::Signer as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::net::SocketAddr;
use std::sync::Arc;
use tcp_beacon::dkg::BeaconShare;
use tcp_crypto::{Ed25519PrivateKey, Ed25519PublicKey, insecure_ed25519_from_seed};
use tcp_node::genesis::{Allocation, ChainParams, ChainSpec, GENESIS_VERSION, Genesis, GenesisValidator, NodeConfig, Role};
use tcp_node::keystore::NodeSecrets;
use tcp_state::AccountKey;

/// The simulated chain's id (every signature of the run is domain-separated by it).
pub const CHAIN_ID: &str = "tcp-sim";
/// What each operator account holds at genesis: enough to bond (churn) and pay fees.
const OPERATOR_BALANCE: u128 = 1_000_000_000_000;

/// One identity of the run: a genesis validator, or (churn) a candidate that bonds later.
pub struct Identity {
    pub consensus_key: Ed25519PrivateKey,
    pub bls_key: tcp_beacon::validator_key::BlsPrivateKey,
    pub operator: AccountKey,
    pub beacon_share: Option<(u64, BeaconShare)>,
}

impl Identity {
    pub fn public_key(&self) -> Ed25519PublicKey {
        self.consensus_key.public_key()
    }
}

pub struct SimChain {
    pub spec: ChainSpec,
    pub identities: Vec<Identity>,
    /// The compute node the simulator plays (releases), its platform and the genesis PKI.
    pub compute: Option<ComputeIdentity>,
}

/// The simulated compute node: its operator account, its enclave's keys, and the development
/// platform whose quotes the genesis PKI verifies.
pub struct ComputeIdentity {
    pub operator: AccountKey,
    pub enclave: Ed25519PrivateKey,
    pub backend: tcp_attestation::SimulatedBackend,
    pub collateral: Vec<u8>,
}

/// The virtual clock's start (2026-11-01): attestation collateral is dated, so runs with
/// releases start when the genesis PKI is valid.
pub const START_SECS: u64 = 1_793_491_200;
/// The identity the simulated enclave reports and the genesis allows.
pub const ENCLAVE_MEASUREMENT: [u8; 32] = [0x5e; 32];

/// N₀ of identity `i`: 1 to 4 million stake units, so proposer weights differ (block rewards,
/// which compound into the bond, stay small beside them).
pub fn coin_base(i: usize) -> u64 {
    1_000_000 * (1 + (i % 4) as u64)
}

/// A fake but distinct p2p address per identity (the simulated network routes by key).
pub fn p2p_address(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8 + 1], 26656))
}

impl SimChain {
    pub fn new(cfg: &SimConfig) -> SimChain {
        let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed ^ 0x5eed_c4a1);
        let pool = cfg.pool_size();
        let mut identities: Vec<Identity> = (0..pool)
            .map(|i| Identity {
                consensus_key: insecure_ed25519_from_seed(i as u64),
                bls_key: tcp_beacon::validator_key::generate(&mut rng).0,
                operator: AccountKey::from_bytes(&operator_secret(i)).expect("a valid account key"),
                beacon_share: None,
            })
            .collect();
        let validators: Vec<GenesisValidator> = identities[..cfg.validators]
            .iter()
            .enumerate()
            .map(|(i, id)| GenesisValidator {
                name: format!("v{i}"),
                consensus_key: tcp_node::genesis::encode_ed25519_public(&id.public_key()),
                bls_key: tcp_types::hex::encode(&tcp_beacon::validator_key::public_key_bytes(&tcp_beacon::validator_key::public_key(
                    &id.bls_key,
                ))),
                p2p_address: p2p_address(i),
                reward_address: id.operator.address().to_string(),
                coin_base: coin_base(i),
            })
            .collect();
        let mut allocations: Vec<Allocation> = identities
            .iter()
            .map(|id| Allocation { address: id.operator.address().to_string(), balance: OPERATOR_BALANCE.to_string() })
            .collect();
        // Releases: a development PKI in the genesis and a compute operator with funds, from an
        // rng of their own (the rest of the run draws as without them).
        let mut attestation = tcp_node::genesis::AttestationConfig::default();
        let compute = cfg.releases.then(|| {
            let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed ^ 0xc0_3e7e);
            let pki = tcp_attestation::DevPki::generate(&mut rng, START_SECS - 86_400, std::time::Duration::from_secs(365 * 86_400))
                .expect("a development PKI");
            let platform = pki.issue_platform(&mut rng, tcp_attestation::PlatformTcb::default(), [0, 0x90, 0x6e, 0xd5, 0, 0]).expect("a platform");
            let collateral = platform.collateral(tcp_attestation::Tee::Sgx).as_bytes().to_vec();
            let backend = tcp_attestation::SimulatedBackend::new(platform, tcp_attestation::Tee::Sgx, &mut rng);
            attestation.root_cas = vec![tcp_types::hex::encode(&pki.root_ca_der())];
            attestation.measurements = vec![tcp_types::hex::encode(&ENCLAVE_MEASUREMENT)];
            attestation.release_rate_limit = 10_000;
            let operator = AccountKey::from_bytes(&operator_secret(10_000)).expect("a valid account key");
            allocations.push(Allocation { address: operator.address().to_string(), balance: OPERATOR_BALANCE.to_string() });
            ComputeIdentity { operator, enclave: insecure_ed25519_from_seed(0xe0c1a7e), backend, collateral }
        });
        let defaults = ChainParams::default();
        let params = ChainParams {
            block_interval_ms: cfg.block_interval.as_millis() as u64,
            epoch_length: cfg.epoch_length,
            dkg_window: cfg.dkg_window.min(cfg.epoch_length - 1),
            reshare_window: cfg.reshare_window().min(cfg.epoch_length),
            timeout_propose_ms: 1000,
            staking: tcp_state::StakingParams { unbonding_period: 4, ..defaults.staking },
            ..defaults
        };
        // The bootstrap DKG of the genesis set, as `tcpchain init` runs it.
        let members: Vec<tcp_beacon::ledger::Member> = identities[..cfg.validators]
            .iter()
            .enumerate()
            .map(|(i, id)| tcp_beacon::ledger::Member { key: id.public_key(), coin_base: coin_base(i) })
            .collect();
        let chain_id = tcp_types::ChainId::new(CHAIN_ID).expect("a valid chain id");
        let (ledger, _) = tcp_beacon::Ledger::genesis(chain_id, params.beacon(), Arc::new(move |_, _| members.clone()));
        let ceremony = ledger.ceremony().expect("the genesis ledger starts a DKG").clone();
        let keys: Vec<Ed25519PrivateKey> = identities[..cfg.validators].iter().map(|id| id.consensus_key.clone()).collect();
        let (logs, _, shares) = tcp_beacon::dkg::run_local_ceremony(&ceremony, &keys, &[], &mut rng).expect("the bootstrap DKG");
        for id in identities.iter_mut() {
            let key = id.public_key();
            id.beacon_share = shares.iter().find(|(pk, _)| *pk == key).map(|(_, s)| (ceremony.round(), s.clone()));
        }
        let genesis = Genesis {
            version: GENESIS_VERSION,
            chain_id: CHAIN_ID.into(),
            genesis_time_ms: 0,
            params,
            validators,
            allocations,
            bootstrap_logs: logs.iter().map(|l| tcp_types::hex::encode(&tcp_beacon::dkg::encode_log(l))).collect(),
            attestation,
            bridge: None,
        };
        let bytes = serde_json::to_vec(&genesis).expect("a genesis serializes");
        let spec = ChainSpec::from_bytes(&bytes).expect("the simulated genesis is valid");
        SimChain { spec, identities, compute }
    }

    /// What node `i` starts from (the same after every restart: its disk holds the rest).
    pub fn setup(&self, cfg: &SimConfig, i: usize, disk: Arc<tcp_node::disk::MemoryDisk>, seed: [u8; 32]) -> tcp_node::node::NodeSetup {
        let id = &self.identities[i];
        let address = p2p_address(i);
        let config = NodeConfig {
            name: format!("n{i}"),
            role: Role::Validator,
            genesis: "genesis.json".into(),
            p2p_listen: address,
            p2p_address: address,
            rpc_listen: address,
            metrics_listen: address,
            followers: Vec::new(),
            log_level: "warn".into(),
            compute: None,
            bridge: None,
        };
        let secrets = NodeSecrets { consensus_key: id.consensus_key.clone(), bls_key: id.bls_key.clone(), beacon_share: id.beacon_share.clone() };
        #[allow(unused_mut)]
        let mut setup = tcp_node::node::NodeSetup::new(disk, home(i), config, self.spec.clone(), secrets, seed);
        #[cfg(feature = "fault-injection")]
        if i < cfg.validators - cfg.byzantine {
            setup.injected_fault = cfg.injected_fault;
        }
        let _ = cfg;
        setup
    }
}

/// Node `i`'s home on its simulated disk.
pub fn home(i: usize) -> std::path::PathBuf {
    format!("/sim/node-{i}").into()
}

/// Where node `i` keeps its chain (as `tcp_node::node::start` lays out a home).
pub fn data_dir(i: usize) -> std::path::PathBuf {
    home(i).join("data")
}

/// A valid ed25519 account secret per identity.
fn operator_secret(i: usize) -> [u8; 32] {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    secret[31] = 0x51;
    secret
}
