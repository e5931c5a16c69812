//! The attack a review of wave 1 found (issue 18, item 1): the host that runs the enclave makes
//! it vouch for what it never computed. Before, `Attest { challenge }` quoted any 32 bytes the
//! host sent, and an output's quote was the same report data over a public digest — so the host
//! could ask for "an attestation" of any result. Now each thing the enclave asserts has its own
//! purpose: a **registration** (a quote naming the enclave's own keys, the chain and the
//! chain's freshness value) and a **result** (an ed25519 signature by the registered key under
//! `tcp/enclave/output`, over a digest the enclave computed from the call it ran). Here a host
//! tries to forge each purpose through every request kind it can send, with the fields it
//! controls set to what the forgery needs; nothing it gets back verifies.

mod common;

use common::*;
use tcp_attestation::{Policy, Registration, Verifier};
use tcp_crypto::{SigningDomain, namespace};
use tcp_enclave::channel::{Input, KeyAsk, Request, Response};
use tcp_enclave::confidential::{Entry, execution_digest};
use tcp_enclave::host::{DEFAULT_REQUEST_TIMEOUT, EnclaveHost};
use tcp_types::ChainId;

const CHAIN: &str = "forge-test";

/// Every byte string a response carries: what a host could present as a quote or signature.
fn blobs(response: &Response) -> Vec<Vec<u8>> {
    match response {
        Response::Hello { measurement, enclave_key, signing_key, backend, .. } => {
            vec![measurement.to_vec(), enclave_key.to_vec(), signing_key.to_vec(), backend.as_bytes().to_vec()]
        }
        Response::Attestation { quote, collateral } => vec![quote.clone(), collateral.clone()],
        Response::Loaded { code_hash } => vec![code_hash.to_vec()],
        Response::Output { state, result, signature, .. } => vec![state.clone(), result.clone(), signature.clone()],
        Response::Error { message } => vec![message.as_bytes().to_vec()],
        // A key request, and its signature alone (made under the key-request namespace).
        Response::KeyRequest { request } => vec![request.clone(), request[request.len().saturating_sub(64)..].to_vec()],
        Response::ContractKey { cid, public_key, .. } => vec![cid.to_vec(), public_key.to_vec()],
        // A compute outcome's signature is made under `tcp/compute/outcome`, over the outcome.
        Response::Outcome { outcome, signature } => vec![outcome.clone(), signature.to_vec()],
        Response::NeedKey { cid, .. } => vec![cid.to_vec()],
    }
}

