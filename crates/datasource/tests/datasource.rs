//! The data source's store and service (issue 20, item 3): an owner's upload kept across
//! restarts; what an upload and a fetch must carry, each refusal with its own error; a damaged
//! store refuses to start; only compute nodes in service fetch, with a fresh signature.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use tcp_datasource::{BlobStore, ComputeRegistry, StoreError, StoreLimits};
use tcp_state::{AccountKey, Address, DataTerms};
use tcp_types::ChainId;

fn chain() -> ChainId {
    ChainId::new("datasource-test").unwrap()
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(tag: &str) -> Dir {
    let path = std::env::temp_dir().join(format!("tcp-datasource-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    Dir(path)
}

fn owner() -> AccountKey {
    AccountKey::from_bytes(&[4; 32]).unwrap()
}

/// Terms for `blob`, signed by `owner`.
fn terms(owner: &AccountKey, blob: &[u8], price: u128) -> Vec<u8> {
    DataTerms { chain_id: chain(), owner: owner.address(), hash: tcp_crypto::sha256(&[blob]).0, price, contracts: vec![[1; 32]] }.sign(owner).encode()
}

const LIMITS: StoreLimits = StoreLimits { max_blob_bytes: 1_000, max_total_bytes: 2_500 };

#[test]
fn an_upload_is_kept_across_restarts_and_each_bad_upload_is_refused_with_its_reason() {
    let d = dir("store");
    let mut store = BlobStore::open(&d.0, chain(), LIMITS).unwrap();
    let blob = b"sealed records".to_vec();
    let hash = store.put(&terms(&owner(), &blob, 10), &blob).unwrap();
    assert_eq!(store.put(&terms(&owner(), &blob, 10), &blob), Ok(hash), "a retried upload");
    assert_eq!(store.put(&terms(&owner(), &blob, 11), &blob), Err(StoreError::Conflict(tcp_types::hex::encode(&hash))));
    // Too large, for another chain, not the owner's signature, another blob's hash.
    assert_eq!(store.put(&terms(&owner(), &[0; 1_001], 1), &[0; 1_001]), Err(StoreError::TooLarge { len: 1_001, limit: 1_000 }));
    let other_chain = DataTerms { chain_id: ChainId::new("other").unwrap(), owner: owner().address(), hash: tcp_crypto::sha256(&[b"x"]).0, price: 1, contracts: vec![[1; 32]] };
    assert_eq!(store.put(&other_chain.sign(&owner()).encode(), b"x"), Err(StoreError::WrongChain("other".into())));
    let mut forged = tcp_state::DataUse::decode(&terms(&owner(), b"y", 1)).unwrap();
    forged.terms.owner = Address([9; 20]);
    assert_eq!(store.put(&forged.encode(), b"y"), Err(StoreError::NotTheOwners));
    assert!(matches!(store.put(&terms(&owner(), b"z", 1), b"not z"), Err(StoreError::HashMismatch { .. })));
    assert!(matches!(store.put(b"junk", b"z"), Err(StoreError::BadTerms(_))));
    // The store's total.
    store.put(&terms(&owner(), &[1; 1_000], 1), &[1; 1_000]).unwrap();
    store.put(&terms(&owner(), &[2; 1_000], 1), &[2; 1_000]).unwrap();
    assert!(matches!(store.put(&terms(&owner(), &[3; 600], 1), &[3; 600]), Err(StoreError::Full { .. })));
    drop(store);

    let store = BlobStore::open(&d.0, chain(), LIMITS).unwrap();
    assert_eq!(store.len(), 3);
    assert_eq!(store.get(&hash).unwrap().1, blob);
    assert!(matches!(store.get(&[7; 32]), Err(StoreError::Unknown(_))));
}

#[test]
fn a_damaged_store_refuses_to_start_and_an_upload_cut_short_is_dropped() {
    let d = dir("damaged");
    let mut store = BlobStore::open(&d.0, chain(), LIMITS).unwrap();
    let hash = store.put(&terms(&owner(), b"blob", 1), b"blob").unwrap();
    drop(store);
    // A blob written without its terms (a crash before the upload was acknowledged).
    let orphan = tcp_crypto::sha256(&[b"orphan"]).0;
    std::fs::write(d.0.join(format!("{}.blob", tcp_types::hex::encode(&orphan))), b"orphan").unwrap();
    let store = BlobStore::open(&d.0, chain(), LIMITS).unwrap();
    assert_eq!(store.len(), 1);
    assert!(!d.0.join(format!("{}.blob", tcp_types::hex::encode(&orphan))).exists());
    drop(store);
    // A stored blob altered on disk: the store does not start (nor serve it, nor drop it).
    std::fs::write(d.0.join(format!("{}.blob", tcp_types::hex::encode(&hash))), b"bloB").unwrap();
    assert!(matches!(BlobStore::open(&d.0, chain(), LIMITS), Err(StoreError::Corrupt(..))));
}

struct Registry(Address);

impl ComputeRegistry for Registry {
    fn in_service(&self, operator: &Address) -> Result<bool, String> {
        Ok(*operator == self.0)
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn only_a_compute_node_in_service_fetches_a_blob_with_a_fresh_signature_of_its_own() {
    let d = dir("service");
    let compute = AccountKey::from_bytes(&[5; 32]).unwrap();
    let store = BlobStore::open(&d.0, chain(), LIMITS).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = tcp_datasource::router(store, chain(), LIMITS, Arc::new(Registry(compute.address())));
    runtime.spawn(async move { axum::serve(listener, app).await });

    let mut client = tcp_node::client::RpcClient::new(&url).unwrap();
    let blob = b"sealed".to_vec();
    let put = client.call("data_put", json!([tcp_types::hex::encode(&terms(&owner(), &blob, 3)), tcp_types::hex::encode(&blob)])).unwrap();
    let hash = put["hash"].as_str().unwrap().to_string();
    let terms_json = client.call("data_terms", json!([hash])).unwrap();
    assert_eq!((terms_json["owner"].as_str().unwrap(), terms_json["price"].as_str().unwrap()), (owner().address().to_string().as_str(), "3"));
    let too_big = client.call("data_put", json!([tcp_types::hex::encode(&terms(&owner(), &[0; 1_001], 1)), tcp_types::hex::encode(&[0u8; 1_001])]));
    assert!(too_big.unwrap_err().to_string().contains("more than this data source's limit of 1000"));
    let huge = client.call("data_put", json!(["00", "00".repeat(40_000)]));
    assert!(huge.unwrap_err().to_string().contains("blobs are limited to 1000 bytes"));

    let raw: [u8; 32] = tcp_types::hex::decode(&hash).unwrap().try_into().unwrap();
    let fetch = |key: &AccountKey, as_operator: Address, time: u64| {
        let signature = key.sign_digest(&tcp_state::contracts::data_fetch_digest(&chain(), &raw, time));
        tcp_node::client::RpcClient::new(&url).unwrap().call("data_get", json!([hash, as_operator.to_string(), time, tcp_types::hex::encode(&signature.0)]))
    };
    let got = fetch(&compute, compute.address(), now()).unwrap();
    assert_eq!(tcp_types::hex::decode(got["blob"].as_str().unwrap()).unwrap(), blob);
    // Not in service; a signature by someone else; an old signature (replayed).
    let other = AccountKey::from_bytes(&[6; 32]).unwrap();
    assert!(fetch(&other, other.address(), now()).unwrap_err().to_string().contains("not a compute node in service"));
    assert!(fetch(&other, compute.address(), now()).unwrap_err().to_string().contains("not signed by the operator"));
    assert!(fetch(&compute, compute.address(), now() - 600).unwrap_err().to_string().contains("from ours"));
}
