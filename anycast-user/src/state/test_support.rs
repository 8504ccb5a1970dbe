//! Steps and views the commands do not offer, for tests and benchmarks
//! (feature `test-support`).

use std::collections::BTreeMap;

use anycast_common::{GroupInfo, JOURNAL_CHANGING, MemberInfo};

use super::{State, flows::Flows, members::MemberList};
use crate::{
    addr::AnycastPrefix,
    error::{Error, Result},
    flows::monotonic_ns,
};

/// A piece of derived state to damage, as a command killed half-way can
/// (feature `test-support`).
#[derive(Clone, Copy, Debug)]
pub enum Tamper<'a> {
    /// The address's place in the exact-address index freed, and not
    /// counted among the bucket's others: the data plane misses it.
    IndexPlace(std::net::Ipv6Addr),
    /// The address's bit of the /16 filter of the exact addresses cleared:
    /// the data plane misses every exact address of its /16.
    Slash16(std::net::Ipv6Addr),
    /// The root node of the live prefix trie under the prefix's first byte
    /// emptied: the data plane misses the prefix.
    PrefixTrie(AnycastPrefix),
    /// The group's address count raised by 7.
    GroupCount(&'a str),
    /// The member's source entry removed (group, member).
    MemberSource(&'a str, &'a str),
    /// The group's published selection emptied.
    Selection(&'a str),
    /// Every slot of the group's published selection naming member id
    /// `.1` (of another group, say): what a packet that read the group
    /// before a flip could find in the table being rewritten, if a member
    /// removed since had its slot reused.
    SelectionNames(&'a str, u32),
    /// The journal left set, as by a killed command.
    Journal,
    /// The egress port of an interface taken out of the devmap (the kernel
    /// does so when the device goes).
    TxPort(u32),
}

/// Steps and views the commands do not offer, for tests and benchmarks
/// (feature `test-support`).
impl State {
    /// Takes the maps out of a loaded object (not pinned: program tests).
    pub fn from_ebpf(ebpf: &mut aya::Ebpf) -> Result<Self> {
        Self::from_maps(&mut |name| {
            ebpf.take_map(name).ok_or(Error::Map {
                name,
                source: aya::maps::MapError::InvalidName {
                    name: name.to_string(),
                },
            })
        })
    }

    /// The id of a scope named `name` that admits exactly the attachment
    /// ids `attachments` (program tests have no interfaces to name).
    pub fn test_scope(&mut self, name: &str, attachments: &[u32]) -> Result<u16> {
        use bytemuck::Zeroable as _;
        let netns = anycast_common::NetnsId::zeroed();
        let fake: Vec<(u32, anycast_common::IfaceConfig)> = attachments
            .iter()
            .map(|&id| {
                let mut cfg = anycast_common::IfaceConfig::zeroed();
                cfg.name[..name.len()].copy_from_slice(name.as_bytes());
                (id, cfg)
            })
            .collect();
        self.scope_id(netns, &[name.to_string()], &fake)
    }

    /// Every allocated member with its id, as stored.
    pub fn member_infos(&self) -> Result<MemberList> {
        self.members.in_use()
    }

    /// A group's stored settings.
    pub fn group_info(&self, id: u32) -> Result<GroupInfo> {
        self.groups.get(id)
    }

    /// One member's stored entry.
    pub fn member_info(&self, id: u32) -> Result<MemberInfo> {
        self.members.get(id)
    }

    /// One member's counters, summed over CPUs: (packets, bytes).
    pub fn member_counters(&self, id: u32) -> Result<(u64, u64)> {
        self.members.counters(id)
    }

    /// Whether `key` is a registered member source.
    pub fn has_member_source(&self, key: &anycast_common::MemberSourceKey) -> bool {
        self.members.has_source(key)
    }

    /// Live flows per member id.
    pub fn flows_per_member(&self) -> Result<BTreeMap<u32, u64>> {
        self.flows.per_member(&self.groups.by_id()?, monotonic_ns())
    }

    /// The flow table's entry for `key`, if any.
    pub fn flow_entry(&self, key: &anycast_common::FlowKey) -> Option<anycast_common::FlowEntry> {
        self.flows.entry(key)
    }

    /// Writes flow-table entries directly, `(key, member id, last seen)`
    /// (for tests and benchmarks that need a table with many live flows).
    pub fn record_flows(
        &mut self,
        flows: impl IntoIterator<Item = (anycast_common::FlowKey, u32, u64)>,
    ) -> Result<()> {
        self.flows.record(&mut self.settings, flows)
    }

    /// Removes the flows for whose key `which` holds without telling the
    /// per-CPU flow caches; returns how many. Between
    /// [`Self::begin_flows_flush`] and [`Self::end_flows_flush`] it is a
    /// flush's walk; alone, it does to the table what LRU evictions do.
    pub fn remove_flows_unannounced(
        &mut self,
        which: impl Fn(&anycast_common::FlowKey) -> bool,
    ) -> Result<u64> {
        self.flows.remove_unannounced(which)
    }

    /// A flush's first step (see [`Self::flush_flows`]), so that tests can
    /// send packets between the steps.
    pub fn begin_flows_flush(&mut self) -> Result<()> {
        Flows::begin_flush(&mut self.settings)
    }

    /// A flush's last step, counting `removed` entries as flushed.
    pub fn end_flows_flush(&mut self, removed: u64) -> Result<()> {
        Flows::end_flush(&mut self.settings, removed)
    }

    /// `Settings::flow_epoch`: odd while a flush walks the flow table.
    pub fn flow_epoch(&self) -> Result<u32> {
        Flows::epoch(&self.settings)
    }

    /// Loads write every exact address one at a time (`true`), as before
    /// bulk inserts existed, or many in bulk (`false`, the default): the
    /// benchmark times both.
    pub fn set_one_by_one_loads(&mut self, on: bool) {
        self.addresses.set_one_by_one(on);
    }

    /// Whether exact address `addr` has a place in the exact-address index.
    pub fn indexed(&self, addr: std::net::Ipv6Addr) -> Result<bool> {
        self.addresses.indexed(addr)
    }

    /// The exact-address index's bucket of `addr` in this state (its
    /// index's size), as the data plane computes it.
    pub fn index_bucket(&self, addr: std::net::Ipv6Addr) -> u32 {
        self.addresses.bucket(&addr.octets())
    }

    /// The exact-address index's bucket count.
    pub fn index_buckets(&self) -> u32 {
        self.addresses.index_len()
    }

    /// A change that fails after it removed prefix `p` from the prefix
    /// table (before the trie was published), ended as
    /// `Dataplane::change` ends every change.
    pub fn fail_after_forgetting(&mut self, p: &crate::AnycastPrefix) -> Result<()> {
        self.begin_change()?;
        self.addresses.forget(p)?;
        self.end_change()
    }

    /// Whether the journal says a change did not end.
    pub fn journal_open(&self) -> Result<bool> {
        self.interrupted()
    }

    /// Damages derived state the way a command killed half-way can, for
    /// tests of [`Self::repair`]: see [`Tamper`].
    pub fn tamper(&mut self, t: Tamper<'_>) -> Result<()> {
        match t {
            Tamper::IndexPlace(addr) => self.addresses.tamper_index(addr),
            Tamper::Slash16(addr) => self.addresses.tamper_slash16(addr),
            Tamper::PrefixTrie(p) => self.addresses.tamper_trie(p, &self.settings),
            Tamper::GroupCount(group) => {
                let (id, mut info) = self.groups.named(group)?;
                info.addresses += 7;
                self.groups.set(id, info)
            }
            Tamper::MemberSource(group, name) => {
                let (_, members, idx) = self.locate(group, name)?;
                self.members.tamper_source(&members[idx].1)
            }
            Tamper::Selection(group) => {
                let (id, info) = self.groups.named(group)?;
                self.members.tamper_selection(id, &info, None)
            }
            Tamper::SelectionNames(group, member) => {
                let (id, info) = self.groups.named(group)?;
                self.members.tamper_selection(id, &info, Some(member))
            }
            Tamper::Journal => self.settings.update(|s| s.journal |= JOURNAL_CHANGING),
            Tamper::TxPort(ifindex) => self.members.tamper_tx_port(ifindex),
        }
    }

    /// A second handle on the prefix trie's map (`PREFIX_NODES`), for a
    /// test that reads it while a command writes.
    pub fn prefix_trie_reader(
        &self,
    ) -> Result<aya::maps::Array<aya::maps::MapData, anycast_common::prefix_trie::Node>> {
        self.addresses.trie_reader()
    }

    /// How many nodes of its copy the prefix trie of the configured
    /// prefixes takes, and how many of its slots ask the LPM trie because
    /// the copy is full (see `anycast_common::prefix_trie`).
    pub fn prefix_trie_use(&self) -> Result<(usize, usize)> {
        self.addresses.prefix_trie_use()
    }
}
