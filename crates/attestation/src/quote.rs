//! Writing Intel DCAP quotes: the SGX quote v3 and the TDX quote v4 layouts (Intel's "SGX ECDSA
//! Quote Library API" and "TDX DCAP Quoting Library API" specifications). Little-endian
//! integers, fixed-size report bodies, then the ECDSA-P256 signature data. Reading them is
//! `dcap-qvl`'s job: the tests parse every quote written here with it. What TCP adds on the
//! reading side is the canonical form: which layouts it accepts (SGX v3/v4, TDX v4, and v5
//! with a TDX 1.0, 1.5 or 1.5-ex body), no unread bytes but Intel's zero padding, and what a
//! quote is identified by ([`quote_id`]).

pub const HEADER_LEN: usize = 48;
pub const SGX_REPORT_LEN: usize = 384;
pub const TD_REPORT_LEN: usize = 584;
/// Attestation key type 2: ECDSA-256 with P-256.
const ATTESTATION_KEY_TYPE_P256: u16 = 2;
pub const TEE_TYPE_SGX: u32 = 0x0000_0000;
pub const TEE_TYPE_TDX: u32 = 0x0000_0081;
/// Intel's QE vendor id, which verifiers require.
pub const INTEL_QE_VENDOR_ID: [u8; 16] = [0x93, 0x9A, 0x72, 0x33, 0xF7, 0x9C, 0x4C, 0xA9, 0x94, 0x0A, 0x0D, 0xB3, 0x95, 0x7F, 0x06, 0x07];
/// Certification data type 5: the PCK certificate chain in PEM.
const CERT_DATA_PCK_CHAIN: u16 = 5;
/// Certification data type 6 (TDX quote v4): the QE report certification data.
const CERT_DATA_QE_REPORT: u16 = 6;

/// The quote header. `qe_svn` and `pce_svn` are informational; the verifier takes the trusted
/// values from the QE report and the PCK certificate.
pub fn header(version: u16, tee_type: u32, qe_svn: u16, pce_svn: u16) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0..2].copy_from_slice(&version.to_le_bytes());
    out[2..4].copy_from_slice(&ATTESTATION_KEY_TYPE_P256.to_le_bytes());
    out[4..8].copy_from_slice(&tee_type.to_le_bytes());
    out[8..10].copy_from_slice(&qe_svn.to_le_bytes());
    out[10..12].copy_from_slice(&pce_svn.to_le_bytes());
    out[12..28].copy_from_slice(&INTEL_QE_VENDOR_ID);
    out
}

/// An SGX enclave report body (also the QE report's layout).
#[derive(Clone, Debug)]
pub struct SgxReport {
    pub cpu_svn: [u8; 16],
    pub misc_select: u32,
    pub attributes: [u8; 16],
    pub mr_enclave: [u8; 32],
    pub mr_signer: [u8; 32],
    pub isv_prod_id: u16,
    pub isv_svn: u16,
    pub report_data: [u8; 64],
}

impl SgxReport {
    pub fn encode(&self) -> [u8; SGX_REPORT_LEN] {
        let mut out = [0u8; SGX_REPORT_LEN];
        out[0..16].copy_from_slice(&self.cpu_svn);
        out[16..20].copy_from_slice(&self.misc_select.to_le_bytes());
        // 20..48 reserved
        out[48..64].copy_from_slice(&self.attributes);
        out[64..96].copy_from_slice(&self.mr_enclave);
        // 96..128 reserved
        out[128..160].copy_from_slice(&self.mr_signer);
        // 160..256 reserved
        out[256..258].copy_from_slice(&self.isv_prod_id.to_le_bytes());
        out[258..260].copy_from_slice(&self.isv_svn.to_le_bytes());
        // 260..320 reserved
        out[320..384].copy_from_slice(&self.report_data);
        out
    }
}

