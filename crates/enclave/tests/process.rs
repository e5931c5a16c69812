//! The real `tcp-enclave` process behind the host: it reports its measurement (SHA-256 of its
//! binary), runs contracts, answers a looping contract and malformed frames with errors and
//! keeps serving, and when it is killed the host restarts it and reloads its contracts.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use tcp_enclave::channel::{PROTOCOL_VERSION, Request, Response, read_frame, write_frame};
use tcp_enclave::host::{EnclaveHost, HostError};

const BIN: &str = env!("CARGO_BIN_EXE_tcp-enclave");

fn code(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../contracts/wasm/{name}.wasm"))).unwrap()
}

fn output(response: Response) -> (Vec<u8>, Vec<u8>) {
    match response {
        Response::Output { state, result, .. } => (state, result),
        other => panic!("expected an output, got {other:?}"),
    }
}

#[test]
fn the_enclave_measures_itself_runs_contracts_survives_bad_ones_and_is_restarted() {
    let mut host = EnclaveHost::start(BIN).unwrap();
    let measurement = tcp_crypto::sha256(&[&std::fs::read(BIN).unwrap()]).0;
    assert_eq!(host.request(&Request::Hello).unwrap(), Response::Hello { measurement, version: PROTOCOL_VERSION });

    let stats = code("aggregate-stats");
    let Response::Loaded { code_hash } = host.request(&Request::Load { code: stats.clone() }).unwrap() else { panic!("loads") };
    assert_eq!(code_hash, tcp_crypto::sha256(&[&stats]).0);
    let (state, _) = output(host.request(&Request::Init { code_hash, input: vec![] }).unwrap());
    let data = [2u32.to_le_bytes().to_vec(), 10i64.to_le_bytes().to_vec(), 20i64.to_le_bytes().to_vec()].concat();
    let (state, result) = output(host.request(&Request::Execute { code_hash, state, input: vec![], data: data.clone() }).unwrap());
    assert_eq!(&result[..8], &2u64.to_le_bytes());

    // A contract that loops forever: an error answer, and the enclave goes on.
    let looping = br#"(module (memory (export "memory") 1) (func (export "init")) (func (export "execute") (loop $l (br $l))))"#.to_vec();
    let Response::Loaded { code_hash: loop_hash } = host.request(&Request::Load { code: looping }).unwrap() else { panic!("loads") };
    match host.request(&Request::Execute { code_hash: loop_hash, state: vec![], input: vec![], data: vec![] }).unwrap() {
        Response::Error { message } => assert!(message.contains("ran out of fuel"), "{message}"),
        other => panic!("{other:?}"),
    }
    // An unknown contract and a module with a forbidden import: errors with their reasons.
    match host.request(&Request::Execute { code_hash: [9; 32], state: vec![], input: vec![], data: vec![] }).unwrap() {
        Response::Error { message } => assert!(message.contains("unknown contract"), "{message}"),
        other => panic!("{other:?}"),
    }
    let wasi = br#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))) (memory (export "memory") 1) (func (export "init")) (func (export "execute")))"#.to_vec();
    match host.request(&Request::Load { code: wasi }).unwrap() {
        Response::Error { message } => assert!(message.contains("not part of the contract ABI"), "{message}"),
        other => panic!("{other:?}"),
    }

    // Killed mid-life: the request fails as Crashed, the host restarts it and reloads the
    // contracts, and the next call works with the same state.
    unsafe { libc::kill(host.pid() as libc::pid_t, libc::SIGKILL) };
    let result = host.request(&Request::Execute { code_hash, state: state.clone(), input: vec![], data: data.clone() });
    assert!(matches!(result, Err(HostError::Crashed)), "{result:?}");
    assert_eq!(host.restarts(), 1);
    let (_, result) = output(host.request(&Request::Execute { code_hash, state, input: vec![], data }).unwrap());
    assert_eq!(&result[..8], &4u64.to_le_bytes());
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
    // An unknown request kind, a truncated body, another protocol version, an oversized frame.
    write_frame(&mut input, 1, 42, &[]).unwrap();
    expect_error(&mut output, "unknown request kind");
    write_frame(&mut input, 2, 1, &[0, 0, 0, 9, 1]).unwrap();
    expect_error(&mut output, "truncated");
    input.write_all(&[0, 0, 0, 10, PROTOCOL_VERSION + 1, 0, 0, 0, 0, 0, 0, 0, 3, 0]).unwrap();
    expect_error(&mut output, "protocol version");
    let huge = (tcp_enclave::channel::MAX_FRAME_BYTES + 1) as u32;
    input.write_all(&huge.to_be_bytes()).unwrap();
    input.write_all(&vec![0u8; huge as usize]).unwrap();
    expect_error(&mut output, "exceeds the limit");
    // Still serving.
    write_frame(&mut input, 7, 0, &[]).unwrap();
    let (id, kind, body) = read_frame(&mut output).unwrap();
    assert_eq!(id, 7);
    assert!(matches!(Response::decode(kind, &body).unwrap(), Response::Hello { .. }));
    drop(input);
    let mut rest = Vec::new();
    output.read_to_end(&mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "a closed channel ends the enclave cleanly");
}
