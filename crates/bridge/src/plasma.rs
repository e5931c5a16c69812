//! `PlasmaRoot.sol` from Rust: its ABI (calls, errors, the inbox event), its constructor, and
//! the root chain's inbox as TCP reads it from the contract's logs.

use crate::calldata::G2Bytes;
use crate::evm::ChainLog;
use alloy_sol_types::{SolCall as _, SolEvent as _, SolInterface as _, SolValue as _};
use tcp_state::Address as TcpAddress;
use tcp_state::bridge::{InboxEntry, InboxKind};

alloy_sol_types::sol! {
    /// The contract's external interface (crates/bridge/contracts/PlasmaRoot.sol).
    #[derive(Debug, PartialEq, Eq)]
    interface IPlasmaRoot {
        error Frozen();
        error BadParameters();
        error InboxOverdue(uint64 id);
        error NotFrozen();
        error HeightNotAfterLatest(uint64 height, uint64 latest);
        error BadStatusLeaf();
        error WrongRootChain();
        error InboxMismatch();
        error ProofDoesNotVerify();
        error TooDeep();
        error NoSuchCheckpoint(uint64 height);
        error CheckpointNotUsable(uint64 height);
        error BadDeposit();
        error WrongBond(uint256 expected);
        error BadRecord();
        error NotTheOwner();
        error AlreadyExiting();
        error NothingToExit();
        error ExitsNotProcessed(uint32 onTcp, uint32 here);
        error NoSuchExit();
        error ExitNotChallengeable();
        error ChallengeNotCommitted();
        error ChallengeNotLater();
        error DidNotSpend();
        error NotEquivocation();
        error NothingToWithdraw();
        error PayoutFailed();
        error Reentrant();
        error NotReclaimable();
        error BadChainId();
        error BadGroupKey();
        error HeaderTooShort();
        error BadSignatureLength();
        error SignatureAtInfinity();
        error PrecompileFailed(address precompile);
        error FinalityDoesNotVerify();
        error DstTooLong();

        event Inbox(uint64 indexed id, uint8 kind, address indexed account, uint128 amount, bytes32 chainHash);
        event ExitStarted(uint256 indexed exitId, uint8 kind, address indexed owner, uint64 checkpointHeight, uint128 amount, uint64 exitableAt);

        function submitCheckpoint(bytes header, uint32 round, bytes signature, bytes status, bytes32[] siblings);
        function proveEquivocation(bytes firstHeader, uint32 firstRound, bytes firstSignature, bytes secondHeader, uint32 secondRound, bytes secondSignature);
        function deposit(address recipient) payable;
        function reclaimDeposit(uint64 inboxId);
        function startWithdrawalExit(uint64 height, uint64 recordId, bytes record, bytes32[] siblings) payable;
        function startAccountExit(uint64 height, bytes account, bytes32[] siblings) payable;
        function commitChallenge(bytes32 commitment);
        function challengeAccountExit(uint256 exitId, bytes32 salt, uint64 height, bytes account, bytes32[] siblings);
        function finalizeExits(uint256 max) returns (uint256 settled);
        function withdraw();
        function withdrawTo(address to);
        function frozen() view returns (bool);
        function latestHeight() view returns (uint64);
        function inboxCount() view returns (uint64);
        function withdrawable(address account) view returns (uint256);
        function totalWithdrawable() view returns (uint256);
        function exitCount() view returns (uint256);
        function nextToFinalize() view returns (uint256);
        function equivocationHeight() view returns (uint64);
        function highestPaidHeight() view returns (uint64);
        function maxInboxProcessed() view returns (uint64);
        function burnedBonds() view returns (uint256);
        function accountExitCount(address account) view returns (uint256);
        function exitBond() view returns (uint128);
        function challengePeriod() view returns (uint64);
        function freezePeriod() view returns (uint64);
        function confirmationDepth() view returns (uint64);
        function exits(uint256 id) view returns (uint8 kind, uint8 status, address owner, uint64 checkpointHeight, uint64 exitableAt, uint128 amount, uint64 recordOrSpends);
    }

    /// The test-only payout recipient (crates/bridge/contracts/test/PayoutAttacker.sol).
    #[derive(Debug, PartialEq, Eq)]
    interface IPayoutAttacker {
        function setMode(uint8 mode);
        function startWithdrawalExit(uint64 height, uint64 recordId, bytes record, bytes32[] siblings) payable;
        function pull();
        function pullTo(address to);
        function reentered() view returns (uint256);
        function refused() view returns (uint256);
    }
}

