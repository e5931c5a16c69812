//! Attestation collateral on chain (DESIGN §5.4 "Time and collateral are the chain's"; issue 19,
//! item 1): anyone may post newer Intel-signed collateral, and the chain keeps the newest per
//! platform (TEE type, FMSPC and PCK CA); registrations verify against it at their block's time.
//!
//! A posting proves its collateral genuine with a witness: any quote from that platform that
//! verifies with it on the chain's one path (which checks the TCB info's and QE identity's
//! signatures, the CRLs and every issuer chain up to a genesis root, and that the TCB info is for
//! the quote's FMSPC). So no collateral is kept that the chain's verifier would not accept.
//!
//! Newer means newer in every part ([`CollateralParts::supersedes`]): no part older (TCB info and
//! QE identity by issue date and evaluation number, both CRLs by update), expiring no earlier,
//! and something newer — so nobody rolls back a PCK CRL (un-revoking a key) or a TCB info
//! (undoing a TCB recovery) behind a newer part. Collateral that has expired at the block's time
//! may be replaced by any genuine posting. The cheap comparison comes before the verification.

use tcp_attestation::quote::MAX_QUOTE_PADDING;
use tcp_attestation::{AttestationError, CollateralParts, PckCa, Tee, Verifier};

/// Collateral (TCB info, QE identity, CRLs and their issuer chains, as dcap-qvl JSON) is some
/// 10–20 KiB; more is refused unread.
pub const MAX_COLLATERAL_BYTES: usize = 64 * 1024;
/// A witness quote is a registration-sized quote.
pub const MAX_WITNESS_BYTES: usize = crate::registration::MAX_QUOTE_BYTES + MAX_QUOTE_PADDING;

/// Which platform a collateral is for: its TEE, FMSPC and the PCK CA whose CRL it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollateralKey {
    pub tee: Tee,
    pub fmspc: [u8; 6],
    pub pck_ca: PckCa,
}

