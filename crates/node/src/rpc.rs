//! JSON-RPC 2.0 over HTTP (`POST /`) and WebSocket (`GET /ws`, with subscriptions to new
//! heads and to a transaction's receipt). Methods and examples: `docs/rpc.md`.
//!
//! Requests are bounded (body size, batch length); every failure is a JSON-RPC error object
//! with a code and a readable message. Reads go to the store directly; submissions go to the
//! node's loop after their signature was checked here, off the loop.

use crate::block::{Block, Header, MAX_BLOCK_BYTES};
use crate::mempool::MempoolError;
use crate::node::{CommittedHead, NodeHandle, Request};
use crate::NodeError;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use tcp_state::{Address, SignedTransaction};
use tcp_types::{Digest, Height, hex};
use tokio::sync::oneshot;

/// Largest request body accepted.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Most calls in one batch.
pub const MAX_BATCH: usize = 1000;
/// Subscriptions per WebSocket connection.
const MAX_SUBSCRIPTIONS: usize = 1024;

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// The transaction was refused (bad signature, nonce, balance, …): `data.reason` says why.
pub const TRANSACTION_REJECTED: i64 = -32000;
/// The mempool is full: retry later.
pub const MEMPOOL_FULL: i64 = -32001;
/// The node is shutting down or its loop is gone.
pub const NODE_UNAVAILABLE: i64 = -32002;

#[derive(Debug)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

/// Methods a node's role adds to its RPC (the compute node's `dkmp_request`): called on a
/// blocking thread; an error's message goes back to the client.
pub trait RpcExtension: Send + Sync {
    fn serves(&self, method: &str) -> bool;
    fn call(&self, method: &str, params: &[Value]) -> Result<Value, String>;
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into() }
    }
    fn params(message: impl Into<String>) -> Self {
        RpcError::new(INVALID_PARAMS, message)
    }
}

impl From<NodeError> for RpcError {
    fn from(e: NodeError) -> Self {
        RpcError::new(INTERNAL_ERROR, e.to_string())
    }
}

fn error_object(id: Value, e: RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": e.code, "message": e.message}})
}

pub fn router(handle: NodeHandle) -> axum::Router {
    axum::Router::new()
        .route("/", post(http_call))
        .route("/ws", get(ws_upgrade))
        .route("/health", get(|| async { "ok" }))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(handle)
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: NodeHandle,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(handle)).with_graceful_shutdown(shutdown).await
}

/// Serves Prometheus text at `/metrics` from `encode` (the runtime's registry) until the process
/// ends. Ours rather than the runtime's so a taken port is an error at start, not a task panic.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    encode: impl Fn() -> String + Clone + Send + Sync + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let encode = encode.clone();
            async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], encode()) }
        }),
    );
    axum::serve(listener, app).await
}

fn json_response(value: Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

async fn http_call(State(handle): State<NodeHandle>, body: Body) -> Response {
    let bytes = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return json_response(error_object(
                Value::Null,
                RpcError::new(INVALID_REQUEST, format!("request body exceeds {MAX_REQUEST_BYTES} bytes")),
            ));
        }
    };
    match handle_payload(&handle, &bytes).await {
        Some(v) => json_response(v),
        None => StatusCode::NO_CONTENT.into_response(), // only notifications
    }
}

/// One HTTP body or WebSocket text: a call or a batch. `None` when nothing is to be answered
/// (all notifications).
async fn handle_payload(handle: &NodeHandle, bytes: &[u8]) -> Option<Value> {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return Some(error_object(Value::Null, RpcError::new(PARSE_ERROR, format!("not JSON: {e}")))),
    };
    match value {
        Value::Array(calls) => {
            if calls.is_empty() {
                return Some(error_object(Value::Null, RpcError::new(INVALID_REQUEST, "empty batch")));
            }
            if calls.len() > MAX_BATCH {
                return Some(error_object(Value::Null, RpcError::new(INVALID_REQUEST, format!("batch of {} exceeds {MAX_BATCH}", calls.len()))));
            }
            let mut out = Vec::with_capacity(calls.len());
            for call in calls {
                if let Some(v) = handle_call(handle, call).await {
                    out.push(v);
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        call => handle_call(handle, call).await,
    }
}

async fn handle_call(handle: &NodeHandle, call: Value) -> Option<Value> {
    let Value::Object(obj) = call else {
        return Some(error_object(Value::Null, RpcError::new(INVALID_REQUEST, "a call must be a JSON object")));
    };
    let id = obj.get("id").cloned();
    let id_ok = matches!(id, None | Some(Value::Null | Value::Number(_) | Value::String(_)));
    let reply_id = id.clone().filter(|_| id_ok).unwrap_or(Value::Null);
    if obj.get("jsonrpc") != Some(&Value::String("2.0".into())) || !id_ok {
        return Some(error_object(reply_id, RpcError::new(INVALID_REQUEST, "expected {\"jsonrpc\":\"2.0\", \"method\", \"params\", \"id\"}")));
    }
    let Some(Value::String(method)) = obj.get("method") else {
        return Some(error_object(reply_id, RpcError::new(INVALID_REQUEST, "missing method")));
    };
    let params = match obj.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Some(error_object(reply_id, RpcError::params("params must be an array"))),
    };
    let result = dispatch(handle, method, &params).await;
    id.as_ref()?; // a notification gets no answer
    Some(match result {
        Ok(v) => json!({"jsonrpc": "2.0", "id": reply_id, "result": v}),
        Err(e) => error_object(reply_id, e),
    })
}

fn param<'a>(params: &'a [Value], i: usize, name: &str) -> Result<&'a Value, RpcError> {
    params.get(i).ok_or_else(|| RpcError::params(format!("missing parameter {i} ({name})")))
}

/// What a relay (of an enclave's key request or a client's result-key ask) gathered.
async fn relay_json(answer: oneshot::Receiver<Result<crate::node::RelayOutcome, String>>) -> Result<Value, RpcError> {
    let outcome =
        answer.await.map_err(|_| RpcError::new(INTERNAL_ERROR, "the node stopped"))?.map_err(|e| RpcError::new(INVALID_REQUEST, e))?;
    Ok(json!({
        "epoch": outcome.epoch,
        "sharing": hex::encode(&outcome.sharing),
        "members": outcome.members.iter().map(|m| hex::encode(&commonware_codec::Encode::encode(m))).collect::<Vec<_>>(),
        "answers": outcome.answers.iter().map(|(i, sealed)| json!({"index": i, "sealed": hex::encode(sealed)})).collect::<Vec<_>>(),
    }))
}

/// Parameter `i`: 32 bytes of hex.
fn hash_param(params: &[Value], i: usize, name: &str) -> Result<[u8; 32], RpcError> {
    hex::decode(param_str(params, i, name)?).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or_else(|| RpcError::params(format!("{name}: 32 bytes of hex")))
}

