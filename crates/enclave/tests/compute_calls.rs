//! Deploy and execute through a real enclave process (issue 20, items 1, 2 and 9): the enclave
//! obtains the contract's keys from a secret-share group, runs `init` and `execute` under them,
//! and signs outcomes the chain can check; it checks the chain the host shows it (a header with
//! φ under the pinned group key, the contract's record and the request id's absence proven
//! against its root) and refuses every lie a host can tell about it — another group's header,
//! a proof of another key, a state other than the record's, a request already committed, an
//! input other than the client's, data under swapped or re-signed terms.

mod common;

use commonware_codec::DecodeExt as _;
use commonware_cryptography::Signer as _;
use common::group::*;
use common::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng as _;
use tcp_beacon::dkg::run_local_ceremony;
use tcp_beacon::finality::finality_point;
use tcp_beacon::signature::recover_signature;
use tcp_beacon::{Ceremony, Finality, FinalitySignature, finality_message};
use tcp_dkmp::SignedKeyRequest;
use tcp_enclave::channel::{ChainView, DataBlob, Input, KeyAsk, Request, Response};
use tcp_enclave::compute::{OpenedResult, ResultOf, Sealed, result_key_pair, seal_to_contract};
use tcp_enclave::host::{DEFAULT_REQUEST_TIMEOUT, EnclaveHost};
use tcp_light::{BodyRoots, Header};
use tcp_state::contracts::{contract_key, request_key, state_hash};
use tcp_state::smt::SparseMerkleTree;
use tcp_state::{AccountKey, Call, CallStatus, ComputeOutcome, ComputeRequest, ContractEntry, DataTerms};
use tcp_types::{ChainId, Digest, Height, Round, ValidatorIndex};

const CHAIN: &str = "compute-test";

fn chain_id() -> ChainId {
    ChainId::new(CHAIN).unwrap()
}

/// The chain's beacon group: signs headers' φ.
struct Beacon {
    shares: Vec<tcp_beacon::dkg::BeaconShare>,
    sharing: tcp_beacon::PublicSharing,
}

fn beacon(seed: u64) -> Beacon {
    let keys: Vec<_> = (0..4).map(tcp_crypto::insecure_ed25519_from_seed).collect();
    let public: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
    let ceremony = Ceremony::new(0, None, &public, &public).unwrap();
    let (_, output, shares) = run_local_ceremony(&ceremony, &keys, &[], &mut ChaCha20Rng::seed_from_u64(seed)).unwrap();
    Beacon { shares: shares.into_iter().map(|(_, s)| s).collect(), sharing: output.public().clone() }
}

impl Beacon {
    fn key(&self) -> [u8; 96] {
        tcp_beacon::signature::group_key_to_bytes(self.sharing.public()).try_into().unwrap()
    }

    /// A header at `height` over `root`, with its φ.
    fn header(&self, height: u64, root: [u8; 32]) -> (Vec<u8>, Vec<u8>) {
        let header = Header {
            height: Height(height),
            round: Round(0),
            proposer: ValidatorIndex(0),
            parent: Digest([1; 32]),
            timestamp_ms: 1_000,
            state_root: Digest(root),
            roots: BodyRoots::default(),
            previous_signature: None,
            previous_finality: None,
            extra_roots: Vec::new(),
        }
        .encode();
        let id = tcp_crypto::sha256(&[&header]);
        let point = finality_point(&finality_message(&chain_id(), Height(height), Round(0), &id));
        let partials: Vec<_> = self.shares.iter().map(|s| point.sign(s)).collect();
        let phi = Finality { round: Round(0), signature: FinalitySignature(recover_signature(&self.sharing, &partials).unwrap().0) };
        (header, phi.to_bytes().to_vec())
    }
}

struct Setup {
    _dir: TestDir,
    host: EnclaveHost,
    beacon: Beacon,
    group: Group,
    code_hash: [u8; 32],
    code: Vec<u8>,
    client: AccountKey,
}

