//! Whole-protocol behaviour of the core on a tiny synchronous network driven by hand.

mod common;

use common::*;
use std::collections::VecDeque;
use std::time::Duration;
use tcp_consensus::*;
use tcp_types::{Height, Round};

/// Deliver every broadcast to every other core until nothing moves; answer GetValue with a
/// value derived from the height. Returns the decisions (core, height, certificate).
fn run_until_quiet(net: &Net, cores: &mut [Consensus], mut pending: VecDeque<(usize, Effect)>) -> Vec<(usize, CommitCertificate)> {
    let mut decided = Vec::new();
    let mut timeouts: Vec<(usize, Input)> = Vec::new();
    for _ in 0..1_000_000 {
        let Some((from, effect)) = pending.pop_front() else {
            // Quiet: let time pass, firing every scheduled timeout.
            if timeouts.is_empty() || decided.len() == cores.len() {
                break;
            }
            for (i, input) in std::mem::take(&mut timeouts) {
                if let Ok(effects) = cores[i].handle(input) {
                    pending.extend(effects.into_iter().map(|e| (i, e)));
                }
            }
            continue;
        };
        match effect {
            Effect::Broadcast(message) => {
                for (to, core) in cores.iter_mut().enumerate() {
                    if to == from {
                        continue;
                    }
                    let input = match message.clone() {
                        ConsensusMessage::Vote(v) => Input::Vote(v),
                        ConsensusMessage::Proposal(p) => Input::Proposal { proposal: p, valid: true },
                    };
                    if let Ok(effects) = core.handle(input) {
                        pending.extend(effects.into_iter().map(|e| (to, e)));
                    }
                }
            }
            Effect::GetValue { height, round } => {
                let effects = cores[from].handle(Input::ProposeValue { height, round, value: value(height.0 as u8) }).unwrap();
                pending.extend(effects.into_iter().map(|e| (from, e)));
            }
            Effect::Decided { certificate, .. } => decided.push((from, certificate)),
            Effect::ScheduleTimeout { height, round, kind, .. } => timeouts.push((from, Input::Timeout { height, round, kind })),
            Effect::Evidence(_) => {}
        }
    }
    let _ = net;
    decided
}

fn start_all(net: &Net, cores: &mut [Consensus], height: u64) -> VecDeque<(usize, Effect)> {
    let mut pending = VecDeque::new();
    for (i, core) in cores.iter_mut().enumerate() {
        pending.extend(core.start_height(Height(height), net.params()).into_iter().map(|e| (i, e)));
    }
    pending
}

#[test]
fn four_validators_decide_in_round_zero_with_a_verifiable_certificate() {
    let net = Net::new(4);
    let mut cores: Vec<Consensus> = (0..4).map(|i| net.core(i)).collect();
    let pending = start_all(&net, &mut cores, 1);
    let decided = run_until_quiet(&net, &mut cores, pending);
    assert_eq!(decided.len(), 4, "every validator decides");
    for (_, cert) in &decided {
        assert_eq!((cert.height, cert.round, cert.value), (Height(1), Round(0), value(1)));
        cert.verify(&net.domains, &net.set, &NoExtension).expect("third party verifies the certificate");
    }

    // Tampering is caught.
    let cert = decided[0].1.clone();
    let mut short = cert.clone();
    short.precommits.truncate(2);
    assert!(matches!(short.verify(&net.domains, &net.set, &NoExtension), Err(CertificateError::NoQuorum { power: 2, total: 4 })));
    let mut other_value = cert.clone();
    other_value.value = value(7);
    assert_eq!(other_value.verify(&net.domains, &net.set, &NoExtension), Err(CertificateError::Mismatch(0)));
    let mut repeated = cert.clone();
    repeated.precommits[1] = repeated.precommits[0].clone();
    assert_eq!(repeated.verify(&net.domains, &net.set, &NoExtension), Err(CertificateError::NotSortedOrDuplicate(1)));
    let other_chain = ConsensusDomains::new(&tcp_types::ChainId::new("other").unwrap());
    assert_eq!(cert.verify(&other_chain, &net.set, &NoExtension), Err(CertificateError::BadSignature(0)));
    let smaller_set = validator_set(&keys(4)[..1]);
    assert!(cert.verify(&net.domains, &smaller_set, &NoExtension).is_err());
}

