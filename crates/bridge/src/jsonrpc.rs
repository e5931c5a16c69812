//! [`RootChain`] over Ethereum JSON-RPC (any node: anvil, geth, a provider), through the
//! project's own JSON-RPC client. Transactions are legacy EIP-155 ones signed with the TCP
//! account key; each is tried with `eth_call` first, so one that would revert is refused with
//! the contract's reason and never sent.

use crate::evm::ChainLog;
use crate::rootchain::{CallError, RootChain, SentTx};
use crate::tx::LegacyTx;
use crate::BridgeError;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tcp_node::client::RpcClient;
use tcp_state::AccountKey;
use tcp_types::hex;

/// How long `send` waits for a transaction to be mined.
const RECEIPT_WAIT: Duration = Duration::from_secs(120);
/// The most this client pays per gas, and the most gas it lets one transaction use, whatever
/// the endpoint says (a lying endpoint must not make a key sign away its balance in fees).
pub const MAX_GAS_PRICE: u128 = 1_000_000_000_000;
pub const MAX_GAS: u64 = 5_000_000;

pub struct JsonRpcRootChain {
    client: RpcClient,
    url: String,
    chain_id: Option<u64>,
}

fn chain_error(what: &str, e: impl std::fmt::Display) -> BridgeError {
    BridgeError::Chain(format!("{what}: {e}"))
}

fn quantity(v: &Value, what: &str) -> Result<u128, BridgeError> {
    let s = v.as_str().ok_or_else(|| chain_error(what, "not a hex quantity"))?;
    let digits = s.strip_prefix("0x").ok_or_else(|| chain_error(what, format!("{s:?} is not 0x-prefixed")))?;
    if digits.is_empty() || digits.len() > 32 {
        return Err(chain_error(what, format!("{s:?} is not a quantity")));
    }
    u128::from_str_radix(digits, 16).map_err(|e| chain_error(what, e))
}

fn quantity_u64(v: &Value, what: &str) -> Result<u64, BridgeError> {
    u64::try_from(quantity(v, what)?).map_err(|_| chain_error(what, "beyond u64"))
}

fn data(v: &Value, what: &str) -> Result<Vec<u8>, BridgeError> {
    let s = v.as_str().ok_or_else(|| chain_error(what, "not hex data"))?;
    hex::decode(s.strip_prefix("0x").unwrap_or(s)).map_err(|e| chain_error(what, e))
}

fn fixed<const N: usize>(v: &Value, what: &str) -> Result<[u8; N], BridgeError> {
    data(v, what)?.try_into().map_err(|_| chain_error(what, format!("not {N} bytes")))
}

