//! What TCP needs of its root chain, behind one interface with two implementations: the
//! embedded revm chain ([`EmbeddedChain`]: tests, and the devnet, which serves it over
//! JSON-RPC) and JSON-RPC to any Ethereum node (`tcpchain`'s `JsonRpcRootChain`: anvil in the
//! end-to-end test, a real node in production).

use crate::evm::{CallOutcome, ChainLog, EmbeddedChain};
use crate::plasma;
use crate::BridgeError;
use tcp_state::AccountKey;

/// Most blocks one log query spans (public nodes refuse wider ranges).
pub const MAX_LOG_RANGE: u64 = 2_000;

/// A mined transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentTx {
    pub hash: [u8; 32],
    pub block: u64,
    pub gas_used: u64,
}

/// Why a call or transaction did not go through.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    /// The contract refused: its error (named when it is `PlasmaRoot`'s own).
    #[error("the contract refused: {}", describe_revert(.0))]
    Reverted(Vec<u8>),
    #[error("{0}")]
    Chain(#[from] BridgeError),
}

impl CallError {
    /// The contract's error name, if it reverted with one of `PlasmaRoot`'s.
    pub fn error_name(&self) -> Option<&'static str> {
        match self {
            CallError::Reverted(data) => plasma::error_name(data),
            CallError::Chain(_) => None,
        }
    }
}

fn describe_revert(data: &[u8]) -> String {
    match plasma::decode_error(data) {
        Some(error) => format!("{error:?}"),
        None if data.is_empty() => "no reason given".into(),
        None => format!("0x{}", tcp_types::hex::encode(data)),
    }
}

pub trait RootChain {
    fn chain_id(&mut self) -> Result<u64, BridgeError>;
    /// The newest block's number.
    fn block_number(&mut self) -> Result<u64, BridgeError>;
    /// The newest block's timestamp (seconds).
    fn timestamp(&mut self) -> Result<u64, BridgeError>;
    /// `contract`'s logs in blocks `from..=to`, in order.
    fn logs(&mut self, contract: [u8; 20], from: u64, to: u64) -> Result<Vec<ChainLog>, BridgeError>;
    /// A call at the newest block, not committed: its return data, or why it reverted.
    fn call(&mut self, from: [u8; 20], to: [u8; 20], value: u128, data: &[u8]) -> Result<Vec<u8>, CallError>;
    fn balance(&mut self, account: [u8; 20]) -> Result<u128, BridgeError>;
    /// Send a transaction signed by `key` and wait until it is mined. It is first tried as a
    /// call: one that would revert is refused with the contract's reason and never sent (no
    /// gas spent on it).
    fn send(&mut self, key: &AccountKey, to: [u8; 20], value: u128, data: &[u8]) -> Result<SentTx, CallError>;
}

impl RootChain for EmbeddedChain {
    fn chain_id(&mut self) -> Result<u64, BridgeError> {
        Ok(EmbeddedChain::CHAIN_ID)
    }

    fn block_number(&mut self) -> Result<u64, BridgeError> {
        Ok(EmbeddedChain::block_number(self))
    }

    fn timestamp(&mut self) -> Result<u64, BridgeError> {
        Ok(EmbeddedChain::timestamp(self))
    }

    fn logs(&mut self, contract: [u8; 20], from: u64, to: u64) -> Result<Vec<ChainLog>, BridgeError> {
        Ok(EmbeddedChain::logs(self).iter().filter(|l| l.address == contract && (from..=to).contains(&l.block)).cloned().collect())
    }

    fn call(&mut self, from: [u8; 20], to: [u8; 20], value: u128, data: &[u8]) -> Result<Vec<u8>, CallError> {
        match self.view_from(from, to, value, data.to_vec())? {
            CallOutcome::Success { output, .. } => Ok(output),
            CallOutcome::Revert { output, .. } => Err(CallError::Reverted(output)),
            CallOutcome::Halt { reason, .. } => Err(CallError::Chain(BridgeError::Chain(format!("the call halted: {reason}")))),
        }
    }

