//! Balances and nonces, and Υ for account transactions: the first real application on the
//! chain. A transaction is valid in a state when its nonce is the sender's next one, its gas
//! limit covers its gas, and the sender can pay amount + gas limit × gas price; a block holding
//! an invalid transaction is invalid. The fee (gas used × gas price) goes to the block's
//! proposer, so the total supply never changes (checked by property tests).

use crate::account::{Address, keccak256};
use crate::smt::{Hash, SparseMerkleTree, StateProof};
use crate::staking::{BOND_GAS, EVIDENCE_GAS, StakingParams, UNBOND_GAS, UNJAIL_GAS};
use crate::transaction::{Action, VerifiedTransaction};
use std::collections::BTreeMap;
use std::sync::Arc;
use tcp_types::{ChainId, Digest};

/// Gas of a plain transfer (the Ethereum figure, so wallets' expectations carry over).
pub const TRANSFER_GAS: u64 = 21_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub balance: u128,
    pub nonce: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TxError {
    #[error("nonce {got} is used: the sender's next nonce is {expected}")]
    NonceTooLow { expected: u64, got: u64 },
    #[error("nonce {got} is ahead: the sender's next nonce is {expected}")]
    NonceTooHigh { expected: u64, got: u64 },
    #[error("gas limit {limit} is below the {needed} this transaction uses")]
    GasLimitTooLow { limit: u64, needed: u64 },
    #[error("gas price {price} is below the minimum {minimum}")]
    GasPriceTooLow { price: u64, minimum: u64 },
    #[error("balance {available} cannot pay {needed} (amount + gas limit × gas price)")]
    InsufficientBalance { needed: u128, available: u128 },
    #[error("amount + fee overflows")]
    Overflow,
    #[error("nonce space of the sender is exhausted")]
    NonceExhausted,
    #[error("the sender already has a validator bond (bonding twice)")]
    AlreadyBonded,
    #[error("the consensus or BLS key is bonded by another account")]
    ConsensusKeyInUse,
    #[error("bond of {amount} is below the minimum of {minimum}")]
    BondTooSmall { amount: u128, minimum: u128 },
    #[error("p2p address {0:?} is not host:port")]
    BadP2pAddress(String),
    #[error("the validator registry is full")]
    RegistryFull,
    #[error("the consensus key did not sign the bond of this sender (proof of possession)")]
    BadPossessionProof,
    #[error("the BLS key did not sign the bond of this sender, or is not a valid G2 point (proof of possession)")]
    BadBlsPossessionProof,
    #[error("the sender has no validator bond")]
    NotAValidator,
    #[error("cannot unbond {amount}: {bonded} is bonded")]
    UnbondExceedsBond { amount: u128, bonded: u128 },
    #[error("too many pending unbondings")]
    TooManyUnbondings,
    #[error("the validator is not jailed")]
    NotJailed,
    #[error("the validator is jailed until height {until}")]
    StillJailed { until: u64 },
    #[error("invalid evidence: {0}")]
    BadEvidence(String),
    #[error("evidence of height {height} is older than {max_age} heights")]
    StaleEvidence { height: u64, max_age: u64 },
    #[error("this offence was already punished")]
    DuplicateEvidence,
    #[error("the sender is already a bonded compute node")]
    AlreadyComputeNode,
    #[error("the sender is not a compute node")]
    NotAComputeNode,
    #[error("compute endpoint: {0}")]
    BadEndpoint(String),
    #[error("this chain has no attestation rules: it registers no enclaves")]
    EnclavesDisabled,
    #[error("enclave registration refused: {0}")]
    Registration(tcp_dkmp::RegistrationRefused),
    #[error("compute transaction refused: {0}")]
    Compute(crate::contracts::ComputeRefused),
    #[error("collateral refused: {0}")]
    Collateral(tcp_dkmp::CollateralRefused),
    #[error("this enclave key is registered to another compute node")]
    EnclaveKeyTaken,
    #[error("too many registrations name freshness height {0}: quote again with a newer one")]
    FreshnessCrowded(u64),
    #[error("bridge: {0}")]
    Bridge(crate::bridge::BridgeRefused),
}

