//! Credit scoring over encrypted applicant records: a lender deploys a logistic-regression
//! model; applicants' records reach the contract encrypted to its key; the result holds only
//! each applicant's score and decision, never the records.
//!
//! * init input: `threshold i32 ‖ bias i32 ‖ k u32 ‖ k × weight i32` (Q16.16);
//! * execute data: one blob per data owner, as the call names them, each exactly one batch
//!   `n u32 ‖ n × (k × feature i32)` (Q16.16): a batch never runs into the next owner's blob;
//! * result: `n × (score i32 (probability, Q16.16) ‖ approved u8)` for every record, batch after
//!   batch; state: the model, unchanged.

use tcp_contract_sdk::{Contract, Data, Error, Reader, fixed};

pub struct Model {
    pub threshold: i64,
    pub bias: i64,
    /// Q16.16 as read; products are taken in i64.
    pub weights: Vec<i32>,
}

pub const MAX_FEATURES: usize = 256;

pub fn decode_model(bytes: &[u8]) -> Result<Model, Error> {
    let mut r = Reader::new(bytes);
    let threshold = i64::from(r.i32()?);
    let bias = i64::from(r.i32()?);
    let k = r.u32()? as usize;
    if k == 0 || k > MAX_FEATURES {
        return Err(Error::Invalid("feature count"));
    }
    let weights = (0..k).map(|_| r.i32()).collect::<Result<_, _>>()?;
    Ok(Model { threshold, bias, weights })
}

/// σ(bias + w·x) for one record as it arrives (`k` little-endian Q16.16 i32), read in place.
#[inline]
pub fn score(model: &Model, record: &[u8]) -> i64 {
    fixed::sigmoid(model.bias + fixed::dot(&model.weights, record))
}

/// How many records follow a batch's header, checked against the rest of its blob.
fn record_count(model: &Model, header: [u8; 4], rest_of_blob: usize) -> Result<usize, Error> {
    let n = u32::from_le_bytes(header) as usize;
    match n.checked_mul(model.weights.len() * 4) {
        Some(len) if len == rest_of_blob => Ok(n),
        _ => Err(Error::Invalid("record count")),
    }
}

/// Score `records` into `out`, 5 bytes per record, written in place (a growing writer would
/// check its capacity and move itself per record). Always inlined: as a call, the native
/// batch loop ran 4 % slower.
#[inline(always)]
fn score_into(model: &Model, records: &[u8], out: &mut [u8]) {
    for (record, slot) in records.chunks_exact(model.weights.len() * 4).zip(out.chunks_exact_mut(5)) {
        let s = score(model, record);
        slot[..4].copy_from_slice(&(s as i32).to_le_bytes());
        slot[4] = u8::from(s >= model.threshold);
    }
}

/// Score every record of one batch held in memory (the logic run natively).
pub fn score_all(model: &Model, data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut r = Reader::new(data);
    let n = record_count(model, r.array()?, r.remaining())?;
    let mut out = vec![0u8; n * 5];
    score_into(model, r.take(r.remaining())?, &mut out);
    Ok(out)
}

/// Score every record of every blob, blob after blob, each blob one batch; the data is taken
/// a piece at a time into one buffer, so memory holds a piece of the data, not all of it.
pub fn score_blobs(model: &Model, data: &mut Data) -> Result<Vec<u8>, Error> {
    let record_bytes = model.weights.len() * 4;
    let per_piece = (PIECE_BYTES / record_bytes).max(1);
    let mut piece = Vec::new();
    let mut out = Vec::new();
    let ends = data.blob_ends().to_vec();
    if ends.is_empty() {
        return Err(Error::Invalid("no records"));
    }
    for end in ends {
        let header = data.array()?;
        let n = record_count(model, header, end.checked_sub(data.position()).ok_or(Error::Truncated)?)?;
        // The buffer only grows: one allocation for the largest piece of any batch.
        let need = per_piece.min(n) * record_bytes;
        if piece.len() < need {
            piece.resize(need, 0);
        }
        let at = out.len();
        out.resize(at + n * 5, 0);
        for slots in out[at..].chunks_mut(per_piece * 5) {
            let records = &mut piece[..slots.len() / 5 * record_bytes];
            data.read_into(records)?;
            score_into(model, records, slots);
        }
    }
    Ok(out)
}

/// The contract takes the records from the host this many bytes at a time into one buffer:
/// its memory then holds a piece of the batch, not all of it.
const PIECE_BYTES: usize = 64 << 10;

pub struct CreditScore;

impl Contract for CreditScore {
    fn init(input: &[u8]) -> Result<Vec<u8>, Error> {
        decode_model(input)?;
        Ok(input.to_vec())
    }

    fn execute(state: &[u8], _input: &[u8], data: &mut Data) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let model = decode_model(state)?;
        Ok((state.to_vec(), score_blobs(&model, data)?))
    }
}

tcp_contract_sdk::export_contract!(CreditScore);