/// A TDX 1.0 TD report body.
#[derive(Clone, Debug)]
pub struct TdReport {
    pub tee_tcb_svn: [u8; 16],
    pub mr_seam: [u8; 48],
    pub mr_signer_seam: [u8; 48],
    pub seam_attributes: [u8; 8],
    pub td_attributes: [u8; 8],
    pub xfam: [u8; 8],
    pub mr_td: [u8; 48],
    pub rt_mr: [[u8; 48]; 4],
    pub report_data: [u8; 64],
}

impl TdReport {
    pub fn encode(&self) -> [u8; TD_REPORT_LEN] {
        let mut out = [0u8; TD_REPORT_LEN];
        out[0..16].copy_from_slice(&self.tee_tcb_svn);
        out[16..64].copy_from_slice(&self.mr_seam);
        out[64..112].copy_from_slice(&self.mr_signer_seam);
        out[112..120].copy_from_slice(&self.seam_attributes);
        out[120..128].copy_from_slice(&self.td_attributes);
        out[128..136].copy_from_slice(&self.xfam);
        out[136..184].copy_from_slice(&self.mr_td);
        // 184..328: MRCONFIGID, MROWNER, MROWNERCONFIG, left zero.
        for (i, rt_mr) in self.rt_mr.iter().enumerate() {
            out[328 + 48 * i..376 + 48 * i].copy_from_slice(rt_mr);
        }
        out[520..584].copy_from_slice(&self.report_data);
        out
    }
}

/// The quoting enclave's part of the signature data: its report (certifying the attestation
/// key), the PCK's signature over that report, the QE authentication data and the PCK chain.
pub struct QeCertification<'a> {
    pub qe_report: &'a [u8; SGX_REPORT_LEN],
    pub qe_report_signature: &'a [u8; 64],
    pub qe_auth_data: &'a [u8],
    pub pck_chain_pem: &'a [u8],
}

impl QeCertification<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.qe_report);
        out.extend_from_slice(self.qe_report_signature);
        out.extend_from_slice(&(self.qe_auth_data.len() as u16).to_le_bytes());
        out.extend_from_slice(self.qe_auth_data);
        write_certification_data(out, CERT_DATA_PCK_CHAIN, self.pck_chain_pem);
    }
}

fn write_certification_data(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
}

/// Append the signature data to the signed part of a quote (header ‖ report body), in the v3
/// (SGX) or v4 (TDX) layout, and return the whole quote.
pub fn assemble(signed: &[u8], version: u16, isv_signature: &[u8; 64], attestation_key: &[u8; 64], qe: &QeCertification<'_>) -> Vec<u8> {
    let mut auth = Vec::with_capacity(1024 + qe.pck_chain_pem.len());
    auth.extend_from_slice(isv_signature);
    auth.extend_from_slice(attestation_key);
    if version == 3 {
        qe.write(&mut auth);
    } else {
        let mut body = Vec::with_capacity(1024 + qe.pck_chain_pem.len());
        qe.write(&mut body);
        write_certification_data(&mut auth, CERT_DATA_QE_REPORT, &body);
    }
    let mut quote = Vec::with_capacity(signed.len() + 4 + auth.len());
    quote.extend_from_slice(signed);
    quote.extend_from_slice(&(auth.len() as u32).to_le_bytes());
    quote.extend_from_slice(&auth);
    quote
}

/// Zero bytes accepted after a quote's signature data (Intel's quoting library leaves some:
/// 70 in dcap-qvl's TDX sample).
pub const MAX_QUOTE_PADDING: usize = 4096;

/// Quote v5 (TDX 1.5): a body header (type, size) precedes the report body.
pub const QUOTE_V5_BODY_HEADER_LEN: usize = 6;
/// TDX 1.5 report body: the TD 1.0 body, TEE_TCB_SVN2 and MRSERVICETD.
pub const TD15_REPORT_LEN: usize = 648;
/// TDX 1.5 "ex" report body (quote v5 body type 4).
pub const TD15_EX_REPORT_LEN: usize = 885;

