//! The pinned data plane: load the object, attach and detach interfaces, and
//! edit the live maps under the pin dir's lock.

use std::{ffi::CString, net::Ipv6Addr, os::fd::FromRawFd as _};

use anycast_common::{
    IfaceConfig, IfaceRole, LAYOUT_VERSION, MemberState, SourceAction, globals, map_names,
    program_names,
};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Map, MapData, MapError},
    programs::{
        ProgramError, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
    },
};
use serde::Serialize;

use crate::{
    EBPF_OBJECT,
    addr::AnycastPrefix,
    config::{Change, Config},
    error::{Error, PinCause, Result},
    flows::{FlowTableStats, FlowView},
    members::{GroupOptions, MemberEntry, Via},
    pin::{PinDir, PinLock},
    state::{AddOutcome, AddressEntry, State, Stats},
};

/// XDP attach mode, as operators name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttachMode {
    /// Native if the driver supports it, else generic.
    #[default]
    Auto,
    /// Native (driver) mode; fails where the driver has no XDP support.
    Native,
    /// Generic (skb) mode: works everywhere, slower.
    Skb,
}

impl AttachMode {
    fn xdp_mode(self) -> XdpMode {
        match self {
            AttachMode::Auto => XdpMode::Default,
            AttachMode::Native => XdpMode::Driver,
            AttachMode::Skb => XdpMode::Skb,
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    /// The mode's name in output.
    pub const fn name(self) -> &'static str {
        match self {
            AttachMode::Auto => "auto",
            AttachMode::Native => "native",
            AttachMode::Skb => "skb",
        }
    }

    fn from_code(c: u8) -> Self {
        match c {
            1 => AttachMode::Native,
            2 => AttachMode::Skb,
            _ => AttachMode::Auto,
        }
    }
}

/// How to attach an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttachOptions {
    /// The interface's role.
    pub role: IfaceRole,
    /// What to do with disallowed anycast sources.
    pub source_action: SourceAction,
    /// XDP mode.
    pub mode: AttachMode,
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            role: IfaceRole::Edge,
            source_action: SourceAction::Drop,
            mode: AttachMode::Auto,
        }
    }
}

/// An attached interface, as recorded in the pinned state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Interface {
    /// Name at attach time.
    pub name: String,
    /// Interface index.
    pub ifindex: u32,
    /// `edge` or `member`.
    pub role: &'static str,
    /// `drop` or `count`.
    pub source_action: &'static str,
    /// `auto`, `native` or `skb`.
    pub mode: &'static str,
}

/// Name of a role in output and on the command line.
pub const fn role_name(r: IfaceRole) -> &'static str {
    match r {
        IfaceRole::Edge => "edge",
        IfaceRole::Member => "member",
    }
}

/// Name of a source action in output and on the command line.
pub const fn source_action_name(a: SourceAction) -> &'static str {
    match a {
        SourceAction::Drop => "drop",
        SourceAction::Count => "count",
    }
}

/// Loads the eBPF object: maps reused from (or created and pinned in) `pin`
/// when given, fresh maps otherwise (program tests); the anycast program's
/// role and source action set as load-time constants.
pub fn load_object(pin: Option<&PinDir>, role: IfaceRole, action: SourceAction) -> Result<Ebpf> {
    load_object_sized(pin, role, action, &[])
}