fn setup(tag: &str) -> Setup {
    let (dir, platform, _) = dev_platform(tag);
    let (beacon, group) = (beacon(3), group(1));
    let mut host = EnclaveHost::start_with(BIN, simulated(platform, "sgx"), DEFAULT_REQUEST_TIMEOUT).unwrap();
    let chain_keys = tcp_attestation::ChainKeys { group_key: beacon.key(), master_key: master_key(&group.sharing) };
    let Response::Attestation { .. } = host.request(&Request::Register { chain_id: CHAIN.into(), freshness: [1; 32], chain_keys }).unwrap() else {
        panic!("registers")
    };
    let code = code("aggregate-stats");
    let code_hash = load(&mut host, code.clone());
    Setup { _dir: dir, host, beacon, group, code_hash, code, client: AccountKey::from_bytes(&[5; 32]).unwrap() }
}

impl Setup {
    /// Obtain the key the enclave asked for, from the whole group.
    fn obtain(&mut self, ask: KeyAsk) {
        let Response::KeyRequest { request } = self.host.request(&Request::RequestKey { epoch: 1, ask }).unwrap() else { panic!("a request") };
        let signed = SignedKeyRequest::decode(commonware_codec::Copying(request.as_slice())).unwrap();
        let answers = answers(&self.group, &signed, 0..K as usize);
        let sharing = commonware_codec::Encode::encode(&self.group.sharing).to_vec();
        let response = self.host.request(&Request::OpenKey { request: signed.request.digest().0, sharing, answers }).unwrap();
        assert!(matches!(response, Response::ContractKey { .. }), "{response:?}");
    }

    fn deploy(&mut self) -> (ComputeOutcome, [u8; 64]) {
        self.deploy_with(self.code_hash, Vec::new(), 9)
    }

    /// Deploy loaded code with a public init input.
    fn deploy_with(&mut self, code_hash: [u8; 32], init: Vec<u8>, nonce: u64) -> (ComputeOutcome, [u8; 64]) {
        let init = Input::Public(init);
        let request = ComputeRequest {
            chain_id: chain_id(),
            call: Call::Deploy { code_hash },
            input_hash: tcp_crypto::sha256(&[&init.wire_bytes()]).0,
            result_key: result_key_pair().1,
            max_fee: 500,
            nonce,
            valid_until: 100,
        }
        .sign(&self.client);
        let deploy = Request::Deploy { request: request.encode(), init, fee: 100, gas_price: 0 };
        match self.host.request(&deploy).unwrap() {
            Response::NeedKey { cid, generation: 0, deploy: true } => {
                assert_eq!(cid, tcp_dkmp::contract_id(&code_hash, &self.client.address().0, nonce));
                self.obtain(KeyAsk::Deploy { code_hash, deployer: self.client.address().0, nonce });
            }
            other => panic!("the deploy key is needed first: {other:?}"),
        }
        outcome(self.host.request(&deploy).unwrap())
    }

    /// Execute `cid` as the chain `chain` shows it, with `input` and `data`; the outcome
    /// committed to `chain` and the opened result.
    fn run(&mut self, chain: &mut ChainState, deployed: &ComputeOutcome, input: &[u8], data: Vec<DataBlob>, nonce: u64) -> OpenedResult {
        let hashes = data.iter().map(blob_hash).collect();
        let (request, sealed, secret) = execute_request(self, deployed, hashes, nonce, input);
        let id = SignedRequest::id(&request);
        let state = chain.state.clone();
        let call = Request::Call { request, view: chain.view(&self.beacon, &deployed.cid, &id), state, input: sealed, data, fee: 1, gas_price: 0 };
        let (executed, _) = outcome(self.host.request(&call).unwrap());
        assert_eq!(executed.status, CallStatus::Ok, "{:?}", open(&self.group, &executed, &secret));
        chain.commit(&executed);
        open(&self.group, &executed, &secret).unwrap()
    }
}

fn outcome(response: Response) -> (ComputeOutcome, [u8; 64]) {
    match response {
        Response::Outcome { outcome, signature } => (ComputeOutcome::decode(&outcome).unwrap(), signature),
        other => panic!("expected an outcome, got {other:?}"),
    }
}

