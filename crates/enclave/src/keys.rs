//! Contract keys inside the enclave (DESIGN §5.5 "Release"; issue 19, item 4): the rules are
//! `tcp_dkmp::KeyStore` (request signed by the registered key with a fresh answer key; answers
//! opened, checked against the master key pinned at registration, batch-verified, recovered,
//! wiped); this process gives them the OS's randomness.

pub use tcp_dkmp::keystore::{MAX_ANSWERS, MAX_CACHED, MAX_PENDING};
pub use tcp_dkmp::{KeyStore, Obtained, RelayedAnswer};

use rand_core::SeedableRng as _;
use zeroize::Zeroizing;

fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, String> {
    let mut out = Zeroizing::new([0u8; N]);
    rand_core_09::TryRngCore::try_fill_bytes(&mut rand_core_09::OsRng, out.as_mut()).map_err(|e| format!("the OS RNG failed: {e}"))?;
    Ok(out)
}

/// A request's randomness: the answer key's seed and the nonce.
pub fn request_entropy() -> Result<Zeroizing<[u8; 48]>, String> {
    random::<48>()
}

/// The randomness a batch verification of partials takes (and a result's identity-based
/// encryption).
pub fn verification_rng() -> Result<rand_chacha::ChaCha20Rng, String> {
    Ok(rand_chacha::ChaCha20Rng::from_seed(*random::<32>()?))
}