/// [`load_object`] with some maps created at other capacities than the
/// built-in ones, as `(map name, max entries)`; only maps created by this
/// load are affected (pinned ones keep their size).
pub fn load_object_sized(
    pin: Option<&PinDir>,
    role: IfaceRole,
    action: SourceAction,
    sizes: &[(&'static str, u32)],
) -> Result<Ebpf> {
    if EBPF_OBJECT.is_empty() {
        return Err(Error::EmptyObject);
    }
    let role = role as u8;
    let action = action as u8;
    let mut loader = EbpfLoader::new();
    if let Some(pin) = pin {
        for name in map_names::ALL {
            loader.map_pin_path(name, pin.map_path(name));
        }
    }
    for (name, size) in sizes {
        loader.map_max_entries(name, *size);
    }
    loader.override_global(globals::ROLE, &role, true);
    loader.override_global(globals::SOURCE_ACTION, &action, true);
    loader.load(EBPF_OBJECT).map_err(|e| match e {
        aya::EbpfError::MapError(MapError::CreateError { ref io_error, .. })
        | aya::EbpfError::MapError(MapError::SyscallError(aya::sys::SyscallError {
            ref io_error,
            ..
        })) if io_error.raw_os_error() == Some(libc::EPERM) => Error::NotRoot {
            what: "creating BPF maps".into(),
        },
        e => Error::Load(e),
    })
}

/// Loads and verifies the program `name` of `ebpf`, returning it.
pub fn load_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| Error::Program(ProgramError::NotLoaded))?
        .try_into()
        .map_err(Error::Program)?;
    prog.load().map_err(|e| match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
            // ANYCAST_VERIFIER_LOG=1 shows the whole log, for debugging the program.
            let keep = if std::env::var_os("ANYCAST_VERIFIER_LOG").is_some() {
                lines.len()
            } else {
                8
            };
            let tail = lines[lines.len().saturating_sub(keep)..].join("\n");
            match io_error.raw_os_error() {
                Some(libc::EPERM) => Error::NotRoot {
                    what: "loading XDP programs".into(),
                },
                _ => Error::Verifier {
                    errno: io_error,
                    log_tail: tail,
                },
            }
        }
        e => Error::Program(e),
    })?;
    Ok(prog)
}

/// The interface index of `name` in the current network namespace.
pub fn ifindex(name: &str) -> Result<u32> {
    let c = CString::new(name).map_err(|_| Error::UnknownInterface(name.to_string()))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 || name.len() >= libc::IFNAMSIZ {
        return Err(Error::UnknownInterface(name.to_string()));
    }
    Ok(idx)
}

/// The pinned data plane: pin dir plus typed maps.
pub struct Dataplane {
    pin: PinDir,
    state: State,
}

impl Dataplane {
    /// Opens the state pinned at `pin`; fails when nothing is pinned there.
    pub fn open(pin: PinDir) -> Result<Self> {
        if !all_maps_pinned(&pin) {
            return Err(Error::NotConfigured(pin.path().to_path_buf()));
        }
        Self::from_pins(pin)
    }

    /// Opens the state pinned at `pin`, creating (and pinning) it when absent.
    pub fn open_or_create(pin: PinDir) -> Result<Self> {
        Self::open_or_create_with(pin, None)
    }

