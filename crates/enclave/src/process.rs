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
use tcp_state::smt::StateProof;
use tcp_state::{Call, CallStatus, ComputeOutcome, SignedComputeRequest};
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

/// What the compute node charges for a call: a base fee, and the gas price its transaction will
/// pay (the fee covers that gas, whatever the outcome's size).
#[derive(Clone, Copy, Debug)]
struct Price {
    base: u128,
    gas_price: u64,
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
    /// The loaded contracts' code (a deploy's outcome carries it).
    codes: HashMap<[u8; 32], Vec<u8>>,
    order: VecDeque<[u8; 32]>,
    /// The light client of the pinned group key: checks the headers the host shows.
    light: Option<tcp_light::LightClient>,
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
            codes: HashMap::new(),
            order: VecDeque::new(),
            light: None,
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

    /// The registered chain, or an error for a call that needs one.
    fn registered(&self) -> Result<ChainId, String> {
        self.chain.as_ref().map(|(c, _)| c.clone()).ok_or_else(|| "not registered to a chain: no outcome can be signed".to_string())
    }

    /// The client's request, checked as the chain will check it: for this chain, signed, and
    /// naming the input it came with. Returns it with its client.
    fn client_request(&self, chain: &ChainId, bytes: &[u8], input_wire: &[u8]) -> Result<(SignedComputeRequest, tcp_state::Address), String> {
        let signed = SignedComputeRequest::decode(bytes).map_err(|e| format!("the request does not decode: {e}"))?;
        if &signed.request.chain_id != chain {
            return Err(format!("the request is for chain {}, this enclave serves {chain}", signed.request.chain_id));
        }
        let client = signed.client().map_err(|e| format!("the request's signature: {e}"))?;
        if tcp_crypto::sha256(&[input_wire]).0 != signed.request.input_hash {
            return Err("the input is not the one the client's request names".into());
        }
        Ok((signed, client))
    }

    /// The contract's keys of `generation`, or the answer telling the host to obtain them.
    fn contract_keys(&self, chain: &ChainId, cid: &[u8; 32], generation: u64, deploy: bool) -> Result<&tcp_dkmp::ContractKeys, Response> {
        let id = tcp_dkmp::ContractKeyId { chain_id: chain.clone(), cid: *cid, generation };
        self.keys.get(&id).ok_or(Response::NeedKey { cid: *cid, generation, deploy })
    }

    /// Seal the result, price, build and sign the outcome. A completed call whose encrypted
    /// state or sealed result exceeds what the chain keeps becomes a failed call (state
    /// unchanged, the reason sealed): an outcome the chain would refuse must never be made, or
    /// one client's input could brick a contract for everyone. The fee is the compute node's
    /// base fee plus the gas its transaction will cost at `price.gas_price`, so a large outcome
    /// never makes the node submit at a loss; fee and data prices must fit the client's max fee.
    #[allow(clippy::too_many_arguments)]
    fn outcome(
        &self,
        chain: &ChainId,
        request: SignedComputeRequest,
        cid: [u8; 32],
        code: Vec<u8>,
        (generation, public_key, pre_state_hash): (u64, [u8; 32], [u8; 32]),
        unchanged: (u64, [u8; 32]),
        status: CallStatus,
        state: Vec<u8>,
        (state_key, plain_state): (&[u8; 32], &[u8]),
        result: &[u8],
        fuel_used: u64,
        price: Price,
        data: Vec<tcp_state::DataUse>,
    ) -> Result<Response, String> {
        use tcp_state::contracts::{MAX_RESULT_BYTES, MAX_STATE_BYTES};
        // HPKE's encapsulated key and tag, the identity-based layer, the envelope's status and
        // blinding.
        const RESULT_OVERHEAD: usize = 32 + 16 + tcp_dkmp::result::SEALED_OVERHEAD + 1 + 32;
        let too_large = match status {
            CallStatus::Ok if state.len() > MAX_STATE_BYTES => {
                Some(format!("the contract's new state is {} bytes encrypted, more than the {MAX_STATE_BYTES} the chain keeps", state.len()))
            }
            CallStatus::Ok if result.len() + RESULT_OVERHEAD > MAX_RESULT_BYTES => {
                Some(format!("the contract's result is {} bytes, more than the {} a receipt carries", result.len(), MAX_RESULT_BYTES - RESULT_OVERHEAD))
            }
            _ => None,
        };
        let (generation, public_key, status, state, result) = match &too_large {
            Some(why) => (unchanged.0, unchanged.1, CallStatus::Failed, Vec::new(), why.as_bytes()),
            // An error message is the VM's or ours: bounded anyway.
            None if status == CallStatus::Failed => (generation, public_key, status, state, &result[..result.len().min(1024)]),
            None => (generation, public_key, status, state, result),
        };
        let master_key = self.chain.as_ref().map(|(_, keys)| keys.master_key).ok_or("not registered to a chain")?;
        let request_id = request.request.id();
        let new_state: &[u8] = if status == CallStatus::Ok { plain_state } else { &[] };
        let computed = tcp_state::contracts::computed_commitment(state_key, &request_id, &pre_state_hash, status, result, new_state);
        let of = crate::compute::ResultOf { chain, cid: &cid, request_id: &request_id };
        let mut rng = crate::keys::verification_rng()?;
        let (sealed_result, result_hash) = crate::compute::seal_result(&mut rng, of, &master_key, &request.request.result_key, status, result)?;
        let prices = data.iter().try_fold(0u128, |sum, d| sum.checked_add(d.terms.price)).ok_or("data prices overflow")?;
        let max_fee = request.request.max_fee;
        let mut outcome = ComputeOutcome {
            request,
            enclave: self.signing_key(),
            cid,
            code,
            generation,
            public_key,
            pre_state_hash,
            status,
            state,
            result: sealed_result,
            result_hash,
            computed,
            fuel_used,
            fee: 0,
            data,
        };
        let gas = u128::from(tcp_state::contracts::compute_gas(&outcome)) * u128::from(price.gas_price);
        outcome.fee = price.base.checked_add(gas).ok_or("fee overflow")?;
        if outcome.fee.checked_add(prices).is_none_or(|total| total > max_fee) {
            return Err(format!(
                "the call's fee {} (base {} and gas {gas}) and data prices {prices} exceed the client's max fee {max_fee}",
                outcome.fee, price.base
            ));
        }
        let signature = outcome.sign(chain, &self.signing);
        Ok(Response::Outcome { outcome: outcome.encode(), signature })
    }

