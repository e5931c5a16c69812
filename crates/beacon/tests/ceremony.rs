//! DKG, reshare and σ_h end to end, with honest and misbehaving dealers, and every decoder fed
//! garbage.

use commonware_cryptography::Signer as _;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tcp_beacon::dkg::{AcceptedDealing, DkgMessage, decode_log, encode_log, group_key, share_index};
use tcp_beacon::signature::{self, partial_from_bytes, partial_to_bytes, recover_signature, sign_partial, verify_partial, verify_partials};
use tcp_beacon::{BeaconSignature, Ceremony, DealerSession, PlayerSession, Previous, Transcript, beacon_message, verify_beacon};
use tcp_crypto::{Ed25519PrivateKey, Ed25519PublicKey, insecure_ed25519_from_seed};
use tcp_types::{ChainId, Digest, Height};

type Shares = Vec<(Ed25519PublicKey, commonware_cryptography::bls12381::primitives::group::Share)>;

#[derive(Clone, Copy, PartialEq)]
enum Dealer {
    Honest,
    /// Sends each half of the players a dealing from a different polynomial.
    Inconsistent,
    /// Never delivers its dealings (its log reveals everything).
    Withholding,
}

/// Run one ceremony in memory. Returns the transcript and each player's share.
fn run(
    ceremony: &Ceremony,
    keys: &[Ed25519PrivateKey],
    previous: &Shares,
    behaviour: impl Fn(&Ed25519PublicKey) -> Dealer,
    seed: u64,
) -> (Transcript, Result<Shares, String>) {
    let by_key = |pk: &Ed25519PublicKey| keys.iter().find(|k| &k.public_key() == pk).expect("known key").clone();
    let mut players: Vec<(Ed25519PublicKey, PlayerSession)> =
        ceremony.players().iter().map(|pk| (pk.clone(), PlayerSession::new(ceremony, by_key(pk)).unwrap())).collect();
    let mut transcript = Transcript::new(ceremony.clone());
    for (d, dealer_pk) in ceremony.dealers().iter().enumerate() {
        let share = previous.iter().find(|(pk, _)| pk == dealer_pk).map(|(_, s)| s.clone());
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&(seed * 1000 + d as u64).to_be_bytes());
        let mut dealer = DealerSession::start(ceremony, by_key(dealer_pk), share.clone(), seed_bytes).unwrap();
        let mut other = seed_bytes;
        other[31] ^= 1;
        let twin = DealerSession::start(ceremony, by_key(dealer_pk), share, other).unwrap();
        let pending: Vec<_> = dealer.pending().cloned().collect();
        for (i, (player_pk, dealing)) in pending.into_iter().enumerate() {
            let (commitment, dealing) = match behaviour(dealer_pk) {
                Dealer::Honest => (dealer.commitment().clone(), dealing),
                Dealer::Withholding => continue,
                Dealer::Inconsistent if i % 2 == 0 => (dealer.commitment().clone(), dealing),
                Dealer::Inconsistent => (twin.commitment().clone(), twin.pending().nth(i).unwrap().1.clone()),
            };
            let (_, player) = players.iter_mut().find(|(pk, _)| *pk == player_pk).unwrap();
            if let Ok(ack) = player.on_dealing(dealer_pk, commitment, dealing) {
                // An ack for the twin's commitment does not verify for the real dealer.
                let _ = dealer.receive_ack(&player_pk, ack);
            }
        }
        // The log crosses the wire and the chain as bytes.
        let bytes = DkgMessage::Log { round: ceremony.round(), log: Box::new(dealer.finalize()) }.encode();
        let DkgMessage::Log { log, .. } = DkgMessage::decode(&bytes).unwrap() else { panic!("a log") };
        transcript.record(decode_log(&encode_log(&log)).unwrap()).unwrap();
    }
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let shares: Result<Shares, String> = players
        .into_iter()
        .map(|(pk, player)| player.finalize(&transcript, &mut rng).map(|(_, s)| (pk, s)).map_err(|e| e.to_string()))
        .collect();
    (transcript, shares)
}

fn keys(range: std::ops::Range<u64>) -> Vec<Ed25519PrivateKey> {
    range.map(insecure_ed25519_from_seed).collect()
}

fn public(keys: &[Ed25519PrivateKey]) -> Vec<Ed25519PublicKey> {
    keys.iter().map(|k| k.public_key()).collect()
}

fn chain() -> ChainId {
    ChainId::new("beacon-test").unwrap()
}

