//! The parts of a PCS collateral, each with its dates and numbers, so that two collaterals of one
//! platform compare part by part. A chain that keeps the newest collateral must not let anyone
//! roll one part back while another moves forward: an older PCK CRL would un-revoke a PCK key,
//! an older TCB info would undo a TCB recovery. Reading the parts checks nothing about their
//! signatures; that is the verifier's job, over these same bytes.

use dcap_qvl::QuoteCollateralV3;
use x509_cert::der::Decode as _;

use crate::AttestationError;

/// Which PCK CA issued the platform's certificates: its CRL is the one the collateral carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PckCa {
    Processor,
    Platform,
}

/// The dates (Unix seconds) and numbers of each part of a collateral.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollateralParts {
    pub tcb_info_issued: u64,
    pub tcb_info_next_update: u64,
    pub tcb_evaluation_data_number: u32,
    pub qe_identity_issued: u64,
    pub qe_identity_next_update: u64,
    pub qe_evaluation_data_number: u32,
    pub pck_crl_updated: u64,
    pub pck_crl_next_update: u64,
    pub root_crl_updated: u64,
    pub root_crl_next_update: u64,
    pub pck_ca: PckCa,
}

fn malformed(what: impl std::fmt::Display) -> AttestationError {
    AttestationError::MalformedCollateral(what.to_string())
}

/// `issueDate`, `nextUpdate` and `tcbEvaluationDataNumber` of a TCB info or QE identity body.
fn identity_dates(json: &str, what: &str) -> Result<(u64, u64, u32), AttestationError> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| malformed(format!("{what}: {e}")))?;
    let date = |field: &str| {
        value[field].as_str().and_then(crate::parse_utc_timestamp).ok_or_else(|| malformed(format!("{what} has no valid {field}")))
    };
    let number = value["tcbEvaluationDataNumber"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| malformed(format!("{what} has no tcbEvaluationDataNumber")))?;
    Ok((date("issueDate")?, date("nextUpdate")?, number))
}

/// `thisUpdate`, `nextUpdate` and the issuer (RFC 4514) of a CRL.
fn crl_dates(der: &[u8], what: &str) -> Result<(u64, u64, String), AttestationError> {
    let crl =
        x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(der).map_err(|e| malformed(format!("{what}: {e}")))?;
    let tbs = &crl.tbs_cert_list;
    let next = tbs.next_update.ok_or_else(|| malformed(format!("{what} has no nextUpdate")))?;
    Ok((tbs.this_update.to_unix_duration().as_secs(), next.to_unix_duration().as_secs(), tbs.issuer.to_string()))
}

impl CollateralParts {
    /// Read the parts of a collateral (dcap-qvl's JSON).
    pub fn parse(collateral_json: &[u8]) -> Result<CollateralParts, AttestationError> {
        let collateral: QuoteCollateralV3 = serde_json::from_slice(collateral_json).map_err(malformed)?;
        CollateralParts::of(&collateral)
    }

    pub(crate) fn of(collateral: &QuoteCollateralV3) -> Result<CollateralParts, AttestationError> {
        let (tcb_info_issued, tcb_info_next_update, tcb_evaluation_data_number) = identity_dates(&collateral.tcb_info, "TCB info")?;
        let (qe_identity_issued, qe_identity_next_update, qe_evaluation_data_number) =
            identity_dates(&collateral.qe_identity, "QE identity")?;
        let (pck_crl_updated, pck_crl_next_update, issuer) = crl_dates(&collateral.pck_crl, "PCK CRL")?;
        let (root_crl_updated, root_crl_next_update, _) = crl_dates(&collateral.root_ca_crl, "root CA CRL")?;
        let pck_ca = if issuer.contains("Platform CA") {
            PckCa::Platform
        } else if issuer.contains("Processor CA") {
            PckCa::Processor
        } else {
            return Err(malformed(format!("the PCK CRL's issuer {issuer:?} is neither a Processor nor a Platform CA")));
        };
        Ok(CollateralParts {
            tcb_info_issued,
            tcb_info_next_update,
            tcb_evaluation_data_number,
            qe_identity_issued,
            qe_identity_next_update,
            qe_evaluation_data_number,
            pck_crl_updated,
            pck_crl_next_update,
            root_crl_updated,
            root_crl_next_update,
            pck_ca,
        })
    }

