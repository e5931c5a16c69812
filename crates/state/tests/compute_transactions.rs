//! Compute transactions and key rotation through Υ (DESIGN §5.3, §5.6; issue 20 item 1, issue
//! 19 item 6): what validators check of a deploy or an execution an enclave signed, one test per
//! attack a compute node, a client or a data owner could try. Validators never run a contract:
//! every decision here is on signatures, hashes and the state.

mod common;

use common::*;
use proptest::prelude::*;
use tcp_dkmp::ReleaseView as _;
use tcp_state::contracts::{ComputeRefused, MAX_REQUEST_LIFETIME, state_hash};
use tcp_state::{Address, Call, CallStatus, ComputeOutcome, ComputeRequest, DataTerms, DataUse, ReleaseStateView};

const CODE: &[u8] = b"\0asm contract code";

fn code_hash() -> [u8; 32] {
    tcp_crypto::sha256(&[CODE]).0
}

fn client() -> AccountKey {
    AccountKey::from_bytes(&[3; 32]).unwrap()
}

fn owner(n: u8) -> AccountKey {
    AccountKey::from_bytes(&[0x40 + n; 32]).unwrap()
}

/// A world with both compute nodes' enclaves registered and a funded client.
fn world() -> World {
    let mut w = World::build(true, Some(Address([0x60; 20])));
    w.enroll();
    let operator = w.operator.clone();
    w.submit(&operator, Action::Transfer { to: client().address(), amount: 100_000_000 }).unwrap();
    w
}

fn request(call: Call, nonce: u64, max_fee: u128, valid_until: u64) -> ComputeRequest {
    ComputeRequest { chain_id: chain(), call, input_hash: [0x11; 32], result_key: [0x22; 32], max_fee, nonce, valid_until }
}

fn deploy_outcome(client: &AccountKey, nonce: u64) -> ComputeOutcome {
    let request = request(Call::Deploy { code_hash: code_hash() }, nonce, 1_000, 100).sign(client);
    ComputeOutcome {
        cid: tcp_dkmp::contract_id(&code_hash(), &client.address().0, nonce),
        request,
        enclave: key(7),
        code: CODE.to_vec(),
        generation: 0,
        public_key: [0x33; 32],
        pre_state_hash: [0; 32],
        status: CallStatus::Ok,
        state: b"encrypted state 0".to_vec(),
        result: b"sealed init result".to_vec(),
        result_hash: [0x44; 32],
        computed: [0x46; 32],
        fuel_used: 1_000,
        fee: 100,
        data: Vec::new(),
    }
}

fn execute_outcome(w: &World, cid: [u8; 32], data: Vec<DataUse>, nonce: u64) -> ComputeOutcome {
    let contract = w.state.contract(&cid).unwrap();
    let hashes = data.iter().map(|d| d.terms.hash).collect();
    let request = request(Call::Execute { cid, data: hashes }, nonce, 1_000, 100).sign(&client());
    ComputeOutcome {
        request,
        enclave: key(7),
        cid,
        code: Vec::new(),
        generation: contract.generation,
        // The published key, unless a rotation asks for the next generation's.
        public_key: if contract.generation == contract.key_generation { contract.public_key } else { [0x34; 32] },
        pre_state_hash: contract.state_hash,
        status: CallStatus::Ok,
        state: format!("encrypted state after {nonce}").into_bytes(),
        result: b"sealed result".to_vec(),
        result_hash: [0x45; 32],
        computed: [0x47; 32],
        fuel_used: 5_000,
        fee: 200,
        data,
    }
}

fn terms(owner: &AccountKey, hash: u8, price: u128, contracts: Vec<[u8; 32]>) -> DataUse {
    DataTerms { chain_id: chain(), owner: owner.address(), hash: [hash; 32], price, contracts }.sign(owner)
}

