//! The data source (DESIGN §5.6, issue 20 item 3): a service of its own that keeps data owners'
//! encrypted blobs by content hash and serves them only to compute nodes in service.
//!
//! JSON-RPC over HTTP, as the node's RPC:
//! * `data_put [terms, blob]` (hex): an owner's upload. The terms (`tcp_state::DataUse`) are
//!   signed by the owner they name, for this chain, name the contracts the blob is for, its
//!   price per use and its hash; the blob is sealed to the contract by its owner
//!   (`tcp_enclave::compute::seal_to_contract`), so the data source never reads it. Bounded by
//!   the blob limit (a clear error past it) and the store's total.
//! * `data_terms [hash]`: a blob's public terms (owner, price, contracts, size).
//! * `data_get [hash, operator, time, signature]`: the blob and its terms, for a compute node:
//!   `signature` is its operator's over `tcp_state::contracts::data_fetch_digest` of the hash and
//!   `time` (within [`MAX_CLOCK_SKEW_SECS`] of ours), and the operator must be a compute node in
//!   service on the chain (asked of a node, remembered for a few seconds).
//! * `status`: the chain, how many blobs and bytes are kept, the limits.

pub mod store;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tcp_state::{Address, RecoverableSignature};
use tcp_types::ChainId;

pub use store::{BlobStore, StoreError, StoreLimits};

/// How far a fetch's time may be from the data source's clock.
pub const MAX_CLOCK_SKEW_SECS: u64 = 120;
/// How long the chain's answer on who is in service is reused.
const REGISTRY_TTL: Duration = Duration::from_secs(5);

/// Who may fetch: the chain's compute nodes in service.
pub trait ComputeRegistry: Send + Sync + 'static {
    fn in_service(&self, operator: &Address) -> Result<bool, String>;
}

/// The registry as a node's RPC (`compute_nodes`) shows it, remembered for a few seconds.
pub struct NodeRegistry {
    rpc: String,
    cache: Mutex<Option<(Instant, HashSet<Address>)>>,
}

impl NodeRegistry {
    pub fn new(rpc: String) -> NodeRegistry {
        NodeRegistry { rpc, cache: Mutex::new(None) }
    }
}

impl ComputeRegistry for NodeRegistry {
    fn in_service(&self, operator: &Address) -> Result<bool, String> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, set)) = cache.as_ref()
            && at.elapsed() < REGISTRY_TTL
        {
            return Ok(set.contains(operator));
        }
        let mut client = tcp_node::client::RpcClient::new(&self.rpc).map_err(|e| e.to_string())?;
        let nodes = client.call("compute_nodes", json!([])).map_err(|e| format!("asking the chain: {e}"))?;
        let set: HashSet<Address> = nodes["compute_nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["in_service"] == true)
            .filter_map(|n| n["operator"].as_str()?.parse().ok())
            .collect();
        let answer = set.contains(operator);
        *cache = Some((Instant::now(), set));
        Ok(answer)
    }
}

#[derive(Clone)]
struct Service {
    store: Arc<Mutex<BlobStore>>,
    chain: ChainId,
    limits: StoreLimits,
    registry: Arc<dyn ComputeRegistry>,
}

/// The data source's HTTP routes (`POST /` JSON-RPC, `GET /health`).
pub fn router(store: BlobStore, chain: ChainId, limits: StoreLimits, registry: Arc<dyn ComputeRegistry>) -> axum::Router {
    let service = Service { store: Arc::new(Mutex::new(store)), chain, limits, registry };
    axum::Router::new()
        .route("/", post(http_call))
        .route("/health", get(|| async { "ok" }))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(service)
}

/// Serve the data source on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// The largest request body: a hex blob at the limit, its terms and the envelope.
fn max_body(limits: &StoreLimits) -> usize {
    2 * limits.max_blob_bytes + 64 * 1024
}

const INVALID_PARAMS: i64 = -32602;
const REFUSED: i64 = -32000;
const UNAUTHORIZED: i64 = -32001;

struct Refusal(i64, String);

async fn http_call(State(service): State<Service>, body: Body) -> Response {
    let limit = max_body(&service.limits);
    let reply = |id: Value, result: Result<Value, Refusal>| {
        let body = match result {
            Ok(v) => json!({"jsonrpc": "2.0", "id": id, "result": v}),
            Err(Refusal(code, message)) => json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
        };
        ([(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    };
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            let message = format!("the request exceeds {limit} bytes: blobs are limited to {} bytes", service.limits.max_blob_bytes);
            return reply(Value::Null, Err(Refusal(REFUSED, message)));
        }
    };
    let call: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return reply(Value::Null, Err(Refusal(-32700, format!("not JSON: {e}")))),
    };
    let id = call.get("id").cloned().unwrap_or(Value::Null);
    let method = call.get("method").and_then(Value::as_str).unwrap_or_default().to_string();
    let params = call.get("params").and_then(Value::as_array).cloned().unwrap_or_default();
    let result = tokio::task::spawn_blocking(move || service.call(&method, &params))
        .await
        .unwrap_or_else(|_| Err(Refusal(REFUSED, "the call failed".into())));
    reply(id, result)
}

