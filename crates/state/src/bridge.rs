//! The Plasma bridge's part of the state (DESIGN §5.7, docs/bridge.md): what `PlasmaRoot.sol`
//! proves against a checkpoint's state root, in the exact encodings it reads.
//!
//! * `keccak256(0x19 ‖ address)`: the account's bridged ETH, [`BridgeAccount`];
//! * `keccak256(0x1a ‖ id (uint64))`: a withdrawal record, [`WithdrawalRecord`];
//! * `keccak256(0x06 ‖ "bridge")`: [`BridgeStatus`], which names the root chain and the
//!   contract (so a checkpoint is good for that contract only) and how much of its inbox TCP
//!   processed, with the inbox's running hash (so the contract refuses a checkpoint of a chain
//!   that credited anything it did not send).
//!
//! Bridged ETH is an asset of its own, in wei, apart from the native balance: only what was
//! locked on the root chain can leave through it, so the contract always holds what TCP owes.

use crate::account::{Address, keccak256};
use crate::smt::Hash;

pub const BRIDGE_ACCOUNT_TAG: u8 = 0x19;
pub const WITHDRAWAL_TAG: u8 = 0x1a;

pub fn bridge_account_key(account: &Address) -> Hash {
    keccak256(&[&[BRIDGE_ACCOUNT_TAG], &account.0])
}

pub fn withdrawal_key(id: u64) -> Hash {
    keccak256(&[&[WITHDRAWAL_TAG], &id.to_be_bytes()])
}

pub fn bridge_status_key() -> Hash {
    crate::staking::global_key("bridge")
}

/// An account's bridged ETH: `balance (uint128) ‖ spends (uint64) ‖ exits (uint32) ‖ locked
/// (uint8)`, 29 bytes. `spends` counts every transaction that took from it (a later checkpoint
/// with a higher count cancels an exit from an earlier one); `exits` counts account exits paid
/// on the root chain and processed here (a new exit must come from a checkpoint that shows them
/// all); `locked` while an account exit is under way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BridgeAccount {
    pub balance: u128,
    pub spends: u64,
    pub exits: u32,
    pub locked: bool,
}

impl BridgeAccount {
    pub const BYTES: usize = 29;

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::BYTES);
        out.extend_from_slice(&self.balance.to_be_bytes());
        out.extend_from_slice(&self.spends.to_be_bytes());
        out.extend_from_slice(&self.exits.to_be_bytes());
        out.push(u8::from(self.locked));
        out
    }

    /// Exactly the encoding (a stored value that is not is corruption, refused).
    pub fn decode(bytes: &[u8]) -> Option<BridgeAccount> {
        if bytes.len() != Self::BYTES || bytes[28] > 1 {
            return None;
        }
        Some(BridgeAccount {
            balance: u128::from_be_bytes(bytes[0..16].try_into().ok()?),
            spends: u64::from_be_bytes(bytes[16..24].try_into().ok()?),
            exits: u32::from_be_bytes(bytes[24..28].try_into().ok()?),
            locked: bytes[28] == 1,
        })
    }
}

/// A withdrawal: `owner (20, the TCP account that burned it) ‖ recipient (20, on the root chain)
/// ‖ amount (uint128, wei) ‖ height (uint64)`, 64 bytes. Only the recipient may exit it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WithdrawalRecord {
    pub owner: Address,
    pub recipient: [u8; 20],
    pub amount: u128,
    pub height: u64,
}

impl WithdrawalRecord {
    pub const BYTES: usize = 64;

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::BYTES);
        out.extend_from_slice(&self.owner.0);
        out.extend_from_slice(&self.recipient);
        out.extend_from_slice(&self.amount.to_be_bytes());
        out.extend_from_slice(&self.height.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<WithdrawalRecord> {
        if bytes.len() != Self::BYTES {
            return None;
        }
        Some(WithdrawalRecord {
            owner: Address(bytes[0..20].try_into().ok()?),
            recipient: bytes[20..40].try_into().ok()?,
            amount: u128::from_be_bytes(bytes[40..56].try_into().ok()?),
            height: u64::from_be_bytes(bytes[56..64].try_into().ok()?),
        })
    }
}