/// The operator submits `outcome` signed by the enclave `signer`.
fn submit(w: &mut World, sender: &AccountKey, outcome: ComputeOutcome, signer: u8) -> Result<(), TxError> {
    let signature = outcome.sign(&chain(), &enclave_signer(signer));
    w.submit(sender, Action::Compute { outcome, signature })
}

fn deployed(w: &mut World) -> [u8; 32] {
    let outcome = deploy_outcome(&client(), 0);
    let cid = outcome.cid;
    let operator = w.operator.clone();
    submit(w, &operator, outcome, 7).unwrap();
    cid
}

fn refused(r: ComputeRefused) -> Result<(), TxError> {
    Err(TxError::Compute(r))
}

#[test]
fn a_deploy_and_an_execution_commit_their_state_and_pay_the_compute_node_and_each_data_owner() {
    let mut w = world();
    let operator = w.operator.clone();
    let supply = w.state.total_supply();
    let before = (w.state.account(&client().address()).balance, w.state.account(&operator.address()).balance);
    let cid = deployed(&mut w);
    let contract = w.state.contract(&cid).unwrap();
    assert_eq!(
        (contract.code_hash, contract.owner, contract.generation, contract.key_generation, contract.public_key, contract.executions),
        (code_hash(), client().address(), 0, 0, [0x33; 32], 0)
    );
    assert_eq!(contract.state_hash, state_hash(b"encrypted state 0"));
    assert_eq!(w.state.contract_code(&code_hash()).unwrap(), CODE);
    assert_eq!(w.state.contract_state(&cid).unwrap(), b"encrypted state 0");
    let fee_gas = |outcome_bytes: u64| (200_000 + 16 * outcome_bytes) as u128;
    let deploy_gas = fee_gas((CODE.len() + 17 + 18) as u64);
    assert_eq!(w.state.account(&client().address()).balance, before.0 - 100);
    assert_eq!(w.state.account(&operator.address()).balance, before.1 + 100 - deploy_gas);

    let (alice, bob) = (owner(1), owner(2));
    let data = vec![terms(&alice, 0xa1, 30, vec![cid]), terms(&bob, 0xb1, 50, vec![[9; 32], cid])];
    let outcome = execute_outcome(&w, cid, data, 1);
    let id = outcome.request.request.id();
    submit(&mut w, &operator, outcome, 7).unwrap();
    let contract = w.state.contract(&cid).unwrap();
    assert_eq!((contract.executions, contract.public_key), (1, [0x33; 32]));
    assert_eq!(contract.state_hash, state_hash(b"encrypted state after 1"));
    assert_eq!(w.state.account(&client().address()).balance, before.0 - 100 - 200 - 30 - 50);
    assert_eq!(w.state.account(&alice.address()).balance, 30);
    assert_eq!(w.state.account(&bob.address()).balance, 50);
    let record = w.state.compute_request(&id).unwrap();
    assert_eq!((record.client, record.cid, record.status, record.result_hash, record.fee), (client().address(), cid, CallStatus::Ok, [0x45; 32], 200));
    let (count, uses) = w.state.data_usage(&bob.address(), 0);
    assert_eq!((count, uses.len(), uses[0].cid, uses[0].request, uses[0].amount, uses[0].data), (1, 1, cid, id, 50, [0xb1; 32]));
    assert_eq!(w.state.total_supply(), supply, "fees and prices move within the supply");
    assert_eq!(w.state.computed_supply(), supply);
}

#[test]
fn a_replayed_request_is_refused_even_through_another_compute_node() {
    let mut w = world();
    let cid = deployed(&mut w);
    let outcome = execute_outcome(&w, cid, Vec::new(), 1);
    let operator = w.operator.clone();
    submit(&mut w, &operator, outcome.clone(), 7).unwrap();
    // The same request, run again on the new state (so not stale), by the same node or another.
    let mut again = outcome;
    again.pre_state_hash = w.state.contract(&cid).unwrap().state_hash;
    let id = tcp_types::hex::encode(&again.request.request.id());
    assert_eq!(submit(&mut w, &operator, again.clone(), 7), refused(ComputeRefused::RequestUsed(id.clone())));
    again.enclave = key(8);
    let other = w.other.clone();
    assert_eq!(submit(&mut w, &other, again, 8), refused(ComputeRefused::RequestUsed(id)));
    // A deploy's request is used once too: its contract exists anyway.
    let deploy = deploy_outcome(&client(), 0);
    assert!(matches!(submit(&mut w, &operator, deploy, 7), Err(TxError::Compute(ComputeRefused::RequestUsed(_)))));
}