fn param<'a>(params: &'a [Value], i: usize, name: &str) -> Result<&'a str, Refusal> {
    params.get(i).and_then(Value::as_str).ok_or_else(|| Refusal(INVALID_PARAMS, format!("parameter {i}: {name} expected")))
}

fn hex_param(params: &[Value], i: usize, name: &str) -> Result<Vec<u8>, Refusal> {
    tcp_types::hex::decode(param(params, i, name)?).map_err(|e| Refusal(INVALID_PARAMS, format!("{name}: {e}")))
}

fn hash_param(params: &[Value], i: usize, name: &str) -> Result<[u8; 32], Refusal> {
    hex_param(params, i, name)?.try_into().map_err(|_| Refusal(INVALID_PARAMS, format!("{name}: 32 bytes of hex")))
}

fn refused(e: StoreError) -> Refusal {
    Refusal(REFUSED, e.to_string())
}

impl Service {
    fn call(&self, method: &str, params: &[Value]) -> Result<Value, Refusal> {
        let hex = tcp_types::hex::encode;
        match method {
            "data_put" => {
                let (terms, blob) = (hex_param(params, 0, "terms (hex)")?, hex_param(params, 1, "blob (hex)")?);
                let hash = self.store.lock().unwrap_or_else(|e| e.into_inner()).put(&terms, &blob).map_err(refused)?;
                tracing::info!(blob = %hex(&hash), bytes = blob.len(), "stored a blob");
                Ok(json!({"hash": hex(&hash)}))
            }
            "data_terms" => {
                let hash = hash_param(params, 0, "hash")?;
                let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
                let Some(terms) = store.terms(&hash) else { return Ok(Value::Null) };
                let used = tcp_state::DataUse::decode(terms).map_err(|e| Refusal(REFUSED, e.to_string()))?;
                Ok(json!({
                    "hash": hex(&hash),
                    "owner": used.terms.owner.to_string(),
                    "price": used.terms.price.to_string(),
                    "contracts": used.terms.contracts.iter().map(|c| hex(c)).collect::<Vec<_>>(),
                    "terms": hex(terms),
                }))
            }
            "data_get" => {
                let hash = hash_param(params, 0, "hash")?;
                let operator: Address = param(params, 1, "operator address")?.parse().map_err(|e| Refusal(INVALID_PARAMS, format!("operator: {e}")))?;
                let time = params.get(2).and_then(Value::as_u64).ok_or_else(|| Refusal(INVALID_PARAMS, "parameter 2: time (seconds) expected".into()))?;
                let signature: [u8; 65] =
                    hex_param(params, 3, "signature")?.try_into().map_err(|_| Refusal(INVALID_PARAMS, "signature: 65 bytes of hex".into()))?;
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                if time.abs_diff(now) > MAX_CLOCK_SKEW_SECS {
                    return Err(Refusal(UNAUTHORIZED, format!("the request's time is more than {MAX_CLOCK_SKEW_SECS} s from ours")));
                }
                let digest = tcp_state::contracts::data_fetch_digest(&self.chain, &hash, time);
                if tcp_state::recover_address(&digest, &RecoverableSignature(signature)).ok() != Some(operator) {
                    return Err(Refusal(UNAUTHORIZED, "the request is not signed by the operator it names".into()));
                }
                if !self.registry.in_service(&operator).map_err(|e| Refusal(REFUSED, e))? {
                    return Err(Refusal(UNAUTHORIZED, format!("{operator} is not a compute node in service on the chain")));
                }
                let (terms, blob) = self.store.lock().unwrap_or_else(|e| e.into_inner()).get(&hash).map_err(refused)?;
                tracing::info!(blob = %hex(&hash), %operator, "served a blob");
                Ok(json!({"hash": hex(&hash), "terms": hex(&terms), "blob": hex(&blob)}))
            }
            "status" => {
                let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
                Ok(json!({
                    "chain_id": self.chain.as_str(),
                    "blobs": store.len(),
                    "used_bytes": store.used_bytes(),
                    "max_blob_bytes": self.limits.max_blob_bytes,
                    "max_total_bytes": self.limits.max_total_bytes,
                }))
            }
            other => Err(Refusal(-32601, format!("unknown method {other:?}"))),
        }
    }
}
