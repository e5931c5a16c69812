//! A validator's own BLS12-381 key (`MinSig`: 96-byte G2 public key, 48-byte G1 signatures),
//! registered when it bonds. The beacon's threshold shares are dealt per ceremony and never
//! leave the node; this long-lived key identifies the validator in BLS form, so the root chain
//! (EIP-2537 precompiles) can check what a validator signed without ed25519.
//!
//! Bonding proves possession: the key signs the operator address under `tcp/staking/bls` bound
//! to the chain id, so nobody registers a key it does not hold (no rogue-key aggregation) and a
//! proof made for one chain or operator is worthless for another.

use commonware_codec::{DecodeExt, Encode};
use commonware_cryptography::bls12381::primitives::group::Private;
use commonware_cryptography::bls12381::primitives::ops;
use commonware_cryptography::bls12381::primitives::variant::{MinSig, Variant};
use rand_core::CryptoRng;
use tcp_types::ChainId;

pub type BlsPublicKey = <MinSig as Variant>::Public;
pub type BlsSignature = <MinSig as Variant>::Signature;
pub type BlsPrivateKey = Private;

pub const BLS_PUBLIC_KEY_BYTES: usize = 96;
pub const BLS_SIGNATURE_BYTES: usize = 48;

const NAMESPACE: &str = "tcp/staking/bls";

fn namespace(chain_id: &ChainId) -> Vec<u8> {
    [NAMESPACE.as_bytes(), &[0], chain_id.as_str().as_bytes()].concat()
}

pub fn generate(rng: &mut impl CryptoRng) -> (BlsPrivateKey, BlsPublicKey) {
    ops::keypair::<_, MinSig>(rng)
}

pub fn public_key(private: &BlsPrivateKey) -> BlsPublicKey {
    ops::compute_public::<MinSig>(private)
}

/// The proof of possession a bond carries: the key's signature of the operator address.
pub fn sign_possession(private: &BlsPrivateKey, chain_id: &ChainId, operator: &[u8; 20]) -> [u8; BLS_SIGNATURE_BYTES] {
    let signature = ops::sign_message::<MinSig>(private, &namespace(chain_id), operator);
    signature.encode().as_ref().try_into().expect("a G1 signature is 48 bytes")
}

/// Decode the key (checked to be a G2 point in the subgroup, not the identity) and check the
/// proof of possession.
pub fn verify_possession(public: &[u8; BLS_PUBLIC_KEY_BYTES], chain_id: &ChainId, operator: &[u8; 20], proof: &[u8; BLS_SIGNATURE_BYTES]) -> bool {
    let (Ok(public), Ok(proof)) =
        (BlsPublicKey::decode(commonware_codec::Copying(&public[..])), BlsSignature::decode(commonware_codec::Copying(&proof[..])))
    else {
        return false;
    };
    ops::verify_message::<MinSig>(&public, &namespace(chain_id), operator, &proof).is_ok()
}

pub fn public_key_bytes(public: &BlsPublicKey) -> [u8; BLS_PUBLIC_KEY_BYTES] {
    public.encode().as_ref().try_into().expect("a G2 public key is 96 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn possession_binds_key_chain_and_operator() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let (private, public) = generate(&mut rng);
        let chain = ChainId::new("bls-test").unwrap();
        let operator = [3u8; 20];
        let proof = sign_possession(&private, &chain, &operator);
        let key = public_key_bytes(&public);
        assert!(verify_possession(&key, &chain, &operator, &proof));
        assert!(!verify_possession(&key, &ChainId::new("other").unwrap(), &operator, &proof));
        assert!(!verify_possession(&key, &chain, &[4u8; 20], &proof));
        let (_, other) = generate(&mut rng);
        assert!(!verify_possession(&public_key_bytes(&other), &chain, &operator, &proof));
        let mut garbage = key;
        garbage[5] ^= 1;
        assert!(!verify_possession(&garbage, &chain, &operator, &proof));
        assert!(!verify_possession(&[0u8; 96], &chain, &operator, &proof));
    }
}