#[test]
fn an_execution_on_a_rolled_back_or_stale_state_is_refused() {
    let mut w = world();
    let cid = deployed(&mut w);
    let first = execute_outcome(&w, cid, Vec::new(), 1);
    let rolled_back = execute_outcome(&w, cid, Vec::new(), 2);
    let operator = w.operator.clone();
    submit(&mut w, &operator, first, 7).unwrap();
    // Run on the state before `first` committed: refused as stale; the client may retry.
    let current = w.state.contract(&cid).unwrap().state_hash;
    assert_eq!(
        submit(&mut w, &operator, rolled_back, 7),
        refused(ComputeRefused::StaleState { ran_on: tcp_types::hex::encode(&state_hash(b"encrypted state 0")), current: tcp_types::hex::encode(&current) })
    );
    let retry = execute_outcome(&w, cid, Vec::new(), 2);
    submit(&mut w, &operator, retry, 7).unwrap();
}

#[test]
fn a_forged_or_altered_enclave_signature_is_refused() {
    let mut w = world();
    let operator = w.operator.clone();
    // Signed by a key that is not the enclave's.
    assert_eq!(submit(&mut w, &operator, deploy_outcome(&client(), 0), 9), refused(ComputeRefused::BadEnclaveSignature));
    // Signed by the enclave, then changed by the host (a bigger fee, another state).
    let outcome = deploy_outcome(&client(), 0);
    let signature = outcome.sign(&chain(), &enclave_signer(7));
    for change in [|o: &mut ComputeOutcome| o.fee += 1, |o: &mut ComputeOutcome| o.state.push(0), |o: &mut ComputeOutcome| o.result_hash[0] ^= 1] {
        let mut altered = outcome.clone();
        change(&mut altered);
        assert_eq!(w.submit(&operator, Action::Compute { outcome: altered, signature }), refused(ComputeRefused::BadEnclaveSignature));
    }
    // Signed for another chain.
    let other_chain = tcp_types::ChainId::new("other-chain").unwrap();
    let signature = outcome.sign(&other_chain, &enclave_signer(7));
    assert_eq!(w.submit(&operator, Action::Compute { outcome: outcome.clone(), signature }), refused(ComputeRefused::BadEnclaveSignature));
    // An enclave that never registered.
    let mut unregistered = outcome;
    unregistered.enclave = key(9);
    assert_eq!(submit(&mut w, &operator, unregistered, 9), refused(ComputeRefused::Enclave(tcp_dkmp::ReleaseRefused::UnregisteredEnclave)));
}

#[test]
fn an_enclave_is_used_only_by_its_own_compute_node_and_only_while_its_registration_is_current() {
    let mut w = world();
    let other = w.other.clone();
    // `other` submits what `operator`'s enclave signed.
    assert_eq!(submit(&mut w, &other, deploy_outcome(&client(), 0), 7), refused(ComputeRefused::NotTheEnclavesOperator));
    let cid = deployed(&mut w);
    w.advance_to(5 + PERIOD + 1);
    let mut outcome = execute_outcome(&w, cid, Vec::new(), 1);
    outcome.request = request(Call::Execute { cid, data: Vec::new() }, 1, 1_000, w.height + 10).sign(&client());
    let operator = w.operator.clone();
    assert_eq!(
        submit(&mut w, &operator, outcome, 7),
        refused(ComputeRefused::Enclave(tcp_dkmp::ReleaseRefused::RegistrationExpired(5 + PERIOD)))
    );
}