#[test]
fn consecutive_heights_and_a_lagging_node_syncs_by_certificate() {
    let net = Net::new(4);
    let mut cores: Vec<Consensus> = (0..3).map(|i| net.core(i)).collect();
    // Three of four validators hold > 2/3 of the power and decide without the fourth.
    let mut certificates = Vec::new();
    for h in 1..=3 {
        let pending = start_all(&net, &mut cores, h);
        let decided = run_until_quiet(&net, &mut cores, pending);
        assert_eq!(decided.len(), 3, "height {h}");
        certificates.push(decided[0].1.clone());
    }
    // The fourth catches up from certificates alone.
    let mut late = net.core(3);
    for (h, cert) in certificates.iter().enumerate() {
        late.start_height(Height(h as u64 + 1), net.params());
        let effects = late.handle(Input::Commit { certificate: cert.clone(), valid: true }).unwrap();
        assert!(effects.iter().any(|e| matches!(e, Effect::Decided { height, .. } if height.0 == h as u64 + 1)));
    }
    // A certificate for the wrong height or with too few precommits is refused.
    late.start_height(Height(4), net.params());
    assert_eq!(late.handle(Input::Commit { certificate: certificates[0].clone(), valid: true }), Err(Rejection::StaleHeight));
}

#[test]
fn equivocation_produces_verifiable_evidence_once() {
    let net = Net::new(4);
    let mut core = net.core(1);
    core.start_height(Height(1), net.params());
    assert!(core.handle(Input::Vote(net.vote(3, VoteType::Prevote, 1, 0, Some(value(1))))).is_ok());
    let effects = core.handle(Input::Vote(net.vote(3, VoteType::Prevote, 1, 0, None))).unwrap();
    let evidence: Vec<Evidence> =
        effects.iter().filter_map(|e| if let Effect::Evidence(ev) = e { Some(ev.clone()) } else { None }).collect();
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].offender().0, 3);
    evidence[0].verify(&net.domains, &net.set).unwrap();
    // A third conflicting vote (for a value no proposal carries, so it could not count) is
    // refused at admission: no signature check, nothing for the host to log, no second report.
    assert_eq!(core.admit(Input::Vote(net.vote(3, VoteType::Prevote, 1, 0, Some(value(9))))).unwrap_err(), Rejection::Equivocation);
    assert_eq!(core.stats().get(Rejection::Equivocation), 2);
    // Evidence made of two votes for the same value, or forged, does not verify.
    let same = Evidence::ConflictingVotes(
        Box::new(net.vote(3, VoteType::Prevote, 1, 0, None)),
        Box::new(net.vote(3, VoteType::Prevote, 1, 0, None)),
    );
    assert_eq!(same.verify(&net.domains, &net.set), Err(EvidenceError::SameValue));
    let mut forged = net.vote(2, VoteType::Prevote, 1, 0, None);
    forged.vote.validator = tcp_types::ValidatorIndex(3);
    let framed = Evidence::ConflictingVotes(Box::new(net.vote(3, VoteType::Prevote, 1, 0, Some(value(1)))), Box::new(forged));
    assert_eq!(framed.verify(&net.domains, &net.set), Err(EvidenceError::BadSignature));
    // Conflicting proposals from the proposer are evidence too.
    let p = net.proposer(1, 0);
    core.handle(Input::Proposal { proposal: net.proposal(p, 1, 0, value(1), None), valid: true }).unwrap();
    let effects = core.handle(Input::Proposal { proposal: net.proposal(p, 1, 0, value(2), None), valid: true }).unwrap();
    let ev = effects.iter().find_map(|e| if let Effect::Evidence(ev) = e { Some(ev.clone()) } else { None }).unwrap();
    assert_eq!(ev.offender().as_usize(), p);
    ev.verify(&net.domains, &net.set).unwrap();
}

