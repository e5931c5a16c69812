//! The enclave process: reads framed requests on stdin and answers on stdout
//! ([`crate::channel`]). It has no network or file access of its own beyond reading, once at
//! start-up, its binary (to measure itself) and its quoting backend's platform file. Contracts
//! run in the VM ([`crate::vm`]): whatever a contract does, the answer is an error response
//! and the process keeps serving. Logs go to stderr and never carry inputs, state or keys.

use std::collections::{HashMap, VecDeque};
use std::io::{BufReader, BufWriter, Read};
use std::path::PathBuf;

use rand_core::SeedableRng as _;
use tcp_attestation::{EnclaveIdentity, QuoteBackend, SimulatedBackend, Tee, TsmBackend};
use zeroize::Zeroizing;

use crate::channel::{ChannelError, Input, MAX_FRAME_BYTES, PROTOCOL_VERSION, Request, Response, read_frame, write_frame};
use crate::confidential::{EnclaveKey, Entry, Sealer, execution_digest};
use crate::vm::{CallInput, Contract, Vm, VmLimits};
use tcp_crypto::{Ed25519PrivateKey, SigningDomain, namespace};
use tcp_types::ChainId;

/// Compiled contracts kept (the oldest is dropped first).
pub const MAX_CONTRACTS: usize = 64;

/// How the process was started: `--quote-backend none|simulated|tsm`, `--tee sgx|tdx`,
/// `--dev-platform FILE` (simulated), `--collateral FILE` (tsm), `--debug`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnclaveArgs {
    pub backend: BackendChoice,
    pub tee: Option<String>,
    pub dev_platform: Option<PathBuf>,
    pub collateral: Option<PathBuf>,
    /// Report the enclave as a debug enclave (development only; production policy refuses it).
    pub debug: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// No quotes; state is sealed to this process only.
    #[default]
    None,
    Simulated,
    Tsm,
}

impl EnclaveArgs {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<EnclaveArgs, String> {
        let mut out = EnclaveArgs::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--quote-backend" => {
                    out.backend = match value("--quote-backend")?.as_str() {
                        "none" => BackendChoice::None,
                        "simulated" => BackendChoice::Simulated,
                        "tsm" => BackendChoice::Tsm,
                        other => return Err(format!("unknown quote backend {other:?} (none, simulated, tsm)")),
                    }
                }
                "--tee" => out.tee = Some(value("--tee")?),
                "--dev-platform" => out.dev_platform = Some(PathBuf::from(value("--dev-platform")?)),
                "--collateral" => out.collateral = Some(PathBuf::from(value("--collateral")?)),
                "--debug" => out.debug = true,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(out)
    }

    /// The arguments that reproduce `self` (the host passes them on every restart).
    pub fn to_args(&self) -> Vec<String> {
        let mut out = vec![
            "--quote-backend".to_string(),
            match self.backend {
                BackendChoice::None => "none",
                BackendChoice::Simulated => "simulated",
                BackendChoice::Tsm => "tsm",
            }
            .to_string(),
        ];
        if let Some(tee) = &self.tee {
            out.extend(["--tee".to_string(), tee.clone()]);
        }
        if let Some(path) = &self.dev_platform {
            out.extend(["--dev-platform".to_string(), path.display().to_string()]);
        }
        if let Some(path) = &self.collateral {
            out.extend(["--collateral".to_string(), path.display().to_string()]);
        }
        if self.debug {
            out.push("--debug".to_string());
        }
        out
    }
}

fn make_backend(args: &EnclaveArgs) -> Result<Option<Box<dyn QuoteBackend>>, String> {
    match args.backend {
        BackendChoice::None => Ok(None),
        BackendChoice::Simulated => {
            let tee = match args.tee.as_deref() {
                None => Tee::Sgx,
                Some(name) => Tee::parse(name).ok_or_else(|| format!("unknown TEE {name:?} (sgx, tdx)"))?,
            };
            let path = args.dev_platform.as_ref().ok_or("the simulated backend needs --dev-platform")?;
            let mut seed = Zeroizing::new([0u8; 32]);
            rand_core_09::TryRngCore::try_fill_bytes(&mut rand_core_09::OsRng, seed.as_mut())
                .map_err(|e| format!("the OS RNG failed: {e}"))?;
            let mut rng = rand_chacha::ChaCha20Rng::from_seed(*seed);
            Ok(Some(Box::new(SimulatedBackend::from_file(path, tee, &mut rng)?)))
        }
        BackendChoice::Tsm => {
            let collateral = args.collateral.clone().ok_or("the tsm backend needs --collateral (the PCCS collateral for this platform)")?;
            let backend =
                TsmBackend::detect(collateral).ok_or("this machine has no configfs-tsm report interface (no SGX/TDX guest support)")?;
            Ok(Some(Box::new(backend)))
        }
    }
}