#[test]
fn a_deploy_of_other_code_or_under_another_id_is_refused() {
    let mut w = world();
    let operator = w.operator.clone();
    let mut other_code = deploy_outcome(&client(), 0);
    other_code.code = b"\0asm other code".to_vec();
    assert_eq!(submit(&mut w, &operator, other_code, 7), refused(ComputeRefused::CodeMismatch));
    let mut other_id = deploy_outcome(&client(), 0);
    other_id.cid[0] ^= 1;
    assert_eq!(submit(&mut w, &operator, other_id, 7), refused(ComputeRefused::DeployIdMismatch));
    // The id names the deployer: a request signed by someone else makes another id.
    let mut not_the_deployer = deploy_outcome(&client(), 0);
    not_the_deployer.request = not_the_deployer.request.request.clone().sign(&owner(1));
    assert_eq!(submit(&mut w, &operator, not_the_deployer, 7), refused(ComputeRefused::DeployIdMismatch));
    let cid = deployed(&mut w);
    // The same (code, deployer, nonce) again, under a new request: the contract exists.
    let mut again = deploy_outcome(&client(), 0);
    again.request = request(Call::Deploy { code_hash: code_hash() }, 0, 999, 100).sign(&client());
    assert_eq!(submit(&mut w, &operator, again, 7), refused(ComputeRefused::ContractExists(tcp_types::hex::encode(&cid))));
}

#[test]
fn swapped_data_or_data_whose_owner_did_not_allow_this_contract_is_refused() {
    let mut w = world();
    let cid = deployed(&mut w);
    let operator = w.operator.clone();
    // The request names 0xa1; the enclave's outcome uses 0xa2.
    let mut swapped = execute_outcome(&w, cid, vec![terms(&owner(1), 0xa1, 30, vec![cid])], 1);
    swapped.data = vec![terms(&owner(1), 0xa2, 30, vec![cid])];
    assert_eq!(submit(&mut w, &operator, swapped, 7), refused(ComputeRefused::DataMismatch));
    let other_contract = execute_outcome(&w, cid, vec![terms(&owner(1), 0xa1, 30, vec![[9; 32]])], 2);
    assert_eq!(submit(&mut w, &operator, other_contract, 7), refused(ComputeRefused::BadDataTerms(tcp_types::hex::encode(&[0xa1; 32]))));
    // A price lowered after the owner signed, or the same terms signed again by the host's key
    // (to be paid itself): the signature does not recover to the owner the terms name.
    let mut cheaper = execute_outcome(&w, cid, vec![terms(&owner(1), 0xa1, 30, vec![cid])], 3);
    cheaper.data[0].terms.price = 1;
    assert_eq!(submit(&mut w, &operator, cheaper, 7), refused(ComputeRefused::BadDataTerms(tcp_types::hex::encode(&[0xa1; 32]))));
    let mut resigned = execute_outcome(&w, cid, vec![terms(&owner(1), 0xa1, 30, vec![cid])], 3);
    resigned.data[0] = resigned.data[0].terms.clone().sign(&operator);
    assert_eq!(submit(&mut w, &operator, resigned, 7), refused(ComputeRefused::BadDataTerms(tcp_types::hex::encode(&[0xa1; 32]))));
    let mut other_chain = execute_outcome(&w, cid, Vec::new(), 4);
    let terms = DataTerms { chain_id: tcp_types::ChainId::new("other").unwrap(), owner: owner(1).address(), hash: [0xa3; 32], price: 1, contracts: vec![cid] };
    other_chain.data = vec![terms.sign(&owner(1))];
    other_chain.request = request(Call::Execute { cid, data: vec![[0xa3; 32]] }, 4, 1_000, 100).sign(&client());
    assert_eq!(submit(&mut w, &operator, other_chain, 7), refused(ComputeRefused::BadDataTerms(tcp_types::hex::encode(&[0xa3; 32]))));
}