#[test]
fn replaying_the_wal_re_signs_the_same_votes_and_never_a_conflicting_one() {
    let net = Net::new(4);
    let proposer = net.proposer(1, 0);
    let me = (proposer + 1) % 4;
    let others: Vec<usize> = (0..4).filter(|i| *i != me && *i != proposer).collect();
    let inputs = vec![
        Input::Proposal { proposal: net.proposal(proposer, 1, 0, value(5), None), valid: true },
        Input::Vote(net.vote(proposer, VoteType::Prevote, 1, 0, Some(value(5)))),
        Input::Vote(net.vote(others[0], VoteType::Prevote, 1, 0, Some(value(5)))),
    ];
    // The original run, as a host does it: admit, log what was verified, apply.
    let mut wal = MemoryWal::default();
    let mut core = net.core(me);
    let mut original = votes(&core.start_height(Height(1), net.params()));
    let forged = net.domains.sign_vote(&net.keys[me], net.vote(others[1], VoteType::Prevote, 1, 0, None).vote);
    for input in inputs.into_iter().chain([Input::Vote(forged)]) {
        match core.admit(input) {
            Ok(Admission::Apply(verified)) => {
                wal.append(verified.input()).unwrap();
                original.extend(votes(&core.apply(verified).unwrap()));
            }
            Ok(Admission::Buffered) => unreachable!("all inputs are for height 1"),
            Err(rejection) => assert_eq!(rejection, Rejection::BadSignature),
        }
    }
    assert_eq!(wal.len(), 3, "the forged vote never reached the log");
    assert_eq!(core.locked().map(|l| l.value), Some(value(5)), "a polka locks the value");
    assert_eq!(original.len(), 2, "prevote and precommit for the value");
    // Crash. A fresh core replays the log and signs exactly the same votes.
    let mut recovered = net.core(me);
    let mut replayed = votes(&recovered.start_height(Height(1), net.params()));
    for input in wal.entries().unwrap() {
        replayed.extend(votes(&recovered.apply(Verified::from_own_log(input)).unwrap()));
    }
    assert_eq!(replayed, original);
    assert_eq!(recovered.locked(), core.locked());
    // After the replay, a timeout that would have made it prevote nil has no effect: the
    // recovered core knows it already voted in round 0.
    let effects = recovered.handle(Input::Timeout { height: Height(1), round: Round(0), kind: TimeoutKind::Propose }).unwrap();
    assert!(votes(&effects).is_empty());
    // The timeout of round 0 moves it to round 1, where the lock survives the crash: as the
    // proposer it re-proposes the locked value with its proof-of-lock round; otherwise it
    // prevotes nil for a different fresh value.
    let effects = recovered.handle(Input::Timeout { height: Height(1), round: Round(0), kind: TimeoutKind::Precommit }).unwrap();
    assert_eq!(recovered.round(), Some(Round(1)));
    let next = net.proposer(1, 1);
    if next == me {
        let proposal =
            broadcasts(&effects).into_iter().find_map(|m| if let ConsensusMessage::Proposal(p) = m { Some(p.proposal) } else { None });
        assert_eq!(proposal.map(|p| (p.value, p.pol_round)), Some((value(5), Some(Round(0)))));
    } else {
        let effects = recovered.handle(Input::Proposal { proposal: net.proposal(next, 1, 1, value(6), None), valid: true }).unwrap();
        assert_eq!(votes(&effects).last().map(|v| (v.round, v.value)), Some((Round(1), None)));
    }
    // The WAL forgets decided heights.
    wal.prune(Height(1)).unwrap();
    assert!(wal.is_empty());
}

#[test]
fn timeouts_grow_with_the_round() {
    let t = TimeoutConfig::default();
    for kind in [TimeoutKind::Propose, TimeoutKind::Prevote, TimeoutKind::Precommit] {
        let durations: Vec<Duration> = (0..5).map(|r| t.duration(kind, Round(r))).collect();
        assert!(durations.windows(2).all(|w| w[1] > w[0]), "{kind:?}: {durations:?}");
    }
    // Saturates instead of overflowing at absurd rounds.
    assert!(t.duration(TimeoutKind::Propose, Round(u32::MAX)) > Duration::from_secs(3600));
}

#[test]
fn thresholds_follow_voting_power() {
    let ks = keys(3);
    let set = ValidatorSet::new(vec![
        Validator { public_key: commonware_cryptography::Signer::public_key(&ks[0]), voting_power: 10 },
        Validator { public_key: commonware_cryptography::Signer::public_key(&ks[1]), voting_power: 3 },
        Validator { public_key: commonware_cryptography::Signer::public_key(&ks[2]), voting_power: 2 },
    ])
    .unwrap();
    assert!(set.is_quorum(11) && !set.is_quorum(10));
    assert!(set.is_one_third(6) && !set.is_one_third(5));
    // The weighted round robin gives the heavy validator two thirds of the slots.
    let heavy = (0..1500).filter(|h| RoundRobin.proposer(&set, Height(*h), Round(0)).0 == 0).count();
    assert_eq!(heavy, 1000);
    assert!(ValidatorSet::new(vec![]).is_err());
    assert!(matches!(
        ValidatorSet::new(vec![Validator { public_key: commonware_cryptography::Signer::public_key(&ks[0]), voting_power: 0 }]),
        Err(ValidatorSetError::ZeroPower(0))
    ));
}