/// One enclave: its identity, keys, backend and loaded contracts.
pub struct Enclave {
    vm: Vm,
    measurement: [u8; 32],
    key: EnclaveKey,
    /// Signs the enclave's outputs; its public half is bound by the registration quote.
    signing: Ed25519PrivateKey,
    /// The chain this process registered to and the chain's keys it pinned (the first
    /// registration binds both).
    chain: Option<(ChainId, tcp_attestation::ChainKeys)>,
    sealer: Sealer,
    backend: Option<Box<dyn QuoteBackend>>,
    debug: bool,
    contracts: HashMap<[u8; 32], Contract>,
    order: VecDeque<[u8; 32]>,
    /// Contract keys obtained from the secret-share group, and requests awaiting answers.
    keys: crate::keys::KeyStore,
}

impl Enclave {
    pub fn start(args: &EnclaveArgs) -> Result<Enclave, String> {
        let measurement = crate::measure_self().map_err(|e| format!("cannot measure its own binary: {e}"))?;
        let vm = Vm::new(VmLimits::default()).map_err(|e| format!("cannot start the VM: {e}"))?;
        let backend = make_backend(args)?;
        let sealer = match backend.as_ref().map(|b| b.sealing_root()) {
            Some(Ok(root)) => Sealer::new(root, measurement),
            // A quoting platform without a sealing key: refuse state rather than seal it to
            // this process's lifetime, which a crash or restart would make unreadable.
            Some(Err(e)) => {
                eprintln!("tcp-enclave: {e}; calls that keep contract state are refused");
                Sealer::without_key(measurement)
            }
            // No backend at all (tests, benchmarks): nothing is attested, and state is sealed
            // to this process only.
            None => {
                let mut root = Zeroizing::new([0u8; 32]);
                rand_core_09::TryRngCore::try_fill_bytes(&mut rand_core_09::OsRng, root.as_mut())
                    .map_err(|e| format!("the OS RNG failed: {e}"))?;
                Sealer::new(root, measurement)
            }
        };
        let mut seed = Zeroizing::new([0u8; 32]);
        rand_core_09::TryRngCore::try_fill_bytes(&mut rand_core_09::OsRng, seed.as_mut()).map_err(|e| format!("the OS RNG failed: {e}"))?;
        let signing = tcp_crypto::ed25519_from_secret(&seed);
        Ok(Enclave {
            vm,
            measurement,
            key: EnclaveKey::generate(),
            signing,
            chain: None,
            sealer,
            backend,
            debug: args.debug,
            contracts: HashMap::new(),
            order: VecDeque::new(),
            keys: crate::keys::KeyStore::default(),
        })
    }

