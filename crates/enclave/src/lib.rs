//! The compute side of TCP (whitepaper §4.4, DESIGN §5.4): the contract VM ([`vm`]), the
//! `tcp-enclave` process (`src/main.rs`) and its framed channel ([`channel`]), and the compute
//! node's side of it ([`host`]). Sealing and attestation quotes come next (issue 6).

pub mod channel;
pub mod host;
pub mod vm;

/// The enclave's measurement: SHA-256 of its own binary (the MRENCLAVE analogue).
pub fn measure_self() -> std::io::Result<[u8; 32]> {
    let binary = std::fs::read(std::env::current_exe()?)?;
    Ok(tcp_crypto::sha256(&[&binary]).0)
}