    /// Deploy (DESIGN §5.6): the contract id computed here from the code, the client and the
    /// nonce; `init` run under the contract's generation-0 keys; its state encrypted under the
    /// state key. A failing `init` is a failed outcome (no contract; the fee charged).
    fn deploy(&mut self, request: &[u8], init: &Input, price: Price) -> Result<Response, String> {
        let chain = self.registered()?;
        let (signed, client) = self.client_request(&chain, request, &init.wire_bytes())?;
        let Call::Deploy { code_hash } = signed.request.call else { return Err("not a deploy request".into()) };
        if price.base > signed.request.max_fee {
            return Err(format!("fee {} exceeds the client's max fee {}", price.base, signed.request.max_fee));
        }
        let (Some(contract), Some(code)) = (self.contracts.get(&code_hash), self.codes.get(&code_hash)) else {
            return Err("unknown contract: load its code first".into());
        };
        if code.len() > tcp_state::contracts::MAX_CODE_BYTES {
            return Err(format!("the code is {} bytes, more than the {} a deploy may carry", code.len(), tcp_state::contracts::MAX_CODE_BYTES));
        }
        let cid = signed.request.contract(&client);
        let keys = match self.contract_keys(&chain, &cid, 0, true) {
            Ok(keys) => keys,
            Err(need) => return Ok(need),
        };
        let plain_input = self.open(&code_hash, init)?;
        let key = (0, keys.public_key, [0u8; 32]);
        let unchanged = (0, keys.public_key);
        match self.vm.init(contract, &plain_input) {
            Ok(out) => {
                let plain_state = Zeroizing::new(out.state);
                let state = crate::compute::seal_state(&chain, &cid, 0, keys, &plain_state);
                let commit = (keys.state_key(), plain_state.as_slice());
                self.outcome(&chain, signed, cid, code.clone(), key, unchanged, CallStatus::Ok, state, commit, &out.result, out.fuel_used, price, Vec::new())
            }
            Err(e) => {
                let fuel = if let crate::vm::VmError::OutOfFuel(n) = e { n } else { 0 };
                let commit = (keys.state_key(), &[][..]);
                self.outcome(&chain, signed, cid, code.clone(), key, unchanged, CallStatus::Failed, Vec::new(), commit, e.to_string().as_bytes(), fuel, price, Vec::new())
            }
        }
    }

