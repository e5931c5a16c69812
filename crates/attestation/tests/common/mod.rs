//! What the attestation tests share.

/// The report data of a registration with these keys and freshness value (the one purpose a
/// TCP quote has).
pub fn report_data(key: &[u8; 32], freshness: &[u8; 32]) -> [u8; 64] {
    tcp_attestation::Registration {
        chain_id: tcp_types::ChainId::new("attest-test").unwrap(),
        freshness: *freshness,
        chain_keys: [0x33; 32],
        signing_key: *key,
        x25519_key: *key,
    }
    .report_data()
}
