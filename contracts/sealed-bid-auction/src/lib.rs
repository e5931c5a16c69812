//! A sealed-bid second-price (Vickrey) auction: bids reach the contract encrypted, so nobody —
//! the compute node included — sees them; at the close only the winner and the price they pay
//! (the second-highest bid, at least the reserve) are revealed.
//!
//! * init input: `reserve u64`;
//! * execute input `0` with data `bidder [32] ‖ amount u64`: a bid (result: `1` accepted, or `0`
//!   after the close); input `1`: close (result: `sold u8 ‖ winner [32] ‖ price u64`).
//! * state: `reserve u64 ‖ open u8 ‖ bids u32 ‖ best [32] ‖ best u64 ‖ second u64`.

use tcp_contract_sdk::{Contract, Data, Error, Reader, Writer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auction {
    pub reserve: u64,
    pub open: bool,
    pub bids: u32,
    pub best_bidder: [u8; 32],
    pub best: u64,
    pub second: u64,
}

impl Auction {
    pub fn decode(bytes: &[u8]) -> Result<Auction, Error> {
        let mut r = Reader::new(bytes);
        Ok(Auction { reserve: r.u64()?, open: r.u8()? == 1, bids: r.u32()?, best_bidder: r.array()?, best: r.u64()?, second: r.u64()? })
    }

    pub fn encode(&self) -> Vec<u8> {
        Writer::new().u64(self.reserve).u8(u8::from(self.open)).u32(self.bids).bytes(&self.best_bidder).u64(self.best).u64(self.second).finish()
    }

    pub fn bid(&mut self, bidder: [u8; 32], amount: u64) -> bool {
        if !self.open {
            return false;
        }
        self.bids += 1;
        if amount > self.best {
            self.second = self.best;
            self.best = amount;
            self.best_bidder = bidder;
        } else if amount > self.second {
            self.second = amount;
        }
        true
    }

    /// (sold, winner, price).
    pub fn close(&mut self) -> (bool, [u8; 32], u64) {
        self.open = false;
        if self.best < self.reserve {
            return (false, [0; 32], 0);
        }
        (true, self.best_bidder, self.second.max(self.reserve))
    }
}

pub struct SealedBidAuction;

impl Contract for SealedBidAuction {
    fn init(input: &[u8]) -> Result<Vec<u8>, Error> {
        let reserve = Reader::new(input).u64()?;
        Ok(Auction { reserve, open: true, bids: 0, best_bidder: [0; 32], best: 0, second: 0 }.encode())
    }

    fn execute(state: &[u8], input: &[u8], data: &mut Data) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let data = &data.read_to_end()[..];
        let mut auction = Auction::decode(state)?;
        let result = match Reader::new(input).u8()? {
            0 => {
                let mut r = Reader::new(data);
                let bidder = r.array()?;
                let accepted = auction.bid(bidder, r.u64()?);
                vec![u8::from(accepted)]
            }
            1 => {
                let (sold, winner, price) = auction.close();
                Writer::new().u8(u8::from(sold)).bytes(&winner).u64(price).finish()
            }
            _ => return Err(Error::Invalid("command")),
        };
        Ok((auction.encode(), result))
    }
}

tcp_contract_sdk::export_contract!(SealedBidAuction);