#[test]
fn a_fee_beyond_the_clients_max_fee_or_balance_is_refused() {
    let mut w = world();
    let cid = deployed(&mut w);
    let operator = w.operator.clone();
    let mut greedy = execute_outcome(&w, cid, vec![terms(&owner(1), 0xa1, 30, vec![cid])], 1);
    greedy.fee = 971;
    assert_eq!(submit(&mut w, &operator, greedy, 7), refused(ComputeRefused::OverMaxFee { fee: 971, prices: 30, max_fee: 1_000 }));
    // A client without the funds (it signed a max fee it cannot pay).
    let poor = owner(5);
    let mut outcome = execute_outcome(&w, cid, Vec::new(), 2);
    outcome.request = outcome.request.request.clone().sign(&poor);
    assert_eq!(submit(&mut w, &operator, outcome, 7), refused(ComputeRefused::ClientCannotPay { needed: 200, available: 0 }));
}

#[test]
fn a_request_is_valid_only_until_its_height_and_for_a_bounded_time() {
    let mut w = world();
    let operator = w.operator.clone();
    let mut expired = deploy_outcome(&client(), 0);
    expired.request = request(Call::Deploy { code_hash: code_hash() }, 0, 1_000, w.height - 1).sign(&client());
    assert_eq!(submit(&mut w, &operator, expired, 7), refused(ComputeRefused::RequestExpired(w.height - 1)));
    let mut forever = deploy_outcome(&client(), 0);
    let valid_until = w.height + MAX_REQUEST_LIFETIME + 1;
    forever.request = request(Call::Deploy { code_hash: code_hash() }, 0, 1_000, valid_until).sign(&client());
    assert_eq!(submit(&mut w, &operator, forever, 7), refused(ComputeRefused::RequestTooLong { valid_until, height: w.height }));
}

#[test]
fn a_failed_call_charges_the_fee_records_the_receipt_and_leaves_the_state() {
    let mut w = world();
    let cid = deployed(&mut w);
    let before = w.state.contract(&cid).unwrap();
    let operator = w.operator.clone();
    let mut failed = execute_outcome(&w, cid, Vec::new(), 1);
    (failed.status, failed.state, failed.public_key) = (CallStatus::Failed, Vec::new(), before.public_key);
    let id = failed.request.request.id();
    // A failed call carrying a state is not canonical.
    let mut with_state = failed.clone();
    with_state.state = b"x".to_vec();
    assert_eq!(submit(&mut w, &operator, with_state, 7), refused(ComputeRefused::NotCanonical("a failed call leaves the state as it was")));
    let client_before = w.state.account(&client().address()).balance;
    submit(&mut w, &operator, failed, 7).unwrap();
    let after = w.state.contract(&cid).unwrap();
    assert_eq!((after.state_hash, after.public_key, after.executions), (before.state_hash, before.public_key, 1));
    assert_eq!(w.state.account(&client().address()).balance, client_before - 200);
    assert_eq!(w.state.compute_request(&id).unwrap().status, CallStatus::Failed);
    // A failed deploy makes no contract, but its request is used and its fee paid.
    let mut failed_deploy = deploy_outcome(&client(), 7);
    (failed_deploy.status, failed_deploy.state) = (CallStatus::Failed, Vec::new());
    let failed_cid = failed_deploy.cid;
    submit(&mut w, &operator, failed_deploy, 7).unwrap();
    assert!(w.state.contract(&failed_cid).is_none());
}

