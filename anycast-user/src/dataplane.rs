//! The pinned data plane: load the object, attach and detach interfaces, and
//! edit the live maps under the pin dir's lock.

use anycast_common::{
    IfaceConfig, IfaceRole, LAYOUT_VERSION, MemberState, SourceAction, map_names, program_names,
};
use aya::{
    maps::{Map, MapData, MapError},
    programs::{
        ProgramError, XdpMode,
        links::{FdLink, PinnedLink},
    },
};
use serde::Serialize;

use crate::{
    addr::AnycastPrefix,
    config::Config,
    error::{Error, PinCause, Result},
    flows::{FlowTableStats, FlowView},
    group::{GroupEntry, GroupOptions},
    link::{ifindex, xdp_attachment},
    loader::{load_object, load_object_sized, load_program},
    members::{MemberEntry, MemberVia},
    names::{GroupName, MemberName},
    pin::{PinDir, PinLock},
    reconcile::{self, ApplyOptions, Change},
    state::{AddOutcome, AddressEntry, Attachments, Layout, State},
    stats::Stats,
};

/// XDP attach mode, as operators name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
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

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
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
    pub role: IfaceRole,
    /// `drop` or `count`.
    pub source_action: SourceAction,
    /// The mode in use, `native` or `skb`, as the kernel says (the
    /// requested mode when it cannot tell).
    pub mode: AttachMode,
    /// The mode asked for at attach time: `auto`, `native` or `skb`.
    pub requested_mode: AttachMode,
}

/// The pinned data plane: pin dir plus typed maps.
pub struct Dataplane {
    pin: PinDir,
    state: State,
    attachments: Attachments,
    layout: Layout,
}

