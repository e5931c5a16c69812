//! An aggregate statistic over many owners' records: each call adds a batch of encrypted
//! values (salaries, readings, …) to running totals; the result is only the aggregate (count,
//! mean, variance), never a single record.
//!
//! * execute data: `n u32 ‖ n × value i64`;
//! * result: `count u64 ‖ sum i64 ‖ mean i64 ‖ variance i64` (mean and variance rounded toward
//!   zero); state: `count u64 ‖ sum i128 ‖ sum of squares i128`.

use tcp_contract_sdk::{Contract, Data, Error, Reader, Writer};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub count: u64,
    pub sum: i128,
    pub squares: i128,
}

impl Totals {
    pub fn decode(bytes: &[u8]) -> Result<Totals, Error> {
        let mut r = Reader::new(bytes);
        let count = r.u64()?;
        let sum = i128::from_le_bytes(r.array()?);
        let squares = i128::from_le_bytes(r.array()?);
        Ok(Totals { count, sum, squares })
    }

    pub fn encode(&self) -> Vec<u8> {
        Writer::new().u64(self.count).bytes(&self.sum.to_le_bytes()).bytes(&self.squares.to_le_bytes()).finish()
    }

    pub fn add(&mut self, data: &[u8]) -> Result<(), Error> {
        let mut r = Reader::new(data);
        let n = r.u32()? as usize;
        if r.remaining() != n * 8 {
            return Err(Error::Invalid("record count"));
        }
        for _ in 0..n {
            let v = i128::from(r.i64()?);
            self.count += 1;
            self.sum = self.sum.checked_add(v).ok_or(Error::Invalid("overflow"))?;
            self.squares = self.squares.checked_add(v * v).ok_or(Error::Invalid("overflow"))?;
        }
        Ok(())
    }

    /// (mean, variance), population variance.
    pub fn moments(&self) -> (i64, i64) {
        if self.count == 0 {
            return (0, 0);
        }
        let n = i128::from(self.count);
        let mean = self.sum / n;
        let variance = (self.squares - self.sum * self.sum / n) / n;
        (mean as i64, variance.min(i128::from(i64::MAX)) as i64)
    }
}

pub struct AggregateStats;

impl Contract for AggregateStats {
    fn init(_input: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(Totals::default().encode())
    }

    fn execute(state: &[u8], _input: &[u8], data: &mut Data) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let data = &data.read_to_end()[..];
        let mut totals = Totals::decode(state)?;
        totals.add(data)?;
        let (mean, variance) = totals.moments();
        let result = Writer::new().u64(totals.count).i64(totals.sum.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64).i64(mean).i64(variance).finish();
        Ok((totals.encode(), result))
    }
}

tcp_contract_sdk::export_contract!(AggregateStats);