/// The chain after `deployed` committed: its record in a state tree, a header over it, the
/// proofs the host shows.
struct ChainState {
    tree: SparseMerkleTree,
    /// The contract's encrypted state as committed.
    state: Vec<u8>,
    record: Option<ContractEntry>,
}

impl ChainState {
    fn with(deployed: &ComputeOutcome, generation: u64) -> ChainState {
        let mut tree = SparseMerkleTree::new();
        let record = ContractEntry {
            code_hash: tcp_crypto::sha256(&[&deployed.code]).0,
            owner: deployed.request.client().unwrap(),
            generation,
            key_generation: 0,
            public_key: deployed.public_key,
            state_hash: state_hash(&deployed.state),
            deployed_at: 3,
            executions: 0,
        };
        tree.insert(contract_key(&deployed.cid), record.encode());
        tree.insert([0x77; 32], vec![1, 2, 3]);
        ChainState { tree, state: deployed.state.clone(), record: Some(record) }
    }

    /// What the chain does with a completed execution: the new state and its hash recorded,
    /// the request marked used.
    fn commit(&mut self, executed: &ComputeOutcome) {
        let record = self.record.as_mut().expect("deployed");
        record.state_hash = state_hash(&executed.state);
        record.key_generation = executed.generation;
        record.public_key = executed.public_key;
        record.executions += 1;
        self.tree.insert(contract_key(&executed.cid), record.encode());
        self.tree.insert(request_key(&executed.request.request.id()), vec![1]);
        self.state = executed.state.clone();
    }

    fn view(&self, beacon: &Beacon, cid: &[u8; 32], request_id: &[u8; 32]) -> ChainView {
        let (header, finality) = beacon.header(7, self.tree.root());
        ChainView { header, finality, contract: self.tree.prove(&contract_key(cid)).encode(), request: self.tree.prove(&request_key(request_id)).encode() }
    }
}

/// An execute request over `data` (blob hashes), its input sealed to the contract.
fn execute_request(s: &Setup, deployed: &ComputeOutcome, data: Vec<[u8; 32]>, nonce: u64, input: &[u8]) -> (Vec<u8>, Vec<u8>, zeroize::Zeroizing<[u8; 32]>) {
    let sealed = seal_to_contract(Sealed::Input, &chain_id(), &deployed.cid, 0, &deployed.public_key, b"", input);
    let (secret, public) = result_key_pair();
    let request = ComputeRequest {
        chain_id: chain_id(),
        call: Call::Execute { cid: deployed.cid, data },
        input_hash: tcp_crypto::sha256(&[&sealed]).0,
        result_key: public,
        max_fee: 1_000,
        nonce,
        valid_until: 100,
    }
    .sign(&s.client);
    (request.encode(), sealed, secret)
}

/// An owner's blob of aggregate-stats values, sealed to the contract under its terms.
fn blob(deployed: &ComputeOutcome, owner: &AccountKey, values: &[i64], price: u128) -> DataBlob {
    let mut plain = (values.len() as u32).to_le_bytes().to_vec();
    for v in values {
        plain.extend_from_slice(&v.to_le_bytes());
    }
    let mut terms = DataTerms { chain_id: chain_id(), owner: owner.address(), hash: [0; 32], price, contracts: vec![deployed.cid] };
    let sealed = seal_to_contract(Sealed::Data, &chain_id(), &deployed.cid, 0, &deployed.public_key, &terms.binding(), &plain);
    terms.hash = tcp_crypto::sha256(&[&sealed]).0;
    DataBlob { terms: terms.sign(owner).encode(), sealed }
}

fn blob_hash(blob: &DataBlob) -> [u8; 32] {
    tcp_crypto::sha256(&[&blob.sealed]).0
}

