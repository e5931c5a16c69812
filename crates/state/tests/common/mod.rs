//! A chain state with attestation rules under a development PKI, two bonded compute nodes and
//! Υ/Ω driven block by block: what the enclave-registry and compute-transaction tests share.
#![allow(dead_code, unused_imports)]

use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng as _;
pub use tcp_attestation::{
    AttestationError, DevPki, DevPlatform, EnclaveIdentity, PlatformTcb, Policy, QuoteBackend, Registration, SimulatedBackend, TcbRank,
    Tee, Verifier,
};
pub use tcp_dkmp::{CollateralRefused, RegistrationRefused, registration_freshness};
pub use tcp_state::enclaves::{MAX_ENCLAVES_PER_OPERATOR, randomness_key};
pub use tcp_state::{AccountKey, AccountState, Action, BlockEnv, BlockOutcome, EnclaveRules, StakingParams, StateConfig, Transaction, TxError};
pub use tcp_types::ChainId;

/// 2026-11-01, inside the development PKI's validity.
pub const START: u64 = 1_793_491_200;
pub const DAY: u64 = 86_400;
pub const MEASUREMENT: [u8; 32] = [0x5a; 32];
pub const FMSPC: [u8; 6] = [0x00, 0x90, 0x6e, 0xd5, 0x00, 0x00];
pub const WINDOW: u64 = 10;
pub const PERIOD: u64 = 1_000;

pub fn chain() -> ChainId {
    ChainId::new("enclave-registry").unwrap()
}

pub struct World {
    pub state: AccountState,
    pub pki: DevPki,
    pub platform: DevPlatform,
    pub backend: SimulatedBackend,
    pub operator: AccountKey,
    pub other: AccountKey,
    pub nonces: std::collections::HashMap<[u8; 20], u64>,
    pub height: u64,
}

/// The enclave signing key whose public half is `key(n)`.
pub fn enclave_signer(n: u8) -> tcp_crypto::Ed25519PrivateKey {
    tcp_crypto::ed25519_from_secret(&[n; 32])
}

/// An enclave's ed25519 signing key (registration verifies it is one).
pub fn key(n: u8) -> [u8; 32] {
    use commonware_codec::Encode as _;
    use commonware_cryptography::Signer as _;
    tcp_crypto::ed25519_from_secret(&[n; 32]).public_key().encode().as_ref().try_into().unwrap()
}

pub fn r(height: u64) -> [u8; 32] {
    tcp_crypto::sha256(&[b"R", &height.to_be_bytes()]).0
}

impl World {
    pub fn new(with_rules: bool) -> World {
        World::build(with_rules, None)
    }

    /// A world whose attestation rules name `governance` (the account that may rotate any key).
    pub fn build(with_rules: bool, governance: Option<tcp_state::Address>) -> World {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let pki = DevPki::generate(&mut rng, START, Duration::from_secs(365 * DAY)).unwrap();
        let platform = pki.issue_platform(&mut rng, PlatformTcb::default(), FMSPC).unwrap();
        let backend = SimulatedBackend::new(DevPlatform::from_json(&platform.to_json()).unwrap(), Tee::Sgx, &mut rng);
        let verifier = Verifier::new(vec![pki.root_ca_der()], Policy { measurements: vec![MEASUREMENT], ..Policy::default() }, false).unwrap();
        let rules = EnclaveRules { verifier, attestation_period: PERIOD, freshness_window: WINDOW, policy_version: 3, release_rate_limit: 10, release_rate_window: 10, governance };
        let config = StateConfig {
            chain_id: chain(),
            min_gas_price: 1,
            staking: StakingParams::default(),
            enclaves: with_rules.then_some(rules),
        };
        let operator = AccountKey::from_bytes(&[1; 32]).unwrap();
        let other = AccountKey::from_bytes(&[2; 32]).unwrap();
        let state = AccountState::genesis(config, &[(operator.address(), 1 << 80), (other.address(), 1 << 80)]).unwrap();
        let mut world = World { state, pki, platform, backend, operator, other, nonces: Default::default(), height: 1 };
        for key in [world.operator.clone(), world.other.clone()] {
            world.submit(&key, Action::RegisterCompute { endpoint: "https://compute.example".into(), amount: 5_000 }).unwrap();
        }
        world
    }

