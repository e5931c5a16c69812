//! Input from outside is refused with a reason, counted, and changes nothing.

mod common;

use bytes::Bytes;
use common::*;
use commonware_codec::Encode;
use proptest::prelude::*;
use tcp_consensus::*;
use tcp_crypto::insecure_ed25519_from_seed;
use tcp_types::{ChainId, Height, Round, ValidatorIndex};

/// A core for validator 1 (not the proposer of height 1, round 0) at height 1.
fn started(net: &Net) -> Consensus {
    let mut core = net.core(1);
    core.start_height(Height(1), net.params());
    core
}

#[test]
fn each_kind_of_bad_vote_is_rejected_and_counted() {
    let net = Net::new(4);
    let mut core = started(&net);
    let good = net.vote(2, VoteType::Prevote, 1, 0, Some(value(1)));

    // Unknown validator (index beyond the set).
    let mut unknown = good.clone();
    unknown.vote.validator = ValidatorIndex(9);
    assert_eq!(core.handle(Input::Vote(unknown)), Err(Rejection::UnknownValidator));

    // Bad signature: signed by someone else's key.
    let forged = net.domains.sign_vote(&insecure_ed25519_from_seed(999), good.vote.clone());
    assert_eq!(core.handle(Input::Vote(forged)), Err(Rejection::BadSignature));

    // Another chain id: the signature's domain differs.
    let other_chain = ConsensusDomains::new(&ChainId::new("other-chain").unwrap());
    let replayed = other_chain.sign_vote(&net.keys[2], good.vote.clone());
    assert_eq!(core.handle(Input::Vote(replayed)), Err(Rejection::BadSignature));

    // Far-future height and round, and a stale height.
    assert_eq!(core.handle(Input::Vote(net.vote(2, VoteType::Prevote, 50, 0, None))), Err(Rejection::FarFutureHeight));
    assert_eq!(core.handle(Input::Vote(net.vote(2, VoteType::Prevote, 1, 4_000_000_000, None))), Err(Rejection::FarFutureRound));
    assert_eq!(core.handle(Input::Vote(net.vote(2, VoteType::Prevote, 0, 0, None))), Err(Rejection::StaleHeight));

    // A proposal from someone who is not the proposer of its round.
    let proposer = net.proposer(1, 0);
    let not_proposer = (proposer + 1) % 4;
    let wrong = net.proposal(not_proposer, 1, 0, value(1), None);
    assert_eq!(core.handle(Input::Proposal { proposal: wrong, valid: true }), Err(Rejection::WrongProposer));

    // The good vote is accepted once, then is a duplicate.
    assert!(core.handle(Input::Vote(good.clone())).is_ok());
    assert_eq!(core.handle(Input::Vote(good)), Err(Rejection::Duplicate));

    let stats = core.stats();
    for r in [
        Rejection::UnknownValidator,
        Rejection::FarFutureHeight,
        Rejection::FarFutureRound,
        Rejection::StaleHeight,
        Rejection::WrongProposer,
        Rejection::Duplicate,
    ] {
        assert_eq!(stats.get(r), 1, "{r:?}");
    }
    assert_eq!(stats.get(Rejection::BadSignature), 2);
    assert_eq!(stats.total(), 8);
    // None of it moved the state machine.
    assert_eq!((core.round(), core.step()), (Some(Round(0)), Some(Step::Propose)));
}

#[test]
fn future_height_buffer_is_bounded_per_sender() {
    let net = Net::new(4);
    let mut core = started(&net);
    let limit = Limits::default().future_messages_per_validator;
    let mut accepted = 0;
    for r in 0..(limit as u32 + 20) {
        if core.handle(Input::Vote(net.vote(3, VoteType::Prevote, 2, r, None))).is_ok() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, limit);
    assert_eq!(core.stats().get(Rejection::FutureBufferFull), 20);
    // Another sender still has its own quota.
    assert!(core.handle(Input::Vote(net.vote(2, VoteType::Prevote, 2, 0, None))).is_ok());
}

#[test]
fn future_rounds_are_bounded_per_validator() {
    let net = Net::new(4);
    let mut core = started(&net);
    let limit = Limits::default().future_rounds_per_validator as u32;
    for r in 1..=limit {
        assert!(core.handle(Input::Vote(net.vote(3, VoteType::Prevote, 1, r * 10, None))).is_ok());
    }
    assert_eq!(core.handle(Input::Vote(net.vote(3, VoteType::Prevote, 1, 999, None))), Err(Rejection::FutureRoundLimit));
    // A single validator in a higher round is not enough to skip (f + 1 = 2 needed).
    assert_eq!(core.round(), Some(Round(0)));
    // A second one is: L55 moves us to the highest round with f + 1 senders.
    assert!(core.handle(Input::Vote(net.vote(2, VoteType::Prevote, 1, 20, None))).is_ok());
    assert_eq!(core.round(), Some(Round(20)));
}