#[test]
fn only_the_owner_or_governance_rotates_a_key_and_the_next_execution_must_use_the_new_generation() {
    let mut w = world();
    let cid = deployed(&mut w);
    let operator = w.operator.clone();
    assert_eq!(w.submit(&operator, Action::RotateKey { cid }), refused(ComputeRefused::NotOwner));
    assert_eq!(w.submit(&client(), Action::RotateKey { cid: [7; 32] }), refused(ComputeRefused::UnknownContract(tcp_types::hex::encode(&[7; 32]))));
    w.submit(&client(), Action::RotateKey { cid }).unwrap();
    let rotated = w.state.contract(&cid).unwrap();
    assert_eq!((rotated.generation, rotated.key_generation, rotated.public_key), (1, 0, [0x33; 32]), "the old key stays published until re-encryption");
    // Members now release generations 0 (old data) and 1, not 2.
    let view = ReleaseStateView::new(&w.state, w.height).unwrap();
    assert_eq!(view.contract_generation(&cid), Some(1));
    // Governance may rotate any contract (after an advisory).
    let governance = AccountKey::from_bytes(&[0x61; 32]).unwrap();
    let mut g = World::build(true, Some(governance.address()));
    g.enroll();
    let g_operator = g.operator.clone();
    g.submit(&g_operator, Action::Transfer { to: client().address(), amount: 100_000_000 }).unwrap();
    g.submit(&g_operator, Action::Transfer { to: governance.address(), amount: 100_000_000 }).unwrap();
    let g_cid = deployed(&mut g);
    g.submit(&governance, Action::RotateKey { cid: g_cid }).unwrap();
    assert_eq!(g.state.contract(&g_cid).unwrap().generation, 1);

    // An execution still under generation 0 is refused; under 1 it re-encrypts and publishes.
    let mut old = execute_outcome(&w, cid, Vec::new(), 1);
    old.generation = 0;
    assert_eq!(submit(&mut w, &operator, old, 7), refused(ComputeRefused::WrongGeneration { expected: 1, got: 0 }));
    let new = execute_outcome(&w, cid, Vec::new(), 2);
    submit(&mut w, &operator, new, 7).unwrap();
    let after = w.state.contract(&cid).unwrap();
    assert_eq!((after.generation, after.key_generation, after.public_key), (1, 1, [0x34; 32]));
}

#[test]
fn a_deploy_carries_its_code_and_an_execution_none() {
    let mut w = world();
    let operator = w.operator.clone();
    let mut no_code = deploy_outcome(&client(), 0);
    no_code.code.clear();
    assert_eq!(submit(&mut w, &operator, no_code, 7), refused(ComputeRefused::NotCanonical("a deploy carries its code")));
    let cid = deployed(&mut w);
    let mut with_code = execute_outcome(&w, cid, Vec::new(), 1);
    with_code.code = CODE.to_vec();
    assert_eq!(submit(&mut w, &operator, with_code, 7), refused(ComputeRefused::NotCanonical("an execution carries no code")));
    // A generation's key is published once: no execution under it replaces it.
    let mut other_key = execute_outcome(&w, cid, Vec::new(), 2);
    other_key.public_key = [0x35; 32];
    assert_eq!(
        submit(&mut w, &operator, other_key, 7),
        refused(ComputeRefused::NotCanonical("the contract's key of this generation is already published"))
    );
    // Every completed call carries its sealed state (an empty one sealed too), so a state hash
    // names the key generation the next call's commitment is keyed by.
    let mut unsealed = execute_outcome(&w, cid, Vec::new(), 3);
    unsealed.state.clear();
    assert_eq!(submit(&mut w, &operator, unsealed, 7), refused(ComputeRefused::NotCanonical("a completed call carries its sealed state")));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A compute transaction's encoding round-trips, and garbage never decodes into something
    /// that encodes differently (or panics).
    #[test]
    fn compute_transactions_round_trip_and_garbage_never_panics(
        nonce in any::<u64>(),
        state in proptest::collection::vec(any::<u8>(), 0..64),
        cut in 0usize..400,
        junk in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut outcome = deploy_outcome(&client(), nonce);
        outcome.state = state;
        outcome.data = vec![terms(&owner(1), 1, 2, vec![[3; 32]])];
        let signature = outcome.sign(&chain(), &enclave_signer(7));
        let tx = Transaction { chain_id: chain(), nonce: 0, gas_price: 1, gas_limit: 1, action: Action::Compute { outcome, signature } }.sign(&client());
        let bytes = tx.encode();
        prop_assert_eq!(tcp_state::SignedTransaction::decode(&bytes).unwrap(), tx);
        let _ = tcp_state::SignedTransaction::decode(&bytes[..cut.min(bytes.len())]);
        let mut spliced = bytes[..cut.min(bytes.len())].to_vec();
        spliced.extend_from_slice(&junk);
        if let Ok(decoded) = tcp_state::SignedTransaction::decode(&spliced) {
            prop_assert_eq!(decoded.encode(), spliced);
        }
    }
}

