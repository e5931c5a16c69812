//! An Ethereum chain in process: revm with Prague's rules (EIP-2537's BLS12-381 precompiles
//! included), funded accounts, and one block per transaction (as anvil mines by default): each
//! transaction moves the block number on by one and the clock by the block time, and its logs
//! are kept by block for whoever follows the chain.

use crate::BridgeError;
use revm::context::{Context, ContextTr as _, TxEnv};
use revm::context_interface::result::{ExecutionResult, Output};
use revm::database::{CacheDB, EmptyDB};
use revm::primitives::hardfork::SpecId;
use revm::primitives::{Address, Bytes, U256};
use revm::state::AccountInfo;
use revm::{DatabaseRef as _, ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext};

/// Gas a single transaction may use.
const TX_GAS_LIMIT: u64 = 15_000_000;
/// Seconds between blocks, as on Ethereum.
pub const BLOCK_TIME_SECS: u64 = 12;
/// When the chain starts (any fixed time: runs are reproducible).
const GENESIS_TIME: u64 = 1_700_000_000;

type Evm = revm::handler::MainnetEvm<revm::handler::MainnetContext<CacheDB<EmptyDB>>>;

pub struct EmbeddedChain {
    evm: Evm,
    deployer: Address,
    block: u64,
    time: u64,
    logs: Vec<ChainLog>,
}

/// A log a committed transaction emitted, with the block it is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainLog {
    pub block: u64,
    pub address: [u8; 20],
    pub topics: Vec<[u8; 32]>,
    pub data: Vec<u8>,
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

impl CallOutcome {
    pub fn gas(&self) -> u64 {
        match self {
            CallOutcome::Success { gas, .. } | CallOutcome::Revert { gas, .. } | CallOutcome::Halt { gas, .. } => *gas,
        }
    }

    pub fn is_success(&self) -> bool {
        matches!(self, CallOutcome::Success { .. })
    }
}

impl Default for EmbeddedChain {
    fn default() -> Self {
        EmbeddedChain::new()
    }
}

impl EmbeddedChain {
    /// Root-chain id of the embedded chain (anvil's default too).
    pub const CHAIN_ID: u64 = 31337;

    pub fn new() -> EmbeddedChain {
        let deployer = Address::with_last_byte(0x10);
        let mut db = CacheDB::<EmptyDB>::default();
        db.insert_account_info(deployer, AccountInfo::from_balance(U256::from(10u128.pow(24))));
        let evm = Context::mainnet()
            .modify_cfg_chained(|cfg| {
                cfg.set_spec_and_mainnet_gas_params(SpecId::PRAGUE);
                cfg.chain_id = Self::CHAIN_ID;
            })
            .with_db(db)
            .build_mainnet();
        let mut chain = EmbeddedChain { evm, deployer, block: 0, time: GENESIS_TIME, logs: Vec::new() };
        chain.set_block_env();
        chain
    }

    pub fn deployer(&self) -> [u8; 20] {
        self.deployer.into_array()
    }

    /// The number of the newest block.
    pub fn block_number(&self) -> u64 {
        self.block
    }

    /// The newest block's timestamp.
    pub fn timestamp(&self) -> u64 {
        self.time
    }

    /// Move the clock on (the next block carries the new time).
    pub fn advance_time(&mut self, secs: u64) {
        self.time = self.time.saturating_add(secs);
        self.set_block_env();
    }

    /// Give `account` this much wei more.
    pub fn fund(&mut self, account: [u8; 20], wei: u128) {
        let address = Address::from(account);
        let mut info = self.evm.ctx.db_ref().basic_ref(address).ok().flatten().unwrap_or_default();
        info.balance += U256::from(wei);
        self.evm.ctx.db_mut().insert_account_info(address, info);
    }

    pub fn balance(&self, account: [u8; 20]) -> U256 {
        self.evm.ctx.db_ref().basic_ref(Address::from(account)).ok().flatten().map(|i| i.balance).unwrap_or_default()
    }

    /// Set `account`'s balance (anvil's `anvil_setBalance`).
    pub fn set_balance(&mut self, account: [u8; 20], wei: u128) {
        let address = Address::from(account);
        let mut info = self.evm.ctx.db_ref().basic_ref(address).ok().flatten().unwrap_or_default();
        info.balance = U256::from(wei);
        self.evm.ctx.db_mut().insert_account_info(address, info);
    }