#[test]
fn a_deploy_then_an_execution_run_under_the_groups_keys_and_give_outcomes_the_chain_can_check() {
    let mut s = setup("compute-flow");
    let (deployed, signature) = s.deploy();
    assert!(deployed.verify_signature(&chain_id(), &signature), "signed by the registered key for the chain");
    assert_eq!(deployed.cid, tcp_dkmp::contract_id(&s.code_hash, &s.client.address().0, 9));
    assert_eq!((deployed.generation, deployed.status, deployed.fee, deployed.code.clone()), (0, CallStatus::Ok, 100, s.code.clone()));
    assert!(!deployed.state.is_empty(), "aggregate-stats keeps totals from init on");

    let chain = ChainState::with(&deployed, 0);
    let owner = AccountKey::from_bytes(&[6; 32]).unwrap();
    let data = blob(&deployed, &owner, &[10, 20, 30], 40);
    let (request, input, secret) = execute_request(&s, &deployed, vec![blob_hash(&data)], 1, b"");
    let id = SignedRequest::id(&request);
    let call = Request::Call { request, view: chain.view(&s.beacon, &deployed.cid, &id), state: deployed.state.clone(), input, data: vec![data], fee: 300, gas_price: 0 };
    let (executed, signature) = outcome(s.host.request(&call).unwrap());
    assert!(executed.verify_signature(&chain_id(), &signature));
    assert_eq!((executed.status, executed.generation, executed.public_key), (CallStatus::Ok, 0, deployed.public_key));
    assert_eq!(executed.pre_state_hash, state_hash(&deployed.state));
    assert_eq!((executed.data.len(), executed.data[0].owner(), executed.fee), (1, Some(owner.address()), 300));
    // The client opens the result and checks it against the commitment the chain will hold.
    let opened = open(&s.group, &executed, &secret).unwrap();
    // Without the group's key of the result's identity (before commit), not even the client opens it.
    let other_group = group(2);
    assert!(open(&other_group, &executed, &secret).is_err(), "another group's key opens nothing");
    assert_eq!(opened.status, CallStatus::Ok);
    assert_eq!(&opened.bytes[..8], &3u64.to_le_bytes(), "count 3");
    assert_eq!(&opened.bytes[8..16], &60i64.to_le_bytes(), "sum 60");
    // The host's transcript holds the result only sealed: no plaintext totals.
    assert!(!executed.result.windows(8).any(|w| w == 60i64.to_le_bytes()));
}

fn view(call: &mut Request) -> &mut ChainView {
    let Request::Call { view, .. } = call else { unreachable!() };
    view
}

/// Open an outcome's result as its client does once the request committed: with its result
/// key's secret and the group's key of the result's identity (here from every member's share).
fn open(group: &Group, outcome: &ComputeOutcome, secret: &[u8; 32]) -> Result<OpenedResult, String> {
    let (chain, request_id) = (chain_id(), outcome.request.request.id());
    let of = ResultOf { chain: &chain, cid: &outcome.cid, request_id: &request_id };
    let identity = of.identity(&outcome.result_hash);
    let partials: Vec<_> = group.shares.iter().map(|s| (s.index.get(), tcp_dkmp::result::partial_result_key(s, &identity))).collect();
    let key = tcp_dkmp::result::recover_result_key(&mut ChaCha20Rng::seed_from_u64(8), &group.sharing, &identity, &partials)
        .map_err(|e| e.to_string())?
        .0;
    tcp_enclave::compute::open_result(of, secret, &key, &outcome.result, &outcome.result_hash)
}

/// The id of a signed request's encoding.
struct SignedRequest;

impl SignedRequest {
    fn id(bytes: &[u8]) -> [u8; 32] {
        tcp_state::SignedComputeRequest::decode(bytes).unwrap().request.id()
    }
}

