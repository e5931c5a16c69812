//! Private set-intersection count: two data owners (say, two hospitals) learn how many
//! identifiers they share, and nothing else — not which ones.
//!
//! * execute data: `a u32 ‖ a × id [32] ‖ b u32 ‖ b × id [32]` (the two owners' sets, each
//!   encrypted by its owner to the contract key);
//! * result: `count u32`; state: `runs u64`.

use std::collections::HashSet;
use tcp_contract_sdk::{Contract, Data, Error, Reader, Writer};

pub const MAX_SET: usize = 1 << 20;

fn read_set<'a>(r: &mut Reader<'a>) -> Result<Vec<&'a [u8]>, Error> {
    let n = r.u32()? as usize;
    if n > MAX_SET {
        return Err(Error::Invalid("set size"));
    }
    (0..n).map(|_| r.take(32)).collect()
}

pub fn intersection_count(data: &[u8]) -> Result<u32, Error> {
    let mut r = Reader::new(data);
    let a: HashSet<&[u8]> = read_set(&mut r)?.into_iter().collect();
    let b: HashSet<&[u8]> = read_set(&mut r)?.into_iter().collect();
    if !r.is_empty() {
        return Err(Error::Invalid("trailing bytes"));
    }
    Ok(a.intersection(&b).count() as u32)
}

pub struct PsiCount;

impl Contract for PsiCount {
    fn init(_input: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(0u64.to_le_bytes().to_vec())
    }

    fn execute(state: &[u8], _input: &[u8], data: &mut Data) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let data = &data.read_to_end()[..];
        let runs = Reader::new(state).u64()? + 1;
        let count = intersection_count(data)?;
        Ok((Writer::new().u64(runs).finish(), Writer::new().u32(count).finish()))
    }
}

tcp_contract_sdk::export_contract!(PsiCount);
