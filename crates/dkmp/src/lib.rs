//! DKMP, the distributed key management protocol (whitepaper §4.3, DESIGN §5.5): a secret-share
//! group (SSSG) of validators, chosen by the beacon each epoch, holds threshold shares of a
//! master secret that is reshared to the next group every epoch and never reconstructed;
//! contract keys are derived from it and released only to attested enclaves.
//!
//! Sans-IO, like the beacon's ledger: every node derives the same answers from committed blocks.
//! * [`sssg`]: who the next epoch's group is (stake-weighted sampling without replacement from
//!   R of the plan height) and its threshold.
//! * [`derivation`]: a contract's keys from the group's threshold signature, recovered inside
//!   the enclave from verified partials.
//! * [`request`]: an enclave's signed key request, and a member's answer sealed to it.
//! * [`keystore`]: the enclave's side of a key request (sign, open, verify, recover, keep).
//! * [`ledger`]: the group's life on the chain: the first DKG, a reshare to each epoch's group
//!   (same master public key), service extended when a reshare fails.
//! * [`collateral`]: attestation collateral on chain, newest per platform, proven genuine by a
//!   witness quote that verifies with it.
//! * [`registration`]: a validator's decision on an enclave's registration quote (fresh, new,
//!   verified at the block's time against on-chain collateral and the policy).
//! * [`record`]: a member's on-chain record of a release it made (the key-release ledger).
//! * [`release`]: a member's checks on a request against its committed state, with the
//!   replay set and the per-node rate limit.
//! * [`result`]: results sealed to (chain, contract, request) under the master public key,
//!   opened with the group's key of that identity, released only for committed requests.

pub mod collateral;
pub mod derivation;
pub mod keystore;
pub mod ledger;
pub mod record;
pub mod registration;
pub mod release;
pub mod request;
pub mod result;
pub mod sssg;

pub use collateral::{CollateralKey, CollateralRefused, CollateralView, admit_collateral};
pub use derivation::{
    ContractKeyId, ContractKeySeed, ContractKeys, DerivationError, contract_id, decode_sharing, partial_contract_key, recover_contract_key,
    recover_group_signature, wipe_partial,
};
pub use keystore::{KeyStore, Obtained, RelayedAnswer};
pub use ledger::{Group, GroupEvent, GroupLedger, GroupParams, GroupStats, LogRefused};
pub use record::{ReleaseRecord, ReleasedTo};
pub use registration::{EnclaveRegistration, RegistrationRefused, RegistrationView, admit_registration, registration_freshness};
pub use release::{ComputeNodeRecord, EnclaveRecord, ReleaseGate, check_enclave, ReleasePolicy, ReleaseRefused, ReleaseView};
pub use request::{AnswerError, KeyPurpose, KeyRequest, SignedKeyRequest, open_answer, open_partial, seal_answer, seal_partial};
pub use sssg::{Candidate, GroupThreshold, select_sssg};
