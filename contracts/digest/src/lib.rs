//! SHA-256 of the call's data: the benchmark contract for plain computation in the VM
//! (`cargo bench -p tcp-enclave` runs the same code natively and compares).
//!
//! * execute data: any bytes; result: their SHA-256 (32 bytes); state: unchanged.

use sha2::{Digest, Sha256};
use tcp_contract_sdk::{Contract, Data, Error};

pub fn digest(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub struct DigestContract;

impl Contract for DigestContract {
    fn init(_input: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(Vec::new())
    }

    fn execute(state: &[u8], _input: &[u8], data: &mut Data) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let data = &data.read_to_end()[..];
        Ok((state.to_vec(), digest(data).to_vec()))
    }
}

tcp_contract_sdk::export_contract!(DigestContract);
