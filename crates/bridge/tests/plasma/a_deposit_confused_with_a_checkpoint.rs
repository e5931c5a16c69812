//! Deposits and checkpoints are never confused: TCP reads only the contract's `Inbox` events
//! (no checkpoint, exit or look-alike event of another contract is a deposit), and the contract
//! refuses a checkpoint of a chain that credited anything its inbox does not hold.

use crate::world::*;
use tcp_bridge::plasma;
use tcp_bridge::ChainLog;
use tcp_state::bridge::{InboxEntry, InboxKind};

#[test]
fn only_the_contracts_inbox_events_are_deposits() {
    let mut w = World::new();
    let alice = user(0);
    w.deposit(&alice, &alice.address(), ETH);
    w.process_inbox();
    w.checkpoint();
    assert!(w.start_account_exit(&alice, w.height).is_success());
    // The contract's logs hold a checkpoint, a deposit and an exit start: two inbox entries.
    let entries = plasma::inbox_entries(w.l1.logs(), w.root).unwrap();
    assert_eq!(entries.iter().map(|e| e.kind).collect::<Vec<_>>(), [InboxKind::Deposit, InboxKind::ExitStarted]);
    // The same event from another address is not the contract's.
    let mut forged: Vec<ChainLog> = w.l1.logs().to_vec();
    for log in &mut forged {
        log.address = [0xf0; 20];
    }
    assert!(plasma::inbox_entries(&forged, w.root).unwrap().is_empty());
    // An inbox log of an unknown kind is an error, not skipped.
    let mut odd = w.l1.logs().iter().find(|l| l.address == w.root && l.topics.len() == 3).unwrap().clone();
    odd.data[31] = 9;
    assert!(plasma::inbox_entries([&odd], w.root).is_err());
}

#[test]
fn a_checkpoint_of_a_chain_that_credited_a_deposit_never_made_is_refused() {
    let mut w = World::new();
    let (alice, mallory) = (user(0), user(2));
    w.deposit(&alice, &alice.address(), ETH);
    // The chain credits mallory instead (a faulty majority, or a bug): its inbox hash differs.
    w.tcp.apply_inbox(&[InboxEntry { id: 0, kind: InboxKind::Deposit, account: mallory.address(), amount: ETH }]).unwrap();
    let relay = w.make_checkpoint();
    assert_eq!(reverted(&w.send(w.relayer, 0, relay.calldata())), Some("InboxMismatch"));
    // Or credits one more entry than the contract has.
    let mut ahead = World::new();
    ahead.tcp.apply_inbox(&[InboxEntry { id: 0, kind: InboxKind::Deposit, account: mallory.address(), amount: 1 }]).unwrap();
    let relay = ahead.make_checkpoint();
    assert_eq!(reverted(&ahead.send(ahead.relayer, 0, relay.calldata())), Some("InboxMismatch"));
    // Processed exactly: taken.
    let mut honest = World::new();
    honest.deposit(&alice, &alice.address(), ETH);
    honest.process_inbox();
    honest.checkpoint();
}
