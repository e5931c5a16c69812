//! Signed transactions. A transaction names its chain (replay protection), the sender's next
//! nonce, a gas price and limit, and an action. The sender signs keccak-256 of the namespace
//! `tcp/tx` and the canonical encoding; the sender is whoever the signature recovers to.
//! A transaction's id is SHA-256 of its signed encoding.

use crate::account::{Address, RecoverableSignature, SignatureError, keccak256, recover_address};
use bytes::{BufMut, Bytes};
use commonware_codec::{Buf, Copying, Error as CodecError, FixedSize, RangeCfg, Read, ReadExt, Write};
use tcp_crypto::{Ed25519PublicKey, Ed25519Signature, namespace, sha256};
use tcp_types::{ChainId, Digest};

/// The largest encoded signed transaction a node accepts (RPC, gossip, blocks): a deploy with
/// its code, state and result at their limits (every field is bounded on its own when
/// decoded; a collateral posting with its witness quote is the next largest).
pub const MAX_TRANSACTION_BYTES: usize = 192 * 1024;

/// An [`Action::Unbond`] amount meaning "everything bonded".
pub const UNBOND_ALL: u128 = u128::MAX;

/// The longest p2p address a validator may register ("host:port").
pub const MAX_P2P_ADDRESS_BYTES: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Move `amount` from the sender to `to`.
    Transfer { to: Address, amount: u128 },
    /// Lock `amount` of the sender's balance as a validator candidate's stake. Both keys sign
    /// the sender's address (ed25519 under `tcp/staking/bond`, BLS under `tcp/staking/bls`), so
    /// nobody bonds a key it does not hold; `p2p` is where the validator listens.
    Bond {
        consensus_key: Ed25519PublicKey,
        bls_key: [u8; 96],
        p2p: String,
        amount: u128,
        possession: Ed25519Signature,
        bls_possession: [u8; 48],
    },
    /// Start returning `amount` of the sender's stake (released after the unbonding period).
    /// [`UNBOND_ALL`] returns all of it as bonded when the transaction applies: rewards
    /// compound into the bond every block, so no amount read earlier can empty it.
    Unbond { amount: u128 },
    /// Leave jail once the jail period is over.
    Unjail,
    /// Equivocation evidence (`tcp_consensus::Evidence` encoding).
    SubmitEvidence { evidence: Vec<u8> },
    /// Lock `amount` as the sender's compute-node bond; `endpoint` (http:// or https://) is where
    /// its clients reach it.
    RegisterCompute { endpoint: String, amount: u128 },
    /// Start returning `amount` of the sender's compute bond (after the unbonding period).
    UnbondCompute { amount: u128 },
    /// Register an enclave of the sender's compute node: its registration quote binds
    /// `signing_key` and `x25519_key` to the chain and to the freshness value of
    /// `freshness_height` and the sender (`tcp_dkmp::registration_freshness`).
    RegisterEnclave { freshness_height: u64, signing_key: [u8; 32], x25519_key: [u8; 32], quote: Vec<u8> },
    /// Post attestation collateral (dcap-qvl JSON) for a platform, with a quote of that platform
    /// that verifies with it; kept if newer in every part than the chain's.
    PostCollateral { collateral: Vec<u8>, witness: Vec<u8> },
    /// A deploy or execution an enclave ran (`contracts::ComputeOutcome`), signed by the
    /// enclave's registered key; sent by that enclave's compute node.
    Compute { outcome: crate::contracts::ComputeOutcome, signature: [u8; 64] },
    /// Raise a contract's key generation (its owner, or the chain's governance account).
    RotateKey { cid: [u8; 32] },
    /// Evidence that a compute node's enclaves computed one request on one state two ways
    /// (`contracts::ComputeFault`); anyone may send it.
    ComputeFault { first: Box<crate::contracts::ComputeOutcome>, first_signature: [u8; 64], second: Box<crate::contracts::ComputeOutcome>, second_signature: [u8; 64] },
    /// Move `amount` wei of the sender's bridged ETH to `to` (`bridge::BridgeAccount`).
    BridgeTransfer { to: Address, amount: u128 },
    /// Burn `amount` wei of the sender's bridged ETH and write a withdrawal record that
    /// `recipient` exits on the root chain once a checkpoint covers it.
    Withdraw { recipient: [u8; 20], amount: u128 },
}

