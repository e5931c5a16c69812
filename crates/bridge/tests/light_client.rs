//! `TcpLightClient.sol` in revm (Prague): a header from a real devnet verifies with its φ, the
//! hash to G1 is RFC 9380's and commonware's, and every kind of forgery is refused. Prints the
//! gas of one verification.

use commonware_codec::Encode as _;
use commonware_cryptography::bls12381::primitives::ops::hash_with_namespace;
use commonware_cryptography::bls12381::primitives::variant::{MinSig, Variant};
use serde_json::Value;
use tcp_bridge::calldata::{self, G1Bytes};
use tcp_bridge::{CallOutcome, EmbeddedChain, light_client};
use tcp_types::hex;

const ERRORS: &[&str] = &[
    "BadChainId()",
    "BadGroupKey()",
    "HeaderTooShort()",
    "BadSignatureLength()",
    "SignatureAtInfinity()",
    "PrecompileFailed(address)",
    "FinalityDoesNotVerify()",
    "DstTooLong()",
];

struct Vector {
    chain_id: String,
    group_key: Vec<u8>,
    header: Vec<u8>,
    round: u32,
    finality: Vec<u8>,
    height: u64,
    state_root: Vec<u8>,
    id: Vec<u8>,
}

fn devnet_vector() -> Vector {
    let v: Value = serde_json::from_str(include_str!("vectors/devnet-header.json")).unwrap();
    let bytes = |name: &str| hex::decode(v[name].as_str().unwrap()).unwrap();
    Vector {
        chain_id: v["chain_id"].as_str().unwrap().to_string(),
        group_key: bytes("group_key"),
        header: bytes("header"),
        round: v["round"].as_u64().unwrap() as u32,
        finality: bytes("finality"),
        height: v["height"].as_u64().unwrap(),
        state_root: bytes("state_root"),
        id: bytes("id"),
    }
}

fn deploy(chain: &mut EmbeddedChain, chain_id: &str, group_key: &[u8]) -> [u8; 20] {
    let key = calldata::g2_from_compressed(group_key).unwrap();
    chain.deploy(calldata::light_client_creation(&light_client().bytecode, chain_id, &key)).unwrap()
}

fn verify(chain: &mut EmbeddedChain, contract: [u8; 20], header: &[u8], round: u32, signature: &[u8]) -> CallOutcome {
    chain.view(contract, calldata::verify_header_raw(header, round, signature)).unwrap()
}

fn reverted_with(outcome: &CallOutcome) -> Option<&'static str> {
    match outcome {
        CallOutcome::Revert { output, .. } => calldata::revert_reason(output, ERRORS),
        _ => None,
    }
}

#[test]
fn artifact_matches_sources() {
    let artifact = light_client();
    let source_hash = hex::encode(&tcp_crypto::sha256(&[tcp_bridge::artifact::LIGHT_CLIENT_SOURCE.as_bytes()]).0);
    assert_eq!(
        artifact.source_sha256, source_hash,
        "contracts/TcpLightClient.sol changed since the artifact was built: run scripts/build-solidity.sh and commit the result"
    );
    assert!(artifact.compiler.starts_with("solc 0.8.37+"), "{}", artifact.compiler);
    assert!(!artifact.deployed_bytecode.is_empty() && artifact.bytecode.ends_with(&[]));
    for (artifact, source, file) in [
        (tcp_bridge::plasma_root(), tcp_bridge::artifact::PLASMA_ROOT_SOURCE, "PlasmaRoot.sol"),
        (tcp_bridge::payout_attacker(), tcp_bridge::artifact::PAYOUT_ATTACKER_SOURCE, "test/PayoutAttacker.sol"),
    ] {
        assert_eq!(
            artifact.source_sha256,
            hex::encode(&tcp_crypto::sha256(&[source.as_bytes()]).0),
            "contracts/{file} changed since its artifact was built: run scripts/build-solidity.sh and commit the result"
        );
        // Ethereum's limit on deployed code (EIP-170).
        assert!(artifact.deployed_bytecode.len() <= 24_576, "{file}: {} bytes of runtime code", artifact.deployed_bytecode.len());
    }
}