#[test]
fn a_host_that_lies_about_the_chain_or_the_data_gets_no_outcome() {
    let mut s = setup("compute-lies");
    let (deployed, _) = s.deploy();
    let chain = ChainState::with(&deployed, 0);
    let owner = AccountKey::from_bytes(&[6; 32]).unwrap();
    let data = blob(&deployed, &owner, &[1, 2], 40);
    let (request, input, _) = execute_request(&s, &deployed, vec![blob_hash(&data)], 1, b"");
    let id = SignedRequest::id(&request);
    let good = || Request::Call {
        request: request.clone(),
        view: chain.view(&s.beacon, &deployed.cid, &id),
        state: deployed.state.clone(),
        input: input.clone(),
        data: vec![data.clone()],
        fee: 300,
        gas_price: 0,
    };
    let with = |change: &dyn Fn(&mut Request)| {
        let mut call = good();
        change(&mut call);
        call
    };
    // A header another group signed (a host's own chain).
    let other = beacon(4);
    let forged = with(&|c| *view(c) = chain.view(&other, &deployed.cid, &id));
    expect_error(s.host.request(&forged), "the header");
    // A proof of another key passed off as the contract's, or a state root the header does not hold.
    let wrong_key = with(&|c| view(c).contract = chain.tree.prove(&[0x77; 32]).encode());
    expect_error(s.host.request(&wrong_key), "the contract proof is for another key");
    let mut other_tree = SparseMerkleTree::new();
    other_tree.insert(contract_key(&deployed.cid), vec![0; 3]);
    let off_root = with(&|c| view(c).contract = other_tree.prove(&contract_key(&deployed.cid)).encode());
    expect_error(s.host.request(&off_root), "the contract proof");
    // A request the chain shows committed already (a replay), proven from its state.
    let mut replayed_tree = ChainState::with(&deployed, 0);
    replayed_tree.tree.insert(request_key(&id), vec![1]);
    let replay = with(&|c| *view(c) = replayed_tree.view(&s.beacon, &deployed.cid, &id));
    expect_error(s.host.request(&replay), "committed already");
    // A state other than the record's (rolled back, or another contract's).
    let rolled_back = with(&|c| {
        let Request::Call { state, .. } = c else { unreachable!() };
        state.push(0);
    });
    expect_error(s.host.request(&rolled_back), "not the contract's state");
    // An input other than the one the client signed for.
    let other_input = with(&|c| {
        let Request::Call { input, .. } = c else { unreachable!() };
        *input = seal_to_contract(Sealed::Input, &chain_id(), &deployed.cid, 0, &deployed.public_key, b"", b"other");
    });
    expect_error(s.host.request(&other_input), "not the one the client's request names");
    // Data under re-signed terms (the host as payee) or a lower price: the blob does not open
    // under them, or the terms are not the owner's — no outcome, nobody paid.
    let host_key = AccountKey::from_bytes(&[8; 32]).unwrap();
    let resigned = with(&|c| {
        let Request::Call { data, .. } = c else { unreachable!() };
        let mut terms = tcp_state::DataUse::decode(&data[0].terms).unwrap().terms;
        terms.owner = host_key.address();
        data[0].terms = terms.sign(&host_key).encode();
    });
    expect_error(s.host.request(&resigned), "does not open");
    let cheaper = with(&|c| {
        let Request::Call { data, .. } = c else { unreachable!() };
        let mut used = tcp_state::DataUse::decode(&data[0].terms).unwrap();
        used.terms.price = 1;
        data[0].terms = used.encode();
    });
    expect_error(s.host.request(&cheaper), "not its owner's");
    // A fee beyond what the client allowed.
    let greedy = with(&|c| {
        let Request::Call { fee, .. } = c else { unreachable!() };
        *fee = 961;
    });
    expect_error(s.host.request(&greedy), "exceed the client's max fee");
    // And the honest call still runs.
    assert!(matches!(s.host.request(&good()).unwrap(), Response::Outcome { .. }));
}

#[test]
fn after_a_rotation_the_enclave_needs_the_new_generation_and_re_encrypts_under_it() {
    let mut s = setup("compute-rotation");
    let (deployed, _) = s.deploy();
    let chain = ChainState::with(&deployed, 1);
    // Data sealed to generation 0 before the rotation: old generations stay derivable for it.
    let data = blob(&deployed, &AccountKey::from_bytes(&[6; 32]).unwrap(), &[5], 1);
    let (request, input, _) = execute_request(&s, &deployed, vec![blob_hash(&data)], 1, b"");
    let id = SignedRequest::id(&request);
    let call = Request::Call { request, view: chain.view(&s.beacon, &deployed.cid, &id), state: deployed.state.clone(), input, data: vec![data], fee: 1, gas_price: 0 };
    match s.host.request(&call).unwrap() {
        Response::NeedKey { cid, generation: 1, deploy: false } => assert_eq!(cid, deployed.cid),
        other => panic!("generation 1 is needed: {other:?}"),
    }
    s.obtain(KeyAsk::Execute { cid: deployed.cid, generation: 1 });
    let (executed, _) = outcome(s.host.request(&call).unwrap());
    assert_eq!((executed.status, executed.generation), (CallStatus::Ok, 1));
    assert_ne!(executed.public_key, deployed.public_key, "the new generation's key is published");
}