const ACTION_TRANSFER: u8 = 0;
const ACTION_BOND: u8 = 1;
const ACTION_UNBOND: u8 = 2;
const ACTION_UNJAIL: u8 = 3;
const ACTION_EVIDENCE: u8 = 4;
const ACTION_REGISTER_COMPUTE: u8 = 5;
const ACTION_UNBOND_COMPUTE: u8 = 6;
const ACTION_REGISTER_ENCLAVE: u8 = 7;
const ACTION_POST_COLLATERAL: u8 = 8;
const ACTION_COMPUTE: u8 = 9;
const ACTION_ROTATE_KEY: u8 = 10;
const ACTION_COMPUTE_FAULT: u8 = 11;
const ACTION_BRIDGE_TRANSFER: u8 = 12;
const ACTION_WITHDRAW: u8 = 13;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pub chain_id: ChainId,
    pub nonce: u64,
    pub gas_price: u64,
    pub gas_limit: u64,
    pub action: Action,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("transaction is {0} bytes, more than the limit of {MAX_TRANSACTION_BYTES}")]
    TooLarge(usize),
    #[error("malformed transaction: {0}")]
    Malformed(String),
}

impl Write for Transaction {
    fn write(&self, buf: &mut impl BufMut) {
        self.chain_id.write(buf);
        self.nonce.write(buf);
        self.gas_price.write(buf);
        self.gas_limit.write(buf);
        match &self.action {
            Action::Transfer { to, amount } => {
                ACTION_TRANSFER.write(buf);
                to.write(buf);
                amount.write(buf);
            }
            Action::Bond { consensus_key, bls_key, p2p, amount, possession, bls_possession } => {
                ACTION_BOND.write(buf);
                consensus_key.write(buf);
                buf.put_slice(bls_key);
                Bytes::copy_from_slice(p2p.as_bytes()).write(buf);
                amount.write(buf);
                possession.write(buf);
                buf.put_slice(bls_possession);
            }
            Action::Unbond { amount } => {
                ACTION_UNBOND.write(buf);
                amount.write(buf);
            }
            Action::Unjail => ACTION_UNJAIL.write(buf),
            Action::SubmitEvidence { evidence } => {
                ACTION_EVIDENCE.write(buf);
                Bytes::copy_from_slice(evidence).write(buf);
            }
            Action::RegisterCompute { endpoint, amount } => {
                ACTION_REGISTER_COMPUTE.write(buf);
                Bytes::copy_from_slice(endpoint.as_bytes()).write(buf);
                amount.write(buf);
            }
            Action::UnbondCompute { amount } => {
                ACTION_UNBOND_COMPUTE.write(buf);
                amount.write(buf);
            }
            Action::RegisterEnclave { freshness_height, signing_key, x25519_key, quote } => {
                ACTION_REGISTER_ENCLAVE.write(buf);
                freshness_height.write(buf);
                buf.put_slice(signing_key);
                buf.put_slice(x25519_key);
                Bytes::copy_from_slice(quote).write(buf);
            }
            Action::PostCollateral { collateral, witness } => {
                ACTION_POST_COLLATERAL.write(buf);
                Bytes::copy_from_slice(collateral).write(buf);
                Bytes::copy_from_slice(witness).write(buf);
            }
            Action::Compute { outcome, signature } => {
                ACTION_COMPUTE.write(buf);
                outcome.write(buf);
                buf.put_slice(signature);
            }
            Action::RotateKey { cid } => {
                ACTION_ROTATE_KEY.write(buf);
                buf.put_slice(cid);
            }
            Action::ComputeFault { first, first_signature, second, second_signature } => {
                ACTION_COMPUTE_FAULT.write(buf);
                first.write(buf);
                buf.put_slice(first_signature);
                second.write(buf);
                buf.put_slice(second_signature);
            }
            Action::BridgeTransfer { to, amount } => {
                ACTION_BRIDGE_TRANSFER.write(buf);
                to.write(buf);
                amount.write(buf);
            }
            Action::Withdraw { recipient, amount } => {
                ACTION_WITHDRAW.write(buf);
                buf.put_slice(recipient);
                amount.write(buf);
            }
        }
    }
}

fn read_array<const N: usize>(buf: &mut impl Buf) -> Result<[u8; N], CodecError> {
    if buf.remaining() < N {
        return Err(CodecError::EndOfBuffer);
    }
    let mut out = [0u8; N];
    buf.copy_to_slice(&mut out);
    Ok(out)
}