fn param_str<'a>(params: &'a [Value], i: usize, name: &str) -> Result<&'a str, RpcError> {
    param(params, i, name)?.as_str().ok_or_else(|| RpcError::params(format!("parameter {i} ({name}) must be a string")))
}

fn param_height(params: &[Value], i: usize) -> Result<Height, RpcError> {
    param(params, i, "height")?.as_u64().map(Height).ok_or_else(|| RpcError::params(format!("parameter {i} (height) must be a non-negative integer")))
}

fn param_digest(params: &[Value], i: usize, name: &str) -> Result<Digest, RpcError> {
    let s = param_str(params, i, name)?;
    let bytes = hex::decode(s).map_err(|e| RpcError::params(format!("{name}: {e}")))?;
    let array: [u8; 32] = bytes.try_into().map_err(|_| RpcError::params(format!("{name} must be 32 bytes")))?;
    Ok(Digest(array))
}

pub async fn dispatch(handle: &NodeHandle, method: &str, params: &[Value]) -> Result<Value, RpcError> {
    match method {
        "status" => Ok(serde_json::to_value(handle.status.borrow().clone()).expect("serializes")),
        "sssg" => {
            let status = handle.status.borrow().clone();
            let mut v = serde_json::to_value(&status.sssg).expect("serializes");
            v["height"] = json!(status.height);
            v["epoch"] = json!(status.epoch);
            Ok(v)
        }
        "block" => block_json(handle, param_height(params, 0)?, params.get(1).and_then(Value::as_bool).unwrap_or(false)),
        "block_by_hash" => {
            let id = param_digest(params, 0, "block id")?;
            match handle.store.height_of_block(&id)? {
                Some(h) => block_json(handle, h, params.get(1).and_then(Value::as_bool).unwrap_or(false)),
                None => Ok(Value::Null),
            }
        }
        "transaction" => transaction_json(handle, &param_digest(params, 0, "transaction hash")?),
        "receipt" => receipt_json(handle, &param_digest(params, 0, "transaction hash")?),
        "send_transaction" => send_transaction(handle, param_str(params, 0, "signed transaction (hex)")?).await,
        "contract" => {
            // A contract's record as the chain holds it (public: hashes, keys, generations), with
            // its proof, at the newest height a client can verify at once; null for an unknown
            // contract.
            let cid = hash_param(params, 0, "cid")?;
            let committed = finalized(handle)?;
            let Some(c) = committed.state.contract(&cid) else { return Ok(Value::Null) };
            let state_bytes = committed.state.contract_state(&cid).map_or(0, |s| s.len());
            Ok(json!({
                "height": committed.height.0,
                "cid": hex::encode(&cid),
                "code_hash": hex::encode(&c.code_hash),
                "owner": c.owner.to_string(),
                "generation": c.generation,
                "key_generation": c.key_generation,
                "public_key": hex::encode(&c.public_key),
                "state_hash": hex::encode(&c.state_hash),
                "state_bytes": state_bytes,
                "deployed_at": c.deployed_at,
                "executions": c.executions,
                "proofs": proofs_json(&committed, &[tcp_state::contracts::contract_key(&cid)]),
            }))
        }
        "contract_code" => {
            let code_hash = hash_param(params, 0, "code hash")?;
            let committed = handle.committed_state.borrow().clone();
            Ok(committed.state.contract_code(&code_hash).map_or(Value::Null, |code| json!({"code_hash": hex::encode(&code_hash), "code": hex::encode(&code)})))
        }
        "compute_request" => {
            // A committed compute request: its client, contract, block, status, result hash and
            // fee, with its proof; null if not committed.
            let id = hash_param(params, 0, "request id")?;
            let committed = handle.committed_state.borrow().clone();
            let Some(r) = committed.state.compute_request(&id) else { return Ok(Value::Null) };
            Ok(json!({
                "height": committed.height.0,
                "request_id": hex::encode(&id),
                "client": r.client.to_string(),
                "cid": hex::encode(&r.cid),
                "block_height": r.height,
                "call_status": match r.status { tcp_state::CallStatus::Ok => "ok", tcp_state::CallStatus::Failed => "failed" },
                "result_hash": hex::encode(&r.result_hash),
                "fee": r.fee.to_string(),
                "proofs": proofs_json(&committed, &[tcp_state::contracts::request_key(&id)]),
            }))
        }
        "data_usage" => {
            // Each use of an owner's data (contract, request, blob, block, amount), page by page,
            // with proofs.
            let p = params.first().and_then(Value::as_object).ok_or_else(|| RpcError::params("[{\"owner\": address, \"page\": n}]"))?;
            let owner: Address = p.get("owner").and_then(Value::as_str).unwrap_or_default().parse().map_err(|e| RpcError::params(format!("owner: {e}")))?;
            let page = p.get("page").and_then(Value::as_u64).unwrap_or(0);
            let committed = handle.committed_state.borrow().clone();
            let (count, uses) = committed.state.data_usage(&owner, page);
            let keys = [tcp_state::contracts::data_usage_key(&owner, None), tcp_state::contracts::data_usage_key(&owner, Some(page))];
            let uses: Vec<Value> = uses
                .iter()
                .map(|u| json!({"cid": hex::encode(&u.cid), "request_id": hex::encode(&u.request), "data": hex::encode(&u.data), "block_height": u.height, "amount": u.amount.to_string()}))
                .collect();
            Ok(json!({
                "height": committed.height.0,
                "owner": owner.to_string(),
                "count": count,
                "page": page,
                "page_size": tcp_state::contracts::DATA_USAGE_PAGE,
                "uses": uses,
                "proofs": proofs_json(&committed, &keys),
            }))
        }
        "bridge" => {
            // The bridge as genesis fixes it and as the newest finalized state has it, with the
            // proofs an exit or a challenge needs, all at that one height (docs/bridge.md).
            let Some(bridge) = handle.spec.bridge else { return Err(RpcError::new(INVALID_REQUEST, "this chain has no bridge")) };
            let p = params.first().cloned().unwrap_or(Value::Null);
            let list = |name: &str| p.get(name).and_then(Value::as_array).cloned().unwrap_or_default();
            let (accounts, withdrawals) = (list("accounts"), list("withdrawals"));
            if accounts.len() + withdrawals.len() > MAX_BRIDGE_PROOFS {
                return Err(RpcError::params(format!("at most {MAX_BRIDGE_PROOFS} accounts and withdrawals at once")));
            }
            let accounts = accounts
                .iter()
                .map(|a| a.as_str().unwrap_or_default().parse::<Address>().map_err(|e| RpcError::params(format!("accounts: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let withdrawals = withdrawals.iter().map(|w| w.as_u64().ok_or_else(|| RpcError::params("withdrawals: ids"))).collect::<Result<Vec<_>, _>>()?;
            let committed = finalized(&handle)?;
            let state = &committed.state;
            let status = state.bridge_status().ok_or_else(|| RpcError::new(INTERNAL_ERROR, "the state holds no bridge status"))?;
            let prove = |key: [u8; 32]| proofs_json(&committed, &[key]).remove(0);
            let accounts: Vec<Value> = accounts
                .iter()
                .map(|a| {
                    let b = state.bridge_account(a);
                    json!({"address": a.to_string(), "balance": b.balance.to_string(), "spends": b.spends, "exits": b.exits, "locked": b.locked,
                           "proof": prove(tcp_state::bridge::bridge_account_key(a))})
                })
                .collect();
            let withdrawals: Vec<Value> = withdrawals
                .iter()
                .map(|id| {
                    let record = state.withdrawal(*id);
                    json!({"id": id, "owner": record.map(|r| r.owner.to_string()), "recipient": record.map(|r| format!("0x{}", hex::encode(&r.recipient))),
                           "amount": record.map(|r| r.amount.to_string()), "block_height": record.map(|r| r.height),
                           "proof": prove(tcp_state::bridge::withdrawal_key(*id))})
                })
                .collect();
            Ok(json!({
                "height": committed.height.0,
                "root_chain_id": bridge.root_chain_id,
                "root_rpc": handle.root_rpc,
                "contract": format!("0x{}", hex::encode(&bridge.contract)),
                "params": {
                    "challenge_period_secs": bridge.challenge_period_secs,
                    "freeze_period_secs": bridge.freeze_period_secs,
                    "exit_bond": bridge.exit_bond.to_string(),
                    "min_deposit": bridge.min_deposit.to_string(),
                    "confirmation_depth": bridge.confirmation_depth,
                },
                "inbox_processed": status.inbox_processed,
                "inbox_hash": hex::encode(&status.inbox_hash),
                "next_withdrawal": status.next_withdrawal,
                "status_proof": prove(tcp_state::bridge::bridge_status_key()),
                "accounts": accounts,
                "withdrawals": withdrawals,
            }))
        }
        "compute_view" => {
            // What a compute node shows its enclave before an execution (DESIGN §5.4): the newest
            // header whose φ is known, with binary state proofs against its root of the
            // contract's record and of the request id, and the contract's encrypted state.
            let cid = hash_param(params, 0, "cid")?;
            let request = hash_param(params, 1, "request id")?;
            let committed = handle.committed_state.borrow().clone();
            let Some((height, state)) = &committed.previous else {
                return Err(RpcError::new(INVALID_REQUEST, "no finalized state yet: try again after the next block"));
            };
            let header = handle.store.block(*height)?.ok_or_else(|| RpcError::new(INTERNAL_ERROR, "the previous block is not stored"))?;
            let (_, body) = Header::decode_prefix(&header).map_err(|e| RpcError::new(INTERNAL_ERROR, format!("stored block: {e}")))?;
            let header = &header[..header.len() - body.len()];
            let finality = handle.store.finality(*height)?.ok_or_else(|| RpcError::new(INVALID_REQUEST, "the previous block's finality signature is not known yet"))?;
            let latest = committed.state.contract(&cid);
            if latest.is_none() {
                return Err(RpcError::params("no such contract"));
            }
            // A call on this view would be refused if the newest block made or changed the
            // contract (its state, or its generation by a rotation).
            let Some(contract) = state.contract(&cid).filter(|c| Some(c) == latest.as_ref()) else {
                return Err(RpcError::new(INVALID_REQUEST, "the contract's state changed in the newest block: its view is final with the next block"));
            };
            Ok(json!({
                "height": height.0,
                "header": hex::encode(header),
                "finality": hex::encode(&finality),
                "contract_proof": hex::encode(&state.prove_committed(&tcp_state::contracts::contract_key(&cid)).1.encode()),
                "request_proof": hex::encode(&state.prove_committed(&tcp_state::contracts::request_key(&request)).1.encode()),
                "state": hex::encode(&state.contract_state(&cid).unwrap_or_default()),
                "code_hash": hex::encode(&contract.code_hash),
                "generation": contract.generation,
                "key_generation": contract.key_generation,
            }))
        }
        "releases" => {
            // The key-release ledger by contract, measurement or enclave key, page by page,
            // with the state proof of every entry read.
            let p = params.first().and_then(Value::as_object).ok_or_else(|| RpcError::params("[{\"cid\" | \"measurement\" | \"enclave\": hex, \"page\": n}]"))?;
            let (index, id) = [("cid", tcp_state::ReleaseIndex::Contract), ("measurement", tcp_state::ReleaseIndex::Measurement), ("enclave", tcp_state::ReleaseIndex::Enclave)]
                .into_iter()
                .find_map(|(name, index)| p.get(name).and_then(Value::as_str).map(|v| (name, index, v)))
                .map(|(name, index, v)| {
                    hex::decode(v).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()).map(|id| (index, id)).ok_or_else(|| RpcError::params(format!("{name}: 32 bytes of hex")))
                })
                .ok_or_else(|| RpcError::params("one of cid, measurement, enclave"))??;
            let page = p.get("page").and_then(Value::as_u64).unwrap_or(0);
            let committed = handle.committed_state.borrow().clone();
            let state = &committed.state;
            let (count, digests) = state.releases_by(index, &id, page);
            let mut keys = vec![tcp_state::releases::release_index_key(index, &id, None), tcp_state::releases::release_index_key(index, &id, Some(page))];
            let releases: Vec<Value> = digests
                .iter()
                .filter_map(|d| {
                    keys.push(tcp_state::releases::release_key(d));
                    state.release(d).map(|r| release_json(&r))
                })
                .collect();
            Ok(json!({
                "height": committed.height.0,
                "count": count,
                "page": page,
                "page_size": tcp_state::releases::PAGE,
                "releases": releases,
                "proofs": proofs_json(&committed, &keys),
            }))
        }
        "exposure" => {
            // Which (contract, generation) pairs reached enclaves of a measurement, or enclaves
            // judged under a TCB evaluation data number below a bound, with proofs.
            let p = params.first().and_then(Value::as_object).ok_or_else(|| RpcError::params("[{\"measurement\": hex} | {\"tcb_below\": n}]"))?;
            let committed = handle.committed_state.borrow().clone();
            let state = &committed.state;
            let lists: Vec<(tcp_state::ExposureIndex, [u8; 32])> = match (p.get("measurement").and_then(Value::as_str), p.get("tcb_below").and_then(Value::as_u64)) {
                (Some(m), None) => {
                    let id = hex::decode(m).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or_else(|| RpcError::params("measurement: 32 bytes of hex"))?;
                    vec![(tcp_state::ExposureIndex::Measurement, id)]
                }
                (None, Some(below)) => state
                    .release_tcb_evaluations()
                    .into_iter()
                    .filter(|n| u64::from(*n) < below)
                    .map(|n| (tcp_state::ExposureIndex::TcbEvaluation, tcp_state::releases::tcb_evaluation_id(n)))
                    .collect(),
                _ => return Err(RpcError::params("one of measurement, tcb_below")),
            };
            let mut keys = vec![tcp_state::staking::global_key("release-tcb-evaluations")];
            // A measurement flagged by a compute fault (the chain's record, proven with the rest).
            let flagged = match lists.first() {
                Some((tcp_state::ExposureIndex::Measurement, id)) => {
                    keys.push(tcp_state::contracts::flagged_measurement_key(id));
                    state.flagged_measurement(id).map(|f| json!({"height": f.height, "operator": f.operator.to_string(), "request_id": hex::encode(&f.request_id)}))
                }
                _ => None,
            };
            let mut pairs = std::collections::BTreeSet::new();
            // Bounded work per call; `complete` says whether every list was read to its end.
            let mut complete = lists.len() <= MAX_EXPOSURE_LISTS;
            for (index, id) in lists.into_iter().take(MAX_EXPOSURE_LISTS) {
                let (count, _) = state.exposure(index, &id, 0);
                keys.push(tcp_state::releases::exposure_key(index, &id, None));
                let pages = count.div_ceil(tcp_state::releases::PAGE as u64);
                complete &= pages <= MAX_EXPOSURE_PAGES;
                for page in 0..pages.min(MAX_EXPOSURE_PAGES) {
                    keys.push(tcp_state::releases::exposure_key(index, &id, Some(page)));
                    pairs.extend(state.exposure(index, &id, page).1);
                }
            }
            let pairs: Vec<Value> = pairs.iter().map(|(cid, g)| json!({"cid": hex::encode(cid), "generation": g})).collect();
            Ok(json!({"height": committed.height.0, "exposed": pairs, "complete": complete, "flagged": flagged, "proofs": proofs_json(&committed, &keys)}))
        }
        "dkmp_result_key" => {
            // A client's ask for a committed request's result key: relayed to the serving
            // group's members, whose answers are sealed to the result key the request names.
            let request_id = hash_param(params, 0, "request id")?;
            let (reply, answer) = oneshot::channel();
            handle.requests.try_send(Request::RelayResultKey { request_id, reply }).map_err(|_| RpcError::new(INTERNAL_ERROR, "the node is busy: try again"))?;
            relay_json(answer).await
        }
        "dkmp_relay" => {
            // An enclave's signed key request (hex), carried to the serving group's members;
            // answers with their sealed answers and the group's public sharing.
            let bytes = hex::decode(param_str(params, 0, "signed key request (hex)")?).map_err(|e| RpcError::params(format!("key request: {e}")))?;
            let request = <tcp_dkmp::SignedKeyRequest as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(bytes.as_slice()))
                .map_err(|e| RpcError::params(format!("key request: {e}")))?;
            if !request.verify(&handle.spec.chain_id) {
                return Err(RpcError::params("the key request is not signed by the enclave key it names, for this chain"));
            }
            // Only for an enclave the chain holds current: nobody else fills the relay slots or
            // makes the node message every member.
            {
                let committed = handle.committed_state.borrow().clone();
                let key: [u8; 32] = commonware_codec::Encode::encode(&request.request.enclave_key).as_ref().try_into().expect("32 bytes");
                let current = committed.state.enclave(&key).is_some_and(|e| committed.height.0 <= e.record.expires_at);
                if !current {
                    return Err(RpcError::params("the key request's enclave is not registered (or its registration expired)"));
                }
            }
            let (reply, answer) = oneshot::channel();
            handle.requests.try_send(Request::RelayKeyRequest { request, reply }).map_err(|_| RpcError::new(INTERNAL_ERROR, "the node is busy: try again"))?;
            relay_json(answer).await
        }
        "account" => {
            let address: Address = param_str(params, 0, "address")?.parse().map_err(|e| RpcError::params(format!("address: {e}")))?;
            let account = handle.store.account(&address)?;
            let (reply, answer) = oneshot::channel();
            let pending = match handle.requests.try_send(Request::PendingNonce { address, reply }) {
                Ok(()) => answer.await.unwrap_or(account.nonce),
                Err(_) => account.nonce,
            };
            Ok(json!({"address": address.to_string(), "balance": account.balance.to_string(), "nonce": account.nonce, "pending_nonce": pending}))
        }
        "state_proof" => {
            // [address] for an account, [{"validator": address}] for a validator entry, or
            // [{"key": hex}] for any state key.
            let address = |text: &str, what: &str| -> Result<Address, RpcError> { text.parse().map_err(|e| RpcError::params(format!("{what}: {e}"))) };
            let key = match params.first() {
                Some(Value::Object(o)) => match (o.get("key").and_then(Value::as_str), o.get("validator").and_then(Value::as_str)) {
                    (Some(text), None) => {
                        let bytes = hex::decode(text).map_err(|e| RpcError::params(format!("key: {e}")))?;
                        <[u8; 32]>::try_from(bytes).map_err(|_| RpcError::params("key: not 32 bytes"))?
                    }
                    (None, Some(operator)) => tcp_state::staking::validator_key(&address(operator, "validator")?),
                    _ => return Err(RpcError::params("expected {\"key\": <64 hex digits>} or {\"validator\": <operator address>}")),
                },
                _ => tcp_state::accounts::account_key(&address(param_str(params, 0, "address")?, "address")?),
            };
            let committed = finalized(handle)?;
            let (root, proof) = committed.state.prove_committed(&key);
            Ok(crate::proof::proof_to_json(committed.height.0, &root, &proof))
        }
        "validators" => {
            // The set of the current epoch (consensus index order) and every registered validator.
            let committed = handle.committed_state.borrow().clone();
            let state = &committed.state;
            let (epoch, start) = state.epoch_starts().last().copied().unwrap_or((0, 1));
            let set = state.epoch_set(epoch).unwrap_or_default();
            let active: Vec<Value> = set
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    json!({
                        "index": i,
                        "consensus_key": crate::genesis::encode_ed25519_public(&m.key),
                        "operator": state.operator_of(&m.key).map(|a| a.to_string()),
                        "coin_base": m.coin_base,
                        "name": handle.spec.validators.iter().find(|v| v.key == m.key).map(|v| v.name.clone()),
                    })
                })
                .collect();
            let registered: Vec<Value> = state.validators().iter().map(validator_json).collect();
            Ok(json!({"height": committed.height.0, "epoch": epoch, "epoch_start": start, "active": active, "registered": registered}))
        }
        "compute_nodes" => {
            // Every registered compute node, in registration order, and whether it can serve.
            let committed = handle.committed_state.borrow().clone();
            let state = &committed.state;
            let min_bond = state.staking_params().min_compute_bond;
            let height = committed.height.0;
            let policy_version = state.enclave_rules().map(|r| r.policy_version);
            let nodes: Vec<Value> = state
                .compute_nodes()
                .iter()
                .map(|n| {
                    let enclaves: Vec<Value> = state
                        .enclaves_of(&n.operator)
                        .iter()
                        .filter_map(|key| state.enclave(key))
                        .map(|e| {
                            let r = &e.record;
                            json!({
                                "signing_key": hex::encode(&e.signing_key),
                                "x25519_key": hex::encode(&e.x25519_key),
                                "tee": e.tee.name(),
                                "measurement": hex::encode(&r.measurement),
                                "tcb_status": tcp_attestation::TcbRank::from_rank(r.tcb_rank).map(|t| t.intel_name()).unwrap_or("unknown"),
                                "tcb_evaluation_data_number": r.tcb_evaluation_data_number,
                                "debug": r.debug,
                                "registered_at": e.registered_at,
                                "expires_at": r.expires_at,
                                "policy_version": r.policy_version,
                                "current": r.expires_at >= height && Some(r.policy_version) == policy_version,
                            })
                        })
                        .collect();
                    json!({
                        "operator": n.operator.to_string(),
                        "endpoint": n.endpoint,
                        "bonded": n.bonded.to_string(),
                        "jailed_until": n.jailed_until,
                        "registered_at": n.registered_at,
                        "in_service": n.in_service(height, min_bond),
                        "enclaves": enclaves,
                    })
                })
                .collect();
            let unbonding: Vec<Value> = state
                .compute_unbondings()
                .iter()
                .map(|u| json!({"operator": u.operator.to_string(), "amount": u.amount.to_string(), "release_height": u.release_height}))
                .collect();
            Ok(json!({"height": height, "min_bond": min_bond.to_string(), "compute_nodes": nodes, "unbonding": unbonding}))
        }
        "registration_freshness" => {
            // What an enclave registration quote must be fresh with: the newest R the state
            // keeps, and the rules it will be judged by.
            let committed = handle.committed_state.borrow().clone();
            let state = &committed.state;
            let Some(rules) = state.enclave_rules() else {
                return Err(RpcError::new(INVALID_REQUEST, "this chain registers no enclaves (its genesis names no attestation root)"));
            };
            let height = committed.height.0;
            let newest = (height.saturating_sub(rules.freshness_window)..=height).rev().find_map(|h| state.registration_randomness(h).map(|r| (h, r)));
            let Some(keys) = state.chain_keys() else {
                return Ok(Value::Null); // no master key yet: nothing can register
            };
            Ok(match newest {
                Some((at, r)) => json!({
                    "group_key": hex::encode(&keys.group_key),
                    "master_key": hex::encode(&keys.master_key),
                    "height": height,
                    "freshness_height": at,
                    "randomness": hex::encode(&r),
                    "freshness_window": rules.freshness_window,
                    "attestation_period": rules.attestation_period,
                    "policy_version": rules.policy_version,
                }),
                None => Value::Null,
            })
        }
        "collateral" => {
            // The newest collateral the chain keeps for a platform: TEE ("sgx" | "tdx"), FMSPC
            // (hex) and PCK CA ("processor" | "platform").
            let tee = tcp_attestation::Tee::parse(param_str(params, 0, "tee")?).ok_or_else(|| RpcError::params("tee: \"sgx\" or \"tdx\""))?;
            let fmspc: [u8; 6] = hex::decode(param_str(params, 1, "fmspc")?)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| RpcError::params("fmspc: 6 bytes of hex"))?;
            let pck_ca = match param_str(params, 2, "pck_ca")? {
                "processor" => tcp_attestation::PckCa::Processor,
                "platform" => tcp_attestation::PckCa::Platform,
                _ => return Err(RpcError::params("pck_ca: \"processor\" or \"platform\"")),
            };
            let committed = handle.committed_state.borrow().clone();
            let key = tcp_dkmp::CollateralKey { tee, fmspc, pck_ca };
            Ok(match committed.state.collateral(&key) {
                Some(collateral) => {
                    let parts = tcp_attestation::CollateralParts::parse(&collateral).ok();
                    json!({
                        "height": committed.height.0,
                        "collateral": hex::encode(&collateral),
                        "issued_at": parts.as_ref().map(|p| p.issued_at()),
                        "expires_at": parts.as_ref().map(|p| p.expires_at()),
                        "tcb_evaluation_data_number": parts.as_ref().map(|p| p.tcb_evaluation_data_number),
                    })
                }
                None => Value::Null,
            })
        }
        "staking" => {
            let address: Address = param_str(params, 0, "address")?.parse().map_err(|e| RpcError::params(format!("address: {e}")))?;
            let committed = handle.committed_state.borrow().clone();
            let state = &committed.state;
            let unbonding: Vec<Value> = state
                .unbondings()
                .iter()
                .filter(|u| u.operator == address)
                .map(|u| json!({"amount": u.amount.to_string(), "release_height": u.release_height}))
                .collect();
            Ok(json!({
                "height": committed.height.0,
                "address": address.to_string(),
                "balance": state.account(&address).balance.to_string(),
                "validator": state.validator(&address).as_ref().map(validator_json),
                "unbonding": unbonding,
            }))
        }
        "beacon" => {
            let height = param_height(params, 0)?;
            match handle.store.sigma(height)? {
                Some(sigma) => {
                    let randomness = tcp_beacon::BeaconSignature::from_bytes(&sigma).map(|s| s.randomness().to_hex()).unwrap_or_default();
                    Ok(json!({"height": height.0, "signature": hex::encode(&sigma), "randomness": randomness}))
                }
                None => Ok(Value::Null),
            }
        }
        "header" => {
            // [height] or [{"id": <block id>}]
            let height = match params.first() {
                Some(Value::Object(o)) => {
                    let id = match o.get("id") {
                        Some(id) => param_digest(std::slice::from_ref(id), 0, "id")?,
                        None => return Err(RpcError::params("expected a height or {\"id\": <64 hex digits>}")),
                    };
                    match handle.store.height_of_block(&id)? {
                        Some(h) => h,
                        None => return Ok(Value::Null),
                    }
                }
                _ => param_height(params, 0)?,
            };
            header_json(handle, height)
        }
        "light_client_info" => {
            let status = handle.status.borrow().clone();
            Ok(json!({
                "chain_id": handle.spec.chain_id.as_str(),
                "genesis_hash": handle.spec.hash.to_hex(),
                "group_key": status.group_key,
                "finality_namespace": String::from_utf8_lossy(tcp_beacon::FINALITY_NAMESPACE),
            }))
        }
        "subscribe" | "unsubscribe" => Err(RpcError::new(METHOD_NOT_FOUND, "subscriptions are served over WebSocket at /ws")),
        other => match handle.extension.clone().filter(|e| e.serves(other)) {
            // A role's own methods (the compute node's), which may block: off the async threads.
            Some(extension) => {
                let (method, params) = (other.to_string(), params.to_vec());
                tokio::task::spawn_blocking(move || extension.call(&method, &params))
                    .await
                    .map_err(|_| RpcError::new(INTERNAL_ERROR, "the method's handler failed"))?
                    .map_err(|message| RpcError::new(INVALID_REQUEST, message))
            }
            None => Err(RpcError::new(METHOD_NOT_FOUND, format!("unknown method {other:?}; see docs/rpc.md"))),
        },
    }
}