    /// The oldest of the monthly parts' issue dates (TCB info, QE identity, PCK CRL): what a
    /// policy's maximum collateral age is measured from.
    pub fn issued_at(&self) -> u64 {
        self.tcb_info_issued.min(self.qe_identity_issued).min(self.pck_crl_updated)
    }

    /// When the first part expires.
    pub fn expires_at(&self) -> u64 {
        self.tcb_info_next_update.min(self.qe_identity_next_update).min(self.pck_crl_next_update).min(self.root_crl_next_update)
    }

    /// Whether this collateral may replace `stored` of the same platform: no part older (dates
    /// and evaluation numbers), expiring no earlier, and something newer.
    pub fn supersedes(&self, stored: &CollateralParts) -> bool {
        let mine = self.ordered();
        let theirs = stored.ordered();
        self.pck_ca == stored.pck_ca
            && mine.iter().zip(&theirs).all(|(a, b)| a >= b)
            && self.expires_at() >= stored.expires_at()
            && mine.iter().zip(&theirs).any(|(a, b)| a > b)
    }

    fn ordered(&self) -> [u64; 6] {
        [
            self.tcb_info_issued,
            u64::from(self.tcb_evaluation_data_number),
            self.qe_identity_issued,
            u64::from(self.qe_evaluation_data_number),
            self.pck_crl_updated,
            self.root_crl_updated,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SGX: &[u8] = include_bytes!("../tests/vectors/intel_sgx_quote_collateral.json");
    const TDX: &[u8] = include_bytes!("../tests/vectors/intel_tdx_quote_collateral.json");

    #[test]
    fn intels_collateral_parts_are_read_with_their_ca() {
        let sgx = CollateralParts::parse(SGX).unwrap();
        assert_eq!((sgx.pck_ca, sgx.tcb_evaluation_data_number), (PckCa::Processor, 17));
        // 2025-06-19: QE identity 10:01:18, PCK CRL 10:23:18, TCB info 10:56:11.
        assert_eq!(sgx.issued_at(), 1_750_327_278);
        assert_eq!(sgx.tcb_info_issued, 1_750_330_571);
        // The multi-package TDX platform's certificates come from the Platform CA.
        assert_eq!(CollateralParts::parse(TDX).unwrap().pck_ca, PckCa::Platform);
        assert!(CollateralParts::parse(b"{}").is_err());
    }

    /// No part may go back, even when another moves forward: an older PCK CRL would un-revoke
    /// a key, an older TCB info undo a TCB recovery.
    #[test]
    fn a_collateral_supersedes_another_only_if_no_part_is_older() {
        let stored = CollateralParts::parse(SGX).unwrap();
        assert!(!stored.supersedes(&stored), "the same collateral is not newer");
        let newer = |change: fn(&mut CollateralParts)| {
            let mut posted = stored.clone();
            change(&mut posted);
            posted.supersedes(&stored)
        };
        assert!(newer(|p| p.pck_crl_updated += 1));
        assert!(newer(|p| p.tcb_evaluation_data_number += 1));
        assert!(!newer(|p| {
            p.tcb_info_issued += 86_400;
            p.pck_crl_updated -= 1;
        }));
        assert!(!newer(|p| {
            p.qe_identity_issued += 86_400;
            p.tcb_evaluation_data_number -= 1;
        }));
        assert!(
            !newer(|p| {
                p.root_crl_updated += 1;
                p.root_crl_next_update = p.expires_at() - 1;
            }),
            "a newer part that expires sooner"
        );
        assert!(
            !newer(|p| {
                p.pck_crl_updated += 1;
                p.pck_ca = PckCa::Platform;
            }),
            "another CA's CRL"
        );
    }
}
