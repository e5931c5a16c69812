//! Attestation collateral on chain (DESIGN §5.4 "Time and collateral are the chain's"; issue 19,
//! item 1): anyone may post newer Intel-signed collateral, and the chain keeps the newest per
//! platform (TEE type and FMSPC); registrations verify against it at their block's time.
//!
//! A posting proves its collateral genuine with a witness: any quote from that platform that
//! verifies with it on the chain's one path (which checks the TCB info's and QE identity's
//! signatures, the CRLs and every issuer chain up to a genesis root, and that the TCB info is for
//! the quote's FMSPC). So no collateral is kept that the chain's verifier would not accept, and a
//! poster cannot replace good collateral with an older or forged one.

use tcp_attestation::{AttestationError, Tee, Verifier};

/// Collateral (TCB info, QE identity, CRLs and their issuer chains, as dcap-qvl JSON) is some
/// 10–20 KiB; more is refused unread.
pub const MAX_COLLATERAL_BYTES: usize = 64 * 1024;

/// Which platform a collateral is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollateralKey {
    pub tee: Tee,
    pub fmspc: [u8; 6],
}

/// A validator's committed state, as the collateral rules read it.
pub trait CollateralView {
    fn block_time_secs(&self) -> u64;
    fn verifier(&self) -> &Verifier;
    /// When the collateral kept for `key` was issued (its oldest monthly part), if any is kept.
    fn stored_issued_at(&self, key: &CollateralKey) -> Option<u64>;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CollateralRefused {
    #[error("the collateral is {0} bytes, more than {MAX_COLLATERAL_BYTES}")]
    TooLarge(usize),
    #[error("malformed collateral: {0}")]
    Malformed(String),
    #[error("the witness quote does not verify with this collateral: {0}")]
    DoesNotVerify(#[from] AttestationError),
    #[error("the chain keeps collateral issued at {stored}; this one was issued at {posted}")]
    NotNewer { stored: u64, posted: u64 },
}

/// Which platform `collateral` is for: its TCB info's `id` (SGX or TDX) and `fmspc`.
pub fn collateral_key(collateral: &[u8]) -> Result<CollateralKey, CollateralRefused> {
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
    Ok(CollateralKey { tee, fmspc })
}

/// Decide on a posting of `collateral` with `witness`, a quote of its platform: the key it is
/// kept under and its issue time.
pub fn admit_collateral(view: &impl CollateralView, collateral: &[u8], witness: &[u8]) -> Result<(CollateralKey, u64), CollateralRefused> {
    if collateral.len() > MAX_COLLATERAL_BYTES {
        return Err(CollateralRefused::TooLarge(collateral.len()));
    }
    let key = collateral_key(collateral)?;
    let attested = view.verifier().verify_quote(witness, collateral, view.block_time_secs())?;
    if attested.tee != key.tee {
        return Err(CollateralRefused::Malformed("the witness quote is of another TEE than the collateral".into()));
    }
    let posted = attested.collateral_issued_at;
    if let Some(stored) = view.stored_issued_at(&key)
        && posted <= stored
    {
        return Err(CollateralRefused::NotNewer { stored, posted });
    }
    Ok((key, posted))
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
        stored: Option<u64>,
    }

    impl CollateralView for View {
        fn block_time_secs(&self) -> u64 {
            self.time
        }
        fn verifier(&self) -> &Verifier {
            &self.verifier
        }
        fn stored_issued_at(&self, _: &CollateralKey) -> Option<u64> {
            self.stored
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

        let key = CollateralKey { tee: Tee::Sgx, fmspc: FMSPC };
        assert_eq!(collateral_key(&older).unwrap(), key);
        let (_, older_at) = admit_collateral(&view(None), &older, &witness).unwrap();
        let (_, newer_at) = admit_collateral(&view(Some(older_at)), &newer, &witness).unwrap();
        assert!(newer_at > older_at);
        assert_eq!(
            admit_collateral(&view(Some(newer_at)), &older, &witness),
            Err(CollateralRefused::NotNewer { stored: newer_at, posted: older_at })
        );
        assert!(matches!(admit_collateral(&view(Some(newer_at)), &newer, &witness), Err(CollateralRefused::NotNewer { .. })));

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
    }
}