    /// [`Dataplane::open_or_create`], with the flow table sized `flow_table`
    /// entries (all groups together) if it has to be created.
    pub fn open_or_create_with(pin: PinDir, flow_table: Option<u32>) -> Result<Self> {
        require_root("managing the anycast data plane")?;
        pin.create()?;
        if !all_maps_pinned(&pin) {
            let _lock = pin.lock()?;
            // Creates whatever is missing and pins it; existing pins are reused.
            let sizes: Vec<(&'static str, u32)> = flow_table
                .map(|n| (map_names::FLOWS, n))
                .into_iter()
                .collect();
            load_object_sized(Some(&pin), IfaceRole::Edge, SourceAction::Drop, &sizes)?;
        }
        let mut dp = Self::from_pins(pin)?;
        if dp.state.layout_version()? == 0 {
            dp.state.set_layout_version()?;
        }
        {
            let _lock = dp.lock()?;
            dp.state.settle_flow_epoch()?;
        }
        Ok(dp)
    }

    fn from_pins(pin: PinDir) -> Result<Self> {
        let state = State::from_maps(|name| {
            let path = pin.map_path(name);
            let data = MapData::from_pin(&path).map_err(|source| match &source {
                MapError::SyscallError(s)
                    if s.io_error.raw_os_error() == Some(libc::EACCES)
                        || s.io_error.raw_os_error() == Some(libc::EPERM) =>
                {
                    Error::NotRoot {
                        what: format!("opening {}", path.display()),
                    }
                }
                _ => Error::Map { name, source },
            })?;
            Map::from_map_data(data).map_err(|source| Error::Map { name, source })
        })
        .map_err(|e| match e {
            // A key or value size that differs from this build's types.
            Error::Map {
                source: MapError::InvalidKeySize { .. } | MapError::InvalidValueSize { .. },
                ..
            } => Error::IncompatibleState {
                path: pin.path().to_path_buf(),
                found: 0,
                expected: LAYOUT_VERSION,
            },
            e => e,
        })?;
        let found = state.layout_version()?;
        if found != 0 && found != LAYOUT_VERSION {
            return Err(Error::IncompatibleState {
                path: pin.path().to_path_buf(),
                found,
                expected: LAYOUT_VERSION,
            });
        }
        Ok(Dataplane { pin, state })
    }

    /// The maps, for steps the commands do not offer (tests, tools). A
    /// writer must hold the pin lock as the commands do.
    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// The pin dir.
    pub fn pin_dir(&self) -> &PinDir {
        &self.pin
    }

    fn lock(&self) -> Result<PinLock> {
        self.pin.lock()
    }

    /// Attaches the anycast program to `iface` and pins the link.
    pub fn attach(&mut self, iface: &str, opts: AttachOptions) -> Result<Interface> {
        require_root("attaching XDP programs")?;
        let _lock = self.lock()?;
        let idx = ifindex(iface)?;
        let link_path = self.pin.link_path(idx);
        if self.state.ifaces.get(&idx, 0).is_ok() || link_path.exists() {
            return Err(Error::AlreadyAttached(iface.to_string()));
        }
        let mut ebpf = load_object(Some(&self.pin), opts.role, opts.source_action)?;
        let prog = load_program(&mut ebpf, program_names::ANYCAST)?;
        let link_id = prog
            .attach_to_if_index(idx, opts.mode.xdp_mode())
            .map_err(|source| attach_error(iface, source))?;
        let link = prog.take_link(link_id).map_err(Error::Program)?;
        let pin_err = |source| Error::Pin {
            path: link_path.clone(),
            source,
        };
        let link: FdLink = link.try_into().map_err(|_| pin_err(PinCause::NotBpfLink))?;
        // Dropping an unpinned link detaches it, so every error below leaves
        // the interface as it was.
        let pinned = link
            .pin(&link_path)
            .map_err(|e| pin_err(PinCause::Pin(e)))?;
        let mut cfg = IfaceConfig {
            name: [0; 16],
            role: opts.role as u8,
            source_action: opts.source_action as u8,
            mode: opts.mode.code(),
            _pad: 0,
        };
        cfg.name[..iface.len()].copy_from_slice(iface.as_bytes());
        if let Err(source) = self.state.ifaces.insert(idx, cfg, 0) {
            drop(pinned.unpin());
            return Err(Error::Map {
                name: map_names::IFACES,
                source,
            });
        }
        Ok(interface(idx, &cfg))
    }

    /// Every attached interface.
    pub fn interfaces(&self) -> Result<Vec<Interface>> {
        let mut out = Vec::new();
        for entry in self.state.ifaces.iter() {
            let (idx, cfg) = entry.map_err(|source| Error::Map {
                name: map_names::IFACES,
                source,
            })?;
            out.push(interface(idx, &cfg));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Detaches `iface`, or every interface when `None`. Returns the names detached.
    pub fn detach(&mut self, iface: Option<&str>) -> Result<Vec<String>> {
        require_root("detaching XDP programs")?;
        let _lock = self.lock()?;
        let attached = self.interfaces()?;
        let targets: Vec<Interface> = match iface {
            None => attached,
            Some(name) => {
                let current = ifindex(name).ok();
                let found: Vec<Interface> = attached
                    .into_iter()
                    .filter(|i| i.name == name || Some(i.ifindex) == current)
                    .collect();
                if found.is_empty() {
                    return Err(Error::NotAttached(name.to_string()));
                }
                found
            }
        };
        let mut done = Vec::new();
        for i in targets {
            self.unpin_link(i.ifindex)?;
            self.state
                .ifaces
                .remove(&i.ifindex)
                .map_err(|source| Error::Map {
                    name: map_names::IFACES,
                    source,
                })?;
            done.push(i.name);
        }
        Ok(done)
    }

    fn unpin_link(&self, idx: u32) -> Result<()> {
        let path = self.pin.link_path(idx);
        if !path.exists() {
            return Ok(());
        }
        let pin_err = |source| Error::Pin {
            path: path.clone(),
            source,
        };
        let link = PinnedLink::from_pin(&path).map_err(|e| pin_err(PinCause::Open(e)))?;
        // Unpinned and closed, the link goes away and the program with it.
        let link = link.unpin().map_err(|e| pin_err(PinCause::Unpin(e)))?;
        drop(link);
        Ok(())
    }

    /// Removes every pinned map and the pin dir. Refused while interfaces are attached.
    pub fn purge(self) -> Result<()> {
        require_root("purging the anycast data plane")?;
        let attached = self.interfaces()?;
        if !attached.is_empty() {
            let names: Vec<String> = attached.into_iter().map(|i| i.name).collect();
            return Err(Error::StillAttached(names.join(", ")));
        }
        let _lock = self.lock()?;
        self.pin.remove()
    }

    /// Adds an anycast address or prefix to a group (see [`State::add_address`]).
    pub fn add_address(&mut self, p: AnycastPrefix, group: &str) -> Result<AddOutcome> {
        require_root("changing anycast addresses")?;
        let _lock = self.lock()?;
        self.state.add_address(p, group)
    }

    /// Adds many addresses and prefixes at once (see [`State::load_addresses`]).
    pub fn load_addresses(&mut self, list: &[AnycastPrefix], group: &str) -> Result<usize> {
        require_root("changing anycast addresses")?;
        let _lock = self.lock()?;
        self.state.load_addresses(list, group)
    }

    /// Removes an anycast address or prefix.
    pub fn del_address(&mut self, p: AnycastPrefix) -> Result<()> {
        require_root("changing anycast addresses")?;
        let _lock = self.lock()?;
        self.state.del_address(p)
    }

    /// Adds a member (see [`State::add_member`]); an on-link member's
    /// interface and MAC are resolved here, in the current network namespace.
    pub fn add_member(
        &mut self,
        group: &str,
        name: &str,
        via: MemberVia,
        metric: u32,
        weight: u8,
    ) -> Result<u32> {
        require_root("changing members")?;
        let via = via.resolve()?;
        let _lock = self.lock()?;
        self.state.add_member(group, name, via, metric, weight)
    }

    /// Changes a member's metric and/or state.
    pub fn set_member(
        &mut self,
        group: &str,
        name: &str,
        metric: Option<u32>,
        state: Option<MemberState>,
        weight: Option<u8>,
    ) -> Result<()> {
        require_root("changing members")?;
        let _lock = self.lock()?;
        self.state.set_member(group, name, metric, state, weight)
    }

    /// Removes a member.
    pub fn del_member(&mut self, group: &str, name: &str) -> Result<()> {
        require_root("changing members")?;
        let _lock = self.lock()?;
        self.state.del_member(group, name)
    }

    /// Members of one group or of all.
    pub fn members(&self, group: Option<&str>) -> Result<Vec<MemberEntry>> {
        self.state.list_members(group)
    }

    /// Sets a group's fallback and/or tunnel source.
    pub fn set_group(&mut self, group: &str, options: &GroupOptions) -> Result<()> {
        require_root("changing groups")?;
        let _lock = self.lock()?;
        self.state.set_group_options(group, options)
    }

    /// Makes the pinned state match a configuration file (see
    /// [`State::apply_config`]); on-link members' interfaces are looked up
    /// in the current network namespace. With `dry_run`, changes nothing
    /// and returns what would change.
    pub fn apply_config(&mut self, cfg: &Config, dry_run: bool) -> Result<Vec<Change>> {
        require_root("applying a configuration")?;
        let _lock = self.lock()?;
        self.state
            .apply_config(cfg, &mut |via| via.resolve(), dry_run)
    }

    /// The flow table: occupancy and (up to `limit`) flows of one group or all.
    pub fn flows(
        &self,
        group: Option<&str>,
        limit: usize,
    ) -> Result<(FlowTableStats, Vec<FlowView>)> {
        let gid = group.map(|g| self.state.group_id_of(g)).transpose()?;
        Ok((
            self.state.flow_table_stats()?,
            self.state.list_flows(gid, limit)?,
        ))
    }

    /// Forgets the flows of one group or all.
    pub fn flush_flows(&mut self, group: Option<&str>) -> Result<u64> {
        require_root("flushing flows")?;
        let _lock = self.lock()?;
        let gid = group.map(|g| self.state.group_id_of(g)).transpose()?;
        self.state.flush_flows(gid)
    }

    /// Sets the flood guard's rate (new flows recorded per second per CPU; 0: off).
    pub fn set_flood_rate(&mut self, rate: u32) -> Result<()> {
        require_root("changing the flood guard")?;
        let _lock = self.lock()?;
        self.state.set_flood_rate(rate)
    }

    /// The flood guard's rate.
    pub fn flood_rate(&self) -> Result<u32> {
        self.state.flood_rate()
    }

    /// Every configured address and prefix.
    pub fn addresses(&self) -> Result<Vec<AddressEntry>> {
        self.state.addresses()
    }

    /// Every counter.
    pub fn stats(&self) -> Result<Stats> {
        self.state.stats()
    }
}

fn interface(idx: u32, cfg: &IfaceConfig) -> Interface {
    Interface {
        name: cfg.name_str(),
        ifindex: idx,
        role: role_name(IfaceRole::from_u8(cfg.role)),
        source_action: source_action_name(SourceAction::from_u8(cfg.source_action)),
        mode: AttachMode::from_code(cfg.mode).name(),
    }
}

/// How the CLI names a new member's way in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MemberVia {
    /// On-link: egress interface name and the member's MAC.
    L2 {
        /// Egress interface.
        iface: String,
        /// The member's MAC.
        mac: [u8; 6],
    },
    /// Routed: the member's unicast address.
    Encap(Ipv6Addr),
}

impl MemberVia {
    /// Resolves an on-link member's interface name to its index and MAC, in
    /// the current network namespace.
    pub fn resolve(&self) -> Result<Via> {
        Ok(match self {
            MemberVia::L2 { iface, mac } => Via::L2 {
                ifindex: ifindex(iface)?,
                mac: *mac,
                src_mac: iface_mac(iface)?,
            },
            MemberVia::Encap(addr) => Via::Encap(*addr),
        })
    }
}

/// The MAC address of interface `name` in the current network namespace.
pub fn iface_mac(name: &str) -> Result<[u8; 6]> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(Error::UnknownInterface(name.to_string()));
    }
    // SAFETY: a plain socket used only for the ioctl below, closed after.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::Io {
            path: "socket".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: `fd` is ours; closed once, when `_guard` drops.
    let _guard = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero ifreq is valid; the name fits (checked above).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR fills `req` for a valid interface name.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) } != 0 {
        return Err(Error::UnknownInterface(name.to_string()));
    }
    // SAFETY: SIOCGIFHWADDR fills the hardware-address member of the union.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(data.iter()) {
        *d = *s as u8;
    }
    Ok(mac)
}

fn all_maps_pinned(pin: &PinDir) -> bool {
    map_names::ALL.iter().all(|n| pin.map_path(n).exists())
}

fn attach_error(iface: &str, source: ProgramError) -> Error {
    if let ProgramError::SyscallError(s) = &source
        && matches!(
            s.io_error.raw_os_error(),
            Some(libc::EBUSY) | Some(libc::EEXIST)
        )
    {
        return Error::InterfaceBusy {
            iface: iface.to_string(),
        };
    }
    Error::Attach {
        iface: iface.to_string(),
        source,
    }
}

/// Fails with [`Error::NotRoot`] unless the effective user is root.
pub fn require_root(what: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::NotRoot {
            what: what.to_string(),
        });
    }
    Ok(())
}