pub use IPlasmaRoot::IPlasmaRootErrors as PlasmaError;

/// `PlasmaRoot.EXIT_WITHDRAWAL` and `EXIT_ACCOUNT`: an exit's kind.
pub const EXIT_WITHDRAWAL: u8 = 1;
pub const EXIT_ACCOUNT: u8 = 2;

/// The exit game's parameters: constructor arguments of the contract and part of TCP's genesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeParams {
    /// Seconds an exit waits for challenges.
    pub challenge_period: u64,
    /// Seconds without a checkpoint after which the bridge freezes.
    pub freeze_period: u64,
    /// Wei an exit is bonded with (a successful challenger takes it).
    pub exit_bond: u128,
    /// The smallest deposit, in wei.
    pub min_deposit: u128,
    /// Root-chain blocks TCP waits before it credits an inbox entry.
    pub confirmation_depth: u64,
}

impl Default for BridgeParams {
    /// A week of challenges, two weeks to freeze, a 0.01 ETH bond, 1 gwei minimum deposit, 64
    /// confirmations (two epochs: Ethereum's finality): mainnet values (docs/bridge.md says why).
    fn default() -> Self {
        BridgeParams {
            challenge_period: 7 * 24 * 3600,
            freeze_period: 14 * 24 * 3600,
            exit_bond: 10u128.pow(16),
            min_deposit: 10u128.pow(9),
            confirmation_depth: 64,
        }
    }
}

/// Creation code of `PlasmaRoot` for TCP chain `chain_id` with its group key.
pub fn plasma_root_creation(code: &[u8], chain_id: &str, group_key: &G2Bytes, params: &BridgeParams) -> Vec<u8> {
    let mut out = code.to_vec();
    let args = (
        chain_id.to_string(),
        alloy_sol_types::private::Bytes::copy_from_slice(group_key),
        params.challenge_period,
        params.freeze_period,
        params.exit_bond,
        params.min_deposit,
        params.confirmation_depth,
    );
    out.extend_from_slice(&args.abi_encode_params());
    out
}

/// Creation code of the test-only `PayoutAttacker` aimed at `root`.
pub fn payout_attacker_creation(code: &[u8], root: [u8; 20]) -> Vec<u8> {
    let mut out = code.to_vec();
    out.extend_from_slice(&alloy_sol_types::private::Address::from(root).abi_encode());
    out
}

/// The contract's custom error in a revert's data, if it is one of its own.
pub fn decode_error(output: &[u8]) -> Option<PlasmaError> {
    PlasmaError::abi_decode(output).ok()
}

/// The name of the error (`"InboxMismatch"`), for messages and tests.
pub fn error_name(output: &[u8]) -> Option<&'static str> {
    let selector: [u8; 4] = output.get(..4)?.try_into().ok()?;
    PlasmaError::SELECTORS.iter().position(|s| *s == selector).map(|i| PlasmaError::SIGNATURES[i].split('(').next().unwrap_or_default())
}

/// Why an inbox log is not one TCP can process.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InboxLogError {
    #[error("an inbox log that does not decode: {0}")]
    Malformed(String),
    #[error("an inbox entry of unknown kind {0}")]
    UnknownKind(u8),
}

/// An inbox entry as its log shows it: the block it is in and the running hash after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboxEvent {
    pub block: u64,
    pub entry: InboxEntry,
    pub chain_hash: [u8; 32],
}

/// The inbox entries among `logs`: only `Inbox` events, only from `contract` (no other event of
/// the contract — a checkpoint, an exit, a challenge — and no other contract's look-alike is
/// ever read as one).
pub fn inbox_entries<'a>(logs: impl IntoIterator<Item = &'a ChainLog>, contract: [u8; 20]) -> Result<Vec<InboxEntry>, InboxLogError> {
    Ok(inbox_events(logs, contract)?.into_iter().map(|e| e.entry).collect())
}