/// A committed header: its exact encoding (what its id hashes and φ signs), its fields, and φ
/// (null until the node recovered it; the beacon's bootstrap heights have none).
/// Exposure pages one answer reads per list (64 pairs each), and lists (TCB evaluation numbers).
const MAX_EXPOSURE_PAGES: u64 = 64;
const MAX_EXPOSURE_LISTS: usize = 16;

fn release_json(r: &tcp_state::Release) -> Value {
    json!({
        "request": hex::encode(&r.request),
        "cid": hex::encode(&r.cid),
        "generation": r.generation,
        "purpose": if r.purpose == 1 { "deploy" } else { "execute" },
        "epoch": r.epoch,
        "height": r.height,
        "enclave": hex::encode(&r.enclave_key),
        "compute_node": Address(r.operator).to_string(),
        "measurement": hex::encode(&r.measurement),
        "tcb_status": tcp_attestation::TcbRank::from_rank(r.tcb_rank).map(|t| t.intel_name()).unwrap_or("unknown"),
        "tcb_evaluation_data_number": r.tcb_evaluation_data_number,
        "members": r.members.iter().map(|m| hex::encode(m)).collect::<Vec<_>>(),
    })
}

/// The state proofs of `keys` at the committed height (inclusion or absence).
/// The newest committed state whose header a client can verify at once: the latest, once its
/// finality signature φ is known, else the one before (φ_h comes with block h+1, so a proof at
/// the latest height would make the client wait a block interval for it).
/// Accounts and withdrawal records one `bridge` call proves.
const MAX_BRIDGE_PROOFS: usize = 64;