fn hex_of(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn hex_quantity(n: u128) -> String {
    format!("0x{n:x}")
}

impl JsonRpcRootChain {
    /// A root chain at `url` (http://host:port).
    pub fn connect(url: &str) -> Result<JsonRpcRootChain, BridgeError> {
        let client = RpcClient::new(url).map_err(|e| chain_error("root chain URL", e))?;
        Ok(JsonRpcRootChain { client, url: url.to_string(), chain_id: None })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn rpc(&mut self, method: &str, params: Value) -> Result<Value, BridgeError> {
        self.client.call(method, params).map_err(|e| chain_error(&format!("{method} on {}", self.url), e))
    }

    /// `eth_call`, keeping the revert data the client's `call` would drop.
    fn eth_call(&mut self, request: Value) -> Result<Vec<u8>, CallError> {
        let reply = self
            .client
            // On the pending block: as the transaction would run in the next one.
            .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [request, "pending"]}))
            .map_err(|e| chain_error(&format!("eth_call on {}", self.url), e))?;
        if let Some(error) = reply.get("error") {
            // Nodes put the revert data in `error.data` (a hex string, or an object holding one).
            let revert = error.get("data").and_then(|d| if d.is_string() { Some(d) } else { d.get("data") });
            return match revert.map(|d| data(d, "revert data")) {
                Some(Ok(bytes)) => Err(CallError::Reverted(bytes)),
                _ => match error.get("message").and_then(Value::as_str) {
                    Some(m) if m.contains("revert") => Err(CallError::Reverted(Vec::new())),
                    Some(m) => Err(CallError::Chain(BridgeError::Chain(format!("eth_call: {m}")))),
                    None => Err(CallError::Chain(BridgeError::Chain(format!("eth_call: {error}")))),
                },
            };
        }
        Ok(data(&reply["result"], "eth_call result")?)
    }

    fn receipt(&mut self, hash: &[u8; 32]) -> Result<Value, BridgeError> {
        let deadline = Instant::now() + RECEIPT_WAIT;
        loop {
            let receipt = self.rpc("eth_getTransactionReceipt", json!([hex_of(hash)]))?;
            if !receipt.is_null() {
                return Ok(receipt);
            }
            if Instant::now() > deadline {
                return Err(chain_error("transaction", format!("{} not mined within {} s", hex_of(hash), RECEIPT_WAIT.as_secs())));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sign and send; the mined receipt.
    fn transact(&mut self, key: &AccountKey, to: Option<[u8; 20]>, value: u128, input: &[u8]) -> Result<Value, CallError> {
        let from = hex_of(&key.address().0);
        let mut request = json!({"from": from, "value": hex_quantity(value), "data": hex_of(input)});
        if let Some(to) = to {
            request["to"] = json!(hex_of(&to));
        }
        // Tried first: a transaction that would revert is never sent.
        self.eth_call(request.clone())?;
        let chain_id = self.chain_id()?;
        let nonce = quantity_u64(&self.rpc("eth_getTransactionCount", json!([from, "pending"]))?, "nonce")?;
        let estimate = quantity_u64(&self.rpc("eth_estimateGas", json!([request]))?, "gas estimate")?;
        let gas_price = quantity(&self.rpc("eth_gasPrice", json!([]))?, "gas price")?;
        let gas_limit = estimate.saturating_add(estimate / 5).saturating_add(10_000);
        if gas_limit > MAX_GAS || gas_price > MAX_GAS_PRICE {
            return Err(CallError::Chain(chain_error("transaction", format!("refused: the root chain asks {gas_limit} gas at {gas_price} wei (at most {MAX_GAS} at {MAX_GAS_PRICE})"))));
        }
        let tx = LegacyTx { chain_id, nonce, gas_price, gas_limit, to, value, data: input.to_vec() };
        let raw = tx.sign(key);
        let hash = LegacyTx::hash(&raw);
        self.rpc("eth_sendRawTransaction", json!([hex_of(&raw)]))?;
        let receipt = self.receipt(&hash)?;
        if receipt["status"].as_str() != Some("0x1") {
            return Err(CallError::Reverted(Vec::new()));
        }
        Ok(receipt)
    }

    /// Deploy `creation` code from `key`'s account; the contract's address.
    pub fn deploy(&mut self, key: &AccountKey, creation: &[u8]) -> Result<[u8; 20], CallError> {
        let receipt = self.transact(key, None, 0, creation)?;
        Ok(fixed::<20>(&receipt["contractAddress"], "contract address")?)
    }
}

impl RootChain for JsonRpcRootChain {
    fn chain_id(&mut self) -> Result<u64, BridgeError> {
        if let Some(id) = self.chain_id {
            return Ok(id);
        }
        let id = quantity_u64(&self.rpc("eth_chainId", json!([]))?, "chain id")?;
        self.chain_id = Some(id);
        Ok(id)
    }

    fn block_number(&mut self) -> Result<u64, BridgeError> {
        quantity_u64(&self.rpc("eth_blockNumber", json!([]))?, "block number")
    }

    fn timestamp(&mut self) -> Result<u64, BridgeError> {
        let block = self.rpc("eth_getBlockByNumber", json!(["latest", false]))?;
        quantity_u64(&block["timestamp"], "block timestamp")
    }

    fn logs(&mut self, contract: [u8; 20], from: u64, to: u64) -> Result<Vec<ChainLog>, BridgeError> {
        let filter = json!({"address": hex_of(&contract), "fromBlock": hex_quantity(from.into()), "toBlock": hex_quantity(to.into())});
        let logs = self.rpc("eth_getLogs", json!([filter]))?;
        let mut out = Vec::new();
        for log in logs.as_array().ok_or_else(|| chain_error("eth_getLogs", "not an array"))? {
            if log["removed"].as_bool() == Some(true) {
                continue;
            }
            let topics = log["topics"].as_array().ok_or_else(|| chain_error("log", "no topics"))?;
            out.push(ChainLog {
                block: quantity_u64(&log["blockNumber"], "log block")?,
                address: fixed::<20>(&log["address"], "log address")?,
                topics: topics.iter().map(|t| fixed::<32>(t, "log topic")).collect::<Result<_, _>>()?,
                data: data(&log["data"], "log data")?,
            });
        }
        Ok(out)
    }

    fn call(&mut self, from: [u8; 20], to: [u8; 20], value: u128, input: &[u8]) -> Result<Vec<u8>, CallError> {
        self.eth_call(json!({"from": hex_of(&from), "to": hex_of(&to), "value": hex_quantity(value), "data": hex_of(input)}))
    }

    fn balance(&mut self, account: [u8; 20]) -> Result<u128, BridgeError> {
        quantity(&self.rpc("eth_getBalance", json!([hex_of(&account), "latest"]))?, "balance")
    }

    fn send(&mut self, key: &AccountKey, to: [u8; 20], value: u128, input: &[u8]) -> Result<SentTx, CallError> {
        let receipt = self.transact(key, Some(to), value, input)?;
        Ok(SentTx {
            hash: fixed::<32>(&receipt["transactionHash"], "transaction hash")?,
            block: quantity_u64(&receipt["blockNumber"], "receipt block")?,
            gas_used: quantity_u64(&receipt["gasUsed"], "gas used")?,
        })
    }
}
