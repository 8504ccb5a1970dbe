//! The /16 filter of the exact addresses (`EXACT_SLASH16`, see
//! `anycast_common::slash16_bit`): set before addresses go in, rebuilt by
//! repair.

use std::collections::BTreeMap;

use anycast_common::{SLASH16_WORDS, slash16_bit};

use super::Addresses;
use crate::error::Result;

impl Addresses {
    /// Sets the /16 filter's bit of every address of `addrs` that lacks
    /// it: before any of them goes into the exact table, as the data plane
    /// reads the index and the table only for addresses whose bit is set.
    /// Bits stay set when their addresses leave (see [`Self::repair_index`]).
    pub(super) fn mark_slash16s(
        &mut self,
        addrs: impl IntoIterator<Item = [u8; 16]>,
    ) -> Result<()> {
        let mut wanted: BTreeMap<u32, u64> = BTreeMap::new();
        for a in addrs {
            let (word, bit) = slash16_bit(a[0], a[1]);
            *wanted.entry(word).or_default() |= bit;
        }
        for (word, bits) in wanted {
            let have = self.slash16.get(word)?;
            if have & bits != bits {
                self.slash16.set(word, have | bits)?;
            }
        }
        Ok(())
    }

    /// Makes the /16 filter the one of `addrs` (the exact table's): with
    /// `fix`, writes each word that differs. Returns how many bits it
    /// lacked.
    pub(super) fn repair_slash16s(
        &mut self,
        addrs: impl Iterator<Item = [u8; 16]>,
        fix: bool,
    ) -> Result<u64> {
        let mut want = vec![0u64; SLASH16_WORDS as usize];
        for a in addrs {
            let (word, bit) = slash16_bit(a[0], a[1]);
            want[word as usize] |= bit;
        }
        let mut missing = 0;
        for (i, have) in self.slash16.get_all()?.into_iter().enumerate() {
            let want = want.get(i).copied().unwrap_or(0);
            missing += u64::from((want & !have).count_ones());
            if have != want && fix {
                self.slash16.set(i as u32, want)?;
            }
        }
        Ok(missing)
    }

    /// Clears `addr`'s bit of the /16 filter (a test's damage, see
    /// `Tamper`): the data plane stops finding the exact addresses there.
    #[cfg(feature = "test-support")]
    pub(crate) fn tamper_slash16(&mut self, addr: std::net::Ipv6Addr) -> Result<()> {
        let [b0, b1, ..] = addr.octets();
        let (word, bit) = slash16_bit(b0, b1);
        let have = self.slash16.get(word)?;
        self.slash16.set(word, have & !bit)
    }
}
