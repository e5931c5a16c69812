//! The application state TCP agrees on. Issue 4 brings accounts and transfers; staking,
//! slashing and the provable (Merkle) state come next.

pub mod account;

pub use account::{AccountKey, Address, RecoverableSignature, keccak256, recover_address};
pub mod transaction;

pub use transaction::{Action, SignedTransaction, Transaction, VerifiedTransaction};
pub mod accounts;
pub mod smt;

pub use accounts::{Account, AccountState, Receipt, TRANSFER_GAS, TxError};
