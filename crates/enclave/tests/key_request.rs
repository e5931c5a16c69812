//! The enclave obtains a contract key from a secret-share group through a host that relays
//! only ciphertext (issue 19, items 4 and 8): the key is the one the group's threshold
//! signature derives; a member's bad answer is named and the request still succeeds; fewer than
//! t good answers give no key; a host that hands over another group's sharing (a master key the
//! enclave did not pin) gets nothing; and the host's transcript holds no partial and no key.

mod common;

use common::group::*;
use common::*;
use commonware_codec::{DecodeExt as _, Encode as _};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng as _;
use tcp_beacon::signature::PublicSharing;
use tcp_dkmp::{ContractKeyId, ContractKeys, SignedKeyRequest, partial_contract_key, recover_contract_key, seal_partial};
use tcp_enclave::channel::{KeyAsk, Request, Response};
use tcp_enclave::host::{DEFAULT_REQUEST_TIMEOUT, EnclaveHost};
use tcp_enclave::keys::RelayedAnswer;

const CHAIN: &str = "key-test";
/// An enclave registered to `CHAIN` with `group`'s master key pinned.
fn registered_enclave(platform: std::path::PathBuf, group: &Group) -> EnclaveHost {
    let mut host = EnclaveHost::start_with(BIN, simulated(platform, "sgx"), DEFAULT_REQUEST_TIMEOUT).unwrap();
    let chain_keys = tcp_attestation::ChainKeys { group_key: [0x61; 96], master_key: master_key(&group.sharing) };
    match host.request(&Request::Register { chain_id: CHAIN.into(), freshness: [1; 32], chain_keys }).unwrap() {
        Response::Attestation { .. } => {}
        other => panic!("registers: {other:?}"),
    }
    host
}

fn ask(host: &mut EnclaveHost, cid: u8, generation: u64) -> SignedKeyRequest {
    match host.request(&Request::RequestKey { epoch: 3, ask: KeyAsk::Execute { cid: [cid; 32], generation } }).unwrap() {
        Response::KeyRequest { request } => SignedKeyRequest::decode(commonware_codec::Copying(request.as_slice())).unwrap(),
        other => panic!("{other:?}"),
    }
}

fn open(host: &mut EnclaveHost, signed: &SignedKeyRequest, sharing: &PublicSharing, answers: Vec<RelayedAnswer>) -> Response {
    host.request(&Request::OpenKey { request: signed.request.digest().0, sharing: sharing.encode().to_vec(), answers }).unwrap()
}

/// The key as the group's signature derives it (what any quorum gives).
fn expected_key(group: &Group, id: &ContractKeyId) -> [u8; 32] {
    let partials: Vec<_> = group.shares.iter().map(|s| (s.index.get(), partial_contract_key(s, id))).collect();
    let (seed, _) = recover_contract_key(&mut ChaCha20Rng::seed_from_u64(1), &group.sharing, id, &partials).unwrap();
    ContractKeys::derive(&seed, id).public_key
}