    /// The next nonce of `account`.
    pub fn nonce(&self, account: [u8; 20]) -> u64 {
        self.evm.ctx.db_ref().basic_ref(Address::from(account)).ok().flatten().map_or(0, |i| i.nonce)
    }

    /// An empty block.
    pub fn mine(&mut self) {
        self.block += 1;
        self.time += BLOCK_TIME_SECS;
        self.set_block_env();
    }

    /// Every log of committed transactions, oldest first.
    pub fn logs(&self) -> &[ChainLog] {
        &self.logs
    }

    /// Deploy `creation` code from the deployer; returns the contract's address, or why it failed.
    pub fn deploy(&mut self, creation: Vec<u8>) -> Result<[u8; 20], BridgeError> {
        self.deploy_from(self.deployer.into_array(), creation)
    }

    pub fn deploy_from(&mut self, from: [u8; 20], creation: Vec<u8>) -> Result<[u8; 20], BridgeError> {
        let tx = self.tx(from, None, 0, creation)?;
        match self.commit(tx)? {
            ExecutionResult::Success { output: Output::Create(_, Some(address)), .. } => Ok(address.into_array()),
            other => Err(BridgeError::Chain(format!("deployment failed: {other:?}"))),
        }
    }

    /// Execute a call from the deployer (committed, in a block of its own).
    pub fn call(&mut self, contract: [u8; 20], calldata: Vec<u8>) -> Result<CallOutcome, BridgeError> {
        self.send(self.deployer.into_array(), contract, 0, calldata)
    }

    /// A transaction from `from` to `to` with `value` wei, committed in a block of its own
    /// (reverted or not: its gas is paid and its nonce used, as on Ethereum).
    pub fn send(&mut self, from: [u8; 20], to: [u8; 20], value: u128, calldata: Vec<u8>) -> Result<CallOutcome, BridgeError> {
        let tx = self.tx(from, Some(to), value, calldata)?;
        Ok(outcome(self.commit(tx)?))
    }

    /// A read-only call (not committed) at the newest block.
    pub fn view(&mut self, contract: [u8; 20], calldata: Vec<u8>) -> Result<CallOutcome, BridgeError> {
        self.view_from(self.deployer.into_array(), contract, 0, calldata)
    }

    /// A call from `from` with `value` (not committed), as the next block would run it; to
    /// `None`, a contract creation.
    pub fn view_from(&mut self, from: [u8; 20], to: impl Into<Option<[u8; 20]>>, value: u128, calldata: Vec<u8>) -> Result<CallOutcome, BridgeError> {
        let tx = self.tx(from, to.into(), value, calldata)?;
        let (number, time) = (self.block + 1, self.time + BLOCK_TIME_SECS);
        self.evm.ctx.modify_block(|b| {
            b.number = U256::from(number);
            b.timestamp = U256::from(time);
        });
        let result = self.evm.transact(tx).map_err(|e| BridgeError::Chain(e.to_string()));
        self.set_block_env();
        Ok(outcome(result?.result))
    }

    fn commit(&mut self, tx: TxEnv) -> Result<ExecutionResult, BridgeError> {
        self.block += 1;
        self.time += BLOCK_TIME_SECS;
        self.set_block_env();
        let result = self.evm.transact_commit(tx).map_err(|e| BridgeError::Chain(e.to_string()))?;
        for log in result.logs() {
            self.logs.push(ChainLog {
                block: self.block,
                address: log.address.into_array(),
                topics: log.data.topics().iter().map(|t| t.0).collect(),
                data: log.data.data.to_vec(),
            });
        }
        Ok(result)
    }

    fn set_block_env(&mut self) {
        let (number, time) = (self.block, self.time);
        self.evm.ctx.modify_block(|b| {
            b.number = U256::from(number);
            b.timestamp = U256::from(time);
            b.basefee = 0;
        });
    }

    fn tx(&self, from: [u8; 20], to: Option<[u8; 20]>, value: u128, calldata: Vec<u8>) -> Result<TxEnv, BridgeError> {
        let caller = Address::from(from);
        let nonce = self.evm.ctx.db_ref().basic_ref(caller).ok().flatten().map_or(0, |i| i.nonce);
        let builder = TxEnv::builder().caller(caller).value(U256::from(value)).data(Bytes::from(calldata)).gas_limit(TX_GAS_LIMIT).nonce(nonce).chain_id(Some(Self::CHAIN_ID));
        let builder = match to {
            Some(to) => builder.call(Address::from(to)),
            None => builder.create(),
        };
        builder.build().map_err(|e| BridgeError::Chain(format!("{e:?}")))
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
