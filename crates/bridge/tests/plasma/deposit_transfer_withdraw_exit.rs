//! The whole path: deposit → credited on TCP → transfer → withdraw → checkpoint → standard exit
//! → finalize → pull; and an exit from account state. Balances checked on both chains; the gas
//! of each step printed.

use crate::world::*;
use tcp_bridge::plasma;
use tcp_state::Action;
use tcp_state::bridge::BridgeAccount;

#[test]
fn the_whole_path_pays_out_exactly_and_prints_its_gas() {
    let mut w = World::new();
    let (alice, bob) = (user(0), user(1));
    let deposit = w.deposit(&alice, &alice.address(), 2 * ETH);
    assert!(deposit.is_success(), "{deposit:?}");
    // Not credited before TCP processes the inbox.
    assert_eq!(w.bridged(&alice.address()).balance, 0);
    w.process_inbox();
    assert_eq!(w.bridged(&alice.address()).balance, 2 * ETH);

    w.tcp_send(&alice, Action::BridgeTransfer { to: bob.address(), amount: ETH / 2 }).unwrap();
    w.tcp_send(&alice, Action::Withdraw { recipient: l1(&alice), amount: ETH }).unwrap();
    assert_eq!(w.bridged(&alice.address()), BridgeAccount { balance: ETH / 2, spends: 2, exits: 0, locked: false });
    let relay = w.make_checkpoint();
    let checkpoint = w.send(w.relayer, 0, relay.calldata());
    assert!(checkpoint.is_success(), "{:?}", reverted(&checkpoint));
    let height = relay.height;

    let exit = w.start_withdrawal_exit(l1(&alice), height, 0);
    assert!(exit.is_success(), "{:?}", reverted(&exit));
    // Within the challenge period nothing settles.
    w.finalize(10);
    assert_eq!(w.withdrawable(l1(&alice)), 0);

    let account_exit = w.start_account_exit(&bob, height);
    assert!(account_exit.is_success(), "{:?}", reverted(&account_exit));
    w.process_inbox();
    assert!(w.bridged(&bob.address()).locked, "TCP locks an exiting account");

    w.l1.advance_time(params().challenge_period);
    let finalize = w.finalize(10);
    assert!(finalize.is_success());
    let bond = params().exit_bond;
    assert_eq!(w.pull(l1(&alice)), ETH + bond);
    assert_eq!(w.pull(l1(&bob)), ETH / 2 + bond);
    // Pulled once: nothing more.
    assert_eq!(w.pull(l1(&alice)), 0);
    w.process_inbox();
    assert_eq!(w.bridged(&bob.address()), BridgeAccount { balance: 0, spends: 0, exits: 1, locked: false });
    // What is left in the contract is exactly what TCP still holds bridged: alice's half.
    assert_eq!(w.contract_balance(), ETH / 2);

    // A challenge's gas, on an exit from a stale checkpoint.
    w.tcp_send(&alice, Action::BridgeTransfer { to: bob.address(), amount: 1_000 }).unwrap();
    let later = w.checkpoint();
    let stale = w.start_account_exit(&alice, height);
    assert!(stale.is_success(), "{:?}", reverted(&stale));
    let challenge = w.challenge(l1_address(3), 2, later, &alice.address());
    assert!(challenge.is_success(), "{:?}", reverted(&challenge));

    println!("PlasmaRoot gas (whole transactions, 21000 base included):");
    println!("  deposit                  {}", deposit.gas());
    println!("  submitCheckpoint         {} ({} bytes of header, {} siblings)", checkpoint.gas(), relay.header.len(), relay.siblings.len());
    println!("  startWithdrawalExit      {}", exit.gas());
    println!("  startAccountExit         {}", account_exit.gas());
    println!("  challengeAccountExit     {} (after a commitChallenge)", challenge.gas());
    println!("  finalizeExits (2 exits)  {}", finalize.gas());
    assert!(checkpoint.gas() < 300_000, "a checkpoint costs {}", checkpoint.gas());
    assert!(deposit.gas() < 150_000 && exit.gas() < 250_000 && account_exit.gas() < 250_000);
    let _ = plasma::withdraw();
}
