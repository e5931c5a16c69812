//! State proofs at the edge: the JSON form the `state_proof` RPC returns and `tcpchain query
//! proof --verify` reads back (docs/state-proofs.md). The verifier is
//! [`tcp_state::smt::StateProof::verify`].

use serde_json::{Value, json};
use tcp_state::accounts::Account;
use tcp_state::smt::{Hash, StateProof, Terminal};
use tcp_types::hex;

pub fn proof_to_json(height: u64, root: &Hash, proof: &StateProof) -> Value {
    let (kind, value, other) = match &proof.terminal {
        Terminal::Value(v) => ("inclusion", Some(hex::encode(v)), Value::Null),
        Terminal::OtherLeaf { key, value_hash } => {
            ("other_leaf", None, json!({"key": hex::encode(key), "value_hash": hex::encode(value_hash)}))
        }
        Terminal::Empty => ("empty", None, Value::Null),
    };
    // The value decoded, when the key says what it is (an account or a validator).
    let account = match &proof.terminal {
        Terminal::Value(v) => Account::decode(v)
            .filter(|(address, _)| tcp_state::accounts::account_key(address) == proof.key)
            .map(|(address, a)| json!({"address": address.to_string(), "balance": a.balance.to_string(), "nonce": a.nonce})),
        _ => None,
    };
    let validator = match &proof.terminal {
        Terminal::Value(v) => tcp_state::Validator::decode(v)
            .filter(|x| tcp_state::staking::validator_key(&x.operator) == proof.key)
            .map(|x| json!({"operator": x.operator.to_string(), "bonded": x.bonded.to_string(), "status": x.status, "p2p_address": x.p2p})),
        _ => None,
    };
    json!({
        "height": height,
        "state_root": hex::encode(root),
        "key": hex::encode(&proof.key),
        "proof_type": kind,
        "value": value,
        "account": account,
        "validator": validator,
        "other_leaf": other,
        "siblings": proof.siblings.iter().map(|s| hex::encode(s)).collect::<Vec<_>>(),
    })
}

fn hash_field(v: &Value, name: &str) -> Result<Hash, String> {
    let text = v[name].as_str().ok_or_else(|| format!("{name}: missing"))?;
    let bytes = hex::decode(text).map_err(|e| format!("{name}: {e}"))?;
    bytes.try_into().map_err(|_| format!("{name}: not 32 bytes"))
}

/// The proof, and the root and height the server claims it is for.
pub fn proof_from_json(v: &Value) -> Result<(u64, Hash, StateProof), String> {
    let height = v["height"].as_u64().ok_or("height: missing")?;
    let root = hash_field(v, "state_root")?;
    let key = hash_field(v, "key")?;
    let siblings_json = v["siblings"].as_array().ok_or("siblings: missing")?;
    if siblings_json.len() > tcp_state::smt::MAX_PROOF_DEPTH {
        return Err(format!("{} siblings; a path has at most 256", siblings_json.len()));
    }
    let mut siblings = Vec::with_capacity(siblings_json.len());
    for (i, s) in siblings_json.iter().enumerate() {
        let bytes = hex::decode(s.as_str().ok_or(format!("sibling {i}: not a string"))?).map_err(|e| format!("sibling {i}: {e}"))?;
        siblings.push(bytes.try_into().map_err(|_| format!("sibling {i}: not 32 bytes"))?);
    }
    let terminal = match v["proof_type"].as_str() {
        Some("inclusion") => Terminal::Value(hex::decode(v["value"].as_str().ok_or("value: missing")?).map_err(|e| format!("value: {e}"))?),
        Some("other_leaf") => Terminal::OtherLeaf { key: hash_field(&v["other_leaf"], "key")?, value_hash: hash_field(&v["other_leaf"], "value_hash")? },
        Some("empty") => Terminal::Empty,
        other => return Err(format!("proof_type {other:?} is not inclusion, other_leaf or empty")),
    };
    Ok((height, root, StateProof { key, siblings, terminal }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tcp_state::{AccountState, Address};

    #[test]
    fn json_round_trips_and_verifies() {
        let accounts: Vec<(Address, u128)> = (0..50u8).map(|i| (Address([i; 20]), 1000 + i as u128)).collect();
        let config = tcp_state::StateConfig { chain_id: tcp_types::ChainId::new("proof-test").unwrap(), min_gas_price: 1, staking: Default::default(), enclaves: None };
        let state = AccountState::genesis(config, &accounts).unwrap();
        for address in [Address([7; 20]), Address([0xaa; 20])] {
            let (root, proof) = state.prove_committed(&tcp_state::accounts::account_key(&address));
            let json = proof_to_json(9, &root, &proof);
            let (height, back_root, back) = proof_from_json(&json).unwrap();
            assert_eq!((height, back_root, &back), (9, root, &proof));
            let value = back.verify(&root).unwrap();
            assert_eq!(value.is_some(), address == Address([7; 20]));
        }
        let mut bad = proof_to_json(1, &[0; 32], &state.prove_committed(&[1; 32]).1);
        bad["proof_type"] = json!("maybe");
        assert!(proof_from_json(&bad).is_err());
    }
}
