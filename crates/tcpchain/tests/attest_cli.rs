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

/// `tcpchain attest verify` / `identity` on a real quote from Intel hardware (the attestation
/// crate's vector), as a platform operator runs them: it verifies under Intel's root at a time
/// its collateral is valid (raw or hex file), prints the TEE, identity, TCB status and
/// advisories, and exits 1 with the reason for a tampered quote, another identity or expired
/// collateral.
#[test]
fn attest_verify_checks_a_real_intel_quote_and_says_why_one_fails() {
    let vectors = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../attestation/tests/vectors");
    let quote = vectors.join("intel_sgx_quote.bin");
    let collateral = vectors.join("intel_sgx_quote_collateral.json");
    // A minute after the later of the collateral's TCB-info and QE-identity issue dates.
    let at = "1750330631";
    let verify = |quote: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["attest", "verify", "--quote", quote.to_str().unwrap(), "--collateral", collateral.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let (code, out, err) = tcpchain(&args);
        (code, serde_json::from_str::<serde_json::Value>(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}")))
    };
    let (code, report) = verify(&quote, &["--at", at, "--intel"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["verified"], true);
    assert_eq!(report["policy_applied"], false, "no --genesis, no --measurement: the quote alone");
    assert_eq!(report["tee"], "SGX");
    let identity = report["identity"].as_str().unwrap().to_string();
    assert_eq!(identity.len(), 64);
    assert_eq!(report["tcb_status"], "ConfigurationAndSWHardeningNeeded");
    assert_eq!(report["advisory_ids"], serde_json::json!(["INTEL-SA-00289", "INTEL-SA-00615"]));

    // The same quote as hex text, judged: --measurement alone applies the strictest policy
    // naming that identity, which this platform's TCB status does not meet.
    let dir = std::env::temp_dir().join(format!("tcp-attest-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(&quote).unwrap();
    let hex_file = dir.join("quote.hex");
    std::fs::write(&hex_file, format!("0x{}\n", tcp_types::hex::encode(&bytes))).unwrap();
    let (code, report) = verify(&hex_file, &["--at", at, "--measurement", &identity]);
    assert_eq!(code, 1, "{report}");
    assert!(report["error"].as_str().unwrap().contains("TCB status ConfigurationAndSWHardeningNeeded is worse"), "{report}");
    let (code, report) = verify(&hex_file, &["--at", at]);
    assert_eq!(
        (code, &report["identity"], &report["tcb_evaluation_data_number"]),
        (0, &serde_json::json!(identity), &serde_json::json!(17))
    );
    assert_eq!(report["quote_id"].as_str().map(str::len), Some(64));
    // A minimum TCB evaluation data number alone: this collateral is number 17.
    let (code, report) = verify(&quote, &["--at", at, "--min-tcb-evaluation-data-number", "18"]);
    assert_eq!(code, 1, "{report}");
    assert!(report["error"].as_str().unwrap().contains("older than the minimum 18"), "{report}");
    let (code, report) = verify(&quote, &["--at", at, "--min-tcb-evaluation-data-number", "17"]);
    assert_eq!(code, 0, "{report}");

    // `identity` prints what to allow.
    let (code, out, _) = tcpchain(&["attest", "identity", "--quote", quote.to_str().unwrap()]);
    assert_eq!((code, out.trim()), (0, identity.as_str()));

    // Another identity, a flipped byte in the signed report, collateral long expired: exit 1,
    // each with its reason.
    let (code, report) = verify(&quote, &["--at", at, "--measurement", &"11".repeat(32)]);
    assert_eq!(code, 1);
    assert!(report["error"].as_str().unwrap().contains("is not allowed"), "{report}");
    let mut tampered = bytes.clone();
    tampered[48 + 64] ^= 1; // a byte of the enclave's report body (MRENCLAVE)
    let tampered_file = dir.join("tampered.bin");
    std::fs::write(&tampered_file, &tampered).unwrap();
    let (code, report) = verify(&tampered_file, &["--at", at]);
    assert_eq!((code, &report["verified"]), (1, &serde_json::json!(false)));
    assert!(report["error"].as_str().unwrap().contains("does not verify"), "{report}");
    let (code, report) = verify(&quote, &["--at", "4102444800"]);
    assert_eq!(code, 1, "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}