#[test]
fn dkg_then_reshare_keeps_the_group_key_and_any_quorum_signs_the_same_sigma() {
    let all = keys(0..7);
    let genesis = public(&all[..4]);
    let dkg = Ceremony::new(0, None, &genesis, &genesis).unwrap();
    let (transcript, shares) = run(&dkg, &all, &Vec::new(), |_| Dealer::Honest, 1);
    let shares = shares.unwrap();
    let output = transcript.finish(&mut ChaCha20Rng::seed_from_u64(9)).unwrap();
    let key = group_key(&output);
    assert_eq!(dkg.threshold(), 3);

    // σ_1 from two different quorums is the same signature, and it verifies with the key alone.
    let message = beacon_message(&chain(), Height(1), &Previous::Seed(Digest([7; 32])));
    let partials: Vec<_> = shares.iter().map(|(_, s)| sign_partial(s, &message)).collect();
    assert!(partials.iter().all(|p| verify_partial(output.public(), &message, p)));
    let first = recover_signature(output.public(), &partials[..3]).unwrap();
    let second = recover_signature(output.public(), &partials[1..]).unwrap();
    assert_eq!(first, second);
    assert!(verify_beacon(&key, &message, &first));
    assert!(!verify_beacon(&key, &beacon_message(&chain(), Height(2), &Previous::Seed(Digest([7; 32]))), &first));
    // Too few partials recover nothing.
    assert!(recover_signature(output.public(), &partials[..2]).is_err());

    // Reshare to a new set: two leave, three join.
    let next = public(&all[2..7]);
    let reshare = Ceremony::new(1, Some(output.clone()), &genesis, &next).unwrap();
    let (transcript, new_shares) = run(&reshare, &all, &shares, |_| Dealer::Honest, 2);
    let new_shares = new_shares.unwrap();
    let new_output = transcript.finish(&mut ChaCha20Rng::seed_from_u64(3)).unwrap();
    assert_eq!(group_key(&new_output), key, "a reshare never changes the group key");
    assert_eq!(new_output.players().len(), 5);
    assert_eq!(share_index(&new_output, &all[6].public_key()), Some(new_output.players().position(&all[6].public_key()).unwrap() as u32));
    // The new set signs the identical σ for the same message: the beacon chain is unbroken.
    let new_partials: Vec<_> = new_shares.iter().map(|(_, s)| sign_partial(s, &message)).collect();
    let from_new_set = recover_signature(new_output.public(), &new_partials[1..]).unwrap();
    assert_eq!(from_new_set, first);
    // Old partials do not verify under the new sharing (shares were refreshed).
    assert!(!partials.iter().all(|p| verify_partial(new_output.public(), &message, p)));
}

#[test]
fn a_misbehaving_dealer_is_excluded_and_the_ceremony_still_completes() {
    let all = keys(0..7);
    let set = public(&all);
    let ceremony = Ceremony::new(0, None, &set, &set).unwrap();
    let inconsistent = set[0].clone();
    let withholding = set[3].clone();
    let behaviour = |pk: &Ed25519PublicKey| {
        if *pk == inconsistent {
            Dealer::Inconsistent
        } else if *pk == withholding {
            Dealer::Withholding
        } else {
            Dealer::Honest
        }
    };
    let (transcript, shares) = run(&ceremony, &all, &Vec::new(), behaviour, 5);
    let output = transcript.finish(&mut ChaCha20Rng::seed_from_u64(1)).unwrap();
    assert!(!output.dealers().iter().any(|d| *d == inconsistent || *d == withholding), "bad dealers are excluded");
    let shares = shares.unwrap();
    let message = beacon_message(&chain(), Height(5), &Previous::Seed(Digest([1; 32])));
    let partials: Vec<_> = shares.iter().map(|(_, s)| sign_partial(s, &message)).collect();
    let sigma = recover_signature(output.public(), &partials[..5]).unwrap();
    assert!(verify_beacon(&group_key(&output), &message, &sigma));
}

#[test]
fn too_many_bad_dealers_fail_the_ceremony_with_a_reason() {
    let all = keys(0..4);
    let set = public(&all);
    let ceremony = Ceremony::new(0, None, &set, &set).unwrap();
    let bad: Vec<_> = set[..2].to_vec();
    let (transcript, shares) =
        run(&ceremony, &all, &Vec::new(), |pk| if bad.contains(pk) { Dealer::Withholding } else { Dealer::Honest }, 2);
    let error = transcript.finish(&mut ChaCha20Rng::seed_from_u64(1)).unwrap_err().to_string();
    assert!(error.contains("insufficient"), "{error}");
    assert!(shares.is_err());
}

#[test]
fn logs_are_checked_before_they_count() {
    let all = keys(0..4);
    let set = public(&all);
    let ceremony = Ceremony::new(0, None, &set, &set).unwrap();
    let other_round = Ceremony::new(1, None, &set, &set).unwrap();
    let dealer = DealerSession::start(&other_round, all[0].clone(), None, [1; 32]).unwrap();
    let mut transcript = Transcript::new(ceremony.clone());
    // A log signed for another round does not verify for this one.
    assert_eq!(transcript.record(dealer.finalize()).unwrap_err(), tcp_beacon::dkg::LogRejection::BadSignature);
    // A dealer outside the ceremony cannot even start.
    assert!(DealerSession::start(&ceremony, insecure_ed25519_from_seed(99), None, [1; 32]).is_err());
    // The first log of a dealer counts; a second is refused.
    let first = DealerSession::start(&ceremony, all[1].clone(), None, [2; 32]).unwrap().finalize();
    let second = DealerSession::start(&ceremony, all[1].clone(), None, [3; 32]).unwrap().finalize();
    transcript.record(first).unwrap();
    assert_eq!(transcript.record(second).unwrap_err(), tcp_beacon::dkg::LogRejection::Duplicate);
    assert_eq!(transcript.logs_recorded(), 1);
}

