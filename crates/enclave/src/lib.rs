//! The compute side of TCP (whitepaper §4.4, DESIGN §5.4): the contract VM ([`vm`]), the
//! `tcp-enclave` process ([`process`]) and its framed channel ([`channel`]), what keeps the
//! host blind — sealed inputs and state, attested outputs ([`confidential`]) — and the
//! compute node's side of the channel ([`host`]), and contract keys obtained from the
//! secret-share group ([`keys`]); deploy and execute as the chain settles them, under those keys
//! ([`compute`]).

pub mod channel;
pub mod compute;
pub mod confidential;
pub mod host;
pub mod keys;
pub mod process;
pub mod vm;

/// The enclave's measurement: SHA-256 of its own binary (the MRENCLAVE analogue).
pub fn measure_self() -> std::io::Result<[u8; 32]> {
    let binary = std::fs::read(std::env::current_exe()?)?;
    Ok(tcp_crypto::sha256(&[&binary]).0)
}