fn finalized(handle: &NodeHandle) -> Result<std::sync::Arc<crate::node::CommittedState>, RpcError> {
    let committed = handle.committed_state.borrow().clone();
    if handle.store.finality(committed.height)?.is_some() {
        return Ok(committed);
    }
    Ok(match &committed.previous {
        Some((height, state)) if handle.store.finality(*height)?.is_some() => {
            std::sync::Arc::new(crate::node::CommittedState { height: *height, state: state.clone(), previous: None })
        }
        _ => committed,
    })
}

fn proofs_json(committed: &crate::node::CommittedState, keys: &[[u8; 32]]) -> Vec<Value> {
    keys.iter()
        .map(|key| {
            let (root, proof) = committed.state.prove_committed(key);
            crate::proof::proof_to_json(committed.height.0, &root, &proof)
        })
        .collect()
}

fn header_json(handle: &NodeHandle, height: Height) -> Result<Value, RpcError> {
    let Some(bytes) = handle.store.block(height)? else { return Ok(Value::Null) };
    let (header, body) = Header::decode_prefix(&bytes).map_err(|e| RpcError::new(INTERNAL_ERROR, format!("stored block: {e}")))?;
    let encoding = &bytes[..bytes.len() - body.len()];
    let finality = match handle.store.finality(height)? {
        Some(stored) => {
            let f = tcp_beacon::Finality::from_bytes(&stored).map_err(|e| RpcError::new(INTERNAL_ERROR, format!("stored φ: {e}")))?;
            json!({"round": f.round.0, "signature": hex::encode(&f.signature.to_bytes())})
        }
        None => Value::Null,
    };
    Ok(json!({
        "height": header.height.0,
        "id": header.id().to_hex(),
        "encoding": hex::encode(encoding),
        "parent": header.parent.to_hex(),
        "round": header.round.0,
        "proposer": header.proposer.0,
        "timestamp_ms": header.timestamp_ms,
        "state_root": header.state_root.to_hex(),
        "tx_root": header.roots.transactions.to_hex(),
        "last_commit_root": header.roots.last_commit.to_hex(),
        "logs_root": header.roots.logs.to_hex(),
        "finality": finality,
    }))
}