#[test]
fn a_player_resumes_from_its_persisted_dealings_and_re_acks_identically() {
    let all = keys(0..4);
    let set = public(&all);
    let ceremony = Ceremony::new(0, None, &set, &set).unwrap();
    let dealer = DealerSession::start(&ceremony, all[0].clone(), None, [4; 32]).unwrap();
    let (player_pk, dealing) = dealer.pending().find(|(pk, _)| *pk == set[2]).cloned().unwrap();
    let player_key = all.iter().find(|k| k.public_key() == player_pk).unwrap().clone();
    let mut player = PlayerSession::new(&ceremony, player_key.clone()).unwrap();
    let ack = player.on_dealing(&set[0], dealer.commitment().clone(), dealing.clone()).unwrap();
    let persisted: Vec<AcceptedDealing> = player.accepted();
    let mut resumed = PlayerSession::resume(&ceremony, player_key, persisted).unwrap();
    let again = resumed.on_dealing(&set[0], dealer.commitment().clone(), dealing).unwrap();
    assert_eq!(format!("{ack:?}"), format!("{again:?}"));
}

#[test]
fn batch_verification_finds_the_bad_partials() {
    let all = keys(0..7);
    let set = public(&all);
    let ceremony = Ceremony::new(0, None, &set, &set).unwrap();
    let (transcript, shares) = run(&ceremony, &all, &Vec::new(), |_| Dealer::Honest, 8);
    let output = transcript.finish(&mut ChaCha20Rng::seed_from_u64(1)).unwrap();
    let message = beacon_message(&chain(), Height(3), &Previous::Seed(Digest([2; 32])));
    let other = beacon_message(&chain(), Height(4), &Previous::Seed(Digest([2; 32])));
    let shares = shares.unwrap();
    let mut partials: Vec<_> = shares.iter().map(|(_, s)| sign_partial(s, &message)).collect();
    partials[2] = sign_partial(&shares[2].1, &other); // signed the wrong height
    partials[5].index = partials[4].index; // claims another validator's share
    let verdicts = verify_partials(&mut ChaCha20Rng::seed_from_u64(2), output.public(), &message, &partials);
    assert_eq!(verdicts, vec![true, true, false, true, true, false, true]);
    // The encoding round-trips; any other length is refused.
    let bytes = partial_to_bytes(&partials[0]);
    assert_eq!(partial_from_bytes(&bytes).unwrap(), partials[0]);
    assert!(partial_from_bytes(&bytes[1..]).is_err());
    let sigma = recover_signature(output.public(), partials.iter().filter(|p| verify_partial(output.public(), &message, p))).unwrap();
    assert_eq!(BeaconSignature::from_bytes(&sigma.to_bytes()).unwrap(), sigma);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decoders_never_panic_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = DkgMessage::decode(&bytes);
        let _ = decode_log(&bytes);
        let _ = partial_from_bytes(&bytes);
        let _ = BeaconSignature::from_bytes(&bytes);
        let _ = signature::group_key_from_bytes(&bytes);
    }

    #[test]
    fn mutated_dkg_messages_are_refused_or_harmless(flip in 0usize..2000, bit in 0u8..8) {
        let all = keys(0..4);
        let set = public(&all);
        let ceremony = Ceremony::new(0, None, &set, &set).unwrap();
        let dealer = DealerSession::start(&ceremony, all[0].clone(), None, [5; 32]).unwrap();
        let (player_pk, dealing) = dealer.pending().next().cloned().unwrap();
        let mut bytes = DkgMessage::Dealing { round: 0, commitment: dealer.commitment().clone(), share: dealing }.encode();
        let i = flip % bytes.len();
        bytes[i] ^= 1 << bit;
        // (A flipped round routes the dealing to a ceremony that does not exist: refused by
        // the host before it reaches a player.)
        if let Ok(DkgMessage::Dealing { round: 0, commitment, share }) = DkgMessage::decode(&bytes) {
            let key = all.iter().find(|k| k.public_key() == player_pk).unwrap().clone();
            let mut player = PlayerSession::new(&ceremony, key).unwrap();
            // A corrupted dealing never earns an ack (it no longer matches its commitment,
            // or the commitment has the wrong degree).
            prop_assert!(player.on_dealing(&set[0], commitment, share).is_err());
        }
    }
}
