//! `SUBNETS`: the subnets whose reserved anycast addresses (RFC 2526) are
//! configured, by 64-bit prefix. Userspace only: the addresses themselves
//! are exact addresses in the address tables like any other; this says
//! where they came from.

use anycast_common::{SubnetInfo, SubnetKey, map_names};

use crate::{
    error::Result,
    maps::{HashMapOf, MapSource},
};

/// Owner of `SUBNETS`.
pub(crate) struct Subnets {
    map: HashMapOf<SubnetKey, SubnetInfo>,
}

impl Subnets {
    /// Takes the map from `src`.
    pub(crate) fn take(src: &mut MapSource<'_>) -> Result<Self> {
        Ok(Subnets {
            map: HashMapOf::take_table(src, map_names::SUBNETS, "subnet table")?,
        })
    }

    /// The subnet with 64-bit prefix `prefix`, if registered.
    pub(crate) fn get(&self, prefix: [u8; 8]) -> Result<Option<SubnetInfo>> {
        self.map.get(&SubnetKey { prefix })
    }

    /// Registers (or rewrites) a subnet.
    pub(crate) fn set(&mut self, prefix: [u8; 8], info: SubnetInfo) -> Result<()> {
        self.map.insert(SubnetKey { prefix }, info, 0)
    }

    /// Forgets a subnet; false when it was not registered.
    pub(crate) fn remove(&mut self, prefix: [u8; 8]) -> Result<bool> {
        self.map.remove_if_present(&SubnetKey { prefix })
    }

    /// Every registered subnet.
    pub(crate) fn all(&self) -> Result<Vec<([u8; 8], SubnetInfo)>> {
        let mut out = Vec::new();
        for entry in self.map.iter() {
            let (k, v) = entry?;
            out.push((k.prefix, v));
        }
        Ok(out)
    }
}
