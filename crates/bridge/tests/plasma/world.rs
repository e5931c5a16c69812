//! A TCP chain and its root chain, joined by `PlasmaRoot`: the TCP side is `tcp_state`'s own
//! state (the bridge transitions a node applies), its headers signed by a real threshold group;
//! the root chain is revm with the compiled contract. Every test of the exit game drives one.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng as _;
use std::collections::BTreeMap;
use tcp_beacon::dkg::run_local_ceremony;
use tcp_beacon::finality::finality_point;
use tcp_beacon::signature::recover_signature;
use tcp_beacon::{Ceremony, FinalitySignature, finality_message};
use tcp_bridge::calldata;
use tcp_bridge::plasma::{self, BridgeParams};
use tcp_bridge::{CallOutcome, EmbeddedChain};
use tcp_light::{BodyRoots, Header};
use tcp_state::bridge::{BridgeAccount, bridge_account_key, bridge_status_key, withdrawal_key};
use tcp_state::{AccountKey, AccountState, Action, Address, BlockEnv, StakingParams, StateConfig, Transaction};
use tcp_types::{ChainId, Digest, Height, Round, ValidatorIndex};

pub const CHAIN: &str = "tcp-plasma-test";
pub const ETH: u128 = 1_000_000_000_000_000_000;

/// Test parameters: an hour of challenges, a day to freeze, a 0.1 ETH bond.
pub fn params() -> BridgeParams {
    BridgeParams { challenge_period: 3600, freeze_period: 24 * 3600, exit_bond: ETH / 10, min_deposit: 1_000, confirmation_depth: 0 }
}

/// The chain's threshold group (4 validators): signs headers' φ.
pub struct Group {
    shares: Vec<tcp_beacon::dkg::BeaconShare>,
    sharing: tcp_beacon::PublicSharing,
}

impl Group {
    pub fn new(seed: u64) -> Group {
        let keys: Vec<_> = (0..4).map(tcp_crypto::insecure_ed25519_from_seed).collect();
        let public: Vec<_> = keys.iter().map(commonware_cryptography::Signer::public_key).collect();
        let ceremony = Ceremony::new(0, None, &public, &public).unwrap();
        let (_, output, shares) = run_local_ceremony(&ceremony, &keys, &[], &mut ChaCha20Rng::seed_from_u64(seed)).unwrap();
        Group { shares: shares.into_iter().map(|(_, s)| s).collect(), sharing: output.public().clone() }
    }

    pub fn key(&self) -> calldata::G2Bytes {
        calldata::group_key_point(self.sharing.public())
    }

    /// A header of `chain` at `height` over `state_root` (with `salt` in its timestamp, to make
    /// two different headers of one height), and its φ in EIP-2537 form.
    pub fn header(&self, chain: &str, height: u64, state_root: [u8; 32], salt: u64) -> (Vec<u8>, u32, Vec<u8>) {
        let header = Header {
            height: Height(height),
            round: Round(0),
            proposer: ValidatorIndex(0),
            parent: Digest([1; 32]),
            timestamp_ms: 1_000 * height + salt,
            state_root: Digest(state_root),
            roots: BodyRoots::default(),
            previous_signature: None,
            previous_finality: None,
            extra_roots: Vec::new(),
        }
        .encode();
        let id = tcp_crypto::sha256(&[&header]);
        let chain_id = ChainId::new(chain).unwrap();
        let point = finality_point(&finality_message(&chain_id, Height(height), Round(0), &id));
        let partials: Vec<_> = self.shares.iter().map(|s| point.sign(s)).collect();
        let signature = FinalitySignature(recover_signature(&self.sharing, &partials).unwrap().0);
        (header, 0, calldata::finality_point(&signature).to_vec())
    }
}

/// A checkpoint as relayed: header, round, φ, the status leaf and its siblings.
#[derive(Clone, Debug)]
pub struct Relay {
    pub height: u64,
    pub header: Vec<u8>,
    pub round: u32,
    pub signature: Vec<u8>,
    pub status: Vec<u8>,
    pub siblings: Vec<[u8; 32]>,
}

impl Relay {
    pub fn calldata(&self) -> Vec<u8> {
        plasma::submit_checkpoint(&self.header, self.round, &self.signature, &self.status, &self.siblings)
    }
}

pub struct World {
    pub l1: EmbeddedChain,
    pub root: [u8; 20],
    pub tcp: AccountState,
    pub height: u64,
    pub group: Group,
    pub chain: String,
    /// The TCP state at each height a checkpoint was made of.
    pub snapshots: BTreeMap<u64, AccountState>,
    pub relayer: [u8; 20],
}