/// What Υ needs to know about the block a transaction is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockEnv {
    pub height: u64,
    /// The block's time (its header's timestamp, Unix seconds): quotes and collateral are
    /// verified at it.
    pub time_secs: u64,
    /// Who receives the fees: the block proposer's operator account.
    pub fee_recipient: Address,
}

/// Genesis configuration of the state: the chain (evidence and bond signatures name it), the
/// gas price floor, the staking parameters and the attestation rules (without them, no enclave
/// registers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateConfig {
    pub chain_id: ChainId,
    pub min_gas_price: u64,
    pub staking: StakingParams,
    pub enclaves: Option<crate::enclaves::EnclaveRules>,
}

/// What applying a transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub tx_hash: Digest,
    pub sender: Address,
    pub gas_used: u64,
    pub fee: u128,
}

/// What an admitted action writes, decided once in [`AccountState::check_action`].
enum ActionWrite {
    Enclave(crate::enclaves::EnclaveWrite),
    Contract(crate::contracts::ContractWrite),
    Bridge(crate::bridge::BridgeWrite),
}

/// Gas a transaction uses (known before execution for every action so far).
pub fn gas_of(action: &Action) -> u64 {
    match action {
        Action::Transfer { .. } => TRANSFER_GAS,
        Action::Bond { .. } => BOND_GAS,
        Action::Unbond { .. } => UNBOND_GAS,
        Action::Unjail => UNJAIL_GAS,
        Action::SubmitEvidence { .. } => EVIDENCE_GAS,
        Action::RegisterCompute { .. } => crate::compute::REGISTER_COMPUTE_GAS,
        Action::UnbondCompute { .. } => crate::compute::UNBOND_COMPUTE_GAS,
        Action::RegisterEnclave { .. } => crate::enclaves::REGISTER_ENCLAVE_GAS,
        Action::PostCollateral { .. } => crate::enclaves::POST_COLLATERAL_GAS,
        Action::Compute { outcome, .. } => crate::contracts::compute_gas(outcome),
        Action::RotateKey { .. } => crate::contracts::ROTATE_KEY_GAS,
        Action::ComputeFault { first, second, .. } => {
            crate::contracts::COMPUTE_BASE_GAS + crate::contracts::COMPUTE_BYTE_GAS * (first.payload_bytes() + second.payload_bytes())
        }
        Action::BridgeTransfer { .. } => crate::bridge::BRIDGE_TRANSFER_GAS,
        Action::Withdraw { .. } => crate::bridge::WITHDRAW_GAS,
    }
}

/// Namespace byte of account keys in the state tree (docs/state-proofs.md).
pub const ACCOUNT_NAMESPACE: u8 = 0x01;

/// An account's key in the state tree: `keccak256(0x01 ‖ address)`.
pub fn account_key(address: &Address) -> Hash {
    keccak256(&[&[ACCOUNT_NAMESPACE], &address.0])
}