#[test]
fn a_trapping_call_or_an_input_that_does_not_open_is_a_failed_outcome_with_its_error_sealed() {
    let mut s = setup("compute-failed");
    let (deployed, _) = s.deploy();
    let chain = ChainState::with(&deployed, 0);
    // No data: aggregate-stats cannot read its batch header and fails.
    let (request, input, secret) = execute_request(&s, &deployed, Vec::new(), 1, b"");
    let id = SignedRequest::id(&request);
    let call = Request::Call { request, view: chain.view(&s.beacon, &deployed.cid, &id), state: deployed.state.clone(), input, data: Vec::new(), fee: 7, gas_price: 0 };
    let (failed, _) = outcome(s.host.request(&call).unwrap());
    assert_eq!((failed.status, failed.state.len(), failed.fee), (CallStatus::Failed, 0, 7));
    let opened = open(&s.group, &failed, &secret).unwrap();
    assert_eq!(opened.status, CallStatus::Failed);
    assert!(!opened.bytes.is_empty(), "the client reads why");
    // An input sealed to another contract's key: the client's fault, a failed outcome too.
    let other_key = [0x42; 32];
    let sealed = seal_to_contract(Sealed::Input, &chain_id(), &deployed.cid, 0, &other_key, b"", b"x");
    let (secret, public) = result_key_pair();
    let request = ComputeRequest {
        chain_id: chain_id(),
        call: Call::Execute { cid: deployed.cid, data: Vec::new() },
        input_hash: tcp_crypto::sha256(&[&sealed]).0,
        result_key: public,
        max_fee: 10,
        nonce: 2,
        valid_until: 100,
    }
    .sign(&s.client);
    let id = request.request.id();
    let call = Request::Call { request: request.encode(), view: chain.view(&s.beacon, &deployed.cid, &id), state: deployed.state.clone(), input: sealed, data: Vec::new(), fee: 7, gas_price: 0 };
    let (failed, _) = outcome(s.host.request(&call).unwrap());
    let opened = open(&s.group, &failed, &secret).unwrap();
    assert_eq!(opened.status, CallStatus::Failed);
    assert!(String::from_utf8_lossy(&opened.bytes).contains("does not open"), "{}", String::from_utf8_lossy(&opened.bytes));
}

#[test]
fn a_client_cannot_crash_the_enclave_with_its_result_key_and_the_fee_covers_the_outcomes_gas() {
    let mut s = setup("compute-price");
    let (deployed, _) = s.deploy();
    let chain = ChainState::with(&deployed, 0);
    // A low-order result key: HPKE cannot seal to it. An error, and the enclave serves on.
    let sealed = seal_to_contract(Sealed::Input, &chain_id(), &deployed.cid, 0, &deployed.public_key, b"", b"");
    let request = |result_key: [u8; 32], valid_until: u64| {
        ComputeRequest {
            chain_id: chain_id(),
            call: Call::Execute { cid: deployed.cid, data: Vec::new() },
            input_hash: tcp_crypto::sha256(&[&sealed]).0,
            result_key,
            max_fee: 10_000_000,
            nonce: 5,
            valid_until,
        }
        .sign(&s.client)
    };
    let call = |request: &tcp_state::SignedComputeRequest, gas_price: u64| Request::Call {
        request: request.encode(),
        view: chain.view(&s.beacon, &deployed.cid, &request.request.id()),
        state: deployed.state.clone(),
        input: sealed.clone(),
        data: Vec::new(),
        fee: 100,
        gas_price,
    };
    expect_error(s.host.request(&call(&request([0; 32], 100), 0)), "low-order");
    assert!(matches!(s.host.request(&Request::Hello).unwrap(), Response::Hello { .. }), "the same process answers");
    // The fee is the base plus the outcome's gas at the node's gas price.
    let priced = request(result_key_pair().1, 100);
    let (outcome, _) = outcome(s.host.request(&call(&priced, 3)).unwrap());
    assert_eq!(outcome.fee, 100 + 3 * u128::from(tcp_state::contracts::compute_gas(&outcome)));
    // A header from before the request's lifetime, or after it ended: no run.
    let expired = request(result_key_pair().1, 6);
    expect_error(s.host.request(&call(&expired, 0)), "outside the request's lifetime");
    let far = request(result_key_pair().1, 7 + tcp_state::contracts::MAX_REQUEST_LIFETIME + 1);
    expect_error(s.host.request(&call(&far, 0)), "outside the request's lifetime");
}

