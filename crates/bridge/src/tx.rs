//! Root-chain transactions signed with a TCP account key (one secp256k1 key on both chains):
//! legacy EIP-155 transactions, which every Ethereum node and anvil take. Encoded to send with
//! `eth_sendRawTransaction`, and decoded with the sender recovered, for the devnet's embedded
//! root chain that serves the same call.

use crate::BridgeError;
use alloy_rlp::{Decodable, Encodable, Header};
use alloy_sol_types::private::U256;
use tcp_state::{AccountKey, Address, RecoverableSignature, keccak256};

/// The largest raw transaction taken (a checkpoint with a long proof is a few kilobytes).
pub const MAX_RAW_TX_BYTES: usize = 128 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyTx {
    pub chain_id: u64,
    pub nonce: u64,
    pub gas_price: u128,
    pub gas_limit: u64,
    /// `None` creates a contract.
    pub to: Option<[u8; 20]>,
    pub value: u128,
    pub data: Vec<u8>,
}

fn encode_list(items: &[&dyn Encodable]) -> Vec<u8> {
    let payload_length: usize = items.iter().map(|i| i.length()).sum();
    let mut out = Vec::with_capacity(payload_length + 9);
    Header { list: true, payload_length }.encode(&mut out);
    for item in items {
        item.encode(&mut out);
    }
    out
}

fn to_field(to: &Option<[u8; 20]>) -> &[u8] {
    to.as_ref().map_or(&[], |t| &t[..])
}

impl LegacyTx {
    /// keccak256 of rlp([nonce, gasPrice, gas, to, value, data, chainId, 0, 0]) (EIP-155).
    pub fn signing_hash(&self) -> [u8; 32] {
        let data: &[u8] = &self.data;
        let to = to_field(&self.to);
        keccak256(&[&encode_list(&[&self.nonce, &self.gas_price, &self.gas_limit, &to, &self.value, &data, &self.chain_id, &0u8, &0u8])])
    }

    /// The signed transaction's bytes, for `eth_sendRawTransaction`.
    pub fn sign(&self, key: &AccountKey) -> Vec<u8> {
        let signature = key.sign_digest(&self.signing_hash());
        let v = self.chain_id.saturating_mul(2).saturating_add(35 + u64::from(signature.0[64]));
        let r = U256::from_be_slice(&signature.0[..32]);
        let s = U256::from_be_slice(&signature.0[32..64]);
        let data: &[u8] = &self.data;
        let to = to_field(&self.to);
        encode_list(&[&self.nonce, &self.gas_price, &self.gas_limit, &to, &self.value, &data, &v, &r, &s])
    }

    /// Decode a signed legacy transaction of chain `chain_id` and recover its sender. Refuses
    /// other chains, pre-EIP-155 signatures, high-S signatures and trailing bytes.
    pub fn decode_signed(raw: &[u8], chain_id: u64) -> Result<(LegacyTx, Address), BridgeError> {
        let bad = |why: &str| BridgeError::Chain(format!("raw transaction: {why}"));
        if raw.len() > MAX_RAW_TX_BYTES {
            return Err(bad("too large"));
        }
        let mut buf = raw;
        let header = Header::decode(&mut buf).map_err(|e| bad(&e.to_string()))?;
        if !header.list || header.payload_length != buf.len() {
            return Err(bad("not one RLP list (typed transactions are not taken: send a legacy one)"));
        }
        let nonce = u64::decode(&mut buf).map_err(|e| bad(&e.to_string()))?;
        let gas_price = u128::decode(&mut buf).map_err(|e| bad(&e.to_string()))?;
        let gas_limit = u64::decode(&mut buf).map_err(|e| bad(&e.to_string()))?;
        let to_bytes = alloy_rlp::Bytes::decode(&mut buf).map_err(|e| bad(&e.to_string()))?;
        let to = match to_bytes.len() {
            0 => None,
            20 => Some(<[u8; 20]>::try_from(&to_bytes[..]).expect("20 bytes")),
            _ => return Err(bad("`to` is not an address")),
        };
        let value = u128::decode(&mut buf).map_err(|e| bad(&e.to_string()))?;
        let data = alloy_rlp::Bytes::decode(&mut buf).map_err(|e| bad(&e.to_string()))?.to_vec();
        let v = u64::decode(&mut buf).map_err(|e| bad(&e.to_string()))?;
        let r = U256::decode(&mut buf).map_err(|e| bad(&e.to_string()))?;
        let s = U256::decode(&mut buf).map_err(|e| bad(&e.to_string()))?;
        if !buf.is_empty() {
            return Err(bad("trailing bytes"));
        }
        let recovery = v.checked_sub(chain_id.saturating_mul(2).saturating_add(35)).filter(|id| *id <= 1).ok_or_else(|| bad("not signed for this chain (EIP-155)"))?;
        let tx = LegacyTx { chain_id, nonce, gas_price, gas_limit, to, value, data };
        let mut signature = [0u8; 65];
        signature[..32].copy_from_slice(&r.to_be_bytes::<32>());
        signature[32..64].copy_from_slice(&s.to_be_bytes::<32>());
        signature[64] = recovery as u8;
        let sender = tcp_state::recover_address(&tx.signing_hash(), &RecoverableSignature(signature)).map_err(|e| bad(&e.to_string()))?;
        Ok((tx, sender))
    }