pub fn user(i: u8) -> AccountKey {
    AccountKey::from_bytes(&[i + 1; 32]).unwrap()
}

pub fn l1(key: &AccountKey) -> [u8; 20] {
    key.address().0
}

impl World {
    pub fn new() -> World {
        World::with(CHAIN, params())
    }

    /// A root chain with `PlasmaRoot` deployed for chain `chain`, and TCP's genesis bridged to
    /// it; users 0..4 funded on both.
    pub fn with(chain: &str, params: BridgeParams) -> World {
        let group = Group::new(7);
        let mut l1 = EmbeddedChain::new();
        let root = l1.deploy(plasma::plasma_root_creation(&tcp_bridge::plasma_root().bytecode, chain, &group.key(), &params)).unwrap();
        let config = StateConfig { chain_id: ChainId::new(chain).unwrap(), min_gas_price: 0, staking: StakingParams::default(), enclaves: None };
        let users: Vec<_> = (0..4).map(|i| (user(i).address(), ETH)).collect();
        let mut tcp = AccountState::genesis(config, &users).unwrap();
        tcp.enable_bridge(EmbeddedChain::CHAIN_ID, root);
        let relayer = [0x77; 20];
        l1.fund(relayer, 100 * ETH);
        for i in 0..4 {
            l1.fund(l1_address(i), 100 * ETH);
        }
        World { l1, root, tcp, height: 0, group, chain: chain.to_string(), snapshots: BTreeMap::new(), relayer }
    }

    /// A transaction on the root chain to the contract.
    pub fn send(&mut self, from: [u8; 20], value: u128, calldata: Vec<u8>) -> CallOutcome {
        self.l1.send(from, self.root, value, calldata).unwrap()
    }

    pub fn deposit(&mut self, from: &AccountKey, recipient: &Address, amount: u128) -> CallOutcome {
        self.send(l1(from), amount, plasma::deposit(recipient))
    }

    /// One TCP block: the inbox entries the root chain has that TCP has not processed, as a
    /// validator following the contract's logs reads them (confirmation depth 0 here).
    pub fn process_inbox(&mut self) {
        let entries = plasma::inbox_entries(self.l1.logs(), self.root).unwrap();
        let done = self.tcp.bridge_status().unwrap().inbox_processed;
        let next: Vec<_> = entries.into_iter().filter(|e| e.id >= done).collect();
        self.height += 1;
        self.tcp.apply_inbox(&next).unwrap();
    }

    /// A TCP transaction in a block of its own.
    pub fn tcp_send(&mut self, key: &AccountKey, action: Action) -> Result<tcp_state::Receipt, tcp_state::TxError> {
        self.height += 1;
        let nonce = self.tcp.account(&key.address()).nonce;
        let chain = ChainId::new(&self.chain).unwrap();
        let tx = Transaction { chain_id: chain.clone(), nonce, gas_price: 0, gas_limit: 100_000, action }.sign(key).verify(&chain).unwrap();
        self.tcp.apply_transaction(&tx, &BlockEnv { height: self.height, time_secs: 0, fee_recipient: Address([0xee; 20]) })
    }

    /// A checkpoint of TCP's current state at a new height, not yet relayed.
    pub fn make_checkpoint(&mut self) -> Relay {
        self.height += 1;
        let root = self.tcp.state_root();
        let (header, round, signature) = self.group.header(&self.chain, self.height, root, 0);
        let (proven_root, proof) = self.tcp.prove_committed(&bridge_status_key());
        assert_eq!(proven_root, root);
        self.snapshots.insert(self.height, self.tcp.clone());
        Relay { height: self.height, header, round, signature, status: proof.value().unwrap().to_vec(), siblings: proof.siblings }
    }

    /// Make a checkpoint and relay it; panics unless the contract takes it.
    pub fn checkpoint(&mut self) -> u64 {
        let relay = self.make_checkpoint();
        let outcome = self.send(self.relayer, 0, relay.calldata());
        assert!(outcome.is_success(), "checkpoint {} refused: {:?}", relay.height, reverted(&outcome));
        relay.height
    }

    /// A key's value and siblings in the checkpoint of `height`.
    pub fn prove(&self, height: u64, key: &[u8; 32]) -> (Vec<u8>, Vec<[u8; 32]>) {
        let (_, proof) = self.snapshots[&height].prove_committed(key);
        (proof.value().map(<[u8]>::to_vec).unwrap_or_default(), proof.siblings)
    }

