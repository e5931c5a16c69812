//! The embedded root chain served over Ethereum JSON-RPC, so that every process of a devnet
//! (validators following it, relayers, the CLI) reaches it the way it reaches anvil or a real
//! node: through [`crate::jsonrpc::JsonRpcRootChain`]. The methods those use, and anvil's
//! `evm_increaseTime`, `evm_mine` and `anvil_setBalance` for tests and demos. Transactions
//! arrive signed (legacy EIP-155) and are run one per block, as anvil does.

use crate::evm::{CallOutcome, EmbeddedChain};
use crate::tx::LegacyTx;
use serde_json::{Value, json};
use std::collections::HashMap;
use tcp_types::hex;

/// The chain and what it remembers of transactions sent to it.
pub struct EmbeddedNode {
    pub chain: EmbeddedChain,
    receipts: HashMap<[u8; 32], Value>,
}

impl EmbeddedNode {
    pub fn new(chain: EmbeddedChain) -> EmbeddedNode {
        EmbeddedNode { chain, receipts: HashMap::new() }
    }
}

/// Most receipts kept (the oldest go first).
const MAX_RECEIPTS: usize = 100_000;
/// The largest request body taken.
const MAX_BODY_BYTES: usize = 512 * 1024;

fn hex_of(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn quantity(n: u128) -> Value {
    json!(format!("0x{n:x}"))
}

struct RpcFailure {
    code: i64,
    message: String,
    data: Option<String>,
}

fn invalid(message: impl Into<String>) -> RpcFailure {
    RpcFailure { code: -32602, message: message.into(), data: None }
}

fn param_quantity(v: &Value, what: &str) -> Result<u128, RpcFailure> {
    match v {
        Value::Null => Ok(0),
        Value::String(s) => {
            let digits = s.strip_prefix("0x").ok_or_else(|| invalid(format!("{what}: not 0x-prefixed")))?;
            if digits.is_empty() || digits.len() > 32 {
                return Err(invalid(format!("{what}: not a quantity")));
            }
            u128::from_str_radix(digits, 16).map_err(|e| invalid(format!("{what}: {e}")))
        }
        _ => Err(invalid(format!("{what}: not a hex quantity"))),
    }
}

fn param_bytes(v: &Value, what: &str) -> Result<Vec<u8>, RpcFailure> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => hex::decode(s.strip_prefix("0x").unwrap_or(s)).map_err(|e| invalid(format!("{what}: {e}"))),
        _ => Err(invalid(format!("{what}: not hex data"))),
    }
}

fn param_address(v: &Value, what: &str) -> Result<[u8; 20], RpcFailure> {
    param_bytes(v, what)?.try_into().map_err(|_| invalid(format!("{what}: not an address")))
}

/// A block tag or number: "latest"/"pending"/"safe"/"finalized" are the newest block.
fn block_param(v: &Value, head: u64) -> Result<u64, RpcFailure> {
    match v.as_str() {
        None | Some("latest" | "pending" | "safe" | "finalized") => Ok(head),
        Some("earliest") => Ok(0),
        Some(_) => u64::try_from(param_quantity(v, "block")?).map_err(|_| invalid("block beyond u64")),
    }
}

fn reverted(output: &[u8]) -> RpcFailure {
    RpcFailure { code: 3, message: "execution reverted".into(), data: Some(hex_of(output)) }
}

impl EmbeddedNode {
    fn call_params(&self, request: &Value) -> Result<([u8; 20], Option<[u8; 20]>, u128, Vec<u8>), RpcFailure> {
        let from = if request["from"].is_null() { self.chain.deployer() } else { param_address(&request["from"], "from")? };
        let to = if request["to"].is_null() { None } else { Some(param_address(&request["to"], "to")?) };
        let data = if request["data"].is_null() { param_bytes(&request["input"], "input")? } else { param_bytes(&request["data"], "data")? };
        Ok((from, to, param_quantity(&request["value"], "value")?, data))
    }

