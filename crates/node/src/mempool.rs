//! The mempool: verified transactions waiting for a block. Bounded in count and bytes, one
//! entry per id, per sender ordered by nonce; blocks take the best-paying executable
//! transactions within the block's size and gas limits.
//!
//! Admission checks a transaction against the committed state: its nonce is not used and not
//! too far ahead, and the sender can pay it together with its other pending transactions.
//! A pending transaction for the same (sender, nonce) is replaced only by one paying at least
//! [`REPLACEMENT_BUMP_PERCENT`] more per gas.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use tcp_state::accounts::gas_of;
use tcp_state::{AccountState, Address, TxError, VerifiedTransaction};
use tcp_types::Digest;

/// A replacement must raise the gas price by at least this much.
pub const REPLACEMENT_BUMP_PERCENT: u64 = 10;

/// Enclave registrations and collateral postings that fail at admission cost a DCAP
/// verification and pay nothing (they never reach a block): a sender gets this many at one
/// nonce, and more only once its nonce moves on — which takes a paid transaction.
pub const MAX_FAILED_VERIFICATIONS: u32 = 3;
/// Senders whose failures are remembered; past it the oldest memory is dropped whole (reaching
/// it takes that many funded accounts).
pub const MAX_TRACKED_SENDERS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MempoolLimits {
    pub max_transactions: usize,
    pub max_bytes: usize,
    /// Pending transactions per sender (also how far ahead of the state a nonce may be).
    pub max_per_sender: usize,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits { max_transactions: 20_000, max_bytes: 16 << 20, max_per_sender: 64 }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MempoolError {
    #[error("transaction {0} is already in the mempool")]
    AlreadyKnown(Digest),
    #[error("the mempool is full ({count} transactions, {bytes} bytes): try again later or raise the gas price")]
    Full { count: usize, bytes: usize },
    #[error("nonce {got} is used: the sender's next nonce is {expected}")]
    NonceTooLow { expected: u64, got: u64 },
    #[error("nonce {got} is more than {limit} ahead of the sender's next nonce {expected}")]
    NonceTooFarAhead { expected: u64, got: u64, limit: usize },
    #[error("a transaction with this nonce is pending at gas price {pending}; a replacement needs at least {needed}")]
    ReplacementUnderpriced { pending: u64, needed: u64 },
    #[error("{0}")]
    Invalid(TxError),
    #[error("{MAX_FAILED_VERIFICATIONS} enclave registrations or collateral postings of this sender failed at nonce {nonce}: send another transaction first")]
    TooManyFailedVerifications { nonce: u64 },
    #[error("an enclave registration or collateral posting must be the sender's next transaction (nonce {expected}), so it is verified when it is admitted")]
    EnclaveActionNotNext { expected: u64 },
}

/// Where a transaction went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admitted {
    Added,
    /// It replaced the pending transaction with this id.
    Replaced(Digest),
}

#[derive(Default)]
pub struct Mempool {
    limits: MempoolLimits,
    by_sender: HashMap<Address, BTreeMap<u64, VerifiedTransaction>>,
    /// id → (sender, nonce)
    by_hash: HashMap<Digest, (Address, u64)>,
    bytes: usize,
    /// Failed enclave-action admissions: sender → (nonce, count).
    failed_verifications: HashMap<Address, (u64, u32)>,
}