/// The bridge as TCP's state has it: `root chain id (uint64) ‖ contract (20) ‖ inbox processed
/// (uint64) ‖ inbox hash (32) ‖ next withdrawal id (uint64)`, 76 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeStatus {
    pub root_chain_id: u64,
    pub contract: [u8; 20],
    pub inbox_processed: u64,
    pub inbox_hash: [u8; 32],
    pub next_withdrawal: u64,
}

impl BridgeStatus {
    pub const BYTES: usize = 76;

    pub fn new(root_chain_id: u64, contract: [u8; 20]) -> BridgeStatus {
        BridgeStatus { root_chain_id, contract, inbox_processed: 0, inbox_hash: [0; 32], next_withdrawal: 0 }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::BYTES);
        out.extend_from_slice(&self.root_chain_id.to_be_bytes());
        out.extend_from_slice(&self.contract);
        out.extend_from_slice(&self.inbox_processed.to_be_bytes());
        out.extend_from_slice(&self.inbox_hash);
        out.extend_from_slice(&self.next_withdrawal.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<BridgeStatus> {
        if bytes.len() != Self::BYTES {
            return None;
        }
        Some(BridgeStatus {
            root_chain_id: u64::from_be_bytes(bytes[0..8].try_into().ok()?),
            contract: bytes[8..28].try_into().ok()?,
            inbox_processed: u64::from_be_bytes(bytes[28..36].try_into().ok()?),
            inbox_hash: bytes[36..68].try_into().ok()?,
            next_withdrawal: u64::from_be_bytes(bytes[68..76].try_into().ok()?),
        })
    }
}

/// What the contract's inbox says happened on the root chain, in the order TCP processes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboxKind {
    /// ETH locked for `account`: credit it.
    Deposit = 0,
    /// An account exit of `account` started: lock it.
    ExitStarted = 1,
    /// It was challenged or cancelled: unlock.
    ExitCancelled = 2,
    /// It was paid on the root chain: take `amount` (or what is left) and unlock.
    ExitFinalized = 3,
}