/// The committed artifact is exactly what the pinned npm solc makes of the sources (the script
/// installs the compiler under target/solc on first use; it needs Node.js and npm).
#[test]
fn artifact_is_what_the_pinned_compiler_makes_of_the_sources() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/build-solidity.sh"))
        .arg("--check")
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "scripts/build-solidity.sh --check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_real_devnet_header_verifies_in_rust_and_in_solidity() {
    let v = devnet_vector();
    // The Rust light client agrees.
    let light = tcp_light::LightClient::from_group_key_bytes(tcp_types::ChainId::new(&v.chain_id).unwrap(), &v.group_key).unwrap();
    let finality = tcp_beacon::Finality {
        round: tcp_types::Round(v.round),
        signature: tcp_beacon::FinalitySignature::from_bytes(&v.finality).unwrap(),
    };
    let verified = light.verify_header(&v.header, &finality).unwrap();
    assert_eq!(verified.height().0, v.height);

    let mut chain = EmbeddedChain::new();
    let contract = deploy(&mut chain, &v.chain_id, &v.group_key);
    let signature = calldata::g1_from_compressed(&v.finality).unwrap();
    let outcome = verify(&mut chain, contract, &v.header, v.round, &signature);
    let CallOutcome::Success { output, gas } = outcome else { panic!("a devnet header did not verify: {outcome:?}") };
    let (height, state_root, id) = calldata::decode_verified(&output).unwrap();
    assert_eq!((height, state_root.to_vec(), id.to_vec()), (v.height, v.state_root.clone(), v.id.clone()));
    assert_eq!(id, tcp_crypto::sha256(&[&v.header]).0);
    println!("TcpLightClient.verifyHeader: {gas} gas per header (transaction total: 21000 base, {} bytes of calldata)", calldata::verify_header_raw(&v.header, v.round, &signature).len());
    assert!(gas <= 200_000, "{gas} gas per header exceeds the 200k target");
}

#[test]
fn every_forgery_is_refused_with_its_error() {
    let v = devnet_vector();
    let mut chain = EmbeddedChain::new();
    let contract = deploy(&mut chain, &v.chain_id, &v.group_key);
    let signature = calldata::g1_from_compressed(&v.finality).unwrap();

    // A flipped bit anywhere in the header: another id, or another height or state root.
    for at in 0..v.header.len() {
        let mut header = v.header.clone();
        header[at] ^= 0x01;
        let outcome = verify(&mut chain, contract, &header, v.round, &signature);
        assert_eq!(reverted_with(&outcome), Some("FinalityDoesNotVerify()"), "header byte {at}: {outcome:?}");
    }
    // A flipped bit anywhere in φ: not a point, not canonical, or not the signature.
    for at in 0..signature.len() {
        let mut forged = signature;
        forged[at] ^= 0x01;
        let outcome = verify(&mut chain, contract, &v.header, v.round, &forged);
        let reason = reverted_with(&outcome);
        assert!(matches!(reason, Some("FinalityDoesNotVerify()" | "PrecompileFailed(address)")), "φ byte {at}: {outcome:?}");
    }
    // Another round than the one signed.
    assert_eq!(reverted_with(&verify(&mut chain, contract, &v.header, v.round + 1, &signature)), Some("FinalityDoesNotVerify()"));
    // The point at infinity.
    assert_eq!(reverted_with(&verify(&mut chain, contract, &v.header, v.round, &[0u8; 128])), Some("SignatureAtInfinity()"));
    // A coordinate not reduced mod p: x + p encodes the same residue, but is not canonical.
    let unreduced = add_p(&signature, 0);
    assert_eq!(reverted_with(&verify(&mut chain, contract, &v.header, v.round, &unreduced)), Some("PrecompileFailed(address)"));
    let unreduced_y = add_p(&signature, 64);
    assert_eq!(reverted_with(&verify(&mut chain, contract, &v.header, v.round, &unreduced_y)), Some("PrecompileFailed(address)"));
    // −φ (on the curve and in the group, the wrong sign).
    let mut negated = signature;
    negated[64..].copy_from_slice(&sub_from_p(&signature[64..]));
    assert_eq!(reverted_with(&verify(&mut chain, contract, &v.header, v.round, &negated)), Some("FinalityDoesNotVerify()"));
    // Malformed lengths.
    assert_eq!(reverted_with(&verify(&mut chain, contract, &v.header[..87], v.round, &signature)), Some("HeaderTooShort()"));
    assert_eq!(reverted_with(&verify(&mut chain, contract, &v.header, v.round, &signature[..127])), Some("BadSignatureLength()"));

    // Another chain id, the same key: refused.
    let other_chain = deploy(&mut chain, "tcp-other", &v.group_key);
    assert_eq!(reverted_with(&verify(&mut chain, other_chain, &v.header, v.round, &signature)), Some("FinalityDoesNotVerify()"));
    // Another group key (any other point of G2): refused.
    let mut other_key = [0u8; 96];
    // SAFETY: a 96-byte output and blst's static generator.
    unsafe { blst::blst_p2_affine_compress(other_key.as_mut_ptr(), blst::blst_p2_affine_generator()) };
    let other_key_contract = deploy(&mut chain, &v.chain_id, &other_key);
    assert_eq!(reverted_with(&verify(&mut chain, other_key_contract, &v.header, v.round, &signature)), Some("FinalityDoesNotVerify()"));

    // Deployment refuses a key at infinity or off the curve, and a bad chain id.
    let creation = |chain_id: &str, key: &[u8; 256]| calldata::light_client_creation(&light_client().bytecode, chain_id, key);
    assert!(chain.deploy(creation(&v.chain_id, &[0u8; 256])).is_err());
    let mut off_curve = calldata::g2_from_compressed(&v.group_key).unwrap();
    off_curve[255] ^= 1;
    assert!(chain.deploy(creation(&v.chain_id, &off_curve)).is_err());
    let key = calldata::g2_from_compressed(&v.group_key).unwrap();
    assert!(chain.deploy(creation("", &key)).is_err());
    assert!(chain.deploy(creation(&"x".repeat(65), &key)).is_err());
}

