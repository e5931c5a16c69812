//! An Ethereum chain in process: revm with Prague's rules (EIP-2537's BLS12-381 precompiles
//! included), one funded deployer account, transactions executed and committed one at a time.

use crate::BridgeError;
use revm::context::{Context, TxEnv};
use revm::context_interface::result::{ExecutionResult, Output};
use revm::database::{CacheDB, EmptyDB};
use revm::primitives::hardfork::SpecId;
use revm::primitives::{Address, Bytes, U256};
use revm::state::AccountInfo;
use revm::{ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext};

/// Gas a single transaction may use.
const TX_GAS_LIMIT: u64 = 15_000_000;

type Evm = revm::handler::MainnetEvm<revm::handler::MainnetContext<CacheDB<EmptyDB>>>;

pub struct EmbeddedChain {
    evm: Evm,
    deployer: Address,
    nonce: u64,
}

/// What a call did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// Returned these bytes, using this much gas (the whole transaction's, base cost and
    /// calldata included).
    Success { output: Vec<u8>, gas: u64 },
    /// Reverted with this data.
    Revert { output: Vec<u8>, gas: u64 },
    /// Halted (out of gas, invalid opcode, …).
    Halt { reason: String, gas: u64 },
}

impl Default for EmbeddedChain {
    fn default() -> Self {
        EmbeddedChain::new()
    }
}

impl EmbeddedChain {
    pub fn new() -> EmbeddedChain {
        let deployer = Address::with_last_byte(0x10);
        let mut db = CacheDB::<EmptyDB>::default();
        db.insert_account_info(deployer, AccountInfo::from_balance(U256::from(10u128.pow(24))));
        let evm = Context::mainnet().modify_cfg_chained(|cfg| cfg.set_spec_and_mainnet_gas_params(SpecId::PRAGUE)).with_db(db).build_mainnet();
        EmbeddedChain { evm, deployer, nonce: 0 }
    }

    /// Deploy `creation` code; returns the contract's address, or why it failed.
    pub fn deploy(&mut self, creation: Vec<u8>) -> Result<[u8; 20], BridgeError> {
        let tx = TxEnv::builder()
            .caller(self.deployer)
            .create()
            .data(Bytes::from(creation))
            .gas_limit(TX_GAS_LIMIT)
            .nonce(self.nonce)
            .build()
            .map_err(|e| BridgeError::Chain(format!("{e:?}")))?;
        let result = self.evm.transact_commit(tx).map_err(|e| BridgeError::Chain(e.to_string()))?;
        self.nonce += 1;
        match result {
            ExecutionResult::Success { output: Output::Create(_, Some(address)), .. } => Ok(address.into_array()),
            other => Err(BridgeError::Chain(format!("deployment failed: {other:?}"))),
        }
    }

    /// Execute a call (committed, as a transaction from the deployer account).
    pub fn call(&mut self, contract: [u8; 20], calldata: Vec<u8>) -> Result<CallOutcome, BridgeError> {
        let tx = self.call_tx(contract, calldata)?;
        let result = self.evm.transact_commit(tx).map_err(|e| BridgeError::Chain(e.to_string()))?;
        self.nonce += 1;
        Ok(outcome(result))
    }

    /// A read-only call (not committed).
    pub fn view(&mut self, contract: [u8; 20], calldata: Vec<u8>) -> Result<CallOutcome, BridgeError> {
        let tx = self.call_tx(contract, calldata)?;
        let result = self.evm.transact(tx).map_err(|e| BridgeError::Chain(e.to_string()))?.result;
        Ok(outcome(result))
    }

    fn call_tx(&self, contract: [u8; 20], calldata: Vec<u8>) -> Result<TxEnv, BridgeError> {
        TxEnv::builder()
            .caller(self.deployer)
            .call(Address::from(contract))
            .data(Bytes::from(calldata))
            .gas_limit(TX_GAS_LIMIT)
            .nonce(self.nonce)
            .build()
            .map_err(|e| BridgeError::Chain(format!("{e:?}")))
    }
}

fn outcome(result: ExecutionResult) -> CallOutcome {
    let gas = result.tx_gas_used();
    match result {
        ExecutionResult::Success { output, .. } => CallOutcome::Success { output: output.data().to_vec(), gas },
        ExecutionResult::Revert { output, .. } => CallOutcome::Revert { output: output.to_vec(), gas },
        ExecutionResult::Halt { reason, .. } => CallOutcome::Halt { reason: format!("{reason:?}"), gas },
    }
}
