//! What a repair of the pinned state found (and, unless it only checked,
//! fixed).
//!
//! The data plane reads derived state beside the tables it derives from:
//! the exact-address index (from the exact table), the prefix trie in
//! arrays (from the prefix table, an LPM trie), the prefix count in the
//! settings, each
//! group's address count, the member-source entries (from the member
//! slots), the published selections (from the members) and the egress
//! ports of on-link members. A command killed half-way can leave them
//! apart; `State::repair` rebuilds them from the tables, and rolls back an
//! address load that did not finish. The next managing command repairs by
//! itself when the journal (`Settings::journal`) says that one was killed;
//! `anycast repair [--check]` does it on request.

use std::fmt;

use serde::Serialize;

/// What a repair found, by kind of derived state; each count is of the
/// entries that were wrong (and fixed, unless it only checked).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// The journal said that a command was killed half-way.
    pub interrupted: bool,
    /// Entries of an unfinished address load, rolled back.
    pub load_entries_rolled_back: u64,
    /// The empty group an unfinished address load had created, freed.
    pub load_group_freed: bool,
    /// Buckets of the exact-address index that were wrong.
    pub index_buckets: u64,
    /// Places of the index that published an address the table does not
    /// hold (or under another group).
    pub index_stale_places: u64,
    /// Buckets whose count of addresses found only in the table was wrong.
    pub index_other_counts: u64,
    /// Bits the /16 filter of the exact addresses lacked (each hid the
    /// exact addresses of a /16 from the data plane).
    pub index_slash16_bits: u64,
    /// Nodes of the prefix trie the data plane reads that did not match
    /// the prefix table (the trie was rebuilt).
    pub prefix_trie_nodes: u64,
    /// The prefix count in the settings was wrong.
    pub prefix_settings: bool,
    /// Groups whose address count was wrong.
    pub group_address_counts: u64,
    /// Member-source entries for no member (or the wrong one), removed.
    pub member_sources_removed: u64,
    /// Member-source entries a member was missing, added.
    pub member_sources_added: u64,
    /// Member slots left by a deletion that did not finish, freed.
    pub member_slots_freed: u64,
    /// Groups whose published selection did not match their members.
    pub selections: u64,
    /// Egress ports of on-link members that were missing.
    pub tx_ports: u64,
    /// A flush of the flow table had been killed half-way (settled).
    pub flow_flush: bool,
    /// Scopes whose attachments did not match the attached interfaces
    /// they name.
    pub scopes: u64,
    /// Registered subnets of a free group, or with none of their addresses
    /// (removed).
    pub subnets: u64,
}

impl RepairReport {
    /// Whether everything derived matched what it derives from.
    pub fn is_clean(&self) -> bool {
        self.issues().is_empty()
    }

    /// One phrase per kind of damage found.
    fn issues(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut count = |n: u64, what: &str| {
            if n != 0 {
                out.push(format!("{n} {what}"));
            }
        };
        count(
            self.load_entries_rolled_back,
            "entries of an unfinished address load rolled back",
        );
        count(self.index_buckets, "exact-index buckets rebuilt");
        count(self.index_stale_places, "stale exact-index places");
        count(self.index_other_counts, "wrong exact-index counts");
        count(self.index_slash16_bits, "missing exact /16 filter bits");
        count(self.prefix_trie_nodes, "wrong prefix-trie nodes");
        count(self.group_address_counts, "wrong group address counts");
        count(
            self.member_sources_removed,
            "member-source entries of no member",
        );
        count(self.member_sources_added, "missing member-source entries");
        count(
            self.member_slots_freed,
            "member slots of an unfinished deletion",
        );
        count(self.selections, "stale group selections");
        count(self.tx_ports, "missing egress ports");
        count(self.scopes, "scopes with wrong attachments");
        count(self.subnets, "registered subnets without their addresses");
        if self.load_group_freed {
            out.push("the empty group of an unfinished address load".into());
        }
        if self.prefix_settings {
            out.push("wrong prefix settings".into());
        }
        if self.flow_flush {
            out.push("a flow flush killed half-way".into());
        }
        out
    }
}

impl fmt::Display for RepairReport {
    /// One line: what was wrong, or that nothing was.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let issues = self.issues();
        if issues.is_empty() {
            f.write_str("the pinned state is consistent")
        } else {
            f.write_str(&issues.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_what_was_wrong_on_one_line() {
        let clean = RepairReport::default();
        assert!(clean.is_clean());
        assert_eq!(clean.to_string(), "the pinned state is consistent");
        let r = RepairReport {
            interrupted: true,
            index_buckets: 2,
            index_stale_places: 1,
            selections: 3,
            flow_flush: true,
            ..RepairReport::default()
        };
        assert!(!r.is_clean());
        assert_eq!(
            r.to_string(),
            "2 exact-index buckets rebuilt, 1 stale exact-index places, 3 stale group \
             selections, a flow flush killed half-way"
        );
        // Being interrupted is no damage in itself.
        let only = RepairReport {
            interrupted: true,
            ..RepairReport::default()
        };
        assert!(only.is_clean());
    }
}