#[test]
fn precommit_extension_is_checked_by_the_callers_verifier() {
    struct Tagged;
    impl PrecommitExtension for Tagged {
        fn extend(&self, _: Height, _: Round, _: &ValueId) -> Bytes {
            Bytes::from_static(b"share")
        }
        fn verify(&self, _: Height, _: Round, _: ValidatorIndex, _: &ValueId, ext: &[u8]) -> bool {
            ext == b"share"
        }
    }
    let net = Net::new(4);
    let mut core = net.core(1);
    let mut params = net.params();
    params.extension = std::sync::Arc::new(Tagged);
    core.start_height(Height(1), params);
    let mut bad = net.vote(2, VoteType::Precommit, 1, 0, Some(value(1))).vote;
    bad.extension = Bytes::from_static(b"forged");
    let bad = net.domains.sign_vote(&net.keys[2], bad);
    assert_eq!(core.handle(Input::Vote(bad)), Err(Rejection::BadExtension));
    let mut good = net.vote(2, VoteType::Precommit, 1, 0, Some(value(1))).vote;
    good.extension = Bytes::from_static(b"share");
    assert!(core.handle(Input::Vote(net.domains.sign_vote(&net.keys[2], good))).is_ok());
}

#[test]
fn oversized_and_malformed_messages_are_refused_by_the_decoder() {
    let net = Net::new(4);
    let vote = ConsensusMessage::Vote(net.vote(2, VoteType::Prevote, 1, 0, Some(value(1))));
    let bytes = vote.encode();
    assert_eq!(ConsensusMessage::decode_bounded(&bytes).unwrap(), vote);
    assert!(matches!(ConsensusMessage::decode_bounded(&vec![1u8; MAX_MESSAGE_BYTES + 1]), Err(DecodeError::Oversized { .. })));
    assert!(matches!(ConsensusMessage::decode_bounded(&bytes[..bytes.len() - 1]), Err(DecodeError::Malformed(_))));
    let mut trailing = bytes.to_vec();
    trailing.push(0);
    assert!(matches!(ConsensusMessage::decode_bounded(&trailing), Err(DecodeError::Malformed(_))));
    // A prevote may not carry an extension.
    let mut with_ext = net.vote(2, VoteType::Prevote, 1, 0, Some(value(1)));
    with_ext.vote.extension = Bytes::from_static(b"x");
    assert!(ConsensusMessage::decode_bounded(&ConsensusMessage::Vote(with_ext).encode()).is_err());
    // A proposal's proof-of-lock round must precede its round.
    let bad_pol = net.proposal(0, 1, 2, value(1), Some(2));
    assert!(ConsensusMessage::decode_bounded(&ConsensusMessage::Proposal(bad_pol).encode()).is_err());
}

fn arb_vote() -> impl Strategy<Value = Vote> {
    (
        any::<bool>(),
        any::<u64>(),
        any::<u32>(),
        proptest::option::of(any::<[u8; 32]>()),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..=MAX_EXTENSION_BYTES),
    )
        .prop_map(|(pre, h, r, v, i, ext)| {
            let vote_type = if pre { VoteType::Prevote } else { VoteType::Precommit };
            let value = v.map(tcp_types::Digest);
            let extension = if vote_type == VoteType::Precommit && value.is_some() { Bytes::from(ext) } else { Bytes::new() };
            Vote { vote_type, height: Height(h), round: Round(r), value, validator: ValidatorIndex(i), extension }
        })
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let _ = ConsensusMessage::decode_bounded(&bytes);
    }

    #[test]
    fn votes_round_trip_and_every_truncation_fails(vote in arb_vote(), seed in 0u64..4) {
        let signed = Net::new(1).domains.sign_vote(&insecure_ed25519_from_seed(seed), vote);
        let bytes = ConsensusMessage::Vote(signed.clone()).encode();
        prop_assert_eq!(ConsensusMessage::decode_bounded(&bytes).unwrap(), ConsensusMessage::Vote(signed));
        for cut in 0..bytes.len() {
            prop_assert!(ConsensusMessage::decode_bounded(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn proposals_round_trip(h in any::<u64>(), r in 1u32.., v in any::<[u8; 32]>(), pol in proptest::option::of(0u32..1), i in any::<u32>()) {
        let p = Proposal { height: Height(h), round: Round(r), value: tcp_types::Digest(v), pol_round: pol.map(Round), proposer: ValidatorIndex(i) };
        let signed = Net::new(1).domains.sign_proposal(&insecure_ed25519_from_seed(1), p);
        let bytes = ConsensusMessage::Proposal(signed.clone()).encode();
        prop_assert_eq!(ConsensusMessage::decode_bounded(&bytes).unwrap(), ConsensusMessage::Proposal(signed));
    }

    /// Whatever well-formed votes arrive, the core never panics and never votes twice.
    #[test]
    fn arbitrary_signed_votes_never_break_the_core(incoming in proptest::collection::vec((0usize..4, any::<bool>(), 0u64..4, 0u32..6, proptest::option::of(0u8..3)), 0..60)) {
        let net = Net::new(4);
        let mut core = net.core(1);
        let mut sent = std::collections::HashMap::new();
        let mut effects = core.start_height(Height(1), net.params());
        for (i, pre, h, r, v) in incoming {
            let t = if pre { VoteType::Prevote } else { VoteType::Precommit };
            if let Ok(more) = core.handle(Input::Vote(net.vote(i, t, h, r, v.map(value)))) {
                effects.extend(more);
            }
        }
        for v in votes(&effects) {
            let previous = sent.insert((v.height, v.round, v.vote_type), v.value);
            prop_assert!(previous.is_none() || previous == Some(v.value));
        }
        prop_assert_eq!(core.refused_double_signs(), 0);
    }
}
