//! The real `tcp-enclave` process behind the host: it reports its measurement (SHA-256 of its
//! binary) in its quotes, runs contracts on sealed state and sealed inputs, attests every
//! output, answers a looping contract and malformed frames with errors and keeps serving, and
//! when it is killed or wedged the host restarts it and reloads its contracts.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tcp_attestation::{AttestationError, DevPki, PlatformTcb, Policy, TcbRank, Verifier, report_data};
use tcp_contract_sdk::{Writer, fixed::ONE};
use tcp_enclave::channel::{Input, PROTOCOL_VERSION, Request, Response, read_frame, write_frame};
use tcp_enclave::confidential::{execution_digest, seal_input};
use tcp_enclave::host::{DEFAULT_REQUEST_TIMEOUT, EnclaveHost, HostError};
use tcp_enclave::process::{BackendChoice, EnclaveArgs};

const BIN: &str = env!("CARGO_BIN_EXE_tcp-enclave");

fn code(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../contracts/wasm/{name}.wasm"))).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// A test's directory, removed when the test ends, passing or not.
struct TestDir(PathBuf);

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A development platform file in a fresh directory, and the root CA that signs for it.
fn dev_platform(tag: &str) -> (TestDir, PathBuf, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("tcp-enclave-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(0xe7c1a5e);
    let pki = DevPki::generate(&mut rng, now() - 3600, Duration::from_secs(30 * 86_400)).unwrap();
    let platform = pki.issue_platform(&mut rng, PlatformTcb::default(), [0, 0x90, 0x6e, 0xd5, 0, 0]).unwrap();
    let path = dir.join("dev-platform.json");
    std::fs::write(&path, platform.to_json().as_bytes()).unwrap();
    (TestDir(dir), path, pki.root_ca_der())
}

fn simulated(path: PathBuf, tee: &str) -> EnclaveArgs {
    EnclaveArgs { backend: BackendChoice::Simulated, tee: Some(tee.into()), dev_platform: Some(path), ..Default::default() }
}

fn measurement() -> [u8; 32] {
    tcp_crypto::sha256(&[&std::fs::read(BIN).unwrap()]).0
}

fn hello(host: &mut EnclaveHost) -> ([u8; 32], [u8; 32], String, bool) {
    match host.request(&Request::Hello).unwrap() {
        Response::Hello { measurement, version, enclave_key, backend, simulated } => {
            assert_eq!(version, PROTOCOL_VERSION);
            (measurement, enclave_key, backend, simulated)
        }
        other => panic!("{other:?}"),
    }
}

fn output(response: Response) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    match response {
        Response::Output { state, result, quote, .. } => (state, result, quote),
        other => panic!("expected an output, got {other:?}"),
    }
}

fn load(host: &mut EnclaveHost, code: Vec<u8>) -> [u8; 32] {
    match host.request(&Request::Load { code }).unwrap() {
        Response::Loaded { code_hash } => code_hash,
        other => panic!("{other:?}"),
    }
}

fn expect_error(response: Result<Response, HostError>, needle: &str) {
    match response.unwrap() {
        Response::Error { message } => assert!(message.contains(needle), "{message}"),
        other => panic!("expected an error containing {needle:?}, got {other:?}"),
    }
}

#[test]
fn the_enclave_attests_itself_and_its_outputs_with_simulated_quotes() {
    let (_dir, platform, root) = dev_platform("attest");
    for tee in ["sgx", "tdx"] {
        let mut host = EnclaveHost::start_with(BIN, simulated(platform.clone(), tee), DEFAULT_REQUEST_TIMEOUT).unwrap();
        let (reported, enclave_key, backend, is_simulated) = hello(&mut host);
        assert_eq!(reported, measurement());
        assert!(is_simulated && backend.contains("simulated") && backend.contains("no hardware confidentiality"), "{backend}");
        let policy = Policy { measurements: vec![measurement()], signers: vec![], min_tcb: TcbRank::UpToDate, allow_debug: false };
        let verifier = Verifier::new(vec![root.clone()], policy, false).unwrap();

        // The enclave's quote binds its key to our challenge; a replay against a new
        // challenge fails.
        let challenge = [0x42; 32];
        let Response::Attestation { quote, collateral } = host.request(&Request::Attest { challenge }).unwrap() else { panic!("attests") };
        let attested = verifier.verify(&quote, &collateral, now(), &report_data(&enclave_key, &challenge)).unwrap();
        assert_eq!(attested.measurement, measurement());
        assert_eq!(
            verifier.verify(&quote, &collateral, now(), &report_data(&enclave_key, &[0x43; 32])),
            Err(AttestationError::ReportDataMismatch)
        );

        // An output's quote attests the call: code, nonce, what went in and what came out.
        let stats = code("aggregate-stats");
        let code_hash = load(&mut host, stats);
        let nonce = [7; 32];
        let (state, result, quote) = output(host.request(&Request::Init { code_hash, nonce, input: Input::Public(vec![]) }).unwrap());
        let digest = execution_digest(&code_hash, &nonce, &[], &Input::Public(vec![]).wire_bytes(), &Input::Public(vec![]).wire_bytes(), &state, &result);
        verifier.verify(&quote, &collateral, now(), &report_data(&enclave_key, &digest)).unwrap();
        // The same quote does not vouch for another result.
        let forged = execution_digest(&code_hash, &nonce, &[], &Input::Public(vec![]).wire_bytes(), &Input::Public(vec![]).wire_bytes(), &state, b"forged");
        assert_eq!(verifier.verify(&quote, &collateral, now(), &report_data(&enclave_key, &forged)), Err(AttestationError::ReportDataMismatch));
    }
}

fn q(x: f64) -> i32 {
    (x * ONE as f64).round() as i32
}

/// Data owners seal their records to the attested enclave key; the host relays them, runs
/// the contract and gets the scores, and nothing it sent or received contains a record or
/// the model in the clear. State comes back sealed and only this enclave opens it.
#[test]
fn the_host_never_sees_confidential_inputs_or_state_in_the_clear() {
    let (_dir, platform, _) = dev_platform("blind");
    let mut host = EnclaveHost::start_with(BIN, simulated(platform, "sgx"), DEFAULT_REQUEST_TIMEOUT).unwrap();
    let (_, enclave_key, _, _) = hello(&mut host);
    let code_hash = load(&mut host, code("credit-score"));
    host.record_transcript();

    let mut model = Writer::new().i32(q(0.5)).i32(q(-0.3)).u32(3);
    for w in [0.8, -1.2, 0.5] {
        model = model.i32(q(w));
    }
    let model = model.finish();
    // Applicants' features: varied fractions, as real data would be.
    let feature = |i: u64, j: u64| ((i * 7_919 + j * 104_729 + 13) * 2_654_435_761 % 4_001) as f64 / 1_000.0 - 2.0;
    let records: Vec<[f64; 3]> = (0..40).map(|i| [feature(i, 0), feature(i, 1), feature(i, 2)]).collect();
    let mut data = Writer::new().u32(records.len() as u32);
    for r in &records {
        for f in r {
            data = data.i32(q(*f));
        }
    }
    let data = data.finish();

    let (state, _, _) = output(host.request(&Request::Init { code_hash, nonce: [1; 32], input: Input::Sealed(seal_input(&enclave_key, &code_hash, &model)) }).unwrap());
    let sealed_data = Input::Sealed(seal_input(&enclave_key, &code_hash, &data));
    let (state_after, result, _) = output(host.request(&Request::Execute { code_hash, nonce: [2; 32], state: state.clone(), input: Input::Public(vec![]), data: sealed_data.clone() }).unwrap());
    // The scores are what the model computes natively on the plaintext.
    assert_eq!(result, credit_score::score_all(&credit_score::decode_model(&model).unwrap(), &data).unwrap());

    // Nothing the host saw contains any 12-byte run of the records or the model. (Runs of
    // few distinct bytes, like the zeros of small features, also occur in quotes' reserved
    // fields: only runs that identify the plaintext count.)
    let distinctive = |run: &&[u8]| run.iter().collect::<std::collections::HashSet<_>>().len() >= 7;
    let secret_runs: Vec<&[u8]> = data.windows(12).chain(model.windows(12)).filter(distinctive).collect();
    assert!(secret_runs.len() > 300, "the check covers the records: {} runs", secret_runs.len());
    for frame in host.transcript() {
        for run in &secret_runs {
            assert!(!frame.windows(run.len()).any(|w| w == *run), "a frame of {} bytes carries confidential plaintext {run:02x?}", frame.len());
        }
    }
    assert!(!state.windows(model.len()).any(|w| w == model), "the state is sealed");
    assert_ne!(state, state_after, "each sealing uses a fresh nonce");

    // Input sealed for another contract, or by someone to another key, does not open; an
    // altered sealed state does not open.
    let other_contract = Input::Sealed(seal_input(&enclave_key, &[9; 32], &data));
    expect_error(host.request(&Request::Execute { code_hash, nonce: [3; 32], state: state.clone(), input: Input::Public(vec![]), data: other_contract }), "does not open");
    let mut altered = state.clone();
    altered[20] ^= 1;
    expect_error(host.request(&Request::Execute { code_hash, nonce: [4; 32], state: altered, input: Input::Public(vec![]), data: sealed_data.clone() }), "sealed state does not open");

    // Another enclave process (no platform sealing root) cannot open this state.
    let mut stranger = EnclaveHost::start(BIN).unwrap();
    let stranger_hash = load(&mut stranger, code("credit-score"));
    assert_eq!(stranger_hash, code_hash);
    expect_error(stranger.request(&Request::Execute { code_hash, nonce: [5; 32], state, input: Input::Public(vec![]), data: Input::Public(data) }), "sealed state does not open");
}

#[test]
fn the_enclave_survives_bad_contracts_and_is_restarted_when_killed_or_wedged() {
    let (_dir, platform, _) = dev_platform("restart");
    // Room for a contract compile on a loaded 2-core machine; the wedge below waits this long once.
    let mut host = EnclaveHost::start_with(BIN, simulated(platform, "sgx"), Duration::from_secs(10)).unwrap();
    let stats = code("aggregate-stats");
    let code_hash = load(&mut host, stats);
    let (state, _, _) = output(host.request(&Request::Init { code_hash, nonce: [0; 32], input: Input::Public(vec![]) }).unwrap());
    let data = Input::Public([2u32.to_le_bytes().to_vec(), 10i64.to_le_bytes().to_vec(), 20i64.to_le_bytes().to_vec()].concat());
    let execute = |state: &Vec<u8>| Request::Execute { code_hash, nonce: [0; 32], state: state.clone(), input: Input::Public(vec![]), data: data.clone() };
    let (state, result, _) = output(host.request(&execute(&state)).unwrap());
    assert_eq!(&result[..8], &2u64.to_le_bytes());

    // A contract that loops forever: an error answer, and the enclave goes on.
    let looping = br#"(module (memory (export "memory") 1) (func (export "init")) (func (export "execute") (loop $l (br $l))))"#.to_vec();
    let loop_hash = load(&mut host, looping);
    expect_error(host.request(&Request::Execute { code_hash: loop_hash, nonce: [0; 32], state: vec![], input: Input::Public(vec![]), data: Input::Public(vec![]) }), "ran out of fuel");
    // An unknown contract and a module with a forbidden import: errors with their reasons.
    expect_error(host.request(&Request::Execute { code_hash: [9; 32], nonce: [0; 32], state: vec![], input: Input::Public(vec![]), data: Input::Public(vec![]) }), "unknown contract");
    let wasi = br#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))) (memory (export "memory") 1) (func (export "init")) (func (export "execute")))"#.to_vec();
    expect_error(host.request(&Request::Load { code: wasi }), "not part of the contract ABI");

    // Killed mid-life: the request fails as Crashed, the host restarts it and reloads the
    // contracts, and the next call opens the same sealed state (same platform, same binary).
    unsafe { libc::kill(host.pid() as libc::pid_t, libc::SIGKILL) };
    let result = host.request(&execute(&state));
    assert!(matches!(result, Err(HostError::Crashed)), "{result:?}");
    assert_eq!(host.restarts(), 1);
    let (state, result, _) = output(host.request(&execute(&state)).unwrap());
    assert_eq!(&result[..8], &4u64.to_le_bytes());

    // Wedged (stopped): the request times out, the host restarts it, and work goes on.
    unsafe { libc::kill(host.pid() as libc::pid_t, libc::SIGSTOP) };
    let result = host.request(&execute(&state));
    assert!(matches!(result, Err(HostError::Timeout(_))), "{result:?}");
    assert_eq!(host.restarts(), 2);
    let (_, result, _) = output(host.request(&execute(&state)).unwrap());
    assert_eq!(&result[..8], &6u64.to_le_bytes());
}

#[test]
fn bad_start_arguments_are_refused_with_a_reason() {
    for (args, needle) in [
        (vec!["--quote-backend", "magic"], "unknown quote backend"),
        (vec!["--quote-backend", "simulated"], "needs --dev-platform"),
        (vec!["--quote-backend", "simulated", "--dev-platform", "/nonexistent/platform.json"], "reading /nonexistent"),
        (vec!["--frobnicate"], "unknown argument"),
    ] {
        let out = Command::new(BIN).args(&args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn malformed_and_oversized_frames_get_errors_and_the_enclave_keeps_serving() {
    let mut child = Command::new(BIN).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = child.stdout.take().unwrap();
    let expect_error = |output: &mut std::process::ChildStdout, needle: &str| {
        let (_, kind, body) = read_frame(output).unwrap();
        match Response::decode(kind, &body).unwrap() {
            Response::Error { message } => assert!(message.contains(needle), "{message}"),
            other => panic!("{other:?}"),
        }
    };
    // An unknown request kind, a truncated body, an unknown input kind, another protocol
    // version, an oversized frame; and a quote from an enclave without a backend.
    write_frame(&mut input, 1, 42, &[]).unwrap();
    expect_error(&mut output, "unknown request kind");
    write_frame(&mut input, 2, 1, &[0, 0, 0, 9, 1]).unwrap();
    expect_error(&mut output, "truncated");
    write_frame(&mut input, 3, 2, &[[0u8; 64].as_slice(), &[7]].concat()).unwrap();
    expect_error(&mut output, "unknown input kind");
    input.write_all(&[0, 0, 0, 10, PROTOCOL_VERSION + 1, 0, 0, 0, 0, 0, 0, 0, 3, 0]).unwrap();
    expect_error(&mut output, "protocol version");
    let huge = (tcp_enclave::channel::MAX_FRAME_BYTES + 1) as u32;
    input.write_all(&huge.to_be_bytes()).unwrap();
    input.write_all(&vec![0u8; huge as usize]).unwrap();
    expect_error(&mut output, "exceeds the limit");
    let (kind, body) = Request::Attest { challenge: [0; 32] }.encode();
    write_frame(&mut input, 4, kind, &body).unwrap();
    expect_error(&mut output, "without a quoting backend");
    // Still serving.
    write_frame(&mut input, 7, 0, &[]).unwrap();
    let (id, kind, body) = read_frame(&mut output).unwrap();
    assert_eq!(id, 7);
    assert!(matches!(Response::decode(kind, &body).unwrap(), Response::Hello { simulated: true, .. }));
    drop(input);
    let mut rest = Vec::new();
    output.read_to_end(&mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "a closed channel ends the enclave cleanly");
}
