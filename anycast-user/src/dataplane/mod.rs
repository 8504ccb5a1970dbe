//! The pinned data plane: load the object, attach and detach interfaces, and
//! edit the live maps under the pin dir's lock.

mod attach;
mod memory;
mod scoped;
mod sizes;

use std::path::PathBuf;

use anycast_common::{IfaceRole, LAYOUT_VERSION, MemberState, SourceAction, trace_map_names};
use aya::maps::{Map, MapData, MapError};
use serde::Serialize;

use self::attach::recorded_interface;
pub use self::attach::{Interface, LinkPin};
pub use self::memory::MapMemory;
pub use self::sizes::{Asked, StateSizes};
pub use crate::iface::{AttachMode, AttachOptions};
use crate::{
    addr::AnycastPrefix,
    config::Config,
    error::{Error, Result},
    flows::{FlowTableStats, FlowView},
    group::{GroupEntry, GroupOptions},
    link::{ifindex, interfaces, xdp_link_ifindex},
    loader::load_object_sized,
    members::{MemberEntry, MemberVia},
    names::{GroupName, MemberName},
    netns,
    pin::{PinDir, PinLock, Purged},
    reconcile::{self, ApplyOptions, Change},
    repair::RepairReport,
    state::{AddOutcome, AddressEntry, Attachments, Layout, LinkChange, State},
    stats::Stats,
};

/// Why [`Dataplane::refresh`] forgot an attachment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StaleReason {
    /// The interface was deleted: the kernel detached the program and left
    /// the pinned link defunct.
    InterfaceGone,
    /// Someone removed the link's pin, which detached the program.
    LinkPinRemoved,
}

/// An attachment [`Dataplane::refresh`] forgot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stale {
    /// The attachment, as it was recorded.
    pub interface: Interface,
    /// Why it is no more.
    pub reason: StaleReason,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &self.interface;
        match self.reason {
            StaleReason::InterfaceGone => write!(
                f,
                "interface {} (ifindex {}) was deleted: its attachment is forgotten",
                i.name, i.ifindex
            ),
            StaleReason::LinkPinRemoved => write!(
                f,
                "the pin of the XDP link of {} (ifindex {}) was removed by someone else, which \
                 detached the program: {} is not filtered; attach it again",
                i.name, i.ifindex, i.name
            ),
        }
    }
}

/// What [`Dataplane::refresh`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Refresh {
    /// Attachments forgotten.
    pub stale: Vec<Stale>,
    /// On-link members whose interface was lost or came back.
    pub members: Vec<LinkChange>,
}

impl Refresh {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.stale.is_empty() && self.members.is_empty()
    }

    /// Every change, one line each.
    pub fn lines(&self) -> Vec<String> {
        self.stale
            .iter()
            .map(ToString::to_string)
            .chain(self.members.iter().map(ToString::to_string))
            .collect()
    }
}

/// What one call created in the pin dir: the maps and the directories.
struct Created {
    maps: Vec<&'static str>,
    dirs: Vec<PathBuf>,
}

/// The pinned data plane: pin dir plus typed maps.
pub struct Dataplane {
    pin: PinDir,
    state: State,
    attachments: Attachments,
    layout: Layout,
    /// The pin lock, held across [`Dataplane::open_or_create_then`]'s
    /// closure; the methods take none of their own meanwhile.
    held: Option<PinLock>,
}

impl Dataplane {
    /// Opens the state pinned at `pin`; fails when nothing is pinned there
    /// ([`Error::NotConfigured`]), when this user may not look
    /// ([`Error::NotRoot`]: the pin dir is root's alone, and opening it
    /// brings it up to date), when the pin dir is not trusted
    /// ([`PinDir::check_trusted`]) or not shared ([`PinDir::check_shared`]),
    /// and when only some of the maps are pinned (damage, reported, never
    /// filled in). Then brings it up to date with the system
    /// ([`Dataplane::refresh`]; what changed is logged as warnings).
    pub fn open(pin: PinDir) -> Result<Self> {
        let mut dp = Self::open_unchanged(pin)?;
        dp.refresh_logged()?;
        Ok(dp)
    }