#[test]
fn a_resent_equivocating_vote_is_refused_before_its_signature_and_the_wal() {
    let net = Net::new(4);
    let mut core = net.core(1);
    core.start_height(Height(1), net.params());
    core.handle(Input::Vote(net.vote(3, VoteType::Precommit, 1, 0, None))).unwrap();
    let conflicting = net.vote(3, VoteType::Precommit, 1, 0, Some(value(5)));
    // The first conflict is verified and applied: it is the evidence.
    let Admission::Apply(first) = core.admit(Input::Vote(conflicting.clone())).unwrap() else { panic!("applied") };
    let effects = core.apply(first).unwrap();
    assert!(effects.iter().any(|e| matches!(e, Effect::Evidence(_))));
    // Each resend (or a forgery in the same slot: its signature is never looked at) is
    // refused at admission, so a host never logs or applies it again.
    let mut forged = conflicting.clone();
    forged.signature = net.vote(2, VoteType::Precommit, 1, 0, Some(value(5))).signature;
    for resend in [conflicting.clone(), conflicting, forged] {
        assert_eq!(core.admit(Input::Vote(resend)), Err(Rejection::Equivocation));
    }
    // Once a proposal carries the value, the vote can count again and is admitted (checked).
    let p = net.proposer(1, 0);
    core.handle(Input::Proposal { proposal: net.proposal(p, 1, 0, value(5), None), valid: true }).unwrap();
    assert!(matches!(core.admit(Input::Vote(net.vote(3, VoteType::Precommit, 1, 0, Some(value(5))))), Ok(Admission::Apply(_))));
}

#[test]
fn forged_future_messages_cannot_take_a_validators_buffer_slots() {
    let net = Net::new(4);
    let mut core = net.core(0);
    core.start_height(Height(1), net.params());
    // A peer sends future-height votes under validator 2's index, signed by someone else.
    for round in 0..20 {
        let mut forged = net.vote(3, VoteType::Prevote, 2, round, Some(value(1)));
        forged.vote.validator = tcp_types::ValidatorIndex(2);
        assert_eq!(core.admit(Input::Vote(forged)), Err(Rejection::BadSignature));
    }
    let mut outsider = net.vote(3, VoteType::Prevote, 2, 0, None);
    outsider.vote.validator = tcp_types::ValidatorIndex(9);
    assert_eq!(core.admit(Input::Vote(outsider)), Err(Rejection::UnknownValidator));
    // Validator 2's own messages still find their slots, and come back when height 2 starts.
    let real = net.vote(2, VoteType::Prevote, 2, 0, Some(value(1)));
    assert!(matches!(core.admit(Input::Vote(real.clone())), Ok(Admission::Buffered)));
    core.handle(Input::Commit { certificate: certificate(&net, 1, value(1)), valid: true }).unwrap();
    core.start_height(Height(2), net.params());
    assert_eq!(core.take_buffered(), vec![Input::Vote(real)]);
}

#[test]
fn authenticate_checks_membership_proposer_and_signature_before_any_work() {
    let net = Net::new(4);
    let mut core = net.core(0);
    core.start_height(Height(1), net.params());
    let p = net.proposer(1, 0);
    let good = net.proposal(p, 1, 0, value(1), None);
    assert_eq!(core.authenticate(&ConsensusMessage::Proposal(good.clone())), Ok(()));
    let not_proposer = net.proposal((p + 1) % 4, 1, 0, value(1), None);
    assert_eq!(core.authenticate(&ConsensusMessage::Proposal(not_proposer)), Err(Rejection::WrongProposer));
    let mut unsigned = good.clone();
    unsigned.signature = net.proposal(p, 1, 0, value(2), None).signature;
    assert_eq!(core.authenticate(&ConsensusMessage::Proposal(unsigned)), Err(Rejection::BadSignature));
    let mut copied = net.vote(1, VoteType::Precommit, 1, 0, Some(value(1)));
    copied.vote.validator = tcp_types::ValidatorIndex(2);
    assert_eq!(core.authenticate(&ConsensusMessage::Vote(copied)), Err(Rejection::BadSignature));
    assert_eq!(core.authenticate(&ConsensusMessage::Vote(net.vote(1, VoteType::Precommit, 1, 0, Some(value(1))))), Ok(()));
    assert_eq!(core.authenticate(&ConsensusMessage::Vote(net.vote(1, VoteType::Precommit, 9, 0, None))), Err(Rejection::FarFutureHeight));
}

/// A commit certificate of `height` for `v`, precommitted by validators 0..3.
fn certificate(net: &Net, height: u64, v: ValueId) -> CommitCertificate {
    let precommits = (0..3).map(|i| net.vote(i, VoteType::Precommit, height, 0, Some(v))).collect();
    CommitCertificate { height: Height(height), round: Round(0), value: v, precommits }
}