impl Account {
    /// The leaf value: `address ‖ balance (16 bytes, big-endian) ‖ nonce (8, big-endian)`, which
    /// is Solidity's `abi.encodePacked(address, uint128, uint64)`.
    pub fn encode(&self, address: &Address) -> [u8; 44] {
        let mut out = [0u8; 44];
        out[..20].copy_from_slice(&address.0);
        out[20..36].copy_from_slice(&self.balance.to_be_bytes());
        out[36..].copy_from_slice(&self.nonce.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<(Address, Account)> {
        let bytes: &[u8; 44] = bytes.try_into().ok()?;
        let address = Address(bytes[..20].try_into().ok()?);
        let balance = u128::from_be_bytes(bytes[20..36].try_into().ok()?);
        let nonce = u64::from_be_bytes(bytes[36..].try_into().ok()?);
        Some((address, Account { balance, nonce }))
    }
}

/// The world state σ: accounts, and the staking entries of `staking.rs`, committed in a sparse
/// Merkle tree. Writes collect in an overlay and reach the tree in one batch when the root is
/// asked for, so a block's transactions share the hashing of their paths. Cloning is cheap: the
/// tree is shared, only the overlay is copied.
#[derive(Clone, Debug)]
pub struct AccountState {
    tree: SparseMerkleTree,
    /// Account writes not yet in the tree, with their tree keys (hashed once).
    pending: BTreeMap<Address, (Hash, Account)>,
    /// Other writes not yet in the tree (`None` deletes).
    entries: BTreeMap<Hash, Option<Vec<u8>>>,
    /// Balances plus stake (bonded and unbonding): grows by block rewards, shrinks by the
    /// burnt part of slashes.
    total_supply: u128,
    pub(crate) config: Arc<StateConfig>,
}

impl PartialEq for AccountState {
    fn eq(&self, other: &Self) -> bool {
        self.clone().state_root() == other.clone().state_root() && self.total_supply == other.total_supply && self.config == other.config
    }
}
impl Eq for AccountState {}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GenesisError {
    #[error("genesis allocations overflow the supply")]
    Overflow,
    #[error("address {0} is allocated twice")]
    Duplicate(Address),
}

impl AccountState {
    pub fn genesis(config: StateConfig, allocations: &[(Address, u128)]) -> Result<AccountState, GenesisError> {
        Self::restore(config, allocations.iter().map(|(address, balance)| (*address, Account { balance: *balance, nonce: 0 })), Vec::new())
    }

    /// The state as a node stored it: accounts and other entries read back from disk. The
    /// supply is recomputed (balances plus stake), so a store that lost or duplicated a balance
    /// shows up as a changed supply.
    pub fn restore(
        config: StateConfig,
        accounts: impl IntoIterator<Item = (Address, Account)>,
        entries: Vec<(Hash, Vec<u8>)>,
    ) -> Result<AccountState, GenesisError> {
        let mut seen = std::collections::HashSet::new();
        let mut updates = Vec::new();
        let mut total: u128 = 0;
        for (address, account) in accounts {
            total = total.checked_add(account.balance).ok_or(GenesisError::Overflow)?;
            if !seen.insert(address) {
                return Err(GenesisError::Duplicate(address));
            }
            updates.push((account_key(&address), Some(account.encode(&address).to_vec())));
        }
        updates.extend(entries.into_iter().map(|(k, v)| (k, Some(v))));
        let mut tree = SparseMerkleTree::new();
        tree.apply(updates);
        let mut state = AccountState { tree, pending: BTreeMap::new(), entries: BTreeMap::new(), total_supply: total, config: Arc::new(config) };
        state.total_supply = total.checked_add(state.locked_stake()).ok_or(GenesisError::Overflow)?;
        Ok(state)
    }

    pub fn chain_id(&self) -> &ChainId {
        &self.config.chain_id
    }

    pub fn staking_params(&self) -> StakingParams {
        self.config.staking
    }

    /// Any entry of the tree (overlay first).
    pub fn get_entry(&self, key: &Hash) -> Option<Vec<u8>> {
        match self.entries.get(key) {
            Some(value) => value.clone(),
            None => self.tree.get(key).map(<[u8]>::to_vec),
        }
    }

    /// Write a non-account entry (`None` deletes it).
    pub(crate) fn put_entry(&mut self, key: Hash, value: Option<Vec<u8>>) {
        self.entries.insert(key, value);
    }

    /// Non-account entries written since the last [`Self::state_root`].
    pub fn pending_entries(&self) -> impl Iterator<Item = (&Hash, &Option<Vec<u8>>)> {
        self.entries.iter()
    }

    /// Every non-account entry in the tree (O(state): for the store at genesis and checks).
    pub fn entries(&self) -> Vec<(Hash, Vec<u8>)> {
        let mut all: Vec<(Hash, Vec<u8>)> = self
            .tree
            .iter()
            .filter(|(k, v)| Account::decode(v).is_none_or(|(a, _)| account_key(&a) != **k))
            .filter(|(k, _)| !self.entries.contains_key(*k))
            .map(|(k, v)| (*k, v.to_vec()))
            .collect();
        all.extend(self.entries.iter().filter_map(|(k, v)| Some((*k, v.clone()?))));
        all
    }

    /// Add minted and remove burnt amounts from the supply.
    pub(crate) fn adjust_supply(&mut self, minted: u128, burnt: u128) -> Result<(), TxError> {
        self.total_supply = self.total_supply.checked_add(minted).ok_or(TxError::Overflow)? - burnt;
        Ok(())
    }

    /// Write an account whose balance change is accounted for elsewhere (moves within the
    /// supply).
    pub(crate) fn set_account_unchecked(&mut self, address: Address, account: Account) {
        let key = self.entry(&address).0;
        self.pending.insert(address, (key, account));
    }

    pub fn account(&self, address: &Address) -> Account {
        self.entry(address).1
    }

    /// An account with its tree key.
    fn entry(&self, address: &Address) -> (Hash, Account) {
        if let Some(entry) = self.pending.get(address) {
            return *entry;
        }
        let key = account_key(address);
        (key, self.tree.get(&key).and_then(Account::decode).map(|(_, a)| a).unwrap_or_default())
    }

    /// Move the overlay's writes into the tree (one batch) and return the root.
    pub fn state_root(&mut self) -> Hash {
        if !self.pending.is_empty() || !self.entries.is_empty() {
            let mut updates: Vec<(Hash, Option<Vec<u8>>)> = std::mem::take(&mut self.pending)
                .into_iter()
                .map(|(address, (key, account))| (key, Some(account.encode(&address).to_vec())))
                .collect();
            updates.extend(std::mem::take(&mut self.entries));
            self.tree.apply(updates);
        }
        self.tree.root()
    }

    /// A proof of `address`'s account (or its absence) against [`Self::state_root`].
    pub fn prove_account(&mut self, address: &Address) -> StateProof {
        self.state_root();
        self.prove_committed(&account_key(address)).1
    }

    /// A proof of any state key against the root of the writes already committed to the tree
    /// (a snapshot of a committed height has no others), with that root.
    pub fn prove_committed(&self, key: &Hash) -> (Hash, StateProof) {
        (self.tree.root(), self.tree.prove(key))
    }

    /// Overwrite an account outside Υ (tools and benchmarks). A balance change mints or burns:
    /// the total supply follows it, so it always equals the sum of the balances.
    pub fn set_account(&mut self, address: Address, account: Account) -> Result<(), TxError> {
        let (key, old) = self.entry(&address);
        self.total_supply = (self.total_supply - old.balance).checked_add(account.balance).ok_or(TxError::Overflow)?;
        self.pending.insert(address, (key, account));
        Ok(())
    }

    /// Addresses written since the last [`Self::state_root`].
    pub fn pending_writes(&self) -> impl Iterator<Item = (&Address, &Account)> {
        self.pending.iter().map(|(address, (_, account))| (address, account))
    }

    pub fn total_supply(&self) -> u128 {
        self.total_supply
    }

    pub fn min_gas_price(&self) -> u64 {
        self.config.min_gas_price
    }

    /// Every account, overlay included, in no particular order (O(accounts): for genesis,
    /// export and checks, not for the block path).
    pub fn accounts(&self) -> Vec<(Address, Account)> {
        let mut all: Vec<(Address, Account)> =
            self.tree
                .iter()
                // Other entries may happen to be 44 bytes long: an account is only where its key is.
                .filter_map(|(k, v)| Account::decode(v).filter(|(a, _)| account_key(a) == *k))
                .filter(|(a, _)| !self.pending.contains_key(a))
                .collect();
        all.extend(self.pending.iter().map(|(a, (_, acc))| (*a, *acc)));
        all
    }

    /// Σ balances + locked stake: what `total_supply` must equal (O(state), for checks).
    pub fn computed_supply(&self) -> u128 {
        self.accounts().iter().map(|(_, a)| a.balance).sum::<u128>() + self.locked_stake()
    }

    /// The checks that do not depend on the sender's account (gas limit, price floor,
    /// overflow); the most `tx` can cost its sender: amount + gas limit × gas price.
    pub fn max_cost(&self, tx: &VerifiedTransaction) -> Result<u128, TxError> {
        let body = tx.tx();
        let gas = gas_of(&body.action);
        if body.gas_limit < gas {
            return Err(TxError::GasLimitTooLow { limit: body.gas_limit, needed: gas });
        }
        if body.gas_price < self.config.min_gas_price {
            return Err(TxError::GasPriceTooLow { price: body.gas_price, minimum: self.config.min_gas_price });
        }
        let max_fee = (body.gas_limit as u128).checked_mul(body.gas_price as u128).ok_or(TxError::Overflow)?;
        let amount = match &body.action {
            Action::Transfer { amount, .. } | Action::Bond { amount, .. } | Action::RegisterCompute { amount, .. } => *amount,
            Action::Unbond { .. }
            | Action::Unjail
            | Action::SubmitEvidence { .. }
            | Action::UnbondCompute { .. }
            | Action::RegisterEnclave { .. }
            | Action::PostCollateral { .. }
            | Action::Compute { .. }
            | Action::RotateKey { .. }
            | Action::ComputeFault { .. }
            // Bridged ETH is not the native balance: checked on its own.
            | Action::BridgeTransfer { .. }
            | Action::Withdraw { .. } => 0,
        };
        amount.checked_add(max_fee).ok_or(TxError::Overflow)
    }

    /// Whether `tx` may be applied in the block `env`; the most it can cost the sender.
    pub fn check(&self, tx: &VerifiedTransaction, env: &BlockEnv) -> Result<u128, TxError> {
        let needed = self.check_against(tx, &self.account(&tx.sender()))?;
        self.check_action(&tx.sender(), &tx.tx().action, env, needed)?;
        Ok(needed)
    }

    /// The action's own checks (after the sender's nonce and balance, of which `reserved` is
    /// the transaction's): an enclave or contract action is decided here, once, and yields what
    /// it writes.
    fn check_action(&self, sender: &Address, action: &Action, env: &BlockEnv, reserved: u128) -> Result<Option<ActionWrite>, TxError> {
        match action {
            Action::RegisterEnclave { .. } | Action::PostCollateral { .. } => {
                self.admit_enclave_action(sender, action, env).map(|w| Some(ActionWrite::Enclave(w)))
            }
            Action::Compute { outcome, signature } => self
                .admit_compute(sender, outcome, signature, env, reserved)
                .map(|w| Some(ActionWrite::Contract(crate::contracts::ContractWrite::Compute(Box::new(w))))),
            Action::RotateKey { cid } => self.admit_rotation(sender, cid).map(|w| Some(ActionWrite::Contract(w))),
            Action::ComputeFault { first, first_signature, second, second_signature } => self
                .admit_compute_fault((first, first_signature), (second, second_signature), env.height)
                .map(|w| Some(ActionWrite::Contract(w))),
            Action::BridgeTransfer { .. } | Action::Withdraw { .. } => self.admit_bridge(sender, action).map(|w| Some(ActionWrite::Bridge(w))),
            _ => self.check_staking(sender, action, env.height).map(|()| None),
        }
    }

    fn check_against(&self, tx: &VerifiedTransaction, sender: &Account) -> Result<u128, TxError> {
        let body = tx.tx();
        if body.nonce < sender.nonce {
            return Err(TxError::NonceTooLow { expected: sender.nonce, got: body.nonce });
        }
        if body.nonce > sender.nonce {
            return Err(TxError::NonceTooHigh { expected: sender.nonce, got: body.nonce });
        }
        if sender.nonce == u64::MAX {
            return Err(TxError::NonceExhausted);
        }
        let needed = self.max_cost(tx)?;
        if sender.balance < needed {
            return Err(TxError::InsufficientBalance { needed, available: sender.balance });
        }
        Ok(needed)
    }

    /// Υ: apply one transaction, paying its fee to the block's fee recipient. On error nothing
    /// changes.
    pub fn apply_transaction(&mut self, tx: &VerifiedTransaction, env: &BlockEnv) -> Result<Receipt, TxError> {
        let sender = tx.sender();
        let fee_recipient = env.fee_recipient;
        let (sender_key, mut from) = self.entry(&sender);
        let reserved = self.check_against(tx, &from)?;
        let write = self.check_action(&sender, &tx.tx().action, env, reserved)?;
        let body = tx.tx();
        let gas_used = gas_of(&body.action);
        let fee = gas_used as u128 * body.gas_price as u128;
        // Checked: balance ≥ amount + gas_limit × price ≥ amount + fee, nonce < MAX.
        from.nonce += 1;
        from.balance -= fee;
        match &body.action {
            Action::Transfer { to, amount } => {
                from.balance -= amount;
                self.pending.insert(sender, (sender_key, from));
                let (to_key, mut to_account) = self.entry(to);
                // Cannot overflow: every balance is part of total_supply, a u128.
                to_account.balance += amount;
                self.pending.insert(*to, (to_key, to_account));
            }
            action => {
                self.pending.insert(sender, (sender_key, from));
                match write {
                    Some(ActionWrite::Enclave(write)) => self.apply_enclave_write(sender, write, env.height),
                    Some(ActionWrite::Contract(write)) => self.apply_contract_write(write, sender, env.height)?,
                    Some(ActionWrite::Bridge(write)) => self.apply_bridge_write(sender, write, env.height),
                    // Checked above; the evidence check repeats inside (it yields the offender).
                    None => self.apply_staking(sender, action, env.height)?,
                }
            }
        }
        let (recipient_key, mut recipient) = self.entry(&fee_recipient);
        recipient.balance += fee;
        self.pending.insert(fee_recipient, (recipient_key, recipient));
        Ok(Receipt { tx_hash: tx.hash(), sender, gas_used, fee })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::Transaction;
    use crate::AccountKey;
    use proptest::prelude::*;
    use tcp_types::ChainId;

    fn chain() -> ChainId {
        ChainId::new("state-test").unwrap()
    }

    fn config(min_gas_price: u64) -> StateConfig {
        StateConfig { chain_id: chain(), min_gas_price, staking: StakingParams::default(), enclaves: None }
    }

    fn env(fee_recipient: Address) -> BlockEnv {
        BlockEnv { height: 1, time_secs: 0, fee_recipient }
    }

    fn key(i: u8) -> AccountKey {
        AccountKey::from_bytes(&[i + 1; 32]).unwrap()
    }

    fn transfer(from: &AccountKey, nonce: u64, to: Address, amount: u128, gas_price: u64) -> VerifiedTransaction {
        Transaction { chain_id: chain(), nonce, gas_price, gas_limit: TRANSFER_GAS, action: Action::Transfer { to, amount } }
            .sign(from)
            .verify(&chain())
            .unwrap()
    }

    #[test]
    fn a_transfer_moves_the_amount_and_pays_the_proposer() {
        let (alice, bob, proposer) = (key(0), key(1), Address([0xee; 20]));
        let mut state = AccountState::genesis(config(1), &[(alice.address(), 1_000_000)]).unwrap();
        let receipt = state.apply_transaction(&transfer(&alice, 0, bob.address(), 500, 2), &env(proposer)).unwrap();
        assert_eq!(receipt.fee, 42_000);
        assert_eq!(state.account(&alice.address()), Account { balance: 1_000_000 - 500 - 42_000, nonce: 1 });
        assert_eq!(state.account(&bob.address()).balance, 500);
        assert_eq!(state.account(&proposer).balance, 42_000);
    }

    #[test]
    fn bad_transactions_are_refused_and_change_nothing() {
        let (alice, bob) = (key(0), key(1));
        let state = AccountState::genesis(config(1), &[(alice.address(), 100_000)]).unwrap();
        let cases = [
            (transfer(&alice, 1, bob.address(), 1, 1), TxError::NonceTooHigh { expected: 0, got: 1 }),
            (transfer(&alice, 0, bob.address(), 100_000, 1), TxError::InsufficientBalance { needed: 121_000, available: 100_000 }),
            (transfer(&alice, 0, bob.address(), u128::MAX, 1), TxError::Overflow),
            (transfer(&alice, 0, bob.address(), 1, 0), TxError::GasPriceTooLow { price: 0, minimum: 1 }),
            (transfer(&bob, 0, alice.address(), 1, 1), TxError::InsufficientBalance { needed: 21_001, available: 0 }),
        ];
        for (tx, error) in cases {
            let mut copy = state.clone();
            assert_eq!(copy.apply_transaction(&tx, &env(Address::ZERO)), Err(error));
            assert_eq!(copy, state);
        }
        let low_gas = Transaction { chain_id: chain(), nonce: 0, gas_price: 1, gas_limit: 20_999, action: Action::Transfer { to: bob.address(), amount: 1 } }
            .sign(&alice)
            .verify(&chain())
            .unwrap();
        assert_eq!(state.check(&low_gas, &env(Address::ZERO)), Err(TxError::GasLimitTooLow { limit: 20_999, needed: TRANSFER_GAS }));
        // Replaying an applied transaction fails on its nonce.
        let mut applied = state.clone();
        let tx = transfer(&alice, 0, bob.address(), 1, 1);
        applied.apply_transaction(&tx, &env(Address::ZERO)).unwrap();
        assert_eq!(applied.apply_transaction(&tx, &env(Address::ZERO)), Err(TxError::NonceTooLow { expected: 1, got: 0 }));
    }

    #[test]
    fn genesis_refuses_overflow_and_duplicates() {
        let a = Address([1; 20]);
        assert_eq!(AccountState::genesis(config(0), &[(a, u128::MAX), (Address([2; 20]), 1)]), Err(GenesisError::Overflow));
        assert_eq!(AccountState::genesis(config(0), &[(a, 1), (a, 1)]), Err(GenesisError::Duplicate(a)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever sequence of transfers is attempted, successful or not, the total supply is
        /// the genesis supply and every nonce counts exactly the sender's applied transactions.
        #[test]
        fn supply_is_conserved(steps in proptest::collection::vec((0u8..4, 0u8..5, 0u128..400_000, 0u64..3, 0u64..4), 1..40)) {
            let keys: Vec<AccountKey> = (0..4).map(key).collect();
            let allocations: Vec<(Address, u128)> = keys.iter().map(|k| (k.address(), 300_000)).collect();
            let mut state = AccountState::genesis(config(1), &allocations).unwrap();
            let mut applied = [0u64; 4];
            for (from, to, amount, nonce_skew, price) in steps {
                let from_key = &keys[from as usize];
                let to = if to == 4 { Address([0xaa; 20]) } else { keys[to as usize].address() };
                let nonce = state.account(&from_key.address()).nonce + nonce_skew.saturating_sub(1);
                let tx = transfer(from_key, nonce, to, amount, price);
                if state.apply_transaction(&tx, &env(keys[3].address())).is_ok() {
                    applied[from as usize] += 1;
                }
                prop_assert_eq!(state.accounts().iter().map(|(_, a)| a.balance).sum::<u128>(), 1_200_000);
            }
            for (k, n) in keys.iter().zip(applied) {
                prop_assert_eq!(state.account(&k.address()).nonce, n);
            }
            // The root of the state as applied equals the root of the same accounts restored
            // from scratch, and every account's proof verifies against it with its encoding.
            let root = state.state_root();
            prop_assert_eq!(AccountState::restore(config(1), state.accounts(), state.entries()).unwrap().state_root(), root);
            for k in &keys {
                let proof = state.prove_account(&k.address());
                let account = state.account(&k.address());
                prop_assert_eq!(proof.verify(&root).unwrap(), Some(&account.encode(&k.address())[..]));
            }
        }
    }
}
