//! `tcpchain attest selftest` as a user runs it: on this machine (no TEE) it uses the simulated
//! backend, says so, and passes; against a chain from `tcpchain init` it uses that chain's
//! genesis policy and the node's development platform; what the chain does not accept fails.

mod common;

use common::tcpchain;

#[test]
fn selftest_passes_with_the_simulated_backend_and_says_so() {
    let (code, out, err) = tcpchain(&["attest", "selftest", "--backend", "simulated"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("SIMULATED") && out.contains("prove nothing about hardware"), "{out}");
    assert!(out.contains("tcb status:  UpToDate"), "{out}");
    assert!(out.contains("selftest:    PASSED (simulated backend)"), "{out}");
    // On a machine without configfs-tsm, `auto` picks the simulated backend too.
    if !std::path::Path::new(tcp_attestation::backend::TSM_REPORT_DIR).exists() {
        let (code, out, _) = tcpchain(&["attest", "selftest"]);
        assert_eq!(code, 0);
        assert!(out.contains("simulated SGX"), "{out}");
        let (code, _, err) = tcpchain(&["attest", "selftest", "--backend", "tsm"]);
        assert_eq!(code, 2);
        assert!(err.contains("no configfs-tsm"), "{err}");
    }
}

#[test]
fn selftest_uses_the_chains_policy_and_refuses_what_it_does_not_allow() {
    let dir = std::env::temp_dir().join(format!("tcp-attest-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (code, _, err) = tcpchain(&["init", "--validators", "1", "--dir", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let home = dir.join("validator-0");
    let platform = home.join("dev-platform.json");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&platform).unwrap().permissions().mode() & 0o777, 0o600, "the platform key file is private");
    let genesis_path = dir.join("genesis.json");
    let genesis: serde_json::Value = serde_json::from_slice(&std::fs::read(&genesis_path).unwrap()).unwrap();
    assert_eq!(genesis["attestation"]["production"], false);
    assert_eq!(genesis["attestation"]["root_cas"].as_array().unwrap().len(), 1);

    for tee in ["sgx", "tdx"] {
        let (code, out, err) = tcpchain(&["attest", "selftest", "--backend", "simulated", "--tee", tee, "--home", home.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("the development chain tcp-devnet") && out.contains("PASSED"), "{out}");
    }

    // A chain that allows another measurement: the quote is refused, with the reason.
    let mut other = genesis.clone();
    other["attestation"]["measurements"] = serde_json::json!(["11".repeat(32)]);
    std::fs::write(&genesis_path, serde_json::to_vec_pretty(&other).unwrap()).unwrap();
    let (code, out, _) = tcpchain(&["attest", "selftest", "--backend", "simulated", "--home", home.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILED") && out.contains("is not allowed"), "{out}");

    // A production genesis naming the development root does not load at all.
    let mut production = genesis.clone();
    production["attestation"]["production"] = true.into();
    std::fs::write(&genesis_path, serde_json::to_vec_pretty(&production).unwrap()).unwrap();
    let (code, _, err) = tcpchain(&["attest", "selftest", "--backend", "simulated", "--home", home.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("production chain accepts only Intel's root CA"), "{err}");

    // A missing platform file is named.
    std::fs::write(&genesis_path, serde_json::to_vec_pretty(&genesis).unwrap()).unwrap();
    std::fs::remove_file(&platform).unwrap();
    let (code, _, err) = tcpchain(&["attest", "selftest", "--backend", "simulated", "--home", home.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("dev-platform.json does not exist"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