    /// Execute (DESIGN §5.4, §5.6): the header checked with φ under the pinned group key; the
    /// contract's record and the request id's absence proven against its state root; the state
    /// the host gives hashing to the record's; the input the request names, and each data blob
    /// the request names under its owner's terms for this contract; then the call, its new state
    /// encrypted under the contract's newest generation, its result sealed to the client. A
    /// call that fails (trap, fuel, bad input) is a failed outcome with its error sealed.
    fn call(&mut self, request: &[u8], view: &crate::channel::ChainView, state: &[u8], input: &[u8], data: &[crate::channel::DataBlob], price: Price) -> Result<Response, String> {
        let chain = self.registered()?;
        let (signed, _client) = self.client_request(&chain, request, input)?;
        let Call::Execute { cid, data: hashes } = &signed.request.call else { return Err("not an execute request".into()) };
        let cid = *cid;
        // The chain as the host shows it.
        if self.light.is_none() {
            let group_key = self.chain.as_ref().map(|(_, keys)| keys.group_key).expect("registered");
            self.light = Some(tcp_light::LightClient::from_group_key_bytes(chain.clone(), &group_key).map_err(|e| format!("the pinned group key: {e}"))?);
        }
        let light = self.light.as_ref().expect("set above");
        let finality = tcp_beacon::Finality::from_bytes(&view.finality).map_err(|e| format!("finality: {e}"))?;
        let header = light.verify_header(&view.header, &finality).map_err(|e| format!("the header: {e}"))?;
        // Only a header of the request's own lifetime: a host cannot rerun a request over the
        // contract's old states (each run's status and fuel are public) or after it expired.
        let (height, valid_until) = (header.height().0, signed.request.valid_until);
        if height > valid_until || height.saturating_add(tcp_state::contracts::MAX_REQUEST_LIFETIME) < valid_until {
            return Err(format!("the header of height {height} is outside the request's lifetime (valid until {valid_until})"));
        }
        let prove = |bytes: &[u8], key: [u8; 32], what: &str| -> Result<Option<Vec<u8>>, String> {
            let proof = StateProof::decode(bytes).ok_or_else(|| format!("the {what} proof does not decode"))?;
            if proof.key != key {
                return Err(format!("the {what} proof is for another key"));
            }
            Ok(light.verify_state_proof(&header, &proof).map_err(|e| format!("the {what} proof: {e}"))?.map(<[u8]>::to_vec))
        };
        let record = prove(&view.contract, tcp_state::contracts::contract_key(&cid), "contract")?
            .and_then(|v| tcp_state::ContractEntry::decode(&v))
            .ok_or("the header's state holds no such contract")?;
        let id = signed.request.id();
        if prove(&view.request, tcp_state::contracts::request_key(&id), "request")?.is_some() {
            return Err("the request is committed already on the chain the header shows".into());
        }
        if tcp_state::contracts::state_hash(state) != record.state_hash {
            return Err("the state given is not the contract's state the header proves".into());
        }
        let Some(contract) = self.contracts.get(&record.code_hash) else { return Err("unknown contract code: load it first".into()) };
        // The data: the request's, each under terms its owner signed for this contract.
        if data.len() != hashes.len() {
            return Err("the data given is not the data the request names".into());
        }
        let mut uses = Vec::with_capacity(data.len());
        let mut prices: u128 = 0;
        for (blob, hash) in data.iter().zip(hashes) {
            let used = tcp_state::DataUse::decode(&blob.terms).map_err(|e| format!("data terms: {e}"))?;
            if used.terms.hash != *hash || tcp_crypto::sha256(&[&blob.sealed]).0 != *hash {
                return Err("the data given is not the data the request names".into());
            }
            if used.terms.chain_id != chain || !used.terms.contracts.contains(&cid) || used.owner().is_none() {
                return Err(format!("data {}: its terms are not its owner's for this contract", tcp_types::hex::encode(hash)));
            }
            prices = prices.checked_add(used.terms.price).ok_or("data prices overflow")?;
            uses.push(used);
        }
        if price.base.checked_add(prices).is_none_or(|total| total > signed.request.max_fee) {
            return Err(format!("fee {} and data prices {prices} exceed the client's max fee {}", price.base, signed.request.max_fee));
        }
        // Every key the call needs: the state's and the published generation, the newest, and
        // whatever the input and each blob were sealed under (old generations stay derivable).
        let input_generation = crate::compute::sealed_generation(input).ok_or("malformed sealed input")?;
        let mut needed = vec![record.key_generation, record.generation, input_generation];
        for blob in data {
            needed.push(crate::compute::sealed_generation(&blob.sealed).ok_or("malformed sealed data")?);
        }
        for &g in &needed {
            if g > record.generation {
                return Err(format!("generation {g} of the contract does not exist (newest {})", record.generation));
            }
            if let Err(need) = self.contract_keys(&chain, &cid, g, false) {
                return Ok(need);
            }
        }
        let keys_of = |g: u64| self.contract_keys(&chain, &cid, g, false).map_err(|_| "checked above".to_string());
        use crate::compute::{Sealed, open_from_contract, open_state};
        // A blob that does not open under its terms is the host's doing (terms swapped, re-signed
        // to pay itself) or a bad upload: no outcome at all, so nobody is paid for it. The state
        // proved on chain always opens. An input that does not open is the client's: a failed
        // call, with its fee, like any other.
        let mut plain_data = Zeroizing::new(Vec::new());
        let mut data_ends = Vec::with_capacity(data.len());
        for (blob, used) in data.iter().zip(&uses) {
            let g = crate::compute::sealed_generation(&blob.sealed).expect("checked above");
            let plain = open_from_contract(Sealed::Data, &chain, &cid, keys_of(g)?, g, &used.terms.binding(), &blob.sealed)
                .map_err(|e| format!("data {}: {e}", tcp_types::hex::encode(&used.terms.hash)))?;
            plain_data.extend_from_slice(&plain);
            data_ends.push(plain_data.len());
        }
        let plain_state = open_state(&chain, &cid, record.key_generation, keys_of(record.key_generation)?, state)?;
        let opened = open_from_contract(Sealed::Input, &chain, &cid, keys_of(input_generation)?, input_generation, b"", input)
            .map(|plain_input| (plain_state, plain_input, plain_data));
        let newest = keys_of(record.generation)?;
        // What the call computed is committed under the key of the state it ran on: the same
        // for every run of this request on this state.
        let state_key = keys_of(record.key_generation)?.state_key();
        let current = (record.key_generation, record.public_key, record.state_hash);
        let unchanged = (record.key_generation, record.public_key);
        let (mut plain_state, mut plain_input, mut plain_data) = match opened {
            Ok(parts) => parts,
            // The client's input that does not open is the client's failure: a receipt, with
            // the fee, as any failed call.
            Err(e) => return self.outcome(&chain, signed, cid, Vec::new(), current, unchanged, CallStatus::Failed, Vec::new(), (state_key, &[]), e.as_bytes(), 0, price, uses),
        };
        let take = |plain: &mut Zeroizing<Vec<u8>>| std::mem::take(&mut **plain);
        let call = CallInput { input: take(&mut plain_input), data: take(&mut plain_data), data_ends, state: take(&mut plain_state) };
        match self.vm.execute(contract, call) {
            Ok(out) => {
                let plain_state = Zeroizing::new(out.state);
                let sealed = crate::compute::seal_state(&chain, &cid, record.generation, newest, &plain_state);
                let key = (record.generation, newest.public_key, record.state_hash);
                self.outcome(&chain, signed, cid, Vec::new(), key, unchanged, CallStatus::Ok, sealed, (state_key, &plain_state), &out.result, out.fuel_used, price, uses)
            }
            Err(e) => {
                let fuel = if let crate::vm::VmError::OutOfFuel(n) = e { n } else { 0 };
                self.outcome(&chain, signed, cid, Vec::new(), current, unchanged, CallStatus::Failed, Vec::new(), (state_key, &[]), e.to_string().as_bytes(), fuel, price, uses)
            }
        }
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
                                self.codes.remove(&old);
                            }
                            self.contracts.insert(code_hash, contract);
                            self.codes.insert(code_hash, code);
                            self.order.push_back(code_hash);
                        }
                        Err(e) => return error(e.to_string()),
                    }
                }
                Response::Loaded { code_hash }
            }
            Request::Deploy { request, init, fee, gas_price } => {
                self.deploy(&request, &init, Price { base: fee, gas_price }).unwrap_or_else(error)
            }
            Request::Call { request, view, state, input, data, fee, gas_price } => {
                self.call(&request, &view, &state, &input, &data, Price { base: fee, gas_price }).unwrap_or_else(error)
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
                let call = CallInput { input: take(&mut plain_input), data: take(&mut plain_data), data_ends: Vec::new(), state: take(&mut plain_state) };
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
            // A panic is a bug, never an answer to input; but input chosen to find one must not
            // end the process (a restarted enclave has new keys and must register again).
            Ok((id, kind, body)) => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| enclave.serve(kind, &body))) {
                Ok(response) => (id, response),
                Err(_) => (id, Response::Error { message: "internal error (the request was not served)".into() }),
            },
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