impl Read for Transaction {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let chain_id = ChainId::read(buf)?;
        let nonce = u64::read(buf)?;
        let gas_price = u64::read(buf)?;
        let gas_limit = u64::read(buf)?;
        let action = match u8::read(buf)? {
            ACTION_TRANSFER => Action::Transfer { to: Address::read(buf)?, amount: u128::read(buf)? },
            ACTION_BOND => {
                let consensus_key = Ed25519PublicKey::read(buf)?;
                let bls_key = read_array::<96>(buf)?;
                let p2p = Bytes::read_cfg(buf, &RangeCfg::from(..=MAX_P2P_ADDRESS_BYTES))?;
                let p2p = String::from_utf8(p2p.to_vec()).map_err(|_| CodecError::Invalid("Bond", "p2p address is not UTF-8"))?;
                let amount = u128::read(buf)?;
                let possession = Ed25519Signature::read(buf)?;
                Action::Bond { consensus_key, bls_key, p2p, amount, possession, bls_possession: read_array::<48>(buf)? }
            }
            ACTION_UNBOND => Action::Unbond { amount: u128::read(buf)? },
            ACTION_UNJAIL => Action::Unjail,
            ACTION_EVIDENCE => {
                let evidence = Bytes::read_cfg(buf, &RangeCfg::from(..=tcp_consensus::evidence::MAX_EVIDENCE_BYTES))?;
                Action::SubmitEvidence { evidence: evidence.to_vec() }
            }
            ACTION_REGISTER_COMPUTE => {
                let endpoint = Bytes::read_cfg(buf, &RangeCfg::from(..=crate::compute::MAX_ENDPOINT_BYTES))?;
                let endpoint =
                    String::from_utf8(endpoint.to_vec()).map_err(|_| CodecError::Invalid("RegisterCompute", "endpoint is not UTF-8"))?;
                Action::RegisterCompute { endpoint, amount: u128::read(buf)? }
            }
            ACTION_UNBOND_COMPUTE => Action::UnbondCompute { amount: u128::read(buf)? },
            ACTION_REGISTER_ENCLAVE => {
                let freshness_height = u64::read(buf)?;
                let signing_key = read_array::<32>(buf)?;
                let x25519_key = read_array::<32>(buf)?;
                let quote = Bytes::read_cfg(buf, &RangeCfg::from(..=tcp_dkmp::registration::MAX_QUOTE_BYTES))?.to_vec();
                Action::RegisterEnclave { freshness_height, signing_key, x25519_key, quote }
            }
            ACTION_POST_COLLATERAL => {
                let collateral = Bytes::read_cfg(buf, &RangeCfg::from(..=tcp_dkmp::collateral::MAX_COLLATERAL_BYTES))?.to_vec();
                let witness = Bytes::read_cfg(buf, &RangeCfg::from(..=tcp_dkmp::collateral::MAX_WITNESS_BYTES))?.to_vec();
                Action::PostCollateral { collateral, witness }
            }
            ACTION_COMPUTE => {
                let outcome = crate::contracts::ComputeOutcome::read(buf)?;
                Action::Compute { outcome, signature: read_array::<64>(buf)? }
            }
            ACTION_ROTATE_KEY => Action::RotateKey { cid: read_array::<32>(buf)? },
            ACTION_COMPUTE_FAULT => {
                let first = Box::new(crate::contracts::ComputeOutcome::read(buf)?);
                let first_signature = read_array::<64>(buf)?;
                let second = Box::new(crate::contracts::ComputeOutcome::read(buf)?);
                Action::ComputeFault { first, first_signature, second, second_signature: read_array::<64>(buf)? }
            }
            ACTION_BRIDGE_TRANSFER => Action::BridgeTransfer { to: Address::read(buf)?, amount: u128::read(buf)? },
            ACTION_WITHDRAW => Action::Withdraw { recipient: read_array::<20>(buf)?, amount: u128::read(buf)? },
            other => return Err(CodecError::InvalidEnum(other)),
        };
        Ok(Transaction { chain_id, nonce, gas_price, gas_limit, action })
    }
}

impl Transaction {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.write(&mut out);
        out
    }

    /// What the sender signs.
    pub fn signing_digest(&self) -> [u8; 32] {
        keccak256(&[namespace::TRANSACTION.as_bytes(), &[0], &self.encode()])
    }

    pub fn sign(self, key: &crate::AccountKey) -> SignedTransaction {
        let signature = key.sign_digest(&self.signing_digest());
        SignedTransaction { tx: self, signature }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTransaction {
    pub tx: Transaction,
    pub signature: RecoverableSignature,
}

impl SignedTransaction {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.tx.encode();
        self.signature.write(&mut out);
        out
    }

    /// Decode exactly one signed transaction (bounded, no trailing bytes).
    pub fn decode(bytes: &[u8]) -> Result<SignedTransaction, DecodeError> {
        if bytes.len() > MAX_TRANSACTION_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let mut buf = Copying(bytes);
        let tx = Transaction::read(&mut buf).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        let signature = RecoverableSignature::read(&mut buf).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if !buf.0.is_empty() {
            return Err(DecodeError::Malformed(format!("{} trailing bytes", buf.0.len())));
        }
        Ok(SignedTransaction { tx, signature })
    }

    /// The transaction id: SHA-256 of the signed encoding.
    pub fn hash(&self) -> Digest {
        sha256(&[&self.encode()])
    }

    /// Check the chain and recover the sender: what every entry point (RPC, gossip, block)
    /// does before anything else.
    pub fn verify(self, chain_id: &ChainId) -> Result<VerifiedTransaction, VerifyError> {
        if &self.tx.chain_id != chain_id {
            return Err(VerifyError::WrongChain { expected: chain_id.clone(), got: self.tx.chain_id.clone() });
        }
        let sender = recover_address(&self.tx.signing_digest(), &self.signature)?;
        let encoded_len = self.tx.encode().len() + RecoverableSignature::SIZE;
        let hash = self.hash();
        Ok(VerifiedTransaction { signed: self, sender, hash, encoded_len })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("transaction is for chain {got:?}, this is chain {expected:?}")]
    WrongChain { expected: ChainId, got: ChainId },
    #[error("bad signature: {0}")]
    Signature(#[from] SignatureError),
}

/// A transaction whose signature checked out, with its sender and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTransaction {
    signed: SignedTransaction,
    sender: Address,
    hash: Digest,
    encoded_len: usize,
}

