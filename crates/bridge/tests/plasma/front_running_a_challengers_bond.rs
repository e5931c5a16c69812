//! Front-running a challenger: whoever copies a revealed challenge sends it under its own
//! address, which no earlier commitment names, so the reward stays the committed challenger's;
//! and an exiter who challenges itself to save its bond still loses half of it.

use crate::world::*;
use tcp_bridge::plasma;
use tcp_state::Action;

#[test]
fn a_copied_challenge_cannot_take_the_committed_challengers_bond() {
    let mut w = World::new();
    let (bob, carol) = (user(1), user(2));
    let (watcher, thief) = (l1_address(3), l1_address(0));
    w.deposit(&bob, &bob.address(), ETH);
    w.process_inbox();
    let before = w.checkpoint();
    assert!(w.start_account_exit(&bob, before).is_success());
    w.tcp_send(&bob, Action::BridgeTransfer { to: carol.address(), amount: 1 }).unwrap();
    let after = w.checkpoint();
    let salt = [0x42; 32];
    let (account, siblings) = w.account_proof(after, &bob.address());
    assert!(w.send(watcher, 0, plasma::commit_challenge(plasma::challenge_commitment(0, watcher, after, &account, salt))).is_success());
    let reveal = plasma::challenge_account_exit(0, salt, after, &account, &siblings);
    // The thief sees the reveal in the mempool and sends it first, from its own address.
    assert_eq!(reverted(&w.send(thief, 0, reveal.clone())), Some("ChallengeNotCommitted"));
    // Nor can the exiter recover its bond by challenging itself with the watcher's salt.
    assert_eq!(reverted(&w.send(l1(&bob), 0, reveal.clone())), Some("ChallengeNotCommitted"));
    // A commitment to other evidence does not cover this reveal.
    assert!(w.send(thief, 0, plasma::commit_challenge(plasma::challenge_commitment(0, thief, before, &account, salt))).is_success());
    assert_eq!(reverted(&w.send(thief, 0, reveal.clone())), Some("ChallengeNotCommitted"));
    assert!(w.send(watcher, 0, reveal.clone()).is_success());
    assert_eq!(w.withdrawable(watcher), World::reward());
    assert_eq!(w.withdrawable(thief), 0);
    // Replaying the reveal does nothing more.
    assert_eq!(reverted(&w.send(watcher, 0, reveal)), Some("ChallengeNotCommitted"));
}

#[test]
fn an_exiter_that_challenges_itself_still_loses_half_its_bond() {
    let mut w = World::new();
    let (bob, carol) = (user(1), user(2));
    w.deposit(&bob, &bob.address(), ETH);
    w.process_inbox();
    let before = w.checkpoint();
    assert!(w.start_account_exit(&bob, before).is_success());
    w.tcp_send(&bob, Action::BridgeTransfer { to: carol.address(), amount: 1 }).unwrap();
    let after = w.checkpoint();
    // Bob sees he will be caught and challenges himself from a second address first.
    let accomplice = l1(&carol);
    assert!(w.challenge(accomplice, 0, after, &bob.address()).is_success());
    w.l1.advance_time(params().challenge_period);
    w.finalize(10);
    assert_eq!(w.pull(accomplice), params().exit_bond / 2, "half the bond back, half burned");
    assert_eq!(w.view_u256(plasma::IPlasmaRoot::burnedBondsCall {}), params().exit_bond - params().exit_bond / 2);
    assert_eq!(w.pull(l1(&bob)), 0);
}