fn block_json(handle: &NodeHandle, height: Height, full: bool) -> Result<Value, RpcError> {
    let Some(bytes) = handle.store.block(height)? else { return Ok(Value::Null) };
    let block = Block::decode(&bytes, MAX_BLOCK_BYTES).map_err(|e| RpcError::new(INTERNAL_ERROR, format!("stored block: {e}")))?;
    let h = &block.header;
    let transactions: Vec<Value> = block
        .transactions
        .iter()
        .map(|t| if full { tx_body_json(t) } else { Value::String(t.hash().to_hex()) })
        .collect();
    Ok(json!({
        "height": h.height.0,
        "id": block.id().to_hex(),
        "parent": h.parent.to_hex(),
        "round": h.round.0,
        "proposer": h.proposer.0,
        "timestamp_ms": h.timestamp_ms,
        "tx_root": h.roots.transactions.to_hex(),
        "last_commit_root": h.roots.last_commit.to_hex(),
        "logs_root": h.roots.logs.to_hex(),
        "state_root": h.state_root.to_hex(),
        "previous_beacon": h.previous_signature.map(|s| hex::encode(&s.to_bytes())),
        "previous_finality": h.previous_finality.map(|f| json!({"round": f.round.0, "signature": hex::encode(&f.signature.to_bytes())})),
        "dkg_logs": block.logs.len(),
        // Whose precommits for h-1 the block carries (indices in h-1's set), each with a beacon
        // partial every validator checked.
        "last_commit": block.last_commit.as_ref().map(|c| json!({
            "round": c.round.0,
            "signers": c.precommits.iter().map(|p| p.vote.validator.0).collect::<Vec<_>>(),
        })),
        "transactions": transactions,
    }))
}