    pub fn env(&self) -> BlockEnv {
        BlockEnv { height: self.height, time_secs: START + DAY + self.height, fee_recipient: tcp_state::Address([0xfe; 20]) }
    }

    pub fn submit(&mut self, key: &AccountKey, action: Action) -> Result<(), TxError> {
        let nonce = *self.nonces.get(&key.address().0).unwrap_or(&0);
        let tx = Transaction { chain_id: chain(), nonce, gas_price: 1, gas_limit: 10_000_000, action }.sign(key).verify(&chain()).unwrap();
        let root = self.state.state_root();
        let checked = self.state.check(&tx, &self.env()).map(|_| ());
        let applied = self.state.apply_transaction(&tx, &self.env()).map(|_| ());
        assert_eq!(checked, applied, "the mempool's check and Υ agree");
        match applied {
            Ok(()) => *self.nonces.entry(key.address().0).or_default() += 1,
            Err(_) => assert_eq!(self.state.state_root(), root, "a refused transaction changes nothing"),
        }
        applied
    }

    /// Collateral posted and one enclave registered for each compute node (`operator`'s signs
    /// with `enclave_signer(7)`, `other`'s with `enclave_signer(8)`), at height 5.
    pub fn enroll(&mut self) {
        self.advance_to(5);
        let (collateral, witness) = (self.collateral(1), self.witness());
        let other = self.other.clone();
        self.submit(&other, Action::PostCollateral { collateral, witness }).unwrap();
        let operator = self.operator.clone();
        let registration = self.registration(&operator, 3, key(7));
        self.submit(&operator, registration).unwrap();
        let registration = self.registration(&other, 3, key(8));
        self.submit(&other, registration).unwrap();
    }

    /// Ω of the current block (carrying R of the previous height), then the next height.
    pub fn end_block(&mut self) {
        let outcome = BlockOutcome {
            height: self.height,
            randomness: Some((self.height - 1, r(self.height - 1))),
            chain_keys: Some(chain_keys()),
            ..Default::default()
        };
        self.state.finalize_block(&outcome).unwrap();
        self.height += 1;
    }

    pub fn advance_to(&mut self, height: u64) {
        while self.height < height {
            self.end_block();
        }
    }

    pub fn collateral(&self, day: u64) -> Vec<u8> {
        self.pki
            .collateral(Tee::Sgx, &self.platform.tcb, &FMSPC, TcbRank::UpToDate, START + day * DAY, START + (day + 30) * DAY)
            .unwrap()
            .into_bytes()
    }

    pub fn witness(&self) -> Vec<u8> {
        self.backend.quote(&EnclaveIdentity { measurement: [1; 32], debug: false }, &[0; 64]).unwrap().quote
    }

    /// What the enclave of `operator` makes: a quote binding its keys to the chain and the
    /// freshness of `freshness_height` for that operator.
    pub fn registration(&self, operator: &AccountKey, freshness_height: u64, signing_key: [u8; 32]) -> Action {
        let registration = Registration {
            chain_id: chain(),
            freshness: registration_freshness(&r(freshness_height), &operator.address().0),
            chain_keys: chain_keys().digest(),
            signing_key,
            x25519_key: [2; 32],
        };
        let quote =
            self.backend.quote(&EnclaveIdentity { measurement: MEASUREMENT, debug: false }, &registration.report_data()).unwrap().quote;
        Action::RegisterEnclave { freshness_height, signing_key, x25519_key: [2; 32], quote }
    }
}

/// What the host reports to Ω: the beacon's group key and the master public key.
pub fn chain_keys() -> tcp_attestation::ChainKeys {
    tcp_attestation::ChainKeys { group_key: [0x71; 96], master_key: [0x72; 96] }
}