    fn balance(&mut self, account: [u8; 20]) -> Result<u128, BridgeError> {
        u128::try_from(EmbeddedChain::balance(self, account)).map_err(|_| BridgeError::Chain("a balance beyond u128".into()))
    }

    fn send(&mut self, key: &AccountKey, to: [u8; 20], value: u128, data: &[u8]) -> Result<SentTx, CallError> {
        let from = key.address().0;
        RootChain::call(self, from, to, value, data)?;
        match EmbeddedChain::send(self, from, to, value, data.to_vec())? {
            CallOutcome::Success { gas, .. } => Ok(SentTx { hash: [0; 32], block: EmbeddedChain::block_number(self), gas_used: gas }),
            CallOutcome::Revert { output, .. } => Err(CallError::Reverted(output)),
            CallOutcome::Halt { reason, .. } => Err(CallError::Chain(BridgeError::Chain(format!("the transaction halted: {reason}")))),
        }
    }
}

/// The contract's inbox entries in blocks `from..` up to `confirmation_depth` below the head
/// (at most [`MAX_LOG_RANGE`] blocks at a time), and the block to scan from next.
pub fn confirmed_inbox(
    chain: &mut dyn RootChain,
    contract: [u8; 20],
    confirmation_depth: u64,
    from: u64,
) -> Result<(Vec<plasma::InboxEvent>, u64), BridgeError> {
    let head = chain.block_number()?;
    let Some(confirmed) = head.checked_sub(confirmation_depth) else { return Ok((Vec::new(), from)) };
    if confirmed < from {
        return Ok((Vec::new(), from));
    }
    let to = confirmed.min(from.saturating_add(MAX_LOG_RANGE - 1));
    let logs = chain.logs(contract, from, to)?;
    let entries = plasma::inbox_events(&logs, contract).map_err(|e| BridgeError::Chain(e.to_string()))?;
    Ok((entries, to.saturating_add(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_entries_at_the_confirmation_depth_are_read_and_a_revert_is_refused_before_sending() {
        let group_key = {
            let mut key = [0u8; 96];
            // SAFETY: a 96-byte output and blst's static generator.
            unsafe { blst::blst_p2_affine_compress(key.as_mut_ptr(), blst::blst_p2_affine_generator()) };
            crate::calldata::g2_from_compressed(&key).unwrap()
        };
        let params = plasma::BridgeParams { challenge_period: 100, freeze_period: 1_000, exit_bond: 10, min_deposit: 5, confirmation_depth: 3 };
        let mut chain = EmbeddedChain::new();
        let root = chain.deploy(plasma::plasma_root_creation(&crate::plasma_root().bytecode, "tcp-test", &group_key, &params)).unwrap();
        let key = AccountKey::from_bytes(&[3; 32]).unwrap();
        chain.fund(key.address().0, 10u128.pow(18));
        let before = chain.balance(key.address().0);
        // Below the minimum deposit: refused with the contract's reason, nothing sent.
        let refused = RootChain::send(&mut chain, &key, root, 1, &plasma::deposit(&key.address())).unwrap_err();
        assert_eq!(refused.error_name(), Some("BadDeposit"));
        assert!(refused.to_string().contains("BadDeposit"), "{refused}");
        assert_eq!(chain.balance(key.address().0), before);
        let sent = RootChain::send(&mut chain, &key, root, 1_000, &plasma::deposit(&key.address())).unwrap();
        // Not confirmed until 3 blocks are on top of it.
        let (entries, next) = confirmed_inbox(&mut chain, root, 3, 0).unwrap();
        assert!(entries.is_empty() && next == 0, "{entries:?} {next}");
        for _ in 0..3 {
            chain.send(chain.deployer(), [0x99; 20], 0, Vec::new()).unwrap();
        }
        let (entries, next) = confirmed_inbox(&mut chain, root, 3, 0).unwrap();
        assert_eq!((entries.len(), entries[0].entry.amount, entries[0].block, next), (1, 1_000, sent.block, sent.block + 1));
        let (again, _) = confirmed_inbox(&mut chain, root, 3, next).unwrap();
        assert!(again.is_empty());
    }
}
