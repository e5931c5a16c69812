//! The real `tcp-enclave` process behind the host: it reports its measurement (SHA-256 of its
//! binary) in its registration quote, runs contracts on sealed state and sealed inputs, signs
//! every output, answers a looping contract and malformed frames with errors and keeps serving, and
//! when it is killed or wedged the host restarts it and reloads its contracts.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use tcp_attestation::{AttestationError, Policy, Registration, Verifier};
use tcp_contract_sdk::{Writer, fixed::ONE};
use tcp_enclave::channel::{Input, PROTOCOL_VERSION, Request, Response, read_frame, write_frame};
use tcp_enclave::confidential::{Entry, execution_digest, seal_input};
use tcp_enclave::host::{DEFAULT_REQUEST_TIMEOUT, EnclaveHost, HostError};
use tcp_enclave::process::EnclaveArgs;

mod common;

use common::*;

#[test]
fn the_enclave_registers_with_a_simulated_quote_and_signs_its_outputs() {
    let (_dir, platform, root) = dev_platform("attest");
    for tee in ["sgx", "tdx"] {
        let mut host = EnclaveHost::start_with(BIN, simulated(platform.clone(), tee), DEFAULT_REQUEST_TIMEOUT).unwrap();
        let (reported, _, backend, is_simulated) = hello(&mut host);
        assert_eq!(reported, measurement());
        assert!(is_simulated && backend.contains("simulated") && backend.contains("no hardware confidentiality"), "{backend}");
        // On TDX the quote names the simulated TD running the enclave, not the binary.
        let identity = tcp_attestation::simulated_identity(
            tcp_attestation::Tee::parse(tee).unwrap(),
            &tcp_attestation::EnclaveIdentity { measurement: measurement(), debug: false },
        );
        let policy = Policy { measurements: vec![identity], ..Policy::default() };
        let verifier = Verifier::new(vec![root.clone()], policy, false).unwrap();

        // Before registering, outputs carry no signature (the enclave has no chain).
        let stats = code("aggregate-stats");
        let code_hash = load(&mut host, stats);
        let (_, _, unsigned) = output(host.request(&Request::Init { code_hash, nonce: [1; 32], input: Input::Public(vec![]) }).unwrap());
        assert!(unsigned.is_empty());

        // The quote names the registration: the enclave's two keys, the chain and the chain's
        // freshness value; a replay under another freshness value or chain fails.
        let registration = registration_of(&mut host, "attest-test", [0x42; 32]);
        let Response::Attestation { quote, collateral } =
            host.request(&Request::Register { chain_id: "attest-test".into(), freshness: [0x42; 32], chain_keys: chain_keys() }).unwrap()
        else {
            panic!("registers")
        };
        let verified = verifier.verify_registration(&quote, &collateral, now(), &registration).unwrap();
        assert_eq!(verified.attested.measurement, identity);
        for stale in [
            Registration { freshness: [0x43; 32], ..registration.clone() },
            Registration { chain_keys: [0x63; 32], ..registration.clone() },
            Registration { chain_id: tcp_types::ChainId::new("another-chain").unwrap(), ..registration.clone() },
        ] {
            assert_eq!(verifier.verify_registration(&quote, &collateral, now(), &stale).unwrap_err(), AttestationError::ReportDataMismatch);
        }
        // Bound to its chain: another chain's registration is refused.
        expect_error(
            host.request(&Request::Register { chain_id: "another-chain".into(), freshness: [0x42; 32], chain_keys: chain_keys() }),
            "registered to chain attest-test",
        );
        // And to the chain's keys: a host cannot make it trust another group later.
        let other = tcp_attestation::ChainKeys { master_key: [0x64; 96], ..chain_keys() };
        expect_error(
            host.request(&Request::Register { chain_id: "attest-test".into(), freshness: [0x42; 32], chain_keys: other }),
            "pinned other keys",
        );

        // An output is signed by the registered key: code, nonce, what went in and what came out.
        let nonce = [7; 32];
        let (state, result, signature, fuel) =
            output_with_fuel(host.request(&Request::Init { code_hash, nonce, input: Input::Public(vec![]) }).unwrap());
        let empty = Input::Public(vec![]).wire_bytes();
        let digest = execution_digest(Entry::Init, &code_hash, &nonce, &[], &empty, &empty, &state, &result, fuel);
        assert!(verified.verify_output(&digest, &signature));
        // The same signature does not vouch for another result, another fuel charge, or the
        // same call claimed as an `execute`.
        let forged = execution_digest(Entry::Init, &code_hash, &nonce, &[], &empty, &empty, &state, b"forged", fuel);
        assert!(
            !verified.verify_output(
                &execution_digest(Entry::Init, &code_hash, &nonce, &[], &empty, &empty, &state, &result, fuel * 2),
                &signature
            )
        );
        assert!(
            !verified.verify_output(
                &execution_digest(Entry::Execute, &code_hash, &nonce, &[], &empty, &empty, &state, &result, fuel),
                &signature
            )
        );
        assert!(!verified.verify_output(&forged, &signature));
    }
}