    fn simulate(&mut self, request: &Value) -> Result<CallOutcome, RpcFailure> {
        let (from, to, value, data) = self.call_params(request)?;
        self.chain.view_from(from, to, value, data).map_err(|e| RpcFailure { code: -32000, message: e.to_string(), data: None })
    }

    fn handle(&mut self, method: &str, params: &Value) -> Result<Value, RpcFailure> {
        let p = |i: usize| params.get(i).cloned().unwrap_or(Value::Null);
        let head = self.chain.block_number();
        match method {
            "eth_chainId" | "net_version" => Ok(quantity(EmbeddedChain::CHAIN_ID.into())),
            "eth_blockNumber" => Ok(quantity(head.into())),
            "eth_gasPrice" => Ok(quantity(0)),
            "eth_getBlockByNumber" => {
                let number = block_param(&p(0), head)?;
                if number != head {
                    return Err(invalid("only the newest block is kept"));
                }
                Ok(json!({"number": quantity(head.into()), "timestamp": quantity(self.chain.timestamp().into())}))
            }
            "eth_getBalance" => Ok(quantity(u128::try_from(self.chain.balance(param_address(&p(0), "address")?)).unwrap_or(u128::MAX))),
            "eth_getTransactionCount" => Ok(quantity(self.chain.nonce(param_address(&p(0), "address")?).into())),
            "eth_getLogs" => {
                let filter = p(0);
                let address = param_address(&filter["address"], "address")?;
                let from = block_param(&filter["fromBlock"], head)?;
                let to = block_param(&filter["toBlock"], head)?;
                let logs: Vec<Value> = self
                    .chain
                    .logs()
                    .iter()
                    .filter(|l| l.address == address && (from..=to).contains(&l.block))
                    .map(|l| {
                        json!({
                            "address": hex_of(&l.address),
                            "topics": l.topics.iter().map(|t| hex_of(t)).collect::<Vec<_>>(),
                            "data": hex_of(&l.data),
                            "blockNumber": quantity(l.block.into()),
                            "removed": false,
                        })
                    })
                    .collect();
                Ok(Value::Array(logs))
            }
            "eth_call" => match self.simulate(&p(0))? {
                CallOutcome::Success { output, .. } => Ok(json!(hex_of(&output))),
                CallOutcome::Revert { output, .. } => Err(reverted(&output)),
                CallOutcome::Halt { reason, .. } => Err(RpcFailure { code: -32000, message: format!("halted: {reason}"), data: None }),
            },
            "eth_estimateGas" => {
                match self.simulate(&p(0))? {
                    CallOutcome::Success { gas, .. } => Ok(quantity(gas.into())),
                    CallOutcome::Revert { output, .. } => Err(reverted(&output)),
                    CallOutcome::Halt { reason, .. } => Err(RpcFailure { code: -32000, message: format!("halted: {reason}"), data: None }),
                }
            }
            "eth_sendRawTransaction" => {
                let raw = param_bytes(&p(0), "transaction")?;
                let (tx, sender) = LegacyTx::decode_signed(&raw, EmbeddedChain::CHAIN_ID).map_err(|e| invalid(e.to_string()))?;
                let expected = self.chain.nonce(sender.0);
                if tx.nonce != expected {
                    return Err(RpcFailure { code: -32000, message: format!("nonce {} where {expected} is next", tx.nonce), data: None });
                }
                let hash = LegacyTx::hash(&raw);
                let (status, gas, created) = match tx.to {
                    Some(to) => match self.chain.send(sender.0, to, tx.value, tx.data) {
                        Ok(outcome) => (outcome.is_success(), outcome.gas(), None),
                        Err(e) => return Err(RpcFailure { code: -32000, message: e.to_string(), data: None }),
                    },
                    None => match self.chain.deploy_from(sender.0, tx.data) {
                        Ok(address) => (true, 0, Some(address)),
                        Err(_) => (false, 0, None),
                    },
                };
                if self.receipts.len() >= MAX_RECEIPTS {
                    self.receipts.clear();
                }
                self.receipts.insert(
                    hash,
                    json!({
                        "transactionHash": hex_of(&hash),
                        "blockNumber": quantity(self.chain.block_number().into()),
                        "status": if status { "0x1" } else { "0x0" },
                        "gasUsed": quantity(gas.into()),
                        "contractAddress": created.map(|a| hex_of(&a)),
                    }),
                );
                Ok(json!(hex_of(&hash)))
            }
            "eth_getTransactionReceipt" => {
                let hash: [u8; 32] = param_bytes(&p(0), "hash")?.try_into().map_err(|_| invalid("hash: not 32 bytes"))?;
                Ok(self.receipts.get(&hash).cloned().unwrap_or(Value::Null))
            }
            "evm_increaseTime" => {
                let secs = match p(0) {
                    Value::Number(n) => n.as_u64().ok_or_else(|| invalid("seconds"))?,
                    other => u64::try_from(param_quantity(&other, "seconds")?).map_err(|_| invalid("seconds"))?,
                };
                self.chain.advance_time(secs);
                Ok(json!(secs))
            }
            "evm_mine" => {
                self.chain.mine();
                Ok(json!("0x0"))
            }
            "anvil_setBalance" => {
                let account = param_address(&p(0), "address")?;
                let wei = param_quantity(&p(1), "balance")?;
                self.chain.set_balance(account, wei);
                Ok(Value::Null)
            }
            other => Err(RpcFailure { code: -32601, message: format!("method {other} is not served by the embedded root chain"), data: None }),
        }
    }