/// The base field modulus p.
const P: [u8; 48] = [
    0x1a, 0x01, 0x11, 0xea, 0x39, 0x7f, 0xe6, 0x9a, 0x4b, 0x1b, 0xa7, 0xb6, 0x43, 0x4b, 0xac, 0xd7, 0x64, 0x77, 0x4b, 0x84, 0xf3, 0x85,
    0x12, 0xbf, 0x67, 0x30, 0xd2, 0xa0, 0xf6, 0xb0, 0xf6, 0x24, 0x1e, 0xab, 0xff, 0xfe, 0xb1, 0x53, 0xff, 0xff, 0xb9, 0xfe, 0xff, 0xff,
    0xff, 0xff, 0xaa, 0xab,
];

/// The point with the 48-byte coordinate at `offset + 16` replaced by itself + p (which still
/// fits in 48 bytes: p < 2³⁸¹).
fn add_p(point: &G1Bytes, offset: usize) -> G1Bytes {
    let mut out = *point;
    let mut carry = 0u16;
    for i in (0..48).rev() {
        let sum = point[offset + 16 + i] as u16 + P[i] as u16 + carry;
        out[offset + 16 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    out
}

/// p − y for a 64-byte padded coordinate.
fn sub_from_p(y: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    let mut borrow = 0i16;
    for i in (0..48).rev() {
        let mut d = P[i] as i16 - y[16 + i] as i16 - borrow;
        borrow = if d < 0 { d += 256; 1 } else { 0 };
        out[16 + i] = d as u8;
    }
    out
}

fn hash_to_g1(chain: &mut EmbeddedChain, contract: [u8; 20], message: &[u8], dst: &[u8]) -> Vec<u8> {
    match chain.view(contract, calldata::hash_to_g1(message, dst)).unwrap() {
        CallOutcome::Success { output, .. } => calldata::decode_bytes(&output).unwrap(),
        other => panic!("hashToG1 failed: {other:?}"),
    }
}

#[test]
fn hash_to_curve_is_rfc_9380_and_commonwares() {
    let v = devnet_vector();
    let mut chain = EmbeddedChain::new();
    let contract = deploy(&mut chain, &v.chain_id, &v.group_key);
    // RFC 9380 appendix J.9.1 (BLS12381G1_XMD:SHA-256_SSWU_RO_), from the RFC's test vectors.
    let dst = b"QUUX-V01-CS02-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";
    let vectors: [(&[u8], &str, &str); 3] = [
        (
            b"",
            "052926add2207b76ca4fa57a8734416c8dc95e24501772c814278700eed6d1e4e8cf62d9c09db0fac349612b759e79a1",
            "08ba738453bfed09cb546dbb0783dbb3a5f1f566ed67bb6be0e8c67e2e81a4cc68ee29813bb7994998f3eae0c9c6a265",
        ),
        (
            b"abc",
            "03567bc5ef9c690c2ab2ecdf6a96ef1c139cc0b2f284dca0a9a7943388a49a3aee664ba5379a7655d3c68900be2f6903",
            "0b9c15f3fe6e5cf4211f346271d7b01c8f3b28be689c8429c85b67af215533311f0b8dfaaa154fa6b88176c229f2885d",
        ),
        (
            b"abcdef0123456789",
            "11e0b079dea29a68f0383ee94fed1b940995272407e3bb916bbf268c263ddd57a6a27200a784cbc248e84f357ce82d98",
            "03a87ae2caf14e8ee52e51fa2ed8eefe80f02457004ba4d486d6aa1f517c0889501dc7413753f9599b099ebcbbd2d709",
        ),
    ];
    for (message, x, y) in vectors {
        let point = hash_to_g1(&mut chain, contract, message, dst);
        assert_eq!(hex::encode(&point[16..64]), x, "P.x of {:?}", String::from_utf8_lossy(message));
        assert_eq!(hex::encode(&point[80..128]), y, "P.y of {:?}", String::from_utf8_lossy(message));
        assert!(point[..16].iter().chain(&point[64..80]).all(|b| *b == 0));
    }
    // The finality message as commonware hashes it: namespace prefix and MinSig's DST.
    for message in [&b""[..], b"tcp", &v.header, &[0xff; 300]] {
        let expected = hash_with_namespace::<MinSig>(MinSig::MESSAGE, tcp_beacon::FINALITY_NAMESPACE, message);
        let mut prefixed = vec![tcp_beacon::FINALITY_NAMESPACE.len() as u8];
        prefixed.extend_from_slice(tcp_beacon::FINALITY_NAMESPACE);
        prefixed.extend_from_slice(message);
        let got = hash_to_g1(&mut chain, contract, &prefixed, MinSig::MESSAGE);
        assert_eq!(got.to_vec(), calldata::g1_from_compressed(&expected.encode()).unwrap().to_vec());
    }
}