fn q(x: f64) -> i32 {
    (x * ONE as f64).round() as i32
}

/// Data owners seal their records to the attested enclave key; the host relays them, runs
/// the contract and gets the scores, and nothing it sent or received contains a record or
/// the model in the clear. State comes back sealed and only this enclave opens it. (What this
/// shows is the channel: under the simulated backend the host's machine also holds the
/// platform's keys and the enclave's memory, so simulation gives the code path, not
/// confidentiality.)
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

    let (state, _, _) = output(
        host.request(&Request::Init { code_hash, nonce: [1; 32], input: Input::Sealed(seal_input(&enclave_key, &code_hash, &model)) })
            .unwrap(),
    );
    let sealed_data = Input::Sealed(seal_input(&enclave_key, &code_hash, &data));
    let (state_after, result, _) = output(
        host.request(&Request::Execute {
            code_hash,
            nonce: [2; 32],
            state: state.clone(),
            input: Input::Public(vec![]),
            data: sealed_data.clone(),
        })
        .unwrap(),
    );
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
            assert!(
                !frame.windows(run.len()).any(|w| w == *run),
                "a frame of {} bytes carries confidential plaintext {run:02x?}",
                frame.len()
            );
        }
    }
    assert!(!state.windows(model.len()).any(|w| w == model), "the state is sealed");
    assert_ne!(state, state_after, "each sealing uses a fresh nonce");

    // Input sealed for another contract, or by someone to another key, does not open; an
    // altered sealed state does not open.
    let other_contract = Input::Sealed(seal_input(&enclave_key, &[9; 32], &data));
    expect_error(
        host.request(&Request::Execute {
            code_hash,
            nonce: [3; 32],
            state: state.clone(),
            input: Input::Public(vec![]),
            data: other_contract,
        }),
        "does not open",
    );
    let mut altered = state.clone();
    altered[20] ^= 1;
    expect_error(
        host.request(&Request::Execute {
            code_hash,
            nonce: [4; 32],
            state: altered,
            input: Input::Public(vec![]),
            data: sealed_data.clone(),
        }),
        "sealed state does not open",
    );

    // Another enclave process (no platform sealing root) cannot open this state.
    let mut stranger = EnclaveHost::start(BIN).unwrap();
    let stranger_hash = load(&mut stranger, code("credit-score"));
    assert_eq!(stranger_hash, code_hash);
    expect_error(
        stranger.request(&Request::Execute { code_hash, nonce: [5; 32], state, input: Input::Public(vec![]), data: Input::Public(data) }),
        "sealed state does not open",
    );
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
    let execute = |state: &Vec<u8>| Request::Execute {
        code_hash,
        nonce: [0; 32],
        state: state.clone(),
        input: Input::Public(vec![]),
        data: data.clone(),
    };
    let (state, result, _) = output(host.request(&execute(&state)).unwrap());
    assert_eq!(&result[..8], &2u64.to_le_bytes());

    // A contract that loops forever: an error answer, and the enclave goes on.
    let looping = br#"(module (memory (export "memory") 1) (func (export "init")) (func (export "execute") (loop $l (br $l))))"#.to_vec();
    let loop_hash = load(&mut host, looping);
    expect_error(
        host.request(&Request::Execute {
            code_hash: loop_hash,
            nonce: [0; 32],
            state: vec![],
            input: Input::Public(vec![]),
            data: Input::Public(vec![]),
        }),
        "ran out of fuel",
    );
    // An unknown contract and a module with a forbidden import: errors with their reasons.
    expect_error(
        host.request(&Request::Execute {
            code_hash: [9; 32],
            nonce: [0; 32],
            state: vec![],
            input: Input::Public(vec![]),
            data: Input::Public(vec![]),
        }),
        "unknown contract",
    );
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
    // A frame shorter than its header: refused, and its bytes with it (the stream stays in
    // step: read as a length, 9 9 9 9 would be an oversized frame).
    input.write_all(&[0, 0, 0, 5, 9, 9, 9, 9, 9]).unwrap();
    expect_error(&mut output, "shorter than its header");
    write_frame(&mut input, 11, 0, &[]).unwrap();
    let (id, kind, body) = read_frame(&mut output).unwrap();
    assert_eq!(id, 11, "the next frame is read in step");
    assert!(matches!(Response::decode(kind, &body).unwrap(), Response::Hello { .. }));
    let huge = (tcp_enclave::channel::MAX_FRAME_BYTES + 1) as u32;
    input.write_all(&huge.to_be_bytes()).unwrap();
    input.write_all(&vec![0u8; huge as usize]).unwrap();
    expect_error(&mut output, "exceeds the limit");
    let (kind, body) = Request::Register { chain_id: "c".into(), freshness: [0; 32], chain_keys: chain_keys() }.encode();
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