impl Mempool {
    pub fn new(limits: MempoolLimits) -> Mempool {
        assert!(limits.max_transactions > 0 && limits.max_bytes > 0 && limits.max_per_sender > 0, "limits must be positive");
        Mempool { limits, ..Default::default() }
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn contains(&self, hash: &Digest) -> bool {
        self.by_hash.contains_key(hash)
    }

    pub fn get(&self, hash: &Digest) -> Option<&VerifiedTransaction> {
        let (sender, nonce) = self.by_hash.get(hash)?;
        self.by_sender.get(sender)?.get(nonce)
    }

    /// The nonce a new transaction of `sender` should use: past its committed nonce and every
    /// consecutive nonce it has pending.
    pub fn next_nonce(&self, sender: &Address, state: &AccountState) -> u64 {
        let mut next = state.account(sender).nonce;
        if let Some(pending) = self.by_sender.get(sender) {
            while pending.contains_key(&next) {
                next += 1;
            }
        }
        next
    }

    /// Admit a transaction checked against the committed `state`, for the block `env` or
    /// later. A transaction due next (its nonce is the sender's) must apply now: a bond twice,
    /// an unbond beyond the bond, bad evidence or a registration that does not verify is
    /// refused here, with its reason.
    pub fn insert(&mut self, tx: VerifiedTransaction, state: &AccountState, env: &tcp_state::BlockEnv) -> Result<Admitted, MempoolError> {
        let hash = tx.hash();
        if self.by_hash.contains_key(&hash) {
            return Err(MempoolError::AlreadyKnown(hash));
        }
        let sender = tx.sender();
        let body = tx.tx();
        let account = state.account(&sender);
        if body.nonce < account.nonce {
            return Err(MempoolError::NonceTooLow { expected: account.nonce, got: body.nonce });
        }
        if body.nonce - account.nonce >= self.limits.max_per_sender as u64 {
            return Err(MempoolError::NonceTooFarAhead { expected: account.nonce, got: body.nonce, limit: self.limits.max_per_sender });
        }
        let cost = state.max_cost(&tx).map_err(MempoolError::Invalid)?;
        // (A compute transaction's checks are two or more signatures, tens of microseconds: it
        // queues behind a nonce gap like a transfer, so a compute node keeps a pipeline.)
        let verifies = matches!(body.action, tcp_state::Action::RegisterEnclave { .. } | tcp_state::Action::PostCollateral { .. });
        // A transaction behind a nonce gap is admitted unchecked; one that costs a DCAP
        // verification would then cost every block builder and pruner one, unpaid. So those
        // (the only large ones, too) are admitted only when due next, after their verification.
        if verifies && body.nonce != account.nonce {
            return Err(MempoolError::EnclaveActionNotNext { expected: account.nonce });
        }
        if body.nonce == account.nonce {
            let failed = self.failed_verifications.get(&sender).filter(|(n, _)| *n == body.nonce).map_or(0, |(_, c)| *c);
            if verifies && failed >= MAX_FAILED_VERIFICATIONS {
                return Err(MempoolError::TooManyFailedVerifications { nonce: body.nonce });
            }
            if let Err(e) = state.check(&tx, env) {
                // Counted: failures that got as far as a verification (cheap refusals cost
                // nothing, and must not let throwaway senders flush the memory).
                if matches!(e, TxError::Registration(_) | TxError::Collateral(_)) {
                    if self.failed_verifications.len() >= MAX_TRACKED_SENDERS && !self.failed_verifications.contains_key(&sender) {
                        self.failed_verifications.clear();
                    }
                    self.failed_verifications.insert(sender, (body.nonce, failed + 1));
                }
                return Err(MempoolError::Invalid(e));
            }
        }
        let pending = self.by_sender.get(&sender);
        let replaced = pending.and_then(|p| p.get(&body.nonce));
        if let Some(old) = replaced {
            let old_price = old.tx().gas_price;
            let needed = old_price.saturating_add((old_price * REPLACEMENT_BUMP_PERCENT).div_ceil(100).max(1));
            if body.gas_price < needed {
                return Err(MempoolError::ReplacementUnderpriced { pending: old_price, needed });
            }
        }
        // The sender must be able to pay everything it has pending (the replaced one excluded).
        let others: u128 = pending
            .map(|p| p.iter().filter(|(n, _)| **n != body.nonce).filter_map(|(_, t)| state.max_cost(t).ok()).fold(0u128, u128::saturating_add))
            .unwrap_or(0);
        let needed = others.saturating_add(cost);
        if needed > account.balance {
            return Err(MempoolError::Invalid(TxError::InsufficientBalance { needed, available: account.balance }));
        }
        let freed = replaced.map_or(0, |o| o.encoded_len());
        let count_after = self.len() + usize::from(replaced.is_none());
        let bytes_after = self.bytes - freed + tx.encoded_len();
        if count_after > self.limits.max_transactions || bytes_after > self.limits.max_bytes {
            return Err(MempoolError::Full { count: self.len(), bytes: self.bytes });
        }
        let nonce = body.nonce;
        let old = self.by_sender.entry(sender).or_default().insert(nonce, tx);
        let outcome = match old {
            Some(old) => {
                self.by_hash.remove(&old.hash());
                Admitted::Replaced(old.hash())
            }
            None => Admitted::Added,
        };
        self.by_hash.insert(hash, (sender, nonce));
        self.bytes = bytes_after;
        self.check_invariants();
        Ok(outcome)
    }

    /// The transactions for the next block: executable in nonce order from `state`, the
    /// highest gas price first across senders, within `max_bytes` and `max_gas`. Each is checked
    /// by applying it to a copy of the state, so the block is valid by construction.
    pub fn select(&self, state: &AccountState, env: &tcp_state::BlockEnv, max_bytes: usize, max_gas: u64) -> Vec<VerifiedTransaction> {
        let env = tcp_state::BlockEnv { fee_recipient: Address::ZERO, ..*env };
        let mut scratch = state.clone();
        let mut heap: BinaryHeap<(u64, std::cmp::Reverse<Address>)> = BinaryHeap::new();
        let mut cursor: HashMap<Address, u64> = HashMap::new();
        for sender in self.by_sender.keys() {
            let next = state.account(sender).nonce;
            if let Some(tx) = self.by_sender[sender].get(&next) {
                heap.push((tx.tx().gas_price, std::cmp::Reverse(*sender)));
                cursor.insert(*sender, next);
            }
        }
        let (mut bytes, mut gas) = (0usize, 0u64);
        let mut out = Vec::new();
        while let Some((_, std::cmp::Reverse(sender))) = heap.pop() {
            let nonce = cursor[&sender];
            let tx = &self.by_sender[&sender][&nonce];
            let tx_gas = gas_of(&tx.tx().action);
            if bytes + tx.encoded_len() > max_bytes || gas.saturating_add(tx_gas) > max_gas {
                // This sender's later nonces cannot come before this one: drop the sender.
                continue;
            }
            if scratch.apply_transaction(tx, &env).is_err() {
                continue;
            }
            bytes += tx.encoded_len();
            gas += tx_gas;
            out.push(tx.clone());
            if let Some(next) = self.by_sender[&sender].get(&(nonce + 1)) {
                cursor.insert(sender, nonce + 1);
                heap.push((next.tx().gas_price, std::cmp::Reverse(sender)));
            }
        }
        out
    }

    /// After a block commits: drop what is now included or can no longer apply (used nonces,
    /// senders who can no longer pay, a next transaction that no longer applies at `height`,
    /// with those after it). Returns each dropped transaction with the reason (the caller
    /// ignores those the block included).
    pub fn prune(&mut self, state: &AccountState, env: &tcp_state::BlockEnv) -> Vec<(Digest, String)> {
        let mut removed = Vec::new();
        let mut reasons = Vec::new();
        self.failed_verifications.retain(|sender, (nonce, _)| state.account(sender).nonce == *nonce);
        for (sender, pending) in self.by_sender.iter_mut() {
            let account = state.account(sender);
            let stale: Vec<u64> = pending.range(..account.nonce).map(|(n, _)| *n).collect();
            for n in stale {
                let tx = pending.remove(&n).expect("listed");
                reasons.push((tx.hash(), format!("nonce {n} was used by another transaction of the sender")));
                removed.push(tx);
            }
            if let Some(Err(e)) = pending.get(&account.nonce).map(|next| state.check(next, env)) {
                for (i, tx) in std::mem::take(pending).into_values().enumerate() {
                    let reason = if i == 0 { e.to_string() } else { "an earlier transaction of the sender was dropped".to_string() };
                    reasons.push((tx.hash(), reason));
                    removed.push(tx);
                }
            }
            let mut total: u128 = 0;
            let mut unpayable_from = None;
            for (n, tx) in pending.iter() {
                total = total.saturating_add(state.max_cost(tx).unwrap_or(u128::MAX));
                if total > account.balance {
                    unpayable_from = Some(*n);
                    break;
                }
            }
            if let Some(from) = unpayable_from {
                let dropped: Vec<u64> = pending.range(from..).map(|(n, _)| *n).collect();
                for n in dropped {
                    let tx = pending.remove(&n).expect("listed");
                    reasons.push((tx.hash(), format!("balance {} cannot pay the sender's pending transactions", account.balance)));
                    removed.push(tx);
                }
            }
        }
        self.by_sender.retain(|_, p| !p.is_empty());
        for tx in removed {
            self.by_hash.remove(&tx.hash());
            self.bytes -= tx.encoded_len();
        }
        self.check_invariants();
        reasons
    }

    fn check_invariants(&self) {
        debug_assert_eq!(self.by_hash.len(), self.by_sender.values().map(BTreeMap::len).sum::<usize>());
        debug_assert_eq!(self.bytes, self.by_sender.values().flat_map(|p| p.values()).map(|t| t.encoded_len()).sum::<usize>());
        debug_assert!(self.by_hash.len() <= self.limits.max_transactions && self.bytes <= self.limits.max_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(height: u64) -> tcp_state::BlockEnv {
        tcp_state::BlockEnv { height, time_secs: 0, fee_recipient: Address::ZERO }
    }
    use tcp_state::{AccountKey, Action, TRANSFER_GAS, Transaction};
    use tcp_types::ChainId;

    fn chain() -> ChainId {
        ChainId::new("mempool-test").unwrap()
    }

    fn key(i: u8) -> AccountKey {
        AccountKey::from_bytes(&[i + 1; 32]).unwrap()
    }

    fn tx(from: &AccountKey, nonce: u64, amount: u128, gas_price: u64) -> VerifiedTransaction {
        Transaction { chain_id: chain(), nonce, gas_price, gas_limit: TRANSFER_GAS, action: Action::Transfer { to: Address([7; 20]), amount } }
            .sign(from)
            .verify(&chain())
            .unwrap()
    }

    fn state(keys: &[&AccountKey]) -> AccountState {
        AccountState::genesis(
            tcp_state::StateConfig { chain_id: ChainId::new("test").unwrap(), min_gas_price: 1, staking: Default::default(), enclaves: None },
            &keys.iter().map(|k| (k.address(), 1_000_000_000)).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    /// Failed enclave actions pay nothing, so a sender gets a bounded number of them per nonce:
    /// the next is refused before its (DCAP) check runs, until a paid transaction moves the
    /// sender's nonce on.
    #[test]
    fn failed_verifications_are_bounded_per_sender_and_nonce() {
        let a = key(0);
        let verifier = tcp_attestation::Verifier::new(Vec::new(), tcp_attestation::Policy::default(), false).unwrap();
        let rules = tcp_state::EnclaveRules { verifier, attestation_period: 100, freshness_window: 10, policy_version: 0, release_rate_limit: 10, release_rate_window: 10, governance: None };
        let config = tcp_state::StateConfig { chain_id: ChainId::new("test").unwrap(), min_gas_price: 1, staking: Default::default(), enclaves: Some(rules) };
        let mut s = AccountState::genesis(config, &[(a.address(), 1_000_000_000)]).unwrap();
        let mut pool = Mempool::new(MempoolLimits::default());
        let posting = |nonce: u64, n: u8| {
            let action = Action::PostCollateral { collateral: vec![n; 10], witness: vec![n; 10] };
            Transaction { chain_id: chain(), nonce, gas_price: 1, gas_limit: 5_000_000, action }.sign(&a).verify(&chain()).unwrap()
        };
        for n in 0..MAX_FAILED_VERIFICATIONS as u8 {
            assert!(matches!(pool.insert(posting(0, n), &s, &at(1)), Err(MempoolError::Invalid(_))));
        }
        assert_eq!(pool.insert(posting(0, 99), &s, &at(1)), Err(MempoolError::TooManyFailedVerifications { nonce: 0 }));
        // Other transactions of the sender are not affected.
        assert_eq!(pool.insert(tx(&a, 0, 1, 1), &s, &at(1)), Ok(Admitted::Added));
        s.apply_transaction(&tx(&a, 0, 1, 1), &at(1)).unwrap();
        pool.prune(&s, &at(2));
        assert!(matches!(pool.insert(posting(1, 99), &s, &at(2)), Err(MempoolError::Invalid(_))), "a new nonce, a new allowance");
        // Behind a nonce gap it would be admitted unverified: refused.
        assert_eq!(pool.insert(posting(5, 1), &s, &at(2)), Err(MempoolError::EnclaveActionNotNext { expected: 1 }));
        // Cheap refusals (here: no rules on this chain) are not counted, so throwaway senders
        // cannot flush the memory of the failures.
        let b = key(1);
        let plain = state(&[&b]);
        for n in 0..2 * MAX_FAILED_VERIFICATIONS as u8 {
            let action = Action::PostCollateral { collateral: vec![n; 10], witness: vec![n; 10] };
            let tx = Transaction { chain_id: chain(), nonce: 0, gas_price: 1, gas_limit: 5_000_000, action }.sign(&b).verify(&chain()).unwrap();
            assert_eq!(pool.insert(tx, &plain, &at(2)), Err(MempoolError::Invalid(TxError::EnclavesDisabled)));
        }
    }

    #[test]
    fn duplicates_stale_nonces_and_underpriced_replacements_are_refused() {
        let a = key(0);
        let s = state(&[&a]);
        let mut pool = Mempool::new(MempoolLimits::default());
        let first = tx(&a, 0, 1, 10);
        assert_eq!(pool.insert(first.clone(), &s, &at(1)), Ok(Admitted::Added));
        assert_eq!(pool.insert(first.clone(), &s, &at(1)), Err(MempoolError::AlreadyKnown(first.hash())));
        assert_eq!(pool.insert(tx(&a, 0, 2, 10), &s, &at(1)), Err(MempoolError::ReplacementUnderpriced { pending: 10, needed: 11 }));
        let better = tx(&a, 0, 2, 11);
        assert_eq!(pool.insert(better.clone(), &s, &at(1)), Ok(Admitted::Replaced(first.hash())));
        assert!(!pool.contains(&first.hash()) && pool.contains(&better.hash()));
        assert!(matches!(pool.insert(tx(&a, 64, 1, 10), &s, &at(1)), Err(MempoolError::NonceTooFarAhead { .. })));
        let mut applied = s.clone();
        applied.apply_transaction(&tx(&a, 0, 5, 1), &tcp_state::BlockEnv { height: 1, time_secs: 0, fee_recipient: Address::ZERO }).unwrap();
        assert_eq!(pool.insert(tx(&a, 0, 9, 50), &applied, &at(1)), Err(MempoolError::NonceTooLow { expected: 1, got: 0 }));
        assert!(matches!(pool.insert(tx(&a, 1, 1, 0), &s, &at(1)), Err(MempoolError::Invalid(TxError::GasPriceTooLow { .. }))));
        assert!(matches!(pool.insert(tx(&a, 1, 999_999_999, 1), &s, &at(1)), Err(MempoolError::Invalid(TxError::InsufficientBalance { .. }))));
    }

    #[test]
    fn pruning_says_why_each_dropped_transaction_went() {
        let a = key(0);
        let s = state(&[&a]);
        let mut pool = Mempool::new(MempoolLimits::default());
        let (t0, t1, t2) = (tx(&a, 0, 1, 1), tx(&a, 1, 1, 1), tx(&a, 2, 1, 1));
        for t in [&t0, &t1, &t2] {
            pool.insert(t.clone(), &s, &at(1)).unwrap();
        }
        // Another transaction with nonce 0 commits, and leaves the sender unable to pay nonce 2.
        let mut committed = s.clone();
        let env = tcp_state::BlockEnv { height: 1, time_secs: 0, fee_recipient: Address::ZERO };
        committed.apply_transaction(&tx(&a, 0, 1_000_000_000 - 21_000 - 2 * 21_000 - 1, 1), &env).unwrap();
        let reasons: HashMap<Digest, String> = pool.prune(&committed, &at(2)).into_iter().collect();
        assert_eq!(reasons[&t0.hash()], "nonce 0 was used by another transaction of the sender");
        assert!(!reasons.contains_key(&t1.hash()), "{reasons:?}");
        assert!(reasons[&t2.hash()].starts_with("balance 42001 cannot pay"), "{reasons:?}");
        assert!(pool.contains(&t1.hash()) && pool.len() == 1);
    }

    #[test]
    fn a_full_mempool_says_so() {
        let keys: Vec<AccountKey> = (0..3).map(key).collect();
        let s = state(&keys.iter().collect::<Vec<_>>());
        let mut pool = Mempool::new(MempoolLimits { max_transactions: 2, ..Default::default() });
        pool.insert(tx(&keys[0], 0, 1, 1), &s, &at(1)).unwrap();
        pool.insert(tx(&keys[1], 0, 1, 1), &s, &at(1)).unwrap();
        assert!(matches!(pool.insert(tx(&keys[2], 0, 1, 1), &s, &at(1)), Err(MempoolError::Full { count: 2, .. })));
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn blocks_take_executable_transactions_by_price_within_limits() {
        let (a, b) = (key(0), key(1));
        let s = state(&[&a, &b]);
        let mut pool = Mempool::new(MempoolLimits::default());
        for n in 0..3 {
            pool.insert(tx(&a, n, 1, 5), &s, &at(1)).unwrap();
        }
        pool.insert(tx(&b, 0, 1, 9), &s, &at(1)).unwrap();
        pool.insert(tx(&b, 2, 1, 100), &s, &at(1)).unwrap(); // gap at nonce 1: not executable
        let picked = pool.select(&s, &at(1), usize::MAX, u64::MAX);
        let order: Vec<(Address, u64)> = picked.iter().map(|t| (t.sender(), t.tx().nonce)).collect();
        assert_eq!(order, vec![(b.address(), 0), (a.address(), 0), (a.address(), 1), (a.address(), 2)]);
        // Gas limit for two transfers only.
        assert_eq!(pool.select(&s, &at(1), usize::MAX, 2 * TRANSFER_GAS + 1).len(), 2);
        // Size limit for one.
        let one = picked[0].encoded_len();
        assert_eq!(pool.select(&s, &at(1), one + 1, u64::MAX).len(), 1);
        // Committing the first two of `a` prunes them.
        let mut committed = s.clone();
        for t in &picked[1..3] {
            committed.apply_transaction(t, &tcp_state::BlockEnv { height: 1, time_secs: 0, fee_recipient: Address::ZERO }).unwrap();
        }
        pool.prune(&committed, &at(1));
        assert_eq!(pool.len(), 3);
        assert!(!pool.contains(&picked[1].hash()));
    }
}