fn validator_json(v: &tcp_state::Validator) -> Value {
    json!({
        "operator": v.operator.to_string(),
        "consensus_key": crate::genesis::encode_ed25519_public(&v.consensus_key),
        "bls_key": hex::encode(&v.bls_key),
        "p2p_address": v.p2p,
        "bonded": v.bonded.to_string(),
        "status": v.status,
        "jailed_until": v.jailed_until,
        "rewards": v.rewards.to_string(),
        "slashed": v.slashed.to_string(),
        "record": v.record,
    })
}

fn tx_body_json(t: &SignedTransaction) -> Value {
    let body = &t.tx;
    let sender = t.clone().verify(&body.chain_id).map(|v| v.sender().to_string()).ok();
    let mut v = json!({
        "hash": t.hash().to_hex(),
        "from": sender,
        "nonce": body.nonce,
        "gas_price": body.gas_price,
        "gas_limit": body.gas_limit,
        "chain_id": body.chain_id.as_str(),
    });
    match &body.action {
        tcp_state::Action::Transfer { to, amount } => {
            v["type"] = json!("transfer");
            v["to"] = json!(to.to_string());
            v["amount"] = json!(amount.to_string());
        }
        tcp_state::Action::Bond { consensus_key, bls_key, p2p, amount, .. } => {
            v["type"] = json!("bond");
            v["consensus_key"] = json!(crate::genesis::encode_ed25519_public(consensus_key));
            v["bls_key"] = json!(hex::encode(bls_key));
            v["p2p_address"] = json!(p2p);
            v["amount"] = json!(amount.to_string());
        }
        tcp_state::Action::Unbond { amount } => {
            v["type"] = json!("unbond");
            v["amount"] = json!(amount.to_string());
        }
        tcp_state::Action::Unjail => v["type"] = json!("unjail"),
        tcp_state::Action::SubmitEvidence { evidence } => {
            v["type"] = json!("submit_evidence");
            v["evidence"] = json!(hex::encode(evidence));
        }
        tcp_state::Action::RegisterCompute { endpoint, amount } => {
            v["type"] = json!("register_compute");
            v["endpoint"] = json!(endpoint);
            v["amount"] = json!(amount.to_string());
        }
        tcp_state::Action::UnbondCompute { amount } => {
            v["type"] = json!("unbond_compute");
            v["amount"] = json!(amount.to_string());
        }
        tcp_state::Action::RegisterEnclave { freshness_height, signing_key, x25519_key, quote } => {
            v["type"] = json!("register_enclave");
            v["freshness_height"] = json!(freshness_height);
            v["signing_key"] = json!(hex::encode(signing_key));
            v["x25519_key"] = json!(hex::encode(x25519_key));
            v["quote"] = json!(hex::encode(quote));
        }
        tcp_state::Action::PostCollateral { collateral, witness } => {
            v["type"] = json!("post_collateral");
            v["collateral"] = json!(hex::encode(collateral));
            v["witness"] = json!(hex::encode(witness));
        }
        tcp_state::Action::Compute { outcome, .. } => {
            v["type"] = json!("compute");
            for (key, value) in compute_outcome_json(outcome) {
                v[key] = value;
            }
        }
        tcp_state::Action::RotateKey { cid } => {
            v["type"] = json!("rotate_key");
            v["cid"] = json!(hex::encode(cid));
        }
        tcp_state::Action::ComputeFault { first, second, .. } => {
            v["type"] = json!("compute_fault");
            v["first"] = Value::Object(compute_outcome_json(first).into_iter().map(|(k, x)| (k.to_string(), x)).collect());
            v["second"] = Value::Object(compute_outcome_json(second).into_iter().map(|(k, x)| (k.to_string(), x)).collect());
        }
        tcp_state::Action::BridgeTransfer { to, amount } => {
            v["type"] = json!("bridge_transfer");
            v["to"] = json!(to.to_string());
            v["amount"] = json!(amount.to_string());
        }
        tcp_state::Action::Withdraw { recipient, amount } => {
            v["type"] = json!("withdraw");
            v["recipient"] = json!(format!("0x{}", hex::encode(recipient)));
            v["amount"] = json!(amount.to_string());
        }
    }
    v
}