    /// One JSON-RPC request (or a batch) in, the answer out.
    pub fn answer(&mut self, request: &Value) -> Value {
        match request {
            Value::Array(calls) => Value::Array(calls.iter().take(100).map(|c| self.answer_one(c)).collect()),
            call => self.answer_one(call),
        }
    }

    fn answer_one(&mut self, call: &Value) -> Value {
        let id = call.get("id").cloned().unwrap_or(Value::Null);
        let method = call["method"].as_str().unwrap_or_default();
        let params = call.get("params").cloned().unwrap_or(Value::Array(Vec::new()));
        match self.handle(method, &params) {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err(failure) => {
                let mut error = json!({"code": failure.code, "message": failure.message});
                if let Some(data) = failure.data {
                    error["data"] = json!(data);
                }
                json!({"jsonrpc": "2.0", "id": id, "error": error})
            }
        }
    }
}

/// A request to the thread that owns the chain (revm's EVM stays on one thread).
pub type Ask = (Value, tokio::sync::oneshot::Sender<Value>);

/// Run a fresh embedded chain on a thread of its own (revm's EVM cannot move between threads),
/// answering what comes through the returned sender one request at a time (each transaction a
/// block, in arrival order), until every sender is dropped.
pub fn spawn() -> std::sync::mpsc::SyncSender<Ask> {
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Ask>(256);
    std::thread::Builder::new()
        .name("embedded-root-chain".into())
        .spawn(move || {
            let mut node = EmbeddedNode::new(EmbeddedChain::new());
            while let Ok((request, reply)) = receiver.recv() {
                let _ = reply.send(node.answer(&request));
            }
        })
        .expect("a thread starts");
    sender
}

/// Serve the chain behind `node` (from [`spawn`]) on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, node: std::sync::mpsc::SyncSender<Ask>) -> std::io::Result<()> {
    use axum::extract::DefaultBodyLimit;
    use axum::routing::post;
    let app = axum::Router::new()
        .route(
            "/",
            post(move |body: axum::body::Bytes| {
                let node = node.clone();
                async move {
                    let answer = match serde_json::from_slice::<Value>(&body) {
                        Ok(request) => {
                            let (reply, answer) = tokio::sync::oneshot::channel();
                            match node.try_send((request, reply)) {
                                Ok(()) => answer.await.unwrap_or_else(|_| json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32603, "message": "the root chain stopped"}})),
                                Err(_) => json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32005, "message": "the root chain is busy: try again"}}),
                            }
                        }
                        Err(e) => json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": format!("not JSON: {e}")}}),
                    };
                    ([(axum::http::header::CONTENT_TYPE, "application/json")], answer.to_string())
                }
            }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    axum::serve(listener, app).await
}