    fn signing_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&commonware_codec::Encode::encode(&commonware_cryptography::Signer::public_key(&self.signing)));
        out
    }

    /// The registration quote: the only quote this enclave makes. Its report data is derived
    /// here from the enclave's own keys; the host supplies only the chain and the freshness.
    fn register(&mut self, chain_id: &str, freshness: [u8; 32], chain_keys: tcp_attestation::ChainKeys) -> Result<tcp_attestation::Evidence, String> {
        let chain_id = ChainId::new(chain_id).map_err(|e| format!("chain id: {e}"))?;
        if let Some((bound, keys)) = &self.chain {
            if *bound != chain_id {
                return Err(format!("this enclave is registered to chain {bound}; start another for {chain_id}"));
            }
            if *keys != chain_keys {
                return Err("this enclave pinned other keys for its chain; start another".into());
            }
        }
        let backend = self.backend.as_ref().ok_or("this enclave runs without a quoting backend")?;
        let registration = tcp_attestation::Registration {
            chain_id: chain_id.clone(),
            freshness,
            chain_keys: chain_keys.digest(),
            signing_key: self.signing_key(),
            x25519_key: self.key.public(),
        };
        let evidence = backend
            .quote(&EnclaveIdentity { measurement: self.measurement, debug: self.debug }, &registration.report_data())
            .map_err(|e| e.to_string())?;
        self.chain = Some((chain_id, chain_keys));
        Ok(evidence)
    }

    /// The plaintext of `input`, wiped on drop unless moved into a call (the VM wipes its
    /// inputs after the call).
    fn open(&self, code_hash: &[u8; 32], input: &Input) -> Result<Zeroizing<Vec<u8>>, String> {
        match input {
            Input::Public(bytes) => Ok(Zeroizing::new(bytes.clone())),
            Input::Sealed(sealed) => self.key.open_input(code_hash, sealed).map_err(|e| e.to_string()),
        }
    }

    /// Seal the new state and sign the call's execution digest, computed here from what the
    /// call really read and produced; `state_in` is the sealed state as received.
    fn answer(
        &self,
        entry: Entry,
        code_hash: &[u8; 32],
        nonce: &[u8; 32],
        state_in: &[u8],
        input: &Input,
        data: &Input,
        out: crate::vm::CallOutput,
    ) -> Response {
        let mut plain_state = out.state;
        let sealed = self.sealer.seal(code_hash, &plain_state);
        zeroize::Zeroize::zeroize(plain_state.as_mut_slice());
        let state = match sealed {
            Ok(state) => state,
            Err(e) => return Response::Error { message: e.to_string() },
        };
        let signature = match &self.chain {
            Some((chain, _)) => {
                let digest = execution_digest(
                    entry,
                    code_hash,
                    nonce,
                    state_in,
                    &input.wire_bytes(),
                    &data.wire_bytes(),
                    &state,
                    &out.result,
                    out.fuel_used,
                );
                commonware_codec::Encode::encode(&SigningDomain::new(namespace::ENCLAVE_OUTPUT, chain).sign(&self.signing, &digest))
                    .to_vec()
            }
            None => Vec::new(),
        };
        Response::Output { state, result: out.result, fuel_used: out.fuel_used, signature }
    }

    pub fn serve(&mut self, kind: u8, body: &[u8]) -> Response {
        let request = match Request::decode(kind, body) {
            Ok(r) => r,
            Err(e) => return Response::Error { message: e.to_string() },
        };
        let error = |message: String| Response::Error { message };
        match request {
            Request::Hello => Response::Hello {
                measurement: self.measurement,
                version: PROTOCOL_VERSION,
                enclave_key: self.key.public(),
                signing_key: self.signing_key(),
                backend: self.backend.as_ref().map_or_else(|| "none".to_string(), |b| b.describe()),
                simulated: self.backend.as_ref().is_none_or(|b| b.is_simulated()),
            },
            Request::Register { chain_id, freshness, chain_keys } => match self.register(&chain_id, freshness, chain_keys) {
                Ok(evidence) => Response::Attestation { quote: evidence.quote, collateral: evidence.collateral },
                Err(e) => error(e),
            },
            Request::RequestKey { epoch, ask } => {
                let Some((chain, _)) = &self.chain else { return error("not registered to a chain: no key request can be signed".into()) };
                let (cid, generation, purpose) = match ask {
                    crate::channel::KeyAsk::Execute { cid, generation } => (cid, generation, tcp_dkmp::KeyPurpose::Execute),
                    crate::channel::KeyAsk::Deploy { code_hash, deployer, nonce } => {
                        // Only for code this enclave holds: the id is computed here, not taken.
                        if !self.contracts.contains_key(&code_hash) {
                            return error("unknown contract: load its code before asking for its deploy key".into());
                        }
                        (tcp_dkmp::contract_id(&code_hash, &deployer, nonce), 0, tcp_dkmp::KeyPurpose::Deploy { code_hash, deployer, nonce })
                    }
                };
                let key = tcp_dkmp::ContractKeyId { chain_id: chain.clone(), cid, generation };
                match crate::keys::request_entropy() {
                    Ok(entropy) => {
                        let signed = self.keys.request(&self.signing, key, epoch, purpose, &entropy);
                        Response::KeyRequest { request: commonware_codec::Encode::encode(&signed).to_vec() }
                    }
                    Err(e) => error(e),
                }
            }
            Request::OpenKey { request, sharing, answers } => {
                let Some((chain, keys)) = &self.chain else { return error("not registered to a chain".into()) };
                // Drawn before any answer is opened, so no failure leaves a partial unwiped.
                let mut rng = match crate::keys::verification_rng() {
                    Ok(rng) => rng,
                    Err(e) => return error(e),
                };
                match self.keys.answer(&mut rng, chain, &keys.master_key, &tcp_types::Digest(request), &sharing, &answers) {
                    Ok(obtained) => Response::ContractKey {
                        cid: obtained.key.cid,
                        generation: obtained.key.generation,
                        public_key: obtained.public_key,
                        bad: obtained.bad,
                    },
                    Err(e) => error(e),
                }
            }
            Request::Load { code } => {
                let code_hash = tcp_crypto::sha256(&[&code]).0;
                if !self.contracts.contains_key(&code_hash) {
                    match self.vm.compile(&code) {
                        Ok(contract) => {
                            if self.contracts.len() >= MAX_CONTRACTS
                                && let Some(old) = self.order.pop_front()
                            {
                                self.contracts.remove(&old);
                            }
                            self.contracts.insert(code_hash, contract);
                            self.order.push_back(code_hash);
                        }
                        Err(e) => return error(e.to_string()),
                    }
                }
                Response::Loaded { code_hash }
            }
            Request::Init { code_hash, nonce, input } => {
                let Some(contract) = self.contracts.get(&code_hash) else { return error("unknown contract: load it first".into()) };
                let plain_input = match self.open(&code_hash, &input) {
                    Ok(i) => i,
                    Err(e) => return error(e),
                };
                match self.vm.init(contract, &plain_input) {
                    Ok(out) => self.answer(Entry::Init, &code_hash, &nonce, &[], &input, &Input::Public(Vec::new()), out),
                    Err(e) => error(e.to_string()),
                }
            }
            Request::Execute { code_hash, nonce, state, input, data } => {
                let Some(contract) = self.contracts.get(&code_hash) else { return error("unknown contract: load it first".into()) };
                let opened = self
                    .sealer
                    .open(&code_hash, &state)
                    .map_err(|e| e.to_string())
                    .and_then(|s| Ok((s, self.open(&code_hash, &input)?, self.open(&code_hash, &data)?)));
                // Whatever was opened before a failure is wiped as it drops.
                let (mut plain_state, mut plain_input, mut plain_data) = match opened {
                    Ok(parts) => parts,
                    Err(e) => return error(e),
                };
                let take = |plain: &mut Zeroizing<Vec<u8>>| std::mem::take(&mut **plain);
                let call = CallInput { input: take(&mut plain_input), data: take(&mut plain_data), state: take(&mut plain_state) };
                let result = self.vm.execute(contract, call);
                match result {
                    Ok(out) => self.answer(Entry::Execute, &code_hash, &nonce, &state, &input, &data, out),
                    Err(e) => error(e.to_string()),
                }
            }
        }
    }
}