#[test]
fn no_request_makes_the_enclave_vouch_for_what_it_did_not_compute() {
    let (_dir, platform, root) = dev_platform("forge");
    let mut host = EnclaveHost::start_with(BIN, simulated(platform, "sgx"), DEFAULT_REQUEST_TIMEOUT).unwrap();
    let policy = Policy { measurements: vec![measurement()], ..Policy::default() };
    let verifier = Verifier::new(vec![root], policy, false).unwrap();

    // The honest registration, verified as a chain would.
    let freshness = [0x5a; 32];
    let honest = registration_of(&mut host, CHAIN, freshness);
    let Response::Attestation { quote, collateral } = host.request(&Request::Register { chain_id: CHAIN.into(), freshness, chain_keys: chain_keys() }).unwrap()
    else {
        panic!("registers")
    };
    let registered = verifier.verify_registration(&quote, &collateral, now(), &honest).unwrap();

    // What the host wants: (1) a registration binding keys it holds, so it could sign
    // "results" itself; (2) the registered key's signature on a result the contract did not
    // produce.
    let attacker_key = [0xa7; 32];
    let code_hash = load(&mut host, code("aggregate-stats"));
    let nonce = [3; 32];
    let empty = Input::Public(Vec::new()).wire_bytes();
    let (state, result, signature, fuel) =
        output_with_fuel(host.request(&Request::Init { code_hash, nonce, input: Input::Public(vec![]) }).unwrap());
    let real = execution_digest(Entry::Init, &code_hash, &nonce, &[], &empty, &empty, &state, &result, fuel);
    assert!(registered.verify_output(&real, &signature), "the genuine result verifies");
    let forged = execution_digest(Entry::Init, &code_hash, &nonce, &[], &empty, &empty, &state, b"approved: 1000000", fuel);

    // Every request kind, with the fields the host controls set to the forgery's values.
    let requests = vec![
        Request::Hello,
        // The wave-1 attack: the digest to forge as the "challenge" (now: the freshness).
        Request::Register { chain_id: CHAIN.into(), freshness: forged, chain_keys: chain_keys() },
        Request::Register { chain_id: CHAIN.into(), freshness: attacker_key, chain_keys: chain_keys() },
        Request::Load { code: forged.to_vec() },
        Request::Init { code_hash, nonce: forged, input: Input::Public(forged.to_vec()) },
        Request::Init { code_hash, nonce, input: Input::Public(b"approved: 1000000".to_vec()) },
        Request::Execute {
            code_hash,
            nonce: forged,
            state: state.clone(),
            input: Input::Public(forged.to_vec()),
            data: Input::Public(vec![]),
        },
        Request::Execute { code_hash, nonce, state: forged.to_vec(), input: Input::Public(vec![]), data: Input::Sealed(forged.to_vec()) },
        // Key requests: the registered key signs them, under their own namespace, over what
        // the enclave builds (for a deploy, the id it computes).
        Request::RequestKey { epoch: 0, ask: KeyAsk::Execute { cid: forged, generation: 0 } },
        Request::RequestKey { epoch: 0, ask: KeyAsk::Deploy { code_hash, deployer: [0xa7; 20], nonce: 0 } },
        Request::OpenKey { request: forged, sharing: forged.to_vec(), answers: Vec::new() },
        // Compute requests: the outcome is built from a client's signed request and what the
        // enclave ran, and signed under its own namespace.
        Request::Deploy { request: forged.to_vec(), init: Input::Public(forged.to_vec()), fee: 0, gas_price: 0 },
        Request::Call {
            request: forged.to_vec(),
            view: Default::default(),
            state: forged.to_vec(),
            input: forged.to_vec(),
            data: Vec::new(),
            fee: 0,
            gas_price: 0,
        },
    ];
    let mut tried = 0;
    for request in requests {
        let response = host.request(&request).unwrap();
        for blob in blobs(&response) {
            // (1) As a registration of the attacker's key, at any freshness the host used.
            for freshness in [freshness, forged, attacker_key] {
                for keys in [(attacker_key, honest.x25519_key), (honest.signing_key, attacker_key), (attacker_key, attacker_key)] {
                    let claim = Registration {
                        chain_id: ChainId::new(CHAIN).unwrap(),
                        freshness,
                        chain_keys: chain_keys().digest(),
                        signing_key: keys.0,
                        x25519_key: keys.1,
                    };
                    assert!(
                        verifier.verify_registration(&blob, &collateral, now(), &claim).is_err(),
                        "{request:?} registered a key the host chose"
                    );
                }
            }
            // (2) As the registered enclave's signature on the forged result.
            assert!(!registered.verify_output(&forged, &blob), "{request:?} produced a signature on a result never computed");
            tried += 1;
        }
        // An output's signature covers the call it ran and nothing else.
        if let Response::Output { state: out_state, result, signature, fuel_used } = &response {
            let (Request::Init { code_hash, nonce, input } | Request::Execute { code_hash, nonce, input, .. }) = &request else {
                unreachable!()
            };
            let (entry, state_in, data) = match &request {
                Request::Execute { state, data, .. } => (Entry::Execute, state.clone(), data.wire_bytes()),
                _ => (Entry::Init, Vec::new(), empty.clone()),
            };
            let digest = execution_digest(entry, code_hash, nonce, &state_in, &input.wire_bytes(), &data, out_state, result, *fuel_used);
            assert!(registered.verify_output(&digest, signature), "{request:?}: the output is signed over what it ran");
            let altered = execution_digest(
                entry,
                code_hash,
                nonce,
                &state_in,
                &input.wire_bytes(),
                &data,
                out_state,
                b"approved: 1000000",
                *fuel_used,
            );
            assert!(!registered.verify_output(&altered, signature));
        }
    }
    assert!(tried >= 15, "only {tried} candidates were tried");

    // A result signature is bound to its namespace and chain: it is not a signature of the same
    // bytes for any other purpose (a consensus vote, a staking bond) or on another chain.
    let key = <tcp_crypto::Ed25519PublicKey as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(&honest.signing_key[..]))
        .unwrap();
    let signature =
        <tcp_crypto::Ed25519Signature as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(&signature[..])).unwrap();
    let chain = ChainId::new(CHAIN).unwrap();
    assert!(SigningDomain::new(namespace::ENCLAVE_OUTPUT, &chain).verify(&key, &real, &signature));
    for other in [namespace::CONSENSUS_VOTE, namespace::CONSENSUS_PROPOSAL, namespace::STAKING_BOND, namespace::TRANSACTION] {
        assert!(!SigningDomain::new(other, &chain).verify(&key, &real, &signature), "{other}");
    }
    assert!(!SigningDomain::new(namespace::ENCLAVE_OUTPUT, &ChainId::new("another-chain").unwrap()).verify(&key, &real, &signature));
}