/// [`inbox_entries`] with each one's block and running hash.
pub fn inbox_events<'a>(logs: impl IntoIterator<Item = &'a ChainLog>, contract: [u8; 20]) -> Result<Vec<InboxEvent>, InboxLogError> {
    let mut out = Vec::new();
    for log in logs {
        if log.address != contract || log.topics.first() != Some(&IPlasmaRoot::Inbox::SIGNATURE_HASH.0) {
            continue;
        }
        let topics: Vec<alloy_sol_types::private::B256> = log.topics.iter().map(|t| (*t).into()).collect();
        let event = IPlasmaRoot::Inbox::decode_raw_log(topics, &log.data).map_err(|e| InboxLogError::Malformed(e.to_string()))?;
        let kind = InboxKind::from_u8(event.kind).ok_or(InboxLogError::UnknownKind(event.kind))?;
        let entry = InboxEntry { id: event.id, kind, account: TcpAddress(event.account.into_array()), amount: event.amount };
        out.push(InboxEvent { block: log.block, entry, chain_hash: event.chainHash.0 });
    }
    Ok(out)
}

/// Calldata of `submitCheckpoint`.
pub fn submit_checkpoint(header: &[u8], round: u32, signature: &[u8], status: &[u8], siblings: &[[u8; 32]]) -> Vec<u8> {
    IPlasmaRoot::submitCheckpointCall {
        header: header.to_vec().into(),
        round,
        signature: signature.to_vec().into(),
        status: status.to_vec().into(),
        siblings: siblings.iter().map(|s| (*s).into()).collect(),
    }
    .abi_encode()
}

pub fn deposit(recipient: &TcpAddress) -> Vec<u8> {
    IPlasmaRoot::depositCall { recipient: recipient.0.into() }.abi_encode()
}

pub fn start_withdrawal_exit(height: u64, record_id: u64, record: &[u8], siblings: &[[u8; 32]]) -> Vec<u8> {
    IPlasmaRoot::startWithdrawalExitCall { height, recordId: record_id, record: record.to_vec().into(), siblings: siblings.iter().map(|s| (*s).into()).collect() }
        .abi_encode()
}

pub fn start_account_exit(height: u64, account: &[u8], siblings: &[[u8; 32]]) -> Vec<u8> {
    IPlasmaRoot::startAccountExitCall { height, account: account.to_vec().into(), siblings: siblings.iter().map(|s| (*s).into()).collect() }.abi_encode()
}

/// The commitment a challenger sends first: keccak256(abi.encode(exitId, challenger, height,
/// keccak256(account), salt)) — the evidence and who brings it.
pub fn challenge_commitment(exit_id: u64, challenger: [u8; 20], height: u64, account: &[u8], salt: [u8; 32]) -> [u8; 32] {
    use alloy_sol_types::private::{Address, B256, U256};
    let encoded = (U256::from(exit_id), Address::from(challenger), U256::from(height), B256::from(tcp_state::keccak256(&[account])), B256::from(salt)).abi_encode_params();
    tcp_state::keccak256(&[&encoded])
}

pub fn commit_challenge(commitment: [u8; 32]) -> Vec<u8> {
    IPlasmaRoot::commitChallengeCall { commitment: commitment.into() }.abi_encode()
}

pub fn challenge_account_exit(exit_id: u64, salt: [u8; 32], height: u64, account: &[u8], siblings: &[[u8; 32]]) -> Vec<u8> {
    IPlasmaRoot::challengeAccountExitCall {
        exitId: alloy_sol_types::private::U256::from(exit_id),
        salt: salt.into(),
        height,
        account: account.to_vec().into(),
        siblings: siblings.iter().map(|s| (*s).into()).collect(),
    }
    .abi_encode()
}

pub fn finalize_exits(max: u64) -> Vec<u8> {
    IPlasmaRoot::finalizeExitsCall { max: alloy_sol_types::private::U256::from(max) }.abi_encode()
}

pub fn withdraw() -> Vec<u8> {
    IPlasmaRoot::withdrawCall {}.abi_encode()
}

pub fn withdraw_to(to: [u8; 20]) -> Vec<u8> {
    IPlasmaRoot::withdrawToCall { to: to.into() }.abi_encode()
}

pub fn reclaim_deposit(inbox_id: u64) -> Vec<u8> {
    IPlasmaRoot::reclaimDepositCall { inboxId: inbox_id }.abi_encode()
}

pub fn prove_equivocation(first: (&[u8], u32, &[u8]), second: (&[u8], u32, &[u8])) -> Vec<u8> {
    IPlasmaRoot::proveEquivocationCall {
        firstHeader: first.0.to_vec().into(),
        firstRound: first.1,
        firstSignature: first.2.to_vec().into(),
        secondHeader: second.0.to_vec().into(),
        secondRound: second.1,
        secondSignature: second.2.to_vec().into(),
    }
    .abi_encode()
}