/// The process's main loop; returns the exit code.
pub fn run(args: impl IntoIterator<Item = String>) -> i32 {
    let args = match EnclaveArgs::parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tcp-enclave: {e}");
            return 2;
        }
    };
    let mut enclave = match Enclave::start(&args) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("tcp-enclave: {e}");
            return 2;
        }
    };
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut output = BufWriter::new(std::io::stdout().lock());
    loop {
        let (id, response) = match read_frame(&mut input) {
            Ok((id, kind, body)) => (id, enclave.serve(kind, &body)),
            Err(ChannelError::Closed) => return 0,
            Err(ChannelError::TooLarge(len)) => {
                // Skip the oversized body so the stream stays in step.
                if std::io::copy(&mut (&mut input).take(len as u64), &mut std::io::sink()).is_err() {
                    return 0;
                }
                (0, Response::Error { message: format!("frame of {len} bytes exceeds the limit of {MAX_FRAME_BYTES}") })
            }
            Err(e @ (ChannelError::Malformed(_) | ChannelError::Version(_))) => (0, Response::Error { message: e.to_string() }),
            Err(ChannelError::Io(e)) => {
                eprintln!("tcp-enclave: reading the channel failed: {e}");
                return 1;
            }
        };
        let (kind, body) = response.encode();
        if write_frame(&mut output, id, kind, &body).is_err() {
            return 0;
        }
    }
}
