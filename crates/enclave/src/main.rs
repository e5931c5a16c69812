//! `tcp-enclave`: the enclave process a compute node spawns. It reads framed requests on stdin
//! and answers on stdout (`tcp_enclave::channel`); it has no network or file access of its own
//! beyond reading its binary once to measure itself. Contracts run in the VM
//! (`tcp_enclave::vm`): whatever a contract does, the answer is an error response and the
//! process keeps serving. Logs go to stderr.

use std::collections::{HashMap, VecDeque};
use std::io::{BufReader, BufWriter, Read};
use tcp_enclave::channel::{ChannelError, MAX_FRAME_BYTES, PROTOCOL_VERSION, Request, Response, read_frame, write_frame};
use tcp_enclave::vm::{CallInput, Contract, Vm, VmLimits};

/// Compiled contracts kept (the oldest is dropped first).
const MAX_CONTRACTS: usize = 64;

fn main() {
    let measurement = match tcp_enclave::measure_self() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("tcp-enclave: cannot measure its own binary: {e}");
            std::process::exit(2);
        }
    };
    let vm = match Vm::new(VmLimits::default()) {
        Ok(vm) => vm,
        Err(e) => {
            eprintln!("tcp-enclave: cannot start the VM: {e}");
            std::process::exit(2);
        }
    };
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut output = BufWriter::new(std::io::stdout().lock());
    let mut contracts: HashMap<[u8; 32], Contract> = HashMap::new();
    let mut order: VecDeque<[u8; 32]> = VecDeque::new();
    loop {
        let (id, response) = match read_frame(&mut input) {
            Ok((id, kind, body)) => (id, serve(&vm, measurement, &mut contracts, &mut order, kind, &body)),
            Err(ChannelError::Closed) => return,
            Err(ChannelError::TooLarge(len)) => {
                // Skip the oversized body so the stream stays in step.
                if std::io::copy(&mut (&mut input).take(len as u64), &mut std::io::sink()).is_err() {
                    return;
                }
                (0, Response::Error { message: format!("frame of {len} bytes exceeds the limit of {MAX_FRAME_BYTES}") })
            }
            Err(e @ (ChannelError::Malformed(_) | ChannelError::Version(_))) => (0, Response::Error { message: e.to_string() }),
            Err(ChannelError::Io(e)) => {
                eprintln!("tcp-enclave: reading the channel failed: {e}");
                return;
            }
        };
        let (kind, body) = response.encode();
        if write_frame(&mut output, id, kind, &body).is_err() {
            return;
        }
    }
}

fn serve(
    vm: &Vm,
    measurement: [u8; 32],
    contracts: &mut HashMap<[u8; 32], Contract>,
    order: &mut VecDeque<[u8; 32]>,
    kind: u8,
    body: &[u8],
) -> Response {
    let request = match Request::decode(kind, body) {
        Ok(r) => r,
        Err(e) => return Response::Error { message: e.to_string() },
    };
    let error = |message: String| Response::Error { message };
    match request {
        Request::Hello => Response::Hello { measurement, version: PROTOCOL_VERSION },
        Request::Load { code } => {
            let code_hash = tcp_crypto::sha256(&[&code]).0;
            if !contracts.contains_key(&code_hash) {
                match vm.compile(&code) {
                    Ok(contract) => {
                        if contracts.len() >= MAX_CONTRACTS
                            && let Some(old) = order.pop_front()
                        {
                            contracts.remove(&old);
                        }
                        contracts.insert(code_hash, contract);
                        order.push_back(code_hash);
                    }
                    Err(e) => return error(e.to_string()),
                }
            }
            Response::Loaded { code_hash }
        }
        Request::Init { code_hash, input } => match contracts.get(&code_hash) {
            Some(c) => match vm.init(c, &input) {
                Ok(out) => Response::Output { state: out.state, result: out.result, fuel_used: out.fuel_used },
                Err(e) => error(e.to_string()),
            },
            None => error("unknown contract: load it first".into()),
        },
        Request::Execute { code_hash, state, input, data } => match contracts.get(&code_hash) {
            Some(c) => match vm.execute(c, CallInput { input, data, state }) {
                Ok(out) => Response::Output { state: out.state, result: out.result, fuel_used: out.fuel_used },
                Err(e) => error(e.to_string()),
            },
            None => error("unknown contract: load it first".into()),
        },
    }
}