    /// As [`Dataplane::open`], but changes nothing: no
    /// [`Dataplane::refresh`], and a journal left by a killed command is
    /// left for [`Dataplane::repair`] to report (`anycast doctor`).
    pub fn open_unchanged(pin: PinDir) -> Result<Self> {
        if !pin_dir_present(&pin)? {
            // Under `ip netns exec` the system's pins are out of sight: say
            // that, not "nothing is configured".
            pin.check_shared()?;
            return Err(Error::NotConfigured(pin.path().to_path_buf()));
        }
        require_root(&format!(
            "reading the data plane pinned at {}",
            pin.path().display()
        ))?;
        let missing = missing_maps(&pin)?;
        if !missing.is_empty() {
            return Err(Error::PartialState {
                path: pin.path().to_path_buf(),
                missing,
            });
        }
        Self::from_pins(pin)
    }

    /// Opens the state pinned at `pin`, creating (and pinning) it when absent.
    pub fn open_or_create(pin: PinDir) -> Result<Self> {
        Self::open_or_create_with(pin, &StateSizes::default())
    }

    /// [`Dataplane::open_or_create`], with the tables sized `sizes` if the
    /// state has to be created; a state that exists with other sizes is
    /// an error ([`Error::StateSizeMismatch`]).
    ///
    /// The maps are created only in a pin dir that has none of them (one
    /// this call makes, or an empty one); a pin dir with some but not all
    /// is damaged ([`Error::PartialState`]), and nothing is filled in.
    pub fn open_or_create_with(pin: PinDir, sizes: &StateSizes) -> Result<Self> {
        let (mut dp, _) = Self::create(pin, sizes)?;
        dp.held = None;
        Ok(dp)
    }

