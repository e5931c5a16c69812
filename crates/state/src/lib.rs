//! The world state σ TCP agrees on (whitepaper §4.2): accounts, validators and their stake,
//! committed in a keccak-256 sparse Merkle tree; Υ (one transaction, `accounts.rs` and
//! `staking.rs`), Π (a block: the node applies Υ in order) and Ω (`staking::finalize_block`).

pub mod account;

pub use account::{AccountKey, Address, RecoverableSignature, keccak256, recover_address};
pub mod transaction;

pub use transaction::{Action, SignedTransaction, Transaction, VerifiedTransaction};
pub mod accounts;
pub mod bridge;
pub mod compute;
pub mod contracts;
pub mod enclaves;
pub mod releases;
pub mod smt;
pub mod staking;

pub use accounts::{Account, AccountState, BlockEnv, Receipt, StateConfig, TRANSFER_GAS, TxError};
pub use compute::ComputeNode;
pub use contracts::{Call, CallStatus, ComputeOutcome, ComputeRefused, ComputeRequest, ContractEntry, DataTerms, DataUse, RequestEntry, SignedComputeRequest};
pub use enclaves::{EnclaveEntry, EnclaveRules, ReleaseStateView};
pub use releases::{ExposureIndex, Release, ReleaseIndex};
pub use staking::{BlockOutcome, SetMember, StakingParams, Validator, ValidatorStatus};