/// A compute transaction's public part: hashes, ciphertexts, the fee and who is paid. (The code
/// of a deploy is public too, but large: its hash and size here, the bytes by `contract_code`.)
pub fn compute_outcome_json(outcome: &tcp_state::ComputeOutcome) -> serde_json::Map<String, Value> {
    let request = &outcome.request.request;
    let mut v = serde_json::Map::new();
    let kind = match &request.call {
        tcp_state::Call::Deploy { code_hash } => {
            v.insert("code_hash".into(), json!(hex::encode(code_hash)));
            v.insert("code_bytes".into(), json!(outcome.code.len()));
            "deploy"
        }
        tcp_state::Call::Execute { .. } => "execute",
    };
    v.insert("kind".into(), json!(kind));
    v.insert("request_id".into(), json!(hex::encode(&request.id())));
    v.insert("client".into(), json!(outcome.request.client().ok().map(|a| a.to_string())));
    v.insert("cid".into(), json!(hex::encode(&outcome.cid)));
    v.insert("enclave".into(), json!(hex::encode(&outcome.enclave)));
    v.insert("generation".into(), json!(outcome.generation));
    v.insert("public_key".into(), json!(hex::encode(&outcome.public_key)));
    v.insert("pre_state_hash".into(), json!(hex::encode(&outcome.pre_state_hash)));
    v.insert(
        "state_hash".into(),
        json!(match outcome.status {
            tcp_state::CallStatus::Ok => Some(hex::encode(&tcp_state::contracts::state_hash(&outcome.state))),
            tcp_state::CallStatus::Failed => None,
        }),
    );
    v.insert("call_status".into(), json!(match outcome.status {
        tcp_state::CallStatus::Ok => "ok",
        tcp_state::CallStatus::Failed => "failed",
    }));
    v.insert("result".into(), json!(hex::encode(&outcome.result)));
    v.insert("result_hash".into(), json!(hex::encode(&outcome.result_hash)));
    v.insert("computed".into(), json!(hex::encode(&outcome.computed)));
    v.insert("fuel_used".into(), json!(outcome.fuel_used));
    v.insert("fee".into(), json!(outcome.fee.to_string()));
    v.insert("max_fee".into(), json!(request.max_fee.to_string()));
    let uses: Vec<Value> = outcome
        .data
        .iter()
        .map(|u| json!({"hash": hex::encode(&u.terms.hash), "owner": u.terms.owner.to_string(), "price": u.terms.price.to_string()}))
        .collect();
    v.insert("data".into(), json!(uses));
    v
}

fn transaction_json(handle: &NodeHandle, hash: &Digest) -> Result<Value, RpcError> {
    let Some(record) = handle.store.transaction(hash)? else { return Ok(Value::Null) };
    let Some(bytes) = handle.store.block(record.height)? else { return Ok(Value::Null) };
    let block = Block::decode(&bytes, MAX_BLOCK_BYTES).map_err(|e| RpcError::new(INTERNAL_ERROR, format!("stored block: {e}")))?;
    let Some(tx) = block.transactions.get(record.index as usize) else { return Ok(Value::Null) };
    let mut v = tx_body_json(tx);
    v["block_height"] = json!(record.height.0);
    v["index"] = json!(record.index);
    Ok(v)
}