    /// [`Dataplane::open_or_create_with`], then `f` on the state, under the
    /// pin lock throughout. When `f` fails, what this call created is
    /// removed (the maps, and the directories it made, when the state was
    /// new; never maps that existed before), so that a failed command
    /// leaves no 250 MB of pinned maps behind.
    pub fn open_or_create_then<T>(
        pin: PinDir,
        sizes: &StateSizes,
        f: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<(Self, T)> {
        let (mut dp, created) = Self::create(pin, sizes)?;
        match f(&mut dp) {
            Ok(v) => {
                dp.held = None;
                Ok((dp, v))
            }
            Err(e) => {
                if let Some(c) = created {
                    let pin = dp.pin.clone();
                    let lock = dp.held.take();
                    // Close the maps, then unpin them: the kernel frees them.
                    drop(dp);
                    if let Err(undo) = pin.remove_created(&c.maps, &c.dirs) {
                        log::warn!("removing the state this command created: {undo}");
                    }
                    drop(lock);
                }
                Err(e)
            }
        }
    }

    /// Attaches to `iface`, creating the pinned state when absent (see
    /// [`Dataplane::open_or_create_then`]): the interface is looked up
    /// before anything is created, and a failed attach leaves nothing this
    /// call created.
    pub fn create_and_attach(
        pin: PinDir,
        sizes: &StateSizes,
        iface: &str,
        opts: AttachOptions,
    ) -> Result<(Self, Interface)> {
        require_root("attaching XDP programs")?;
        ifindex(iface)?;
        Self::open_or_create_then(pin, sizes, |dp| dp.attach(iface, opts))
    }

    /// Opens or creates the state (sized `sizes` if created; checked
    /// against them if not), returning it with the pin lock held (in
    /// `held`) and what it created.
    fn create(pin: PinDir, sizes: &StateSizes) -> Result<(Self, Option<Created>)> {
        sizes.validate()?;
        require_root("managing the anycast data plane")?;
        pin.check_shared()?;
        let dirs = pin.create()?;
        if let Err(e) = pin.check_trusted() {
            pin.remove_created(&[], &dirs)?;
            return Err(e);
        }
        let lock = pin.lock()?;
        let (present, missing) = pin.pinned_maps();
        let created = if present.is_empty() {
            // The trace maps the same load pins go with them (those of a
            // layout made before tracing existed are not in its place).
            let trace = trace_map_names::ALL
                .into_iter()
                .filter(|n| !pin.map_path(n).exists());
            Some(Created {
                maps: missing.into_iter().chain(trace).collect(),
                dirs,
            })
        } else if !missing.is_empty() {
            return Err(other_layout(&pin).unwrap_or(Error::PartialState {
                path: pin.path().to_path_buf(),
                missing,
            }));
        } else {
            None
        };
        let undo = |pin: &PinDir, e: Error| {
            if let Some(c) = &created
                && let Err(undo) = pin.remove_created(&c.maps, &c.dirs)
            {
                log::warn!("removing the state this command created: {undo}");
            }
            e
        };
        if created.is_some() {
            let sizes = sizes.map_sizes();
            // Creates every map and pins it.
            if let Err(e) =
                load_object_sized(Some(&pin), IfaceRole::Edge, SourceAction::Drop, &sizes)
            {
                return Err(undo(&pin, e));
            }
        }
        let opened = Self::from_pins(pin.clone()).and_then(|mut dp| {
            dp.held = Some(lock);
            // An operator must not believe a state was resized.
            dp.check_sizes(sizes)?;
            if dp.layout.version()? == 0 {
                dp.layout.set_current()?;
            }
            dp.state.settle_flow_epoch()?;
            dp.refresh_logged()?;
            Ok(dp)
        });
        match opened {
            Ok(dp) => Ok((dp, created)),
            Err(e) => Err(undo(&pin, e)),
        }
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
                found: pinned_version(&pin).unwrap_or(0),
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
            held: None,
        })
    }

    /// The maps, for steps the commands do not offer (tests, tools). A
    /// writer must hold the pin lock as the commands do.
    #[cfg(feature = "test-support")]
    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// Records layout version `v` in the pinned state, as another build
    /// would have (tests of the refusal of another layout).
    #[cfg(feature = "test-support")]
    pub fn set_layout_version(&mut self, v: u32) -> Result<()> {
        self.layout.set(v)
    }

    /// The pin dir.
    pub fn pin_dir(&self) -> &PinDir {
        &self.pin
    }

    /// The pin lock, unless [`Dataplane::open_or_create_then`] holds it.
    fn lock(&self) -> Result<Option<PinLock>> {
        match self.held {
            Some(_) => Ok(None),
            None => self.pin.lock().map(Some),
        }
    }

    /// Runs `f`, a change of the maps, under the pin lock and the journal
    /// (`Settings::journal`): what a command killed half-way left is
    /// repaired first, and should this one be killed, the next repairs
    /// after it. A change that fails undoes itself (each one says so), and
    /// the journal is cleared.
    fn change<T>(&mut self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let _lock = self.lock()?;
        self.recover()?;
        self.state.begin_change()?;
        let r = f(&mut self.state);
        self.state.end_change()?;
        r
    }

    /// Repairs what a killed command left, when the journal says that one
    /// was; call with the pin lock held.
    fn recover(&mut self) -> Result<()> {
        if self.state.interrupted()? {
            let report = self.state.repair(true)?;
            log::warn!(
                "the last change of {} was interrupted; repaired: {report}",
                self.pin.path().display()
            );
        }
        Ok(())
    }

    /// Brings the recorded state in line with the system, under the pin
    /// lock:
    ///
    /// - an attachment whose interface was deleted (the kernel detaches the
    ///   program and leaves the pinned link defunct), or whose link pin
    ///   someone removed (which detached it), is forgotten, its pin with it;
    /// - on-link members of this network namespace whose interface is gone
    ///   or now another interface are down for the data plane until that
    ///   interface is back (see `State::check_member_links`).
    ///
    /// Every command does this when it opens the state, and `anycast run`
    /// on every link event. Returns what changed.
    pub fn refresh(&mut self) -> Result<Refresh> {
        let _lock = self.lock()?;
        let mut out = Refresh::default();
        for (id, cfg) in self.attachments.all()? {
            let path = self.pin.link_path(cfg.netns, cfg.ifindex);
            let reason = match xdp_link_ifindex(&path) {
                Ok(0) => StaleReason::InterfaceGone,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => StaleReason::LinkPinRemoved,
                Ok(_) => continue,
                Err(e) => {
                    log::debug!("{}: {e}", path.display());
                    continue;
                }
            };
            if reason == StaleReason::InterfaceGone {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(Error::Io { path, source: e });
                    }
                    _ => {}
                }
            }
            self.attachments.remove(id)?;
            out.stale.push(Stale {
                interface: recorded_interface(&cfg),
                reason,
            });
        }
        if !out.stale.is_empty() {
            self.sync_scopes()?;
        }
        let netns = netns::current()?;
        let links = interfaces()?;
        // Member states change with the selections: a change like any
        // other, on a state repaired first if a command was killed.
        self.recover()?;
        self.state.begin_change()?;
        let members = self.state.check_member_links(netns, &links);
        self.state.end_change()?;
        out.members = members?;
        Ok(out)
    }

    /// [`Dataplane::refresh`], each change logged as a warning.
    fn refresh_logged(&mut self) -> Result<()> {
        for line in self.refresh()?.lines() {
            log::warn!("{line}");
        }
        Ok(())
    }

    /// Checks the pinned state's derived parts against the tables they
    /// derive from and, with `fix`, rebuilds what is wrong and rolls back an
    /// address load that did not finish (see [`crate::repair`]).
    pub fn repair(&mut self, fix: bool) -> Result<RepairReport> {
        require_root("repairing the anycast data plane")?;
        let _lock = self.lock()?;
        let mut r = self.state.repair(fix)?;
        let attached = self.attachments.all()?;
        r.scopes = self.state.sync_scopes(&attached, fix)?;
        Ok(r)
    }

    /// Opens the state pinned at `pin` for `anycast repair`: as
    /// [`Dataplane::open`], except that a pin dir missing some maps (and
    /// with `fix`) has them created afresh, empty, and pinned; their names
    /// come back, since what they held is lost. They get the sizes of the
    /// state's other maps (the index that of the exact table), or those
    /// of `asked` when nothing pinned tells (a lost flow table), or the
    /// built-in ones; a lost exact table whose index survives needs
    /// `asked` to give a size that fits the index. Sizes are checked
    /// before anything is made. Without `fix`, a partial state is the same
    /// error as for any command.
    pub fn open_repairing(
        pin: PinDir,
        fix: bool,
        asked: &StateSizes,
    ) -> Result<(Self, Vec<&'static str>)> {
        require_root("repairing the anycast data plane")?;
        let missing = missing_maps(&pin)?;
        if !missing.is_empty() && fix {
            let _lock = pin.lock()?;
            // Creates the missing maps and pins them, sized as the state's
            // own; existing pins are reused.
            let sizes = sizes::pinned_sizes(&pin, asked)?;
            load_object_sized(Some(&pin), IfaceRole::Edge, SourceAction::Drop, &sizes)?;
        } else if !missing.is_empty() {
            return Err(Error::PartialState {
                path: pin.path().to_path_buf(),
                missing,
            });
        }
        let mut dp = Self::from_pins(pin)?;
        dp.check_sizes(asked)?;
        dp.refresh_logged()?;
        Ok((dp, missing))
    }

    /// Removes what anycast pinned (every map of the layout, every link
    /// pin), then the pin dir if nothing else is in it (see
    /// [`PinDir::remove_layout`]): another instance's pin dir below this
    /// one, or files of other programs, stay. Refused while interfaces are
    /// attached.
    pub fn purge(self) -> Result<Purged> {
        require_root("purging the anycast data plane")?;
        let attached = self.interfaces()?;
        if !attached.is_empty() {
            let names: Vec<String> = attached.into_iter().map(|i| i.name).collect();
            return Err(Error::StillAttached(names.join(", ")));
        }
        let lock = self.lock()?;
        let pin = self.pin.clone();
        drop(self);
        let purged = pin.remove_layout();
        drop(lock);
        purged
    }

    /// `detach --purge` for a state that [`Dataplane::open`] refuses as
    /// another build's ([`Error::IncompatibleState`]) or damaged
    /// ([`Error::PartialState`]): removes what anycast pins there (every
    /// link pin, which detaches its program, and every map of the layout),
    /// as [`PinDir::remove_layout`].
    pub fn purge_unopenable(pin: PinDir) -> Result<Purged> {
        require_root("purging the anycast data plane")?;
        pin.check_shared()?;
        if !pin.exists() {
            return Ok(Purged::default());
        }
        pin.check_trusted()?;
        let _lock = pin.lock()?;
        pin.remove_layout()
    }

    /// Adds an anycast address or prefix to a group (see [`State::add_address`]).
    pub fn add_address(&mut self, p: AnycastPrefix, group: &GroupName) -> Result<AddOutcome> {
        require_root("changing anycast addresses")?;
        self.change(|s| s.add_address(p, group))
    }

    /// Adds many addresses and prefixes at once, all or nothing even if
    /// the command is killed (see [`State::load_address_list`]).
    pub fn load_addresses(&mut self, list: &[AnycastPrefix], group: &GroupName) -> Result<usize> {
        require_root("changing anycast addresses")?;
        self.change(|s| s.load_address_list(list, group))
    }

    /// Removes an anycast address or prefix; returns the name of its group
    /// if that was freed, having no address and no member left.
    pub fn del_address(&mut self, p: AnycastPrefix) -> Result<Option<String>> {
        require_root("changing anycast addresses")?;
        self.change(|s| s.del_address(p))
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
        self.change(|s| s.add_member(group, name, via, metric, weight))
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
        self.change(|s| s.set_member(group, name, metric, state, weight))
    }

    /// Removes a member; returns the name of its group if that was freed,
    /// having no address and no member left.
    pub fn del_member(&mut self, group: &str, name: &str) -> Result<Option<String>> {
        require_root("changing members")?;
        self.change(|s| s.del_member(group, name))
    }

    /// Members of one group or of all.
    pub fn members(&self, group: Option<&str>) -> Result<Vec<MemberEntry>> {
        self.state.list_members(group)
    }

    /// Sets the settings of an existing group (see [`State::set_group_options`]).
    pub fn set_group(&mut self, group: &GroupName, options: &GroupOptions) -> Result<()> {
        require_root("changing groups")?;
        self.change(|s| s.set_group_options(group, options))
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
        // The file's `[state]` is the state's, or a mistake to report.
        self.check_sizes(&StateSizes::default().with_file(&cfg.state, "the file")?)?;
        // Metrics from routes, as they are now (the service follows them).
        let cfg = &crate::routes::metrics_now(cfg)?;
        let attach = self.interfaces_to_attach(cfg)?;
        let mut changes = {
            // The attachments the scopes follow, read under the lock: one
            // attached meanwhile is in a new scope's bits.
            let _lock = self.lock()?;
            let attached = self.attachments.all()?;
            let (mut resolve, mut carrying) =
                (MemberVia::resolve, crate::link::interfaces_carrying);
            let mut exists = reconcile::interface_exists;
            let sys =
                &mut reconcile::System::here(&mut resolve, &mut carrying, &mut exists, &attached)?;
            if opts.dry_run {
                reconcile::apply_config_in(&mut self.state, cfg, sys, opts)?
            } else {
                self.recover()?;
                self.state.begin_change()?;
                let r = reconcile::apply_config_in(&mut self.state, cfg, sys, opts);
                self.state.end_change()?;
                r?
            }
        };
        // Attached once the maps hold the file: the program filters with
        // them from its first packet.
        for c in attach {
            if !opts.dry_run {
                let o = cfg.interfaces[&c.name].options;
                self.attach(&c.name, o)?;
            }
            changes.push(c);
        }
        Ok(changes)
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

/// The layout version recorded at `pin`, read on its own (for the error of
/// a state whose other maps this build cannot open).
fn pinned_version(pin: &PinDir) -> Option<u32> {
    let mut open = |name: &'static str| {
        let data =
            MapData::from_pin(pin.map_path(name)).map_err(|source| Error::Map { name, source })?;
        Map::from_map_data(data).map_err(|source| Error::Map { name, source })
    };
    Layout::take(&mut open).and_then(|l| l.version()).ok()
}