/// A blob of `owner`'s, sealed to the contract under its terms (price 1).
fn owner_blob(deployed: &ComputeOutcome, owner: &AccountKey, plain: &[u8]) -> DataBlob {
    let mut terms = DataTerms { chain_id: chain_id(), owner: owner.address(), hash: [0; 32], price: 1, contracts: vec![deployed.cid] };
    let sealed = seal_to_contract(Sealed::Data, &chain_id(), &deployed.cid, 0, &deployed.public_key, &terms.binding(), plain);
    terms.hash = tcp_crypto::sha256(&[&sealed]).0;
    DataBlob { terms: terms.sign(owner).encode(), sealed }
}

#[test]
fn the_example_contracts_run_end_to_end_under_the_groups_keys() {
    let mut s = setup("compute-examples");
    let hospital = |n: u8| AccountKey::from_bytes(&[0x30 + n; 32]).unwrap();

    // Private set intersection: two hospitals' patient-id sets, each sealed by its owner; the
    // result is the size of the intersection only.
    let psi = load(&mut s.host, code("psi-count"));
    let (deployed, _) = s.deploy_with(psi, Vec::new(), 21);
    let mut chain = ChainState::with(&deployed, 0);
    let set = |ids: &[u8]| {
        let mut out = (ids.len() as u32).to_le_bytes().to_vec();
        for id in ids {
            out.extend_from_slice(&[*id; 32]);
        }
        out
    };
    let a = owner_blob(&deployed, &hospital(1), &set(&[1, 2, 3, 4, 5]));
    let b = owner_blob(&deployed, &hospital(2), &set(&[4, 5, 6, 7]));
    let opened = s.run(&mut chain, &deployed, b"", vec![a, b], 1);
    assert_eq!(opened.bytes, 2u32.to_le_bytes(), "ids 4 and 5 are shared");

    // Sealed-bid second-price auction: each bid a bidder's sealed blob; at the close only the
    // winner and the price are revealed.
    let auction = load(&mut s.host, code("sealed-bid-auction"));
    let (deployed, _) = s.deploy_with(auction, 50u64.to_le_bytes().to_vec(), 22);
    let mut chain = ChainState::with(&deployed, 0);
    for (n, amount) in [(1u8, 120u64), (2, 300), (3, 180)] {
        let bid = [[0xb0 + n; 32].as_slice(), &amount.to_le_bytes()].concat();
        let blob = owner_blob(&deployed, &hospital(n), &bid);
        let opened = s.run(&mut chain, &deployed, &[0], vec![blob], 10 + u64::from(n));
        assert_eq!(opened.bytes, vec![1], "bid {n} accepted");
    }
    let closed = s.run(&mut chain, &deployed, &[1], Vec::new(), 20);
    let expected = [[1u8].as_slice(), &[0xb2; 32], &180u64.to_le_bytes()].concat();
    assert_eq!(closed.bytes, expected, "bidder 2 wins at the second price");
}