/// Item 7: two outcomes of one request on one state, signed by one compute node's enclave, that
/// computed different things. Anyone reports them: the node is slashed and jailed (its enclave's
/// next outcome is refused), the reporter earns its share, the rest is burnt, and the enclave's
/// identity is flagged for governance; one fault is punished once. Outcomes that computed the
/// same (an honest rerun, another fee and other ciphertext), of different requests, of two
/// compute nodes, or under a signature that is not the enclave's are not evidence.
#[test]
fn a_compute_node_whose_enclave_computed_one_request_two_ways_is_slashed_and_its_measurement_flagged() {
    let mut w = world();
    let cid = deployed(&mut w);
    let honest = execute_outcome(&w, cid, Vec::new(), 1);
    let mut other_result = honest.clone();
    other_result.computed = [0x99; 32];
    other_result.result_hash = [0x98; 32];
    let report = |first: &ComputeOutcome, a: u8, second: &ComputeOutcome, b: u8| Action::ComputeFault {
        first: Box::new(first.clone()),
        first_signature: first.sign(&chain(), &enclave_signer(a)),
        second: Box::new(second.clone()),
        second_signature: second.sign(&chain(), &enclave_signer(b)),
    };
    let reporter = client();
    let not = |why| refused(ComputeRefused::NotAFault(why));

    let mut rerun = honest.clone();
    (rerun.fee, rerun.result, rerun.state) = (300, b"sealed again".to_vec(), b"encrypted again".to_vec());
    assert_eq!(w.submit(&reporter, report(&honest, 7, &rerun, 7)), not("both outcomes computed the same"));
    let mut another_request = execute_outcome(&w, cid, Vec::new(), 2);
    another_request.computed = [0x99; 32];
    assert_eq!(w.submit(&reporter, report(&honest, 7, &another_request, 7)), not("the outcomes are of different requests, contracts or states"));
    let (mut failed, mut failed_other) = (honest.clone(), other_result.clone());
    (failed.status, failed.state, failed_other.status, failed_other.state) = (CallStatus::Failed, Vec::new(), CallStatus::Failed, Vec::new());
    assert_eq!(w.submit(&reporter, report(&failed, 7, &failed_other, 7)), not("a failed call is not evidence"), "whether a call fails can depend on the machine");
    let (mut empty, mut empty_other) = (honest.clone(), other_result.clone());
    (empty.pre_state_hash, empty_other.pre_state_hash) = (state_hash(b""), state_hash(b""));
    assert_eq!(w.submit(&reporter, report(&empty, 7, &empty_other, 7)), not("an empty pre-state does not fix the key the commitments are under"));
    let mut other_node = other_result.clone();
    other_node.enclave = key(8);
    assert_eq!(w.submit(&reporter, report(&honest, 7, &other_node, 8)), not("enclaves of two compute nodes: neither can be blamed"));
    assert_eq!(w.submit(&reporter, report(&honest, 7, &other_result, 8)), refused(ComputeRefused::BadEnclaveSignature), "signed by another key than the enclave named");

    let operator = w.operator.address();
    let bond = w.state.compute_node(&operator).unwrap().bonded;
    let supply = w.state.total_supply();
    w.submit(&reporter, report(&honest, 7, &other_result, 7)).unwrap();
    let slash = bond / 10;
    let node = w.state.compute_node(&operator).unwrap();
    assert_eq!(node.bonded, bond - slash, "slashed by the validators' slash share");
    assert!(node.jailed_until > w.height, "and jailed");
    assert_eq!(w.state.total_supply(), supply - (slash - slash / 10), "the reporter's tenth is paid, the rest burnt");
    let flagged = w.state.flagged_measurement(&MEASUREMENT).expect("the enclave's identity is flagged");
    assert_eq!((flagged.operator, flagged.request_id), (operator, honest.request.request.id()));
    assert_eq!(w.submit(&reporter, report(&other_result, 7, &honest, 7)), Err(TxError::DuplicateEvidence), "one fault is punished once");
    let mut third = execute_outcome(&w, cid, Vec::new(), 4);
    let mut fourth = third.clone();
    (third.computed, fourth.computed) = ([1; 32], [2; 32]);
    assert_eq!(w.submit(&reporter, report(&third, 7, &fourth, 7)), not("the compute node is jailed for a fault already"), "once per jail period");
    let next = execute_outcome(&w, cid, Vec::new(), 3);
    let sender = w.operator.clone();
    assert!(matches!(submit(&mut w, &sender, next, 7), Err(TxError::Compute(ComputeRefused::Enclave(_)))), "a jailed node's enclave is not current");
}