/// The maps of the layout missing at `pin`, after the checks every opening
/// makes: the pin dir is on the system's bpffs, there, trusted, and holds
/// at least one of them (else nothing is configured).
fn missing_maps(pin: &PinDir) -> Result<Vec<&'static str>> {
    pin.check_shared()?;
    if !pin.exists() {
        return Err(Error::NotConfigured(pin.path().to_path_buf()));
    }
    pin.check_trusted()?;
    let (present, missing) = pin.pinned_maps();
    if present.is_empty() {
        return Err(Error::NotConfigured(pin.path().to_path_buf()));
    }
    if !missing.is_empty()
        && let Some(e) = other_layout(pin)
    {
        return Err(e);
    }
    Ok(missing)
}

/// The error of a state of another layout, whose maps differ from this
/// build's (a layout without a map this one has is not damaged, and no
/// repair may pin the map into it): `None` when the recorded version is
/// this build's, or unreadable.
fn other_layout(pin: &PinDir) -> Option<Error> {
    let found = pinned_version(pin)?;
    (found != 0 && found != LAYOUT_VERSION).then(|| Error::IncompatibleState {
        path: pin.path().to_path_buf(),
        found,
        expected: LAYOUT_VERSION,
    })
}

/// Whether the pin dir `pin` is there; [`Error::NotRoot`] when this user
/// cannot tell (a directory above it may not be searched).
fn pin_dir_present(pin: &PinDir) -> Result<bool> {
    match std::fs::metadata(pin.path()) {
        Ok(m) => Ok(m.is_dir()),
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => Err(Error::NotRoot {
            what: format!("reading the data plane pinned at {}", pin.path().display()),
        }),
        Err(_) => Ok(false),
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