#[test]
fn an_enclave_obtains_the_groups_key_and_names_a_member_with_a_bad_answer() {
    let (_dir, platform, _) = dev_platform("keys");
    let g = group(1);
    let mut host = registered_enclave(platform, &g);
    host.record_transcript();

    let signed = ask(&mut host, 7, 0);
    assert!(signed.verify(&tcp_types::ChainId::new(CHAIN).unwrap()), "signed by the enclave's registered key");
    let mut relayed = answers(&g, &signed, 0..7);
    // Member 2 answers with its partial for another contract; member 5's answer is garbled.
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let wrong = partial_contract_key(&g.shares[2], &ContractKeyId { cid: [8; 32], ..signed.request.key.clone() });
    relayed[2].sealed = seal_partial(&mut rng, &signed.request, &wrong, &g.members[2]).unwrap();
    relayed[5].sealed[40] ^= 1;
    let Response::ContractKey { cid, generation, public_key, bad } = open(&mut host, &signed, &g.sharing, relayed) else { panic!("a key") };
    assert_eq!((cid, generation), ([7; 32], 0));
    assert_eq!(public_key, expected_key(&g, &signed.request.key), "the group's key, from the 5 good answers");
    assert_eq!(bad, vec![g.shares[2].index.get(), g.shares[5].index.get()], "the two bad members are named");

    // Another generation is another key; the same request cannot be answered twice.
    let second = ask(&mut host, 7, 1);
    let Response::ContractKey { public_key: other, .. } = open(&mut host, &second, &g.sharing, answers(&g, &second, 2..7)) else {
        panic!("t answers suffice")
    };
    assert_ne!(other, public_key);
    expect_error(Ok(open(&mut host, &second, &g.sharing, answers(&g, &second, 0..7))), "no such pending key request");

    // The host saw requests, sealed answers and public keys: never a partial, s or a secret.
    let clear: Vec<Vec<u8>> = (0..7).map(|i| partial_contract_key(&g.shares[i], &signed.request.key).value.encode().to_vec()).collect();
    for frame in host.transcript() {
        for partial in &clear {
            assert!(!frame.windows(16).any(|w| partial.windows(16).any(|p| p == w)), "a partial crossed the channel in the clear");
        }
    }
}

#[test]
fn too_few_answers_or_another_groups_sharing_give_no_key() {
    let (_dir, platform, _) = dev_platform("keys-refused");
    let g = group(2);
    let mut host = registered_enclave(platform, &g);

    // t − 1 good answers (t = 5 of 7): no key.
    let signed = ask(&mut host, 3, 0);
    expect_error(Ok(open(&mut host, &signed, &g.sharing, answers(&g, &signed, 0..4))), "valid partials of the 5 needed");

    // A host running its own group (so it knows every share) hands over that group's sharing:
    // refused before any partial is looked at, because the enclave pinned the chain's master key.
    let impostor = group(3);
    let signed = ask(&mut host, 3, 0);
    expect_error(
        Ok(open(&mut host, &signed, &impostor.sharing, answers(&impostor, &signed, 0..7))),
        "not of the master key this enclave pinned",
    );
    // And the chain's sharing with the impostor's answers: every member named, no key.
    let signed = ask(&mut host, 3, 0);
    expect_error(Ok(open(&mut host, &signed, &g.sharing, answers(&impostor, &signed, 0..7))), "0 valid partials");

    // An enclave that never registered signs no request.
    let (_dir2, platform2, _) = dev_platform("keys-unregistered");
    let mut fresh = EnclaveHost::start_with(BIN, simulated(platform2, "sgx"), DEFAULT_REQUEST_TIMEOUT).unwrap();
    let ask = KeyAsk::Execute { cid: [1; 32], generation: 0 };
    expect_error(fresh.request(&Request::RequestKey { epoch: 0, ask }), "not registered");

    // A deploy's key only for code the enclave holds, under the id the enclave computes.
    let deploy = KeyAsk::Deploy { code_hash: [0xc0; 32], deployer: [0xde; 20], nonce: 1 };
    expect_error(host.request(&Request::RequestKey { epoch: 3, ask: deploy }), "load its code");
    let code_hash = load(&mut host, code("aggregate-stats"));
    let deploy = KeyAsk::Deploy { code_hash, deployer: [0xde; 20], nonce: 1 };
    let Response::KeyRequest { request } = host.request(&Request::RequestKey { epoch: 3, ask: deploy }).unwrap() else { panic!("signed") };
    let signed = SignedKeyRequest::decode(commonware_codec::Copying(request.as_slice())).unwrap();
    assert_eq!(signed.request.key.cid, tcp_dkmp::contract_id(&code_hash, &[0xde; 20], 1));
    assert_eq!(signed.request.key.generation, 0);
}