impl Dataplane {
    /// Opens the state pinned at `pin`; fails when nothing is pinned there
    /// ([`Error::NotConfigured`]) or when this user may not look
    /// ([`Error::NotRoot`]: the pin dir is root's alone).
    pub fn open(pin: PinDir) -> Result<Self> {
        if !maps_pinned(&pin)? {
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
        if dp.layout.version()? == 0 {
            dp.layout.set_current()?;
        }
        {
            let _lock = dp.lock()?;
            dp.state.settle_flow_epoch()?;
        }
        Ok(dp)
    }

    fn from_pins(pin: PinDir) -> Result<Self> {
        let mut open = |name: &'static str| {
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
        };
        let maps = State::from_maps(&mut open).and_then(|state| {
            Ok((
                state,
                Attachments::take(&mut open)?,
                Layout::take(&mut open)?,
            ))
        });
        let (state, attachments, layout) = maps.map_err(|e| match e {
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
        let found = layout.version()?;
        if found != 0 && found != LAYOUT_VERSION {
            return Err(Error::IncompatibleState {
                path: pin.path().to_path_buf(),
                found,
                expected: LAYOUT_VERSION,
            });
        }
        Ok(Dataplane {
            pin,
            state,
            attachments,
            layout,
        })
    }

    /// The maps, for steps the commands do not offer (tests, tools). A
    /// writer must hold the pin lock as the commands do.
    #[cfg(feature = "test-support")]
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
        if self.attachments.contains(idx) || link_path.exists() {
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
        if let Err(e) = self.attachments.insert(idx, cfg) {
            drop(pinned.unpin());
            return Err(e);
        }
        Ok(self.interface(idx, &cfg))
    }

    /// Every attached interface.
    pub fn interfaces(&self) -> Result<Vec<Interface>> {
        let mut out: Vec<Interface> = self
            .attachments
            .all()?
            .iter()
            .map(|(idx, cfg)| self.interface(*idx, cfg))
            .collect();
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
            self.attachments.remove(i.ifindex)?;
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
    pub fn add_address(&mut self, p: AnycastPrefix, group: &GroupName) -> Result<AddOutcome> {
        require_root("changing anycast addresses")?;
        let _lock = self.lock()?;
        self.state.add_address(p, group)
    }

    /// Adds many addresses and prefixes at once (see [`State::load_addresses`]).
    pub fn load_addresses(&mut self, list: &[AnycastPrefix], group: &GroupName) -> Result<usize> {
        require_root("changing anycast addresses")?;
        let _lock = self.lock()?;
        self.state.load_addresses(list, group)
    }

    /// Removes an anycast address or prefix; returns the name of its group
    /// if that was freed, having no address and no member left.
    pub fn del_address(&mut self, p: AnycastPrefix) -> Result<Option<String>> {
        require_root("changing anycast addresses")?;
        let _lock = self.lock()?;
        self.state.del_address(p)
    }

    /// Adds a member (see [`State::add_member`]); an on-link member's
    /// interface and MAC are resolved here, in the current network namespace.
    pub fn add_member(
        &mut self,
        group: &GroupName,
        name: &MemberName,
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

    /// Removes a member; returns the name of its group if that was freed,
    /// having no address and no member left.
    pub fn del_member(&mut self, group: &str, name: &str) -> Result<Option<String>> {
        require_root("changing members")?;
        let _lock = self.lock()?;
        self.state.del_member(group, name)
    }

    /// Members of one group or of all.
    pub fn members(&self, group: Option<&str>) -> Result<Vec<MemberEntry>> {
        self.state.list_members(group)
    }

    /// Sets the settings of an existing group (see [`State::set_group_options`]).
    pub fn set_group(&mut self, group: &GroupName, options: &GroupOptions) -> Result<()> {
        require_root("changing groups")?;
        let _lock = self.lock()?;
        self.state.set_group_options(group, options)
    }

    /// Every group (see [`State::list_groups`]).
    pub fn groups(&self) -> Result<Vec<GroupEntry>> {
        self.state.list_groups()
    }

    /// Deletes a group, with its addresses and members when `force` (see
    /// [`State::del_group`]); returns how many of those went.
    pub fn del_group(&mut self, group: &str, force: bool) -> Result<(usize, usize)> {
        require_root("changing groups")?;
        let _lock = self.lock()?;
        self.state.del_group(group, force)
    }

    /// Makes the pinned state match a configuration file (see
    /// [`reconcile::apply_config`]); on-link members' interfaces are looked
    /// up in the current network namespace. With `opts.dry_run`, changes
    /// nothing and returns what would change.
    pub fn apply_config(&mut self, cfg: &Config, opts: ApplyOptions) -> Result<Vec<Change>> {
        require_root("applying a configuration")?;
        let _lock = self.lock()?;
        reconcile::apply_config(&mut self.state, cfg, &mut MemberVia::resolve, opts)
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

impl Dataplane {
    /// Interface `idx` as recorded in `cfg`, with the mode the kernel runs
    /// our program in: the program of the interface's pinned link, found
    /// among the interface's XDP programs.
    fn interface(&self, idx: u32, cfg: &IfaceConfig) -> Interface {
        let requested = AttachMode::from_code(cfg.mode);
        let prog = PinnedLink::from_pin(self.pin.link_path(idx))
            .ok()
            .and_then(|l| FdLink::from(l).info().ok())
            .map_or(0, |info| info.program_id());
        let mode = match xdp_attachment(idx).ok().and_then(|a| a.native(prog)) {
            Some(true) => AttachMode::Native,
            Some(false) => AttachMode::Skb,
            None => requested,
        };
        Interface {
            name: cfg.name_str(),
            ifindex: idx,
            role: IfaceRole::from_u8(cfg.role),
            source_action: SourceAction::from_u8(cfg.source_action),
            mode,
            requested_mode: requested,
        }
    }
}

fn all_maps_pinned(pin: &PinDir) -> bool {
    map_names::ALL.iter().all(|n| pin.map_path(n).exists())
}

/// Whether every map is pinned at `pin`; [`Error::NotRoot`] when this user
/// cannot tell (the pin dir, or a directory above it, is root's alone).
fn maps_pinned(pin: &PinDir) -> Result<bool> {
    for name in map_names::ALL {
        match std::fs::symlink_metadata(pin.map_path(name)) {
            Ok(_) => {}
            // EACCES: a directory on the way may not be searched (bpffs
            // also says EPERM, for a name with a dot, which is no pin).
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                return Err(Error::NotRoot {
                    what: format!("reading the data plane pinned at {}", pin.path().display()),
                });
            }
            Err(_) => return Ok(false),
        }
    }
    Ok(true)
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
