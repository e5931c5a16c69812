//! Random sequences of deposits, transfers, withdrawals, checkpoints, exits (standard and from
//! account state, stale ones included) and settlements, with a watcher that challenges every
//! exit a later checkpoint disproves: whenever the chains are settled, the contract holds
//! exactly what it owes (bridged balances on TCP, records not exited, credits not pulled), so
//! nothing was ever paid twice and nothing TCP owes is missing.

use crate::world::*;
use proptest::prelude::*;
use std::collections::BTreeSet;
use tcp_bridge::plasma;
use tcp_state::Action;

#[derive(Clone, Debug)]
enum Op {
    Deposit { from: u8, to: u8, amount: u8 },
    Transfer { from: u8, to: u8, amount: u8 },
    Withdraw { from: u8, amount: u8 },
    Process,
    Checkpoint,
    ExitRecords,
    /// From the latest checkpoint, or (stale) the first one.
    AccountExit { who: u8, stale: bool },
    Settle,
}

fn amount(i: u8) -> u128 {
    [1_000, ETH / 10, ETH / 3, ETH][i as usize % 4]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3u8, 0..3u8, 0..4u8).prop_map(|(from, to, amount)| Op::Deposit { from, to, amount }),
        3 => (0..3u8, 0..3u8, 0..4u8).prop_map(|(from, to, amount)| Op::Transfer { from, to, amount }),
        2 => (0..3u8, 0..4u8).prop_map(|(from, amount)| Op::Withdraw { from, amount }),
        2 => Just(Op::Process),
        2 => Just(Op::Checkpoint),
        1 => Just(Op::ExitRecords),
        2 => (0..3u8, any::<bool>()).prop_map(|(who, stale)| Op::AccountExit { who, stale }),
        2 => Just(Op::Settle),
    ]
}

struct Run {
    w: World,
    watcher: [u8; 20],
    exiting_records: BTreeSet<u64>,
    /// (exit id, owner index, checkpoint height, spends at it) of account exits started.
    account_exits: Vec<(u64, u8, u64, u64)>,
    exits: u64,
    deposited: u128,
    pulled: u128,
}

impl Run {
    fn apply(&mut self, op: &Op) {
        let latest = self.w.snapshots.keys().next_back().copied();
        let w = &mut self.w;
        match *op {
            Op::Deposit { from, to, amount: a } => {
                if w.deposit(&user(from), &user(to).address(), amount(a)).is_success() {
                    self.deposited += amount(a);
                }
            }
            Op::Transfer { from, to, amount: a } => {
                let _ = w.tcp_send(&user(from), Action::BridgeTransfer { to: user(to).address(), amount: amount(a) });
            }
            Op::Withdraw { from, amount: a } => {
                let _ = w.tcp_send(&user(from), Action::Withdraw { recipient: l1_address(from), amount: amount(a) });
            }
            Op::Process => w.process_inbox(),
            Op::Checkpoint => {
                w.checkpoint();
            }
            Op::ExitRecords => {
                let Some(height) = latest else { return };
                let next = w.snapshots[&height].bridge_status().unwrap().next_withdrawal;
                for id in 0..next {
                    if self.exiting_records.contains(&id) {
                        continue;
                    }
                    let record = w.snapshots[&height].withdrawal(id).unwrap();
                    let outcome = w.start_withdrawal_exit(record.recipient, height, id);
                    assert!(outcome.is_success(), "record {id}: {:?}", reverted(&outcome));
                    self.exiting_records.insert(id);
                    self.exits += 1;
                }
            }
            Op::AccountExit { who, stale } => {
                let height = if stale { w.snapshots.keys().next().copied() } else { latest };
                let Some(height) = height else { return };
                let spends = w.snapshots[&height].bridge_account(&user(who).address()).spends;
                if w.start_account_exit(&user(who), height).is_success() {
                    self.account_exits.push((self.exits, who, height, spends));
                    self.exits += 1;
                }
            }
            Op::Settle => self.settle(),
        }
    }

    /// What a live network does over a challenge period: TCP processes the inbox, a relayer
    /// checkpoints, the watcher challenges every exit that checkpoint disproves, the exits
    /// settle, everyone pulls, TCP processes the outcome.
    fn settle(&mut self) {
        self.w.process_inbox();
        let height = self.w.checkpoint();
        for (id, who, _, spends) in self.account_exits.clone() {
            let now = self.w.snapshots[&height].bridge_account(&user(who).address()).spends;
            let status = self.exit_status(id);
            if status == 1 && now > spends {
                let outcome = self.w.challenge(self.watcher, id, height, &user(who).address());
                assert!(outcome.is_success(), "challenge of exit {id}: {:?}", reverted(&outcome));
            }
        }
        self.w.l1.advance_time(params().challenge_period);
        assert!(self.w.finalize(1_000).is_success());
        for who in (0..3).map(l1_address).chain([self.watcher]) {
            self.pulled += self.w.pull(who);
        }
        self.w.process_inbox();
        self.check();
    }

    fn exit_status(&mut self, id: u64) -> u8 {
        let call = plasma::IPlasmaRoot::exitsCall { id: alloy_sol_types::private::U256::from(id) };
        let tcp_bridge::CallOutcome::Success { output, .. } = self.w.l1.view(self.w.root, alloy_sol_types::SolCall::abi_encode(&call)).unwrap() else {
            panic!("exits() failed")
        };
        output[63]
    }

    /// Settled: the contract holds exactly what it owes.
    fn check(&mut self) {
        let tcp = &self.w.tcp;
        let bridged: u128 = (0..4).map(|i| tcp.bridge_account(&user(i).address()).balance).sum();
        let next = tcp.bridge_status().unwrap().next_withdrawal;
        let records: u128 = (0..next).filter(|id| !self.exiting_records.contains(id)).map(|id| tcp.withdrawal(id).unwrap().amount).sum();
        let credits = self.w.view_u256(plasma::IPlasmaRoot::totalWithdrawableCall {});
        let burned = self.w.view_u256(plasma::IPlasmaRoot::burnedBondsCall {});
        let balance = self.w.contract_balance();
        assert_eq!(
            balance,
            bridged + records + credits + burned,
            "contract {balance} vs owed: bridged {bridged} + records {records} + credits {credits} + burned bonds {burned}"
        );
        assert!(self.pulled <= self.deposited + self.exits as u128 * params().exit_bond, "paid out more than was ever locked and bonded");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_the_contract_covering_what_tcp_owes(ops in proptest::collection::vec(op(), 1..30)) {
        let mut run = Run { w: World::new(), watcher: [0x55; 20], exiting_records: BTreeSet::new(), account_exits: Vec::new(), exits: 0, deposited: 0, pulled: 0 };
        run.w.l1.fund(run.watcher, 10 * ETH);
        for op in &ops {
            run.apply(op);
        }
        run.settle();
    }
}