    /// The transaction's hash as Ethereum names it: keccak256 of the raw bytes.
    pub fn hash(raw: &[u8]) -> [u8; 32] {
        keccak256(&[raw])
    }
}

/// Where `deployer`'s contract creation with `nonce` puts the contract:
/// keccak256(rlp([deployer, nonce]))[12..].
pub fn create_address(deployer: [u8; 20], nonce: u64) -> [u8; 20] {
    let deployer: &[u8] = &deployer;
    keccak256(&[&encode_list(&[&deployer, &nonce])])[12..].try_into().expect("20 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx() -> LegacyTx {
        LegacyTx { chain_id: 31337, nonce: 7, gas_price: 2_000_000_000, gas_limit: 300_000, to: Some([0x42; 20]), value: 10u128.pow(18), data: vec![1, 2, 3] }
    }

    #[test]
    fn a_signed_transaction_decodes_to_itself_and_its_signer() {
        let key = AccountKey::from_bytes(&[9; 32]).unwrap();
        let raw = tx().sign(&key);
        assert_eq!(LegacyTx::decode_signed(&raw, 31337).unwrap(), (tx(), key.address()));
        let create = LegacyTx { to: None, ..tx() };
        assert_eq!(LegacyTx::decode_signed(&create.sign(&key), 31337).unwrap().0, create);
        // Another chain, trailing bytes, a truncated one, a flipped bit: refused or another signer.
        assert!(LegacyTx::decode_signed(&raw, 1).is_err());
        let mut trailing = raw.clone();
        trailing.push(0);
        assert!(LegacyTx::decode_signed(&trailing, 31337).is_err());
        assert!(LegacyTx::decode_signed(&raw[..raw.len() - 1], 31337).is_err());
        let mut flipped = raw.clone();
        let at = raw.len() - 40;
        flipped[at] ^= 1;
        assert_ne!(LegacyTx::decode_signed(&flipped, 31337).ok().map(|(_, a)| a), Some(key.address()));
    }

    /// The address a well-known creation gives (sender 0x6ac7…dbf0, nonces 0 and 1; figures
    /// widely quoted, e.g. on Ethereum Stack Exchange, "How is the address of an Ethereum
    /// contract computed?").
    #[test]
    fn contract_addresses_follow_the_sender_and_nonce() {
        let sender: [u8; 20] = tcp_types::hex::decode("6ac7ea33f8831ea9dcc53393aaa88b25a785dbf0").unwrap().try_into().unwrap();
        assert_eq!(tcp_types::hex::encode(&create_address(sender, 0)), "cd234a471b72ba2f1ccf0a70fcaba648a5eecd8d");
        assert_eq!(tcp_types::hex::encode(&create_address(sender, 1)), "343c43a37d37dff08ae8c4a11544c718abb4fcf8");
    }

    /// A transaction from a public source: the EIP-155 example (nonce 9, 20 gwei, 21000 gas,
    /// to 0x3535…35, 1 ether, chain 1, key 0x4646…46), whose signing hash the EIP gives.
    #[test]
    fn the_eip_155_example_has_its_published_signing_hash() {
        let example = LegacyTx { chain_id: 1, nonce: 9, gas_price: 20_000_000_000, gas_limit: 21_000, to: Some([0x35; 20]), value: 10u128.pow(18), data: Vec::new() };
        assert_eq!(tcp_types::hex::encode(&example.signing_hash()), "daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53");
        let key = AccountKey::from_bytes(&[0x46; 32]).unwrap();
        let raw = example.sign(&key);
        assert_eq!(
            tcp_types::hex::encode(&raw),
            "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"
        );
    }
}