/// A validator's committed state, as the collateral rules read it.
pub trait CollateralView {
    fn block_time_secs(&self) -> u64;
    fn verifier(&self) -> &Verifier;
    /// The parts of the collateral kept for `key`, if any is kept.
    fn stored(&self, key: &CollateralKey) -> Option<CollateralParts>;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CollateralRefused {
    #[error("the collateral is {0} bytes, more than {MAX_COLLATERAL_BYTES}")]
    TooLarge(usize),
    #[error("the witness quote is {0} bytes, more than {MAX_WITNESS_BYTES}")]
    WitnessTooLarge(usize),
    #[error("malformed collateral: {0}")]
    Malformed(String),
    #[error("the witness quote does not verify with this collateral: {0}")]
    DoesNotVerify(#[from] AttestationError),
    #[error("some part of this collateral is older, or expires sooner, than the collateral the chain keeps, or none is newer")]
    NotNewer,
}

/// Which platform `collateral` is for — its TCB info's `id` (SGX or TDX) and `fmspc`, and its
/// PCK CRL's CA — with its parts.
pub fn collateral_key(collateral: &[u8]) -> Result<(CollateralKey, CollateralParts), CollateralRefused> {
    let malformed = |what: &str| CollateralRefused::Malformed(what.to_string());
    let outer: serde_json::Value = serde_json::from_slice(collateral).map_err(|e| CollateralRefused::Malformed(e.to_string()))?;
    let tcb_info: serde_json::Value = serde_json::from_str(outer["tcb_info"].as_str().ok_or_else(|| malformed("no tcb_info"))?)
        .map_err(|e| CollateralRefused::Malformed(format!("tcb_info: {e}")))?;
    let tee = match tcb_info["id"].as_str() {
        Some("SGX") => Tee::Sgx,
        Some("TDX") => Tee::Tdx,
        _ => return Err(malformed("the TCB info's id is neither SGX nor TDX")),
    };
    let fmspc = tcb_info["fmspc"]
        .as_str()
        .and_then(|hex| tcp_types::hex::decode(hex).ok())
        .and_then(|bytes| <[u8; 6]>::try_from(bytes).ok())
        .ok_or_else(|| malformed("the TCB info's fmspc is not 6 bytes of hex"))?;
    let parts = CollateralParts::parse(collateral).map_err(|e| CollateralRefused::Malformed(e.to_string()))?;
    Ok((CollateralKey { tee, fmspc, pck_ca: parts.pck_ca }, parts))
}

/// Decide on a posting of `collateral` with `witness`, a quote of its platform: the key it is
/// kept under and its parts.
pub fn admit_collateral(
    view: &impl CollateralView,
    collateral: &[u8],
    witness: &[u8],
) -> Result<(CollateralKey, CollateralParts), CollateralRefused> {
    if collateral.len() > MAX_COLLATERAL_BYTES {
        return Err(CollateralRefused::TooLarge(collateral.len()));
    }
    if witness.len() > MAX_WITNESS_BYTES {
        return Err(CollateralRefused::WitnessTooLarge(witness.len()));
    }
    let (key, parts) = collateral_key(collateral)?;
    let now = view.block_time_secs();
    if let Some(stored) = view.stored(&key)
        && stored.expires_at() > now
        && !parts.supersedes(&stored)
    {
        return Err(CollateralRefused::NotNewer);
    }
    let attested = view.verifier().verify_quote(witness, collateral, now)?;
    if attested.tee != key.tee {
        return Err(CollateralRefused::Malformed("the witness quote is of another TEE than the collateral".into()));
    }
    Ok((key, parts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng as _;
    use std::time::Duration;
    use tcp_attestation::{DevPki, DevPlatform, EnclaveIdentity, PlatformTcb, Policy, QuoteBackend, SimulatedBackend, TcbRank};

    const START: u64 = 1_793_491_200;
    const DAY: u64 = 86_400;
    const FMSPC: [u8; 6] = [0x00, 0x90, 0x6e, 0xd5, 0x00, 0x00];

    struct View {
        verifier: Verifier,
        time: u64,
        stored: Option<CollateralParts>,
    }

    impl CollateralView for View {
        fn block_time_secs(&self) -> u64 {
            self.time
        }
        fn verifier(&self) -> &Verifier {
            &self.verifier
        }
        fn stored(&self, _: &CollateralKey) -> Option<CollateralParts> {
            self.stored.clone()
        }
    }

    #[test]
    fn newer_genuine_collateral_is_kept_and_older_or_forged_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let pki = DevPki::generate(&mut rng, START, Duration::from_secs(365 * DAY)).unwrap();
        let platform = pki.issue_platform(&mut rng, PlatformTcb::default(), FMSPC).unwrap();
        let backend = SimulatedBackend::new(DevPlatform::from_json(&platform.to_json()).unwrap(), Tee::Sgx, &mut rng);
        let witness = backend.quote(&EnclaveIdentity { measurement: [1; 32], debug: false }, &[0; 64]).unwrap().quote;
        let view = |stored| View {
            verifier: Verifier::new(vec![pki.root_ca_der()], Policy::default(), false).unwrap(),
            time: START + 20 * DAY,
            stored,
        };
        let issued = |day: u64| {
            pki.collateral(Tee::Sgx, &platform.tcb, &FMSPC, TcbRank::UpToDate, START + day * DAY, START + (day + 30) * DAY)
                .unwrap()
                .into_bytes()
        };
        let (older, newer) = (issued(1), issued(10));

        let key = CollateralKey { tee: Tee::Sgx, fmspc: FMSPC, pck_ca: PckCa::Processor };
        assert_eq!(collateral_key(&older).unwrap().0, key);
        let (_, older_parts) = admit_collateral(&view(None), &older, &witness).unwrap();
        let (_, newer_parts) = admit_collateral(&view(Some(older_parts.clone())), &newer, &witness).unwrap();
        assert!(newer_parts.issued_at() > older_parts.issued_at());
        assert_eq!(admit_collateral(&view(Some(newer_parts.clone())), &older, &witness), Err(CollateralRefused::NotNewer));
        assert_eq!(admit_collateral(&view(Some(newer_parts.clone())), &newer, &witness), Err(CollateralRefused::NotNewer));
        // Once the kept collateral has expired, any genuine posting replaces it.
        let mut expired = newer_parts.clone();
        expired.tcb_info_next_update = START;
        assert!(admit_collateral(&view(Some(expired)), &older, &witness).is_ok());

        // A TCB info edited after signing: its signature fails, whatever the edit.
        let mut forged: serde_json::Value = serde_json::from_slice(&older).unwrap();
        let tcb_info = forged["tcb_info"].as_str().unwrap().replace("\"tcbEvaluationDataNumber\":1", "\"tcbEvaluationDataNumber\":9");
        forged["tcb_info"] = tcb_info.into();
        let result = admit_collateral(&view(None), forged.to_string().as_bytes(), &witness);
        assert!(matches!(result, Err(CollateralRefused::DoesNotVerify(AttestationError::Untrusted(_)))), "{result:?}");
        // A witness from another PKI, garbage, and an oversized posting.
        let mut other_rng = ChaCha20Rng::seed_from_u64(4);
        let other = DevPki::generate(&mut other_rng, START, Duration::from_secs(365 * DAY)).unwrap();
        let other_platform = other.issue_platform(&mut other_rng, PlatformTcb::default(), FMSPC).unwrap();
        let other_backend = SimulatedBackend::new(DevPlatform::from_json(&other_platform.to_json()).unwrap(), Tee::Sgx, &mut other_rng);
        let foreign = other_backend.quote(&EnclaveIdentity { measurement: [1; 32], debug: false }, &[0; 64]).unwrap().quote;
        assert_eq!(admit_collateral(&view(None), &older, &foreign), Err(CollateralRefused::DoesNotVerify(AttestationError::UnknownRoot)));
        assert!(matches!(admit_collateral(&view(None), b"{}", &witness), Err(CollateralRefused::Malformed(_))));
        assert_eq!(
            admit_collateral(&view(None), &vec![b' '; MAX_COLLATERAL_BYTES + 1], &witness),
            Err(CollateralRefused::TooLarge(MAX_COLLATERAL_BYTES + 1))
        );
        assert_eq!(
            admit_collateral(&view(None), &older, &vec![0; MAX_WITNESS_BYTES + 1]),
            Err(CollateralRefused::WitnessTooLarge(MAX_WITNESS_BYTES + 1))
        );
    }
}
