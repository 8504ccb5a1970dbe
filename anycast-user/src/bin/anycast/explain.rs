//! `anycast explain`: its arguments and what it prints.

use std::{io::Write, net::Ipv6Addr, path::PathBuf};

use anycast::{
    Dataplane, PinDir,
    explain::{
        self,
        input::{Fields, Proto, parse_hex, parse_pcap},
        report::{self, Live},
    },
    flows::monotonic_ns,
    link::interfaces,
};
use anyhow::Context as _;
use clap::Args;
use serde::Serialize;

use crate::OutputError;

/// Why a packet goes where it goes, asked of the loaded program on the live
/// maps, changing nothing, e.g. `anycast explain --iface eth0 --src 2001:db8::1 --dst 2001:db8:53::1`.
///
/// The packet is given by fields, e.g. `anycast explain --iface eth0 --src
/// 2001:db8::1 --dst 2001:db8:53::1 --proto udp --dport 53`, as a frame in
/// hex (`--hex`), or as every packet of a pcap file (`--pcap`, as `tcpdump
/// -w` writes on an Ethernet interface). It runs through a second instance
/// of the program attached to IFACE, with IFACE's role and source action,
/// on the pinned maps and that program's fragment table: no counter, flow
/// entry, flow cache, fragment entry or rate limit changes. Shown: how the
/// frame parsed, the source rule and its reason, the destination's address
/// or prefix and group, the group's members and which are tied, how the
/// member was chosen (a flow entry and its age, or the consistent-hash
/// slot), the rewrite (MACs and egress, or the outer header), the action
/// and the counters that would move.
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub(crate) struct ExplainArgs {
    /// The interface the packet arrives on (anycast attached there, in this
    /// network namespace), e.g. eth0.
    #[arg(long, value_name = "IF")]
    pub(crate) iface: String,
    /// IPv6 source, e.g. 2001:db8::1 (with --dst: the packet by fields).
    #[arg(long, value_name = "A", requires = "dst", conflicts_with_all = ["hex", "pcap"])]
    pub(crate) src: Option<Ipv6Addr>,
    /// IPv6 destination, e.g. 2001:db8:53::1.
    #[arg(long, value_name = "B", requires = "src")]
    pub(crate) dst: Option<Ipv6Addr>,
    /// Upper layer: tcp (a SYN), udp, icmpv6 (an echo request) or a
    /// protocol number, e.g. --proto 50; default udp.
    #[arg(long, value_name = "PROTO", default_value = "udp")]
    pub(crate) proto: Proto,
    /// Source port (the echo identifier for icmpv6), e.g. --sport 40000.
    #[arg(long, value_name = "P", default_value_t = 40000)]
    pub(crate) sport: u16,
    /// Destination port, e.g. --dport 53.
    #[arg(long, value_name = "P", default_value_t = 53)]
    pub(crate) dport: u16,
    /// Flow label (0 to 1048575), e.g. --flow-label 12345.
    #[arg(long, value_name = "L", default_value_t = 0)]
    pub(crate) flow_label: u32,
    /// An 802.1Q tag, outermost first; repeat for more, e.g. --vlan 100.
    #[arg(long, value_name = "ID")]
    pub(crate) vlan: Vec<u16>,
    /// Hop limit, e.g. --hop-limit 1.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub(crate) hop_limit: u8,
    /// Source MAC (member interfaces vouch for anycast sources by it),
    /// e.g. --src-mac 02:00:00:00:00:01.
    #[arg(long, value_name = "MAC")]
    pub(crate) src_mac: Option<String>,
    /// The whole Ethernet frame in hex, e.g. --hex 0200000000010200...
    #[arg(long, value_name = "FRAME", conflicts_with = "pcap")]
    pub(crate) hex: Option<String>,
    /// Every packet of a pcap file, e.g. --pcap capture.pcap.
    #[arg(long, value_name = "FILE")]
    pub(crate) pcap: Option<PathBuf>,
    /// Print JSON: one object per packet (docs/JSON.md), an array for --pcap.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The frames the arguments describe.
fn frames(a: &ExplainArgs) -> anyhow::Result<Vec<Vec<u8>>> {
    if let Some(h) = &a.hex {
        return Ok(vec![parse_hex(h)?]);
    }
    if let Some(p) = &a.pcap {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        return Ok(parse_pcap(&bytes)?);
    }
    let (Some(src), Some(dst)) = (a.src, a.dst) else {
        anyhow::bail!("give the packet: --src and --dst, or --hex, or --pcap");
    };
    let src_mac = a
        .src_mac
        .as_deref()
        .map(anycast::members::parse_mac)
        .transpose()?;
    let f = Fields {
        src,
        dst,
        proto: a.proto,
        sport: a.sport,
        dport: a.dport,
        flow_label: a.flow_label,
        vlans: a.vlan.clone(),
        hop_limit: a.hop_limit,
        src_mac,
    };
    Ok(vec![f.frame()?])
}

/// One packet in `--json` output of `--pcap`: its index and report.
#[derive(Serialize)]
struct Numbered<'a> {
    packet: usize,
    #[serde(flatten)]
    report: &'a report::Report,
}

/// Runs `anycast explain`.
pub(crate) fn explain(pin: PinDir, a: &ExplainArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let frames = frames(a)?;
    // As the program sees it now: not refreshed first (a refresh may
    // change attachments, members' link states and selections).
    let dp = Dataplane::open_unchanged(pin)?;
    let (mut x, _iface) = explain::for_interface(&dp, &a.iface)?;
    let live = Live {
        members: dp.members(None)?,
        addresses: dp.addresses()?,
        groups: dp.groups()?.into_iter().map(|g| (g.id, g.name)).collect(),
        now_ns: monotonic_ns(),
    };
    let names = interfaces().unwrap_or_default();
    let ifname = |i: u32| names.get(&i).cloned();
    let mut reports = Vec::new();
    for f in &frames {
        let run = x.run(f)?;
        reports.push(report::build(f, &run, &live, ifname));
    }
    if a.json {
        let text = if a.pcap.is_some() {
            let all: Vec<Numbered<'_>> = reports
                .iter()
                .enumerate()
                .map(|(i, r)| Numbered {
                    packet: i + 1,
                    report: r,
                })
                .collect();
            serde_json::to_string_pretty(&all)?
        } else {
            serde_json::to_string_pretty(&reports[0])?
        };
        writeln!(out, "{text}").map_err(OutputError)?;
        return Ok(());
    }
    for (i, r) in reports.iter().enumerate() {
        if frames.len() > 1 || a.pcap.is_some() {
            writeln!(out, "packet {}:", i + 1).map_err(OutputError)?;
        }
        for line in r.lines() {
            writeln!(out, "{line}").map_err(OutputError)?;
        }
        if i + 1 < reports.len() {
            writeln!(out).map_err(OutputError)?;
        }
    }
    Ok(())
}
