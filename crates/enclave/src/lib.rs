//! The compute side of TCP (whitepaper §4.4, DESIGN §5.4). Today: the contract VM
//! ([`vm`]). The `tcp-enclave` process, its framed channel, sealing and attestation quotes
//! come next (issue 6).

pub mod vm;
