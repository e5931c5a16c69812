//! What a quote is for (DESIGN §5.4 "Report data names its purpose"). The only quote TCP's
//! enclave makes is an enclave **registration**: its report data binds, under the purpose tag,
//! the chain id, a freshness value the chain chose, and the two keys the enclave generated
//! inside itself — an ed25519 key that signs everything the enclave later says (results, key
//! requests) and an X25519 key that data owners encrypt to. A host can choose the chain id and
//! the freshness value, never the keys, so no request yields a quote binding a key the host
//! holds; and everything else the enclave asserts is a signature under its own namespace
//! ([`tcp_crypto::namespace`]), checked with one signature against a verified registration.

use crate::{AttestationError, Attested, Verifier};
use tcp_crypto::{Ed25519PublicKey, Ed25519Signature, SigningDomain, namespace};
use tcp_types::ChainId;

/// The purpose tag of registration quotes.
pub const REGISTRATION_PURPOSE: &[u8] = b"tcp/attest/registration";

/// The chain's two public keys that never change, which an enclave pins when it registers:
/// the beacon's group key (it checks headers' finality signatures φ against it) and DKMP's
/// master public key (it checks every contract key it recovers against it). Bound into the
/// registration's report data, so a host that hands the enclave another group's keys gets a
/// registration the chain refuses, and a registered enclave trusts only its chain's group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainKeys {
    /// BLS12-381 G2, compressed (MinSig).
    pub group_key: [u8; 96],
    pub master_key: [u8; 96],
}

impl ChainKeys {
    pub fn digest(&self) -> [u8; 32] {
        tcp_crypto::sha256(&[b"tcp/attest/chain-keys".as_slice(), &self.group_key, &self.master_key]).0
    }
}

/// An enclave's registration as the chain records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub chain_id: ChainId,
    /// Chosen by the chain (so a registration cannot be prepared in advance).
    pub freshness: [u8; 32],
    /// [`ChainKeys::digest`] of the keys the enclave pinned.
    pub chain_keys: [u8; 32],
    /// The enclave's ed25519 key: it signs the enclave's results and key requests.
    pub signing_key: [u8; 32],
    /// The enclave's X25519 key: inputs are sealed to it.
    pub x25519_key: [u8; 32],
}

impl Registration {
    /// The report data of its quote: SHA-256(purpose ‖ 0x00 ‖ len(chain id) u16 ‖ chain id ‖
    /// freshness ‖ chain keys' digest ‖ signing key ‖ X25519 key), then 32 zero bytes.
    pub fn report_data(&self) -> [u8; 64] {
        let chain = self.chain_id.as_str().as_bytes();
        let digest = tcp_crypto::sha256(&[
            REGISTRATION_PURPOSE,
            &[0],
            &(chain.len() as u16).to_be_bytes(),
            chain,
            &self.freshness,
            &self.chain_keys,
            &self.signing_key,
            &self.x25519_key,
        ]);
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&digest.0);
        out
    }
}

/// A registration whose quote verified under the chain's roots and policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedRegistration {
    pub registration: Registration,
    pub attested: Attested,
    signing_key: Ed25519PublicKey,
}

impl VerifiedRegistration {
    /// Whether `signature` is the registered enclave's signature of the result whose execution
    /// digest is `digest` (one ed25519 check).
    pub fn verify_output(&self, digest: &[u8; 32], signature: &[u8]) -> bool {
        let Ok(signature) = <Ed25519Signature as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(signature)) else {
            return false;
        };
        SigningDomain::new(namespace::ENCLAVE_OUTPUT, &self.registration.chain_id).verify(&self.signing_key, digest, &signature)
    }
}

impl Verifier {
    /// Verify an enclave's registration quote (with its collateral, at `now`, Unix seconds):
    /// the quote on the chain's one path and policy, and its report data naming exactly this
    /// registration.
    pub fn verify_registration(
        &self,
        quote: &[u8],
        collateral_json: &[u8],
        now: u64,
        registration: &Registration,
    ) -> Result<VerifiedRegistration, AttestationError> {
        let signing_key =
            <Ed25519PublicKey as commonware_codec::DecodeExt<()>>::decode(commonware_codec::Copying(&registration.signing_key[..]))
                .map_err(|_| AttestationError::ReportDataMismatch)?;
        let attested = self.verify(quote, collateral_json, now, &registration.report_data())?;
        Ok(VerifiedRegistration { registration: registration.clone(), attested, signing_key })
    }
}