/// The signed part of a quote: header and report body, whose length the version, TEE type
/// and (v5) body type fix. Refuses what TCP does not accept: a body type that disagrees with
/// the TEE type, or a v5 body size that is not its type's.
fn signed_len(quote: &[u8]) -> Result<usize, String> {
    let header = quote.get(..HEADER_LEN).ok_or("short header")?;
    let version = u16::from_le_bytes([header[0], header[1]]);
    let tee_type = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    Ok(match (version, tee_type) {
        (3, TEE_TYPE_SGX) | (4, TEE_TYPE_SGX) => HEADER_LEN + SGX_REPORT_LEN,
        (4, TEE_TYPE_TDX) => HEADER_LEN + TD_REPORT_LEN,
        (5, _) => {
            let body = quote.get(HEADER_LEN..HEADER_LEN + QUOTE_V5_BODY_HEADER_LEN).ok_or("short v5 body header")?;
            let body_type = u16::from_le_bytes([body[0], body[1]]);
            let size = u32::from_le_bytes([body[2], body[3], body[4], body[5]]) as usize;
            let expected = match (body_type, tee_type) {
                (1, TEE_TYPE_SGX) => SGX_REPORT_LEN,
                (2, TEE_TYPE_TDX) => TD_REPORT_LEN,
                (3, TEE_TYPE_TDX) => TD15_REPORT_LEN,
                (4, TEE_TYPE_TDX) => TD15_EX_REPORT_LEN,
                _ => return Err(format!("quote v5 body type {body_type} with TEE type {tee_type:#x} is not one TCP accepts")),
            };
            if size != expected {
                return Err(format!("quote v5 body type {body_type} has size {size}, not {expected}"));
            }
            HEADER_LEN + QUOTE_V5_BODY_HEADER_LEN + size
        }
        _ => return Err(format!("quote version {version} with TEE type {tee_type:#x} is not one TCP accepts")),
    })
}

/// The attestation a quote carries without the zero padding after its signature data. `None`
/// if the length fields do not fit.
pub fn unpadded(quote: &[u8]) -> Option<&[u8]> {
    let at = signed_len(quote).ok()?;
    let len = u32::from_le_bytes(quote.get(at..at + 4)?.try_into().ok()?) as usize;
    quote.get(..(at + 4).checked_add(len)?)
}

/// What a quote is identified by: SHA-256 over its TEE type and the report the TEE produced
/// (the SGX enclave report, or the TD 1.0 part of a TD report, which a v5 quote's TD 1.5 body
/// extends). Nothing in the signature data enters it, because the host can vary all of it
/// without changing what was attested: Intel's quoting enclaves emit either of an ECDSA
/// signature's two forms, (r, s) and its twin (r, n − s), both of which verify; the QE can sign
/// the same report again with a new nonce; Intel's library pads the quote with zeros; the PCK
/// chain's trailing NUL is optional; and one TD report can be quoted as v4 or v5. A registry
/// keyed by this id sees each of those as the one attestation it is.
pub fn quote_id(quote: &[u8]) -> Result<[u8; 32], String> {
    let signed = signed_len(quote)?;
    let header = &quote[..HEADER_LEN];
    let body_start = if u16::from_le_bytes([header[0], header[1]]) == 5 { HEADER_LEN + QUOTE_V5_BODY_HEADER_LEN } else { HEADER_LEN };
    let tee_type = &header[4..8];
    let base_len = if u32::from_le_bytes([tee_type[0], tee_type[1], tee_type[2], tee_type[3]]) == TEE_TYPE_SGX {
        SGX_REPORT_LEN
    } else {
        TD_REPORT_LEN
    };
    let report = quote.get(body_start..body_start + base_len).filter(|_| body_start + base_len <= signed).ok_or("short report body")?;
    Ok(tcp_crypto::sha256(&[b"tcp/attest/quote", tee_type, report]).0)
}