/// A compute node cannot escape a fault by leaving: after it unbonds everything (its node entry
/// and enclave records gone), the fault is still attributed to it through the enclave's
/// registration history, and what it is still unbonding is slashed.
#[test]
fn a_compute_fault_reported_after_the_node_unbonded_slashes_what_it_is_unbonding() {
    let mut w = world();
    let cid = deployed(&mut w);
    let honest = execute_outcome(&w, cid, Vec::new(), 1);
    let mut other_result = honest.clone();
    other_result.computed = [0x99; 32];
    let operator = w.operator.clone();
    let bonded = w.state.compute_node(&operator.address()).unwrap().bonded;
    w.submit(&operator, Action::UnbondCompute { amount: bonded }).unwrap();
    assert!(w.state.compute_node(&operator.address()).is_none() && w.state.enclave(&key(7)).is_none(), "gone, records and all");
    let unbonding = |w: &World| w.state.compute_unbondings().iter().filter(|u| u.operator == operator.address()).map(|u| u.amount).sum::<u128>();
    assert_eq!(unbonding(&w), bonded);
    // Its enclave's key cannot be handed to another node to take the blame.
    let other = w.other.clone();
    let registration = w.registration(&other, w.height - 1, key(7));
    assert_eq!(w.submit(&other, registration), Err(TxError::EnclaveKeyTaken));
    let fault = Action::ComputeFault {
        first: Box::new(honest.clone()),
        first_signature: honest.sign(&chain(), &enclave_signer(7)),
        second: Box::new(other_result.clone()),
        second_signature: other_result.sign(&chain(), &enclave_signer(7)),
    };
    w.submit(&client(), fault).unwrap();
    assert_eq!(unbonding(&w), bonded - bonded / 10, "the unbonding stake is slashed");
    assert!(w.state.flagged_measurement(&MEASUREMENT).is_some());
    // Jailed though its entry is gone: no second fault now, and no coming back before the end.
    let mut third = execute_outcome(&w, cid, Vec::new(), 4);
    let mut fourth = third.clone();
    (third.computed, fourth.computed) = ([1; 32], [2; 32]);
    let again = Action::ComputeFault {
        first: Box::new(third.clone()),
        first_signature: third.sign(&chain(), &enclave_signer(7)),
        second: Box::new(fourth.clone()),
        second_signature: fourth.sign(&chain(), &enclave_signer(7)),
    };
    assert_eq!(w.submit(&client(), again), refused(ComputeRefused::NotAFault("the compute node is jailed for a fault already")));
    let back = w.submit(&operator, Action::RegisterCompute { endpoint: "https://back".into(), amount: bonded });
    assert!(matches!(back, Err(TxError::StillJailed { .. })), "{back:?}");
}
