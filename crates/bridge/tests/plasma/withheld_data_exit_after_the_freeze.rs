//! Withheld data: TCP stops checkpointing (validators down, or censoring). After the freeze
//! period the bridge freezes: no checkpoint, no deposit; everyone exits from the last
//! checkpoint, and deposits TCP had not credited by then are reclaimed on the root chain.

use crate::world::*;
use tcp_bridge::plasma;
use tcp_state::Action;

#[test]
fn after_the_freeze_users_exit_from_the_last_checkpoint_and_reclaim_uncredited_deposits() {
    let mut w = World::new();
    let (alice, bob, carol) = (user(0), user(1), user(2));
    w.deposit(&alice, &alice.address(), ETH); // inbox 0
    w.deposit(&bob, &bob.address(), ETH); // inbox 1
    w.process_inbox();
    w.tcp_send(&alice, Action::BridgeTransfer { to: carol.address(), amount: ETH / 4 }).unwrap();
    let last = w.checkpoint();
    // After the last checkpoint: a deposit TCP credits but never checkpoints, one it never sees.
    w.deposit(&carol, &carol.address(), ETH / 2); // inbox 2
    w.process_inbox();
    w.tcp_send(&bob, Action::Withdraw { recipient: l1(&bob), amount: ETH }).unwrap();
    w.deposit(&carol, &carol.address(), ETH / 8); // inbox 3
    // Before the freeze, deposits are not reclaimable.
    assert_eq!(reverted(&w.send(l1(&carol), 0, plasma::reclaim_deposit(2))), Some("NotFrozen"));
    w.l1.advance_time(params().freeze_period + 1);
    assert!(w.frozen());
    let late = w.make_checkpoint();
    assert_eq!(reverted(&w.send(w.relayer, 0, late.calldata())), Some("Frozen"));
    assert_eq!(reverted(&w.deposit(&alice, &alice.address(), ETH)), Some("Frozen"));
    // Every account exits its balance at the last checkpoint (bob's withdrawal came after it:
    // his account still holds the ETH there).
    for (key, expected) in [(&alice, 3 * ETH / 4), (&bob, ETH), (&carol, ETH / 4)] {
        assert!(w.start_account_exit(key, last).is_success());
        let _ = expected;
    }
    // The deposits after the checkpoint come back to their depositor; those before do not.
    assert_eq!(reverted(&w.send(l1(&alice), 0, plasma::reclaim_deposit(0))), Some("NotReclaimable"));
    assert!(w.send(l1(&carol), 0, plasma::reclaim_deposit(2)).is_success());
    assert!(w.send(l1(&alice), 0, plasma::reclaim_deposit(3)).is_success(), "anyone may trigger it; it pays the depositor");
    assert_eq!(reverted(&w.send(l1(&carol), 0, plasma::reclaim_deposit(3))), Some("NotReclaimable"));
    w.l1.advance_time(params().challenge_period);
    w.finalize(10);
    let bond = params().exit_bond;
    assert_eq!(w.pull(l1(&alice)), 3 * ETH / 4 + bond);
    assert_eq!(w.pull(l1(&bob)), ETH + bond);
    assert_eq!(w.pull(l1(&carol)), ETH / 4 + bond + ETH / 2 + ETH / 8);
    assert_eq!(w.contract_balance(), 0, "everything locked came back, once");
}