/// Refuse a quote that carries what it should in a non-canonical encoding: length fields
/// that leave bytes unread, or a PCK chain whose PEM differs from the standard armour of its
/// certificates (Intel's quoting library adds one NUL after it, which is allowed). Quotes are
/// identified by the hash of their [`unpadded`] form, so two encodings of one attestation must
/// not both pass; zero padding after the signature data (at most [`MAX_QUOTE_PADDING`] bytes,
/// as Intel's library leaves) is not part of the attestation.
pub fn check_canonical(quote: &[u8]) -> Result<(), String> {
    let signed = signed_len(quote)?;
    // signed_len read the header, so the version is there.
    let version = u16::from_le_bytes([quote[0], quote[1]]);
    let mut r = LeReader(quote);
    r.take(signed).ok_or("short report body")?;
    let len = r.u32()? as usize;
    let auth = r.sized(len, "signature data")?;
    // Intel's quoting library hands out the quote in a larger zeroed buffer: what follows the
    // signature data must be zeros, and few. The attestation is the part before it (its
    // length fields say where it ends), so padded and unpadded copies name one attestation.
    if r.0.len() > MAX_QUOTE_PADDING {
        return Err(format!("{} bytes after the quote (at most {MAX_QUOTE_PADDING} bytes of zero padding)", r.0.len()));
    }
    if r.0.iter().any(|b| *b != 0) {
        return Err(format!("{} bytes after the quote that are not zero padding", r.0.len()));
    }
    let mut a = LeReader(auth);
    a.take(128).ok_or("short signature and attestation key")?;
    let qe = if version == 3 {
        auth.get(128..).unwrap_or_default()
    } else {
        if a.u16()? != CERT_DATA_QE_REPORT {
            return Err("TDX quote without QE report certification data".into());
        }
        let len = a.u32()? as usize;
        let inner = a.sized(len, "QE report certification data")?;
        a.end("the signature data")?;
        inner
    };
    let mut q = LeReader(qe);
    q.take(SGX_REPORT_LEN + 64).ok_or("short QE report")?;
    let len = q.u16()? as usize;
    q.sized(len, "QE authentication data")?;
    if q.u16()? != CERT_DATA_PCK_CHAIN {
        return Err("the certification data is not a PCK certificate chain".into());
    }
    let len = q.u32()? as usize;
    let chain = q.sized(len, "PCK certificate chain")?;
    q.end("the certification data")?;
    let chain = chain.strip_suffix(&[0]).unwrap_or(chain);
    let text = std::str::from_utf8(chain).map_err(|_| "the PCK chain is not text")?;
    let mut canonical = String::with_capacity(text.len());
    // Intel's PCK chain is always the PCK certificate, its (Platform or Processor) CA and the
    // root; dcap-qvl's path builder would ignore extra or reordered certificates.
    let blocks: Vec<&str> = text.split_inclusive("-----END CERTIFICATE-----\n").collect();
    if blocks.len() != 3 {
        return Err(format!("the PCK chain has {} certificates, not the PCK certificate, its CA and the root", blocks.len()));
    }
    for block in blocks {
        use x509_cert::der::{Decode as _, EncodePem as _};
        let der = x509_cert::der::pem::decode_vec(block.as_bytes()).map_err(|e| format!("PCK chain PEM: {e}"))?.1;
        let cert = x509_cert::Certificate::from_der(&der).map_err(|e| format!("PCK chain certificate: {e}"))?;
        canonical.push_str(&cert.to_pem(x509_cert::der::pem::LineEnding::LF).map_err(|e| e.to_string())?);
    }
    if canonical != text {
        return Err("the PCK chain is not in canonical PEM".into());
    }
    Ok(())
}

struct LeReader<'a>(&'a [u8]);

impl<'a> LeReader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u16(&mut self) -> Result<u16, String> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]])).ok_or_else(|| "short length field".into())
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or_else(|| "short length field".into())
    }

    fn sized(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        self.take(n).ok_or_else(|| format!("{what} is shorter than its length field"))
    }

    fn end(&self, what: &str) -> Result<(), String> {
        if self.0.is_empty() { Ok(()) } else { Err(format!("{} bytes after {what}", self.0.len())) }
    }
}