impl InboxKind {
    pub fn from_u8(kind: u8) -> Option<InboxKind> {
        Some(match kind {
            0 => InboxKind::Deposit,
            1 => InboxKind::ExitStarted,
            2 => InboxKind::ExitCancelled,
            3 => InboxKind::ExitFinalized,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboxEntry {
    pub id: u64,
    pub kind: InboxKind,
    pub account: Address,
    pub amount: u128,
}

impl InboxEntry {
    pub const BYTES: usize = 45;

    /// `id (uint64) ‖ kind (uint8) ‖ account (20) ‖ amount (uint128)`: how a block carries it.
    pub fn encode(&self) -> [u8; Self::BYTES] {
        let mut out = [0u8; Self::BYTES];
        out[0..8].copy_from_slice(&self.id.to_be_bytes());
        out[8] = self.kind as u8;
        out[9..29].copy_from_slice(&self.account.0);
        out[29..45].copy_from_slice(&self.amount.to_be_bytes());
        out
    }

    /// Exactly [`Self::BYTES`] bytes of a known kind.
    pub fn decode(bytes: &[u8]) -> Option<InboxEntry> {
        if bytes.len() != Self::BYTES {
            return None;
        }
        Some(InboxEntry {
            id: u64::from_be_bytes(bytes[0..8].try_into().ok()?),
            kind: InboxKind::from_u8(bytes[8])?,
            account: Address(bytes[9..29].try_into().ok()?),
            amount: u128::from_be_bytes(bytes[29..45].try_into().ok()?),
        })
    }

    /// The running hash after this entry, given the one before it: `keccak256(previous ‖ id
    /// (uint64) ‖ kind (uint8) ‖ account (20) ‖ amount (uint128))`, as `PlasmaRoot._append`.
    pub fn chain(&self, previous: &[u8; 32]) -> [u8; 32] {
        keccak256(&[previous, &self.id.to_be_bytes(), &[self.kind as u8], &self.account.0, &self.amount.to_be_bytes()])
    }
}

pub const BRIDGE_TRANSFER_GAS: u64 = 30_000;
pub const WITHDRAW_GAS: u64 = 50_000;
/// Most inbox entries one block processes.
pub const MAX_INBOX_PER_BLOCK: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BridgeRefused {
    #[error("this chain has no bridge")]
    Disabled,
    #[error("an exit of this account is under way on the root chain: its bridged ETH is locked")]
    Locked,
    #[error("bridged balance {available} wei cannot pay {needed}")]
    Insufficient { needed: u128, available: u128 },
    #[error("the amount must be more than zero")]
    ZeroAmount,
    #[error("a withdrawal to the zero address could never be exited")]
    ZeroRecipient,
}

/// Why a block's inbox entries are not the ones TCP must process next. Any of these makes the
/// block invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InboxError {
    #[error("this chain has no bridge")]
    Disabled,
    #[error("inbox entry {got} where {expected} is next")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("more than {MAX_INBOX_PER_BLOCK} inbox entries in one block")]
    TooMany,
    #[error("a deposit of zero")]
    ZeroDeposit,
    #[error("the bridge state is corrupt")]
    Corrupt,
}

/// What an admitted bridge transaction writes.
pub(crate) enum BridgeWrite {
    Transfer { to: Address, amount: u128 },
    Withdraw { recipient: [u8; 20], amount: u128 },
}

impl crate::AccountState {
    /// The bridge's status (`None`: the chain has no bridge).
    pub fn bridge_status(&self) -> Option<BridgeStatus> {
        self.get_entry(&bridge_status_key()).and_then(|v| BridgeStatus::decode(&v))
    }

    /// An account's bridged ETH (zero if it never had any).
    pub fn bridge_account(&self, account: &Address) -> BridgeAccount {
        self.get_entry(&bridge_account_key(account)).and_then(|v| BridgeAccount::decode(&v)).unwrap_or_default()
    }

    pub fn withdrawal(&self, id: u64) -> Option<WithdrawalRecord> {
        self.get_entry(&withdrawal_key(id)).and_then(|v| WithdrawalRecord::decode(&v))
    }

    /// At genesis: bridge this chain to `contract` on the root chain `root_chain_id`.
    pub fn enable_bridge(&mut self, root_chain_id: u64, contract: [u8; 20]) {
        self.put_entry(bridge_status_key(), Some(BridgeStatus::new(root_chain_id, contract).encode()));
    }

    fn put_bridge_account(&mut self, account: &Address, value: &BridgeAccount) {
        let entry = (*value != BridgeAccount::default()).then(|| value.encode());
        self.put_entry(bridge_account_key(account), entry);
    }

    pub(crate) fn admit_bridge(&self, sender: &Address, action: &crate::Action) -> Result<BridgeWrite, crate::TxError> {
        let refused = crate::TxError::Bridge;
        if self.bridge_status().is_none() {
            return Err(refused(BridgeRefused::Disabled));
        }
        let (write, amount) = match action {
            crate::Action::BridgeTransfer { to, amount } => (BridgeWrite::Transfer { to: *to, amount: *amount }, *amount),
            crate::Action::Withdraw { recipient, amount } => {
                if *recipient == [0; 20] {
                    return Err(refused(BridgeRefused::ZeroRecipient));
                }
                (BridgeWrite::Withdraw { recipient: *recipient, amount: *amount }, *amount)
            }
            _ => unreachable!("only bridge actions are admitted here"),
        };
        if amount == 0 {
            return Err(refused(BridgeRefused::ZeroAmount));
        }
        let from = self.bridge_account(sender);
        if from.locked {
            return Err(refused(BridgeRefused::Locked));
        }
        if from.balance < amount {
            return Err(refused(BridgeRefused::Insufficient { needed: amount, available: from.balance }));
        }
        if from.spends == u64::MAX {
            return Err(crate::TxError::NonceExhausted);
        }
        Ok(write)
    }

    pub(crate) fn apply_bridge_write(&mut self, sender: Address, write: BridgeWrite, height: u64) {
        let mut from = self.bridge_account(&sender);
        // Checked in admit_bridge: unlocked, balance ≥ amount, spends < MAX.
        from.spends += 1;
        match write {
            BridgeWrite::Transfer { to, amount } => {
                from.balance -= amount;
                self.put_bridge_account(&sender, &from);
                let mut recipient = self.bridge_account(&to);
                // Cannot overflow: every bridged balance is ETH locked in the contract.
                recipient.balance = recipient.balance.saturating_add(amount);
                self.put_bridge_account(&to, &recipient);
            }
            BridgeWrite::Withdraw { recipient, amount } => {
                from.balance -= amount;
                self.put_bridge_account(&sender, &from);
                let mut status = self.bridge_status().expect("checked in admit_bridge");
                let id = status.next_withdrawal;
                status.next_withdrawal += 1;
                self.put_entry(bridge_status_key(), Some(status.encode()));
                let record = WithdrawalRecord { owner: sender, recipient, amount, height };
                self.put_entry(withdrawal_key(id), Some(record.encode()));
            }
        }
    }

    /// Process the root chain's inbox entries a block carries, which must be exactly the next
    /// ones: deposits credited, accounts locked while an exit is under way, unlocked when it is
    /// cancelled, and charged (what is left of the exit's amount) when it was paid. All or
    /// nothing: on error the state is unchanged.
    pub fn apply_inbox(&mut self, entries: &[InboxEntry]) -> Result<(), InboxError> {
        if entries.is_empty() {
            return Ok(());
        }
        if entries.len() > MAX_INBOX_PER_BLOCK {
            return Err(InboxError::TooMany);
        }
        let mut status = self.bridge_status().ok_or(InboxError::Disabled)?;
        let mut accounts: std::collections::BTreeMap<Address, BridgeAccount> = std::collections::BTreeMap::new();
        for entry in entries {
            if entry.id != status.inbox_processed {
                return Err(InboxError::OutOfOrder { expected: status.inbox_processed, got: entry.id });
            }
            let account = accounts.entry(entry.account).or_insert_with(|| self.bridge_account(&entry.account));
            match entry.kind {
                InboxKind::Deposit => {
                    if entry.amount == 0 {
                        return Err(InboxError::ZeroDeposit);
                    }
                    account.balance = account.balance.checked_add(entry.amount).ok_or(InboxError::Corrupt)?;
                }
                InboxKind::ExitStarted => account.locked = true,
                InboxKind::ExitCancelled => account.locked = false,
                InboxKind::ExitFinalized => {
                    // Paid on the root chain from the balance of the exit's checkpoint; the
                    // account could not spend since (locked, or challenged). Should it hold less
                    // (a spend nobody challenged), the rest is already gone.
                    account.balance -= account.balance.min(entry.amount);
                    account.exits = account.exits.checked_add(1).ok_or(InboxError::Corrupt)?;
                    account.locked = false;
                }
            }
            status.inbox_hash = entry.chain(&status.inbox_hash);
            status.inbox_processed += 1;
        }
        for (address, account) in accounts {
            self.put_bridge_account(&address, &account);
        }
        self.put_entry(bridge_status_key(), Some(status.encode()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn leaves_round_trip_and_nothing_else_decodes(balance: u128, spends: u64, exits: u32, locked: bool, amount: u128, height: u64, id: u64, junk in proptest::collection::vec(any::<u8>(), 0..100)) {
            let account = BridgeAccount { balance, spends, exits, locked };
            prop_assert_eq!(BridgeAccount::decode(&account.encode()), Some(account));
            let record = WithdrawalRecord { owner: Address([1; 20]), recipient: [2; 20], amount, height };
            prop_assert_eq!(WithdrawalRecord::decode(&record.encode()), Some(record));
            let status = BridgeStatus { root_chain_id: id, contract: [3; 20], inbox_processed: height, inbox_hash: [4; 32], next_withdrawal: spends };
            prop_assert_eq!(BridgeStatus::decode(&status.encode()), Some(status));
            if junk.len() != BridgeAccount::BYTES {
                prop_assert_eq!(BridgeAccount::decode(&junk), None);
            }
            if junk.len() != WithdrawalRecord::BYTES {
                prop_assert_eq!(WithdrawalRecord::decode(&junk), None);
            }
            if junk.len() != BridgeStatus::BYTES {
                prop_assert_eq!(BridgeStatus::decode(&junk), None);
            }
            let entry = InboxEntry { id, kind: InboxKind::from_u8((spends % 4) as u8).unwrap(), account: Address([5; 20]), amount };
            prop_assert_eq!(InboxEntry::decode(&entry.encode()), Some(entry));
            if junk.len() != InboxEntry::BYTES || junk.get(8).is_some_and(|k| *k > 3) {
                prop_assert_eq!(InboxEntry::decode(&junk), None);
            }
        }
    }

    use crate::{AccountKey, AccountState, Action, BlockEnv, StakingParams, StateConfig, Transaction, TxError};

    fn chain() -> tcp_types::ChainId {
        tcp_types::ChainId::new("bridge-test").unwrap()
    }

    fn bridged_state(keys: &[&AccountKey]) -> AccountState {
        let config = StateConfig { chain_id: chain(), min_gas_price: 0, staking: StakingParams::default(), enclaves: None };
        let mut state = AccountState::genesis(config, &keys.iter().map(|k| (k.address(), 10u128.pow(18))).collect::<Vec<_>>()).unwrap();
        state.enable_bridge(31337, [0xbb; 20]);
        state
    }

    fn send(state: &mut AccountState, key: &AccountKey, action: Action) -> Result<crate::Receipt, TxError> {
        let nonce = state.account(&key.address()).nonce;
        let tx = Transaction { chain_id: chain(), nonce, gas_price: 0, gas_limit: 100_000, action }.sign(key).verify(&chain()).unwrap();
        state.apply_transaction(&tx, &BlockEnv { height: 7, time_secs: 0, fee_recipient: Address([0xee; 20]) })
    }

    fn entry(id: u64, kind: InboxKind, account: &AccountKey, amount: u128) -> InboxEntry {
        InboxEntry { id, kind, account: account.address(), amount }
    }

    #[test]
    fn deposits_are_credited_in_order_and_chain_the_inbox_hash() {
        let (alice, bob) = (AccountKey::from_bytes(&[1; 32]).unwrap(), AccountKey::from_bytes(&[2; 32]).unwrap());
        let mut state = bridged_state(&[&alice, &bob]);
        let first = entry(0, InboxKind::Deposit, &alice, 500);
        // Not the next entry: refused, nothing changes.
        let before = state.clone();
        assert_eq!(state.apply_inbox(&[entry(1, InboxKind::Deposit, &alice, 5)]), Err(InboxError::OutOfOrder { expected: 0, got: 1 }));
        assert_eq!(state.apply_inbox(&[first, entry(0, InboxKind::Deposit, &bob, 5)]), Err(InboxError::OutOfOrder { expected: 1, got: 0 }));
        assert_eq!(state.apply_inbox(&[entry(0, InboxKind::Deposit, &alice, 0)]), Err(InboxError::ZeroDeposit));
        assert_eq!(state, before);
        state.apply_inbox(&[first, entry(1, InboxKind::Deposit, &bob, 7)]).unwrap();
        assert_eq!(state.bridge_account(&alice.address()).balance, 500);
        assert_eq!(state.bridge_account(&bob.address()).balance, 7);
        let status = state.bridge_status().unwrap();
        assert_eq!(status.inbox_processed, 2);
        assert_eq!(status.inbox_hash, entry(1, InboxKind::Deposit, &bob, 7).chain(&first.chain(&[0; 32])));
        // The native balance is another asset: untouched.
        assert_eq!(state.account(&alice.address()).balance, 10u128.pow(18));
    }

    #[test]
    fn transfers_and_withdrawals_spend_bridged_eth_and_a_lock_stops_them() {
        let (alice, bob) = (AccountKey::from_bytes(&[1; 32]).unwrap(), AccountKey::from_bytes(&[2; 32]).unwrap());
        let mut state = bridged_state(&[&alice, &bob]);
        state.apply_inbox(&[entry(0, InboxKind::Deposit, &alice, 1_000)]).unwrap();
        send(&mut state, &alice, Action::BridgeTransfer { to: bob.address(), amount: 300 }).unwrap();
        send(&mut state, &alice, Action::Withdraw { recipient: [0x42; 20], amount: 200 }).unwrap();
        assert_eq!(state.bridge_account(&alice.address()), BridgeAccount { balance: 500, spends: 2, exits: 0, locked: false });
        assert_eq!(state.bridge_account(&bob.address()), BridgeAccount { balance: 300, spends: 0, exits: 0, locked: false });
        assert_eq!(state.withdrawal(0), Some(WithdrawalRecord { owner: alice.address(), recipient: [0x42; 20], amount: 200, height: 7 }));
        assert_eq!(state.bridge_status().unwrap().next_withdrawal, 1);
        let refused = |state: &mut AccountState, key: &AccountKey, action: Action| send(state, key, action).unwrap_err();
        assert_eq!(refused(&mut state, &bob, Action::BridgeTransfer { to: alice.address(), amount: 301 }), TxError::Bridge(BridgeRefused::Insufficient { needed: 301, available: 300 }));
        assert_eq!(refused(&mut state, &bob, Action::Withdraw { recipient: [0; 20], amount: 1 }), TxError::Bridge(BridgeRefused::ZeroRecipient));
        assert_eq!(refused(&mut state, &bob, Action::Withdraw { recipient: [1; 20], amount: 0 }), TxError::Bridge(BridgeRefused::ZeroAmount));
        // An exit of alice's account starts on the root chain: locked until it is decided.
        state.apply_inbox(&[entry(1, InboxKind::ExitStarted, &alice, 500)]).unwrap();
        assert_eq!(refused(&mut state, &alice, Action::BridgeTransfer { to: bob.address(), amount: 1 }), TxError::Bridge(BridgeRefused::Locked));
        assert_eq!(refused(&mut state, &alice, Action::Withdraw { recipient: [1; 20], amount: 1 }), TxError::Bridge(BridgeRefused::Locked));
        // It may still receive.
        send(&mut state, &bob, Action::BridgeTransfer { to: alice.address(), amount: 100 }).unwrap();
        // Paid on the root chain: the exit's amount is taken, the exit counted, the lock lifted.
        state.apply_inbox(&[entry(2, InboxKind::ExitFinalized, &alice, 500)]).unwrap();
        assert_eq!(state.bridge_account(&alice.address()), BridgeAccount { balance: 100, spends: 2, exits: 1, locked: false });
        send(&mut state, &alice, Action::BridgeTransfer { to: bob.address(), amount: 100 }).unwrap();
        // A cancelled exit only unlocks.
        state.apply_inbox(&[entry(3, InboxKind::ExitStarted, &bob, 300), entry(4, InboxKind::ExitCancelled, &bob, 300)]).unwrap();
        assert_eq!(state.bridge_account(&bob.address()), BridgeAccount { balance: 300, spends: 1, exits: 0, locked: false });
        // Without a bridge nothing bridged is admitted.
        let config = StateConfig { chain_id: chain(), min_gas_price: 0, staking: StakingParams::default(), enclaves: None };
        let mut plain = AccountState::genesis(config, &[(alice.address(), 10u128.pow(18))]).unwrap();
        assert_eq!(refused(&mut plain, &alice, Action::BridgeTransfer { to: bob.address(), amount: 1 }), TxError::Bridge(BridgeRefused::Disabled));
        assert_eq!(plain.apply_inbox(&[entry(0, InboxKind::Deposit, &alice, 1)]), Err(InboxError::Disabled));
    }

    #[test]
    fn a_lock_flag_other_than_0_or_1_is_refused() {
        let mut bytes = BridgeAccount { balance: 5, spends: 1, exits: 0, locked: true }.encode();
        bytes[28] = 2;
        assert_eq!(BridgeAccount::decode(&bytes), None);
    }
}