fn receipt_json(handle: &NodeHandle, hash: &Digest) -> Result<Value, RpcError> {
    Ok(match handle.store.transaction(hash)? {
        Some(r) => {
            let mut receipt = json!({
                "tx_hash": hash.to_hex(),
                "status": "success",
                "block_height": r.height.0,
                "index": r.index,
                "gas_used": r.gas_used,
                "fee": r.fee.to_string(),
            });
            // A compute transaction's receipt: the call's status, its fee and fuel, the result's
            // hash and ciphertext (all public; only the client opens the result).
            if let Some(bytes) = handle.store.block(r.height)?
                && let Ok(block) = Block::decode(&bytes, MAX_BLOCK_BYTES)
                && let Some(tx) = block.transactions.get(r.index as usize)
                && let tcp_state::Action::Compute { outcome, .. } = &tx.tx.action
            {
                receipt["compute"] = Value::Object(compute_outcome_json(outcome));
            }
            receipt
        }
        // Accepted, then dropped before any block included it: say why.
        None => match handle.dropped.lock().unwrap_or_else(|e| e.into_inner()).reason(hash) {
            Some(reason) => json!({"tx_hash": hash.to_hex(), "status": "dropped", "reason": reason, "block_height": null}),
            None => Value::Null,
        },
    })
}

async fn send_transaction(handle: &NodeHandle, hex_tx: &str) -> Result<Value, RpcError> {
    let bytes = hex::decode(hex_tx).map_err(|e| RpcError::params(format!("signed transaction: {e}")))?;
    let tx = SignedTransaction::decode(&bytes).map_err(|e| RpcError::params(format!("signed transaction: {e}")))?;
    let verified = tx.verify(&handle.spec.chain_id).map_err(|e| RpcError::new(TRANSACTION_REJECTED, e.to_string()))?;
    let (reply, answer) = oneshot::channel();
    handle
        .requests
        .send(Request::Submit { tx: verified, reply })
        .await
        .map_err(|_| RpcError::new(NODE_UNAVAILABLE, "the node is shutting down"))?;
    match answer.await {
        Ok(Ok(hash)) => Ok(Value::String(hash.to_hex())),
        Ok(Err(e @ MempoolError::Full { .. })) => Err(RpcError::new(MEMPOOL_FULL, e.to_string())),
        Ok(Err(e)) => Err(RpcError::new(TRANSACTION_REJECTED, e.to_string())),
        Err(_) => Err(RpcError::new(NODE_UNAVAILABLE, "the node is shutting down")),
    }
}

// ---------------------------------------------------------------------------------- WebSocket

async fn ws_upgrade(State(handle): State<NodeHandle>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_REQUEST_BYTES).on_upgrade(move |socket| ws_session(handle, socket))
}

enum Subscription {
    NewHeads,
    Receipt(Digest),
}

async fn ws_session(handle: NodeHandle, mut socket: WebSocket) {
    let mut heads = handle.heads.subscribe();
    let mut subscriptions: HashMap<u64, Subscription> = HashMap::new();
    let mut next_id = 1u64;
    loop {
        tokio::select! {
            message = socket.recv() => {
                let Some(Ok(message)) = message else { return };
                let text = match message {
                    Message::Text(t) => t.to_string(),
                    Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                    Message::Close(_) => return,
                    _ => continue,
                };
                for reply in ws_call(&handle, text.as_bytes(), &mut subscriptions, &mut next_id).await {
                    if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                        return;
                    }
                }
            }
            head = heads.recv() => {
                let head = match head {
                    Ok(h) => h,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                };
                for note in notifications(&handle, &head, &mut subscriptions) {
                    if socket.send(Message::Text(note.to_string().into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn notification(id: u64, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": "subscription", "params": {"subscription": id, "result": result}})
}

fn notifications(handle: &NodeHandle, head: &CommittedHead, subscriptions: &mut HashMap<u64, Subscription>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut done = Vec::new();
    for (id, sub) in subscriptions.iter() {
        match sub {
            Subscription::NewHeads => out.push(notification(
                *id,
                json!({"height": head.height.0, "id": head.id.to_hex(), "timestamp_ms": head.timestamp_ms, "transactions": head.transactions.len()}),
            )),
            Subscription::Receipt(hash) if head.transactions.contains(hash) => {
                if let Ok(receipt) = receipt_json(handle, hash) {
                    out.push(notification(*id, receipt));
                    done.push(*id);
                }
            }
            Subscription::Receipt(_) => {}
        }
    }
    for id in done {
        subscriptions.remove(&id);
    }
    out
}

/// The messages to send back: the answer, and for a receipt already committed its notification.
async fn ws_call(handle: &NodeHandle, bytes: &[u8], subscriptions: &mut HashMap<u64, Subscription>, next_id: &mut u64) -> Vec<Value> {
    // Subscriptions are handled here; everything else as over HTTP.
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return vec![error_object(Value::Null, RpcError::new(PARSE_ERROR, format!("not JSON: {e}")))],
    };
    let method = value.get("method").and_then(Value::as_str).unwrap_or_default().to_string();
    if method != "subscribe" && method != "unsubscribe" {
        return handle_payload(handle, bytes).await.into_iter().collect();
    }
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    let params = value.get("params").and_then(Value::as_array).cloned().unwrap_or_default();
    let result = if method == "unsubscribe" {
        match params.first().and_then(Value::as_u64) {
            Some(sub) => Ok(Value::Bool(subscriptions.remove(&sub).is_some())),
            None => Err(RpcError::params("parameter 0 must be a subscription id")),
        }
    } else if subscriptions.len() >= MAX_SUBSCRIPTIONS {
        Err(RpcError::new(INVALID_REQUEST, format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection")))
    } else {
        match params.first().and_then(Value::as_str) {
            Some("newHeads") => {
                let sub = *next_id;
                *next_id += 1;
                subscriptions.insert(sub, Subscription::NewHeads);
                Ok(json!(sub))
            }
            Some("receipt") => match param_digest(&params, 1, "transaction hash") {
                Ok(hash) => {
                    let sub = *next_id;
                    *next_id += 1;
                    // Already committed: answer at once, then the subscription is done.
                    if let Ok(receipt @ Value::Object(_)) = receipt_json(handle, &hash) {
                        let reply = json!({"jsonrpc": "2.0", "id": id, "result": sub});
                        return vec![reply, notification(sub, receipt)];
                    }
                    subscriptions.insert(sub, Subscription::Receipt(hash));
                    Ok(json!(sub))
                }
                Err(e) => Err(e),
            },
            _ => Err(RpcError::params("subscribe to [\"newHeads\"] or [\"receipt\", \"<tx hash>\"]")),
        }
    };
    vec![match result {
        Ok(v) => json!({"jsonrpc": "2.0", "id": id, "result": v}),
        Err(e) => error_object(id, e),
    }]
}