/// Issue 18, item 6: a contract's state is sealed under its state key from the group, never
/// under anything of the enclave process or its platform's sealing root (the tsm backend has
/// none), so a crash loses nothing: the replacement process — new keys, registered again —
/// obtains the key and continues the contract from the state sealed before the crash.
#[test]
fn state_sealed_before_an_enclave_crash_opens_after_the_restart() {
    let mut s = setup("compute-crash");
    let (deployed, _) = s.deploy();
    let mut chain = ChainState::with(&deployed, 0);
    let owner = AccountKey::from_bytes(&[6; 32]).unwrap();
    s.run(&mut chain, &deployed, b"", vec![blob(&deployed, &owner, &[10, 20], 0)], 1);

    let before = s.host.pid();
    // SAFETY: a signal to our own child process.
    assert_eq!(unsafe { libc::kill(before as i32, libc::SIGKILL) }, 0);
    let crashed = s.host.request(&Request::Hello);
    assert!(matches!(crashed, Err(tcp_enclave::host::HostError::Crashed)), "{crashed:?}");
    assert_ne!(s.host.pid(), before, "a new process");
    let chain_keys = tcp_attestation::ChainKeys { group_key: s.beacon.key(), master_key: master_key(&s.group.sharing) };
    let registered = s.host.request(&Request::Register { chain_id: CHAIN.into(), freshness: [2; 32], chain_keys }).unwrap();
    assert!(matches!(registered, Response::Attestation { .. }), "{registered:?}");

    // The keys died with the process: the call asks for the state's generation again, then
    // opens the state sealed before the crash and adds to its totals.
    let data = blob(&deployed, &owner, &[30], 0);
    let (request, input, secret) = execute_request(&s, &deployed, vec![blob_hash(&data)], 2, b"");
    let id = SignedRequest::id(&request);
    let call = Request::Call { request, view: chain.view(&s.beacon, &deployed.cid, &id), state: chain.state.clone(), input, data: vec![data], fee: 1, gas_price: 0 };
    match s.host.request(&call).unwrap() {
        Response::NeedKey { cid, generation: 0, deploy: false } => assert_eq!(cid, deployed.cid),
        other => panic!("the restarted enclave needs the key again: {other:?}"),
    }
    s.obtain(KeyAsk::Execute { cid: deployed.cid, generation: 0 });
    let (executed, _) = outcome(s.host.request(&call).unwrap());
    let opened = open(&s.group, &executed, &secret).unwrap();
    assert_eq!(opened.status, CallStatus::Ok, "{}", String::from_utf8_lossy(&opened.bytes));
    assert_eq!((&opened.bytes[..8], &opened.bytes[8..16]), (&3u64.to_le_bytes()[..], &60i64.to_le_bytes()[..]), "the totals from before the crash, plus 30");
}

/// Item 7's basis: an enclave's commitment to what a call computed is the same every time the
/// same request runs on the same state (the sealed result and state differ: fresh randomness),
/// and differs when what was computed differs.
#[test]
fn what_a_call_computed_is_committed_the_same_on_every_run_and_differs_with_the_computation() {
    let mut s = setup("compute-commitment");
    let (deployed, _) = s.deploy();
    let chain = ChainState::with(&deployed, 0);
    let owner = AccountKey::from_bytes(&[6; 32]).unwrap();
    let data = blob(&deployed, &owner, &[10, 20], 0);
    let (request, input, _) = execute_request(&s, &deployed, vec![blob_hash(&data)], 1, b"");
    let id = SignedRequest::id(&request);
    let call = Request::Call { request, view: chain.view(&s.beacon, &deployed.cid, &id), state: chain.state.clone(), input, data: vec![data], fee: 1, gas_price: 0 };
    let (first, _) = outcome(s.host.request(&call).unwrap());
    let (again, _) = outcome(s.host.request(&call).unwrap());
    assert_ne!((&first.result, &first.state), (&again.result, &again.state), "sealed afresh each run");
    assert_eq!(first.computed, again.computed, "the same computation, the same commitment");

    let other = blob(&deployed, &owner, &[10, 21], 0);
    let (request, input, _) = execute_request(&s, &deployed, vec![blob_hash(&other)], 1, b"");
    let id = SignedRequest::id(&request);
    let call = Request::Call { request, view: chain.view(&s.beacon, &deployed.cid, &id), state: chain.state.clone(), input, data: vec![other], fee: 1, gas_price: 0 };
    let (different, _) = outcome(s.host.request(&call).unwrap());
    assert_ne!(first.computed, different.computed);
}