/// An enclave that answers with a frame longer than the limit (or anything that leaves the
/// stream out of step) is replaced: the next request starts on a fresh process.
#[test]
fn an_oversized_answer_restarts_the_enclave() {
    let dir = std::env::temp_dir().join(format!("tcp-enclave-oversized-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = TestDir(dir.clone());
    let script = dir.join("oversized.sh");
    std::fs::write(&script, "printf '\\377\\377\\377\\377'\nexec cat > /dev/null\n").unwrap();
    // Run by `/bin/sh`, not executed itself: a file just written may still be open for writing
    // in a child another test thread is forking (ETXTBSY), and a shell only reads it.
    let prefix = vec![script.to_str().unwrap().to_string()];
    let mut host = EnclaveHost::start_program("/bin/sh", prefix, EnclaveArgs::default(), Duration::from_secs(10)).unwrap();
    let error = host.request(&Request::Hello).unwrap_err();
    assert!(matches!(error, HostError::Channel(tcp_enclave::channel::ChannelError::TooLarge(_))), "{error}");
    assert_eq!(host.restarts(), 1, "the process behind an out-of-step stream is replaced");
}

/// A request over the channel's limit is refused before anything is sent: the enclave (and its
/// registration) is kept.
#[test]
fn an_oversized_request_is_refused_without_a_restart() {
    let mut host = EnclaveHost::start(BIN).unwrap();
    let code = vec![0u8; tcp_enclave::channel::MAX_FRAME_BYTES];
    assert!(matches!(host.request(&Request::Load { code }).unwrap_err(), HostError::RequestTooLarge(_)));
    assert_eq!(host.restarts(), 0);
    assert!(matches!(host.request(&Request::Hello).unwrap(), Response::Hello { .. }));
}

/// A restarted enclave gets back what the old one held — its newest 64 contracts — and not every
/// contract ever loaded (the host's list is bounded like the enclave's).
#[test]
fn a_restart_reloads_only_the_contracts_the_enclave_kept() {
    let mut host = EnclaveHost::start(BIN).unwrap();
    let module = |n: usize| {
        format!(r#"(module (memory (export "memory") 1) (global i32 (i32.const {n})) (func (export "init")) (func (export "execute")))"#)
            .into_bytes()
    };
    let total = tcp_enclave::process::MAX_CONTRACTS + 2;
    for n in 0..total {
        load(&mut host, module(n));
    }
    host.record_transcript();
    unsafe { libc::kill(host.pid() as libc::pid_t, libc::SIGKILL) };
    assert!(matches!(host.request(&Request::Hello), Err(HostError::Crashed)));
    let reloaded: Vec<usize> = (0..total)
        .filter(|n| {
            let (_, body) = Request::Load { code: module(*n) }.encode();
            host.transcript().contains(&body)
        })
        .collect();
    assert_eq!(reloaded, (2..total).collect::<Vec<_>>(), "the two oldest were evicted, the rest reloaded");
}