    pub fn account_proof(&self, height: u64, owner: &Address) -> (Vec<u8>, Vec<[u8; 32]>) {
        self.prove(height, &bridge_account_key(owner))
    }

    pub fn withdrawal_proof(&self, height: u64, id: u64) -> (Vec<u8>, Vec<[u8; 32]>) {
        self.prove(height, &withdrawal_key(id))
    }

    pub fn start_withdrawal_exit(&mut self, from: [u8; 20], height: u64, id: u64) -> CallOutcome {
        let (record, siblings) = self.withdrawal_proof(height, id);
        let bond = params().exit_bond;
        self.send(from, bond, plasma::start_withdrawal_exit(height, id, &record, &siblings))
    }

    pub fn start_account_exit(&mut self, owner: &AccountKey, height: u64) -> CallOutcome {
        let (account, siblings) = self.account_proof(height, &owner.address());
        let bond = params().exit_bond;
        self.send(l1(owner), bond, plasma::start_account_exit(height, &account, &siblings))
    }

    /// Commit, then (a block later) reveal a challenge of `exit_id` with the checkpoint of
    /// `height`, from `challenger`.
    pub fn challenge(&mut self, challenger: [u8; 20], exit_id: u64, height: u64, owner: &Address) -> CallOutcome {
        let salt = [exit_id as u8 ^ 0x5a; 32];
        let (account, siblings) = self.account_proof(height, owner);
        let commitment = plasma::challenge_commitment(exit_id, challenger, height, &account, salt);
        assert!(self.send(challenger, 0, plasma::commit_challenge(commitment)).is_success());
        self.send(challenger, 0, plasma::challenge_account_exit(exit_id, salt, height, &account, &siblings))
    }

    /// What a successful challenger earns: half the bond (the other half is burned).
    pub fn reward() -> u128 {
        params().exit_bond / 2
    }

    /// The exit's `exitableAt`.
    pub fn exitable_at(&mut self, exit_id: u64) -> u64 {
        let call = plasma::IPlasmaRoot::exitsCall { id: alloy_sol_types::private::U256::from(exit_id) };
        let CallOutcome::Success { output, .. } = self.l1.view(self.root, alloy_sol_types::SolCall::abi_encode(&call)).unwrap() else { panic!("exits()") };
        u64::from_be_bytes(output[4 * 32 + 24..5 * 32].try_into().unwrap())
    }

    /// Move the clock so that the next transaction's block has time `at`.
    pub fn next_block_at(&mut self, at: u64) {
        let next = self.l1.timestamp() + tcp_bridge::evm::BLOCK_TIME_SECS;
        assert!(at >= next, "cannot go back in time");
        self.l1.advance_time(at - next);
    }

    pub fn finalize(&mut self, max: u64) -> CallOutcome {
        self.send(self.relayer, 0, plasma::finalize_exits(max))
    }

    /// Pull what the contract owes `who`; the wei received (0 if the pull failed).
    pub fn pull(&mut self, who: [u8; 20]) -> u128 {
        let before = self.l1.balance(who);
        let outcome = self.send(who, 0, plasma::withdraw());
        if !outcome.is_success() {
            return 0;
        }
        // The embedded chain charges no gas (base fee and gas price 0).
        (self.l1.balance(who) - before).to::<u128>()
    }

    pub fn withdrawable(&mut self, who: [u8; 20]) -> u128 {
        self.view_u256(plasma::IPlasmaRoot::withdrawableCall { account: who.into() })
    }

    pub fn view_u256<C: alloy_sol_types::SolCall>(&mut self, call: C) -> u128 {
        let CallOutcome::Success { output, .. } = self.l1.view(self.root, call.abi_encode()).unwrap() else { panic!("view failed") };
        u128::from_be_bytes(output[16..32].try_into().unwrap())
    }

    pub fn frozen(&mut self) -> bool {
        self.view_u256(plasma::IPlasmaRoot::frozenCall {}) == 1
    }

    pub fn contract_balance(&self) -> u128 {
        self.l1.balance(self.root).to::<u128>()
    }

    pub fn bridged(&self, who: &Address) -> BridgeAccount {
        self.tcp.bridge_account(who)
    }

}

pub fn l1_address(i: u8) -> [u8; 20] {
    user(i).address().0
}

/// The error a reverted outcome carries (`None` if it succeeded or reverted otherwise).
pub fn reverted(outcome: &CallOutcome) -> Option<&'static str> {
    match outcome {
        CallOutcome::Revert { output, .. } => plasma::error_name(output),
        _ => None,
    }
}