impl VerifiedTransaction {
    pub fn signed(&self) -> &SignedTransaction {
        &self.signed
    }

    pub fn tx(&self) -> &Transaction {
        &self.signed.tx
    }

    pub fn sender(&self) -> Address {
        self.sender
    }

    pub fn hash(&self) -> Digest {
        self.hash
    }

    pub fn encoded_len(&self) -> usize {
        self.encoded_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AccountKey;
    use proptest::prelude::*;

    fn chain() -> ChainId {
        ChainId::new("test-chain").unwrap()
    }

    fn transfer(nonce: u64) -> Transaction {
        Transaction { chain_id: chain(), nonce, gas_price: 2, gas_limit: 21_000, action: Action::Transfer { to: Address([9; 20]), amount: 1_000 } }
    }

    #[test]
    fn round_trip_and_sender_recovery() {
        let key = AccountKey::from_bytes(&[3; 32]).unwrap();
        let signed = transfer(0).sign(&key);
        let bytes = signed.encode();
        let decoded = SignedTransaction::decode(&bytes).unwrap();
        assert_eq!(decoded, signed);
        let verified = decoded.verify(&chain()).unwrap();
        assert_eq!(verified.sender(), key.address());
        assert_eq!(verified.encoded_len(), bytes.len());
        assert_eq!(verified.hash(), sha256(&[&bytes]));
    }

    #[test]
    fn another_chain_or_a_changed_field_does_not_verify_as_the_sender() {
        let key = AccountKey::from_bytes(&[3; 32]).unwrap();
        let signed = transfer(0).sign(&key);
        let other = ChainId::new("other-chain").unwrap();
        assert!(matches!(signed.clone().verify(&other), Err(VerifyError::WrongChain { .. })));
        let mut tampered = signed.clone();
        tampered.tx.nonce = 1;
        // A changed body recovers to some other address (or none), never the signer.
        assert_ne!(tampered.verify(&chain()).ok().map(|v| v.sender()), Some(key.address()));
        // Replayed under another chain id with the same signature: same story.
        let mut replayed = signed;
        replayed.tx.chain_id = other.clone();
        assert_ne!(replayed.verify(&other).ok().map(|v| v.sender()), Some(key.address()));
    }

    #[test]
    fn oversized_truncated_and_trailing_inputs_are_refused() {
        let key = AccountKey::from_bytes(&[3; 32]).unwrap();
        let bytes = transfer(0).sign(&key).encode();
        assert!(matches!(SignedTransaction::decode(&vec![0; MAX_TRANSACTION_BYTES + 1]), Err(DecodeError::TooLarge(_))));
        assert!(matches!(SignedTransaction::decode(&bytes[..bytes.len() - 1]), Err(DecodeError::Malformed(_))));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(SignedTransaction::decode(&trailing), Err(DecodeError::Malformed(_))));
    }

    proptest! {
        #[test]
        fn bridge_actions_round_trip(to: [u8; 20], amount: u128, withdraw: bool, nonce: u64) {
            let action = if withdraw { Action::Withdraw { recipient: to, amount } } else { Action::BridgeTransfer { to: Address(to), amount } };
            let tx = Transaction { chain_id: chain(), nonce, gas_price: 1, gas_limit: 50_000, action }.sign(&AccountKey::from_bytes(&[7; 32]).unwrap());
            let bytes = tx.encode();
            let decoded = SignedTransaction::decode(&bytes).unwrap();
            prop_assert_eq!(decoded.encode(), bytes);
            prop_assert_eq!(decoded.tx.action.clone(), tx.tx.action.clone());
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(tx) = SignedTransaction::decode(&bytes) {
                prop_assert_eq!(tx.encode(), bytes);
            }
        }
    }
}
