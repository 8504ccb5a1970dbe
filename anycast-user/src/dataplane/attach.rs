//! Interfaces: attach the program to one and pin the link, detach it, and
//! what the pinned state records of each (with the mode the kernel runs).

use anycast_common::{IfaceConfig, IfaceRole, NetnsId, SourceAction, program_names};
use aya::programs::{
    ProgramError,
    links::{FdLink, PinnedLink},
};
use serde::Serialize;

use crate::{
    config::Config,
    error::{ConfigError, Error, PinCause, Result},
    link::{ifindex, xdp_attachment, xdp_link},
    loader::{EBPF_OBJECT, Instance, load_instance, load_program},
    netns,
    reconcile::{Change, ChangeAction, ChangeKind},
};

use super::{Dataplane, require_root};
use crate::iface::{AttachMode, AttachOptions};

/// An attached interface, as recorded in the pinned state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Interface {
    /// Name at attach time.
    pub name: String,
    /// Interface index (in its network namespace).
    pub ifindex: u32,
    /// Its network namespace: the inode of the namespace's file, as `ls
    /// -iL /proc/PID/ns/net` or `lsns -t net` show it.
    pub netns: u64,
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

impl Dataplane {
    /// Attaches the anycast program to `iface` (in the current network
    /// namespace) and pins the link.
    pub fn attach(&mut self, iface: &str, opts: AttachOptions) -> Result<Interface> {
        require_root("attaching XDP programs")?;
        let _lock = self.lock()?;
        let idx = ifindex(iface)?;
        let netns = netns::current()?;
        let link_path = self.pin.link_path(netns, idx);
        if self.attachments.find(netns, idx)?.is_some() || link_path.exists() {
            return Err(Error::AlreadyAttached(iface.to_string()));
        }
        let id = self.attachments.free_id()?;
        let mut cfg = IfaceConfig {
            name: [0; 16],
            role: opts.role as u8,
            source_action: opts.source_action as u8,
            mode: opts.mode.code(),
            _pad: 0,
            ifindex: idx,
            netns,
        };
        cfg.name[..iface.len()].copy_from_slice(iface.as_bytes());
        // The scopes that name the interface admit it before its first
        // packet: its scoped addresses are never dropped as out of scope.
        let mut attached = self.attachments.all()?;
        attached.push((id, cfg));
        self.state.sync_scopes(&attached, true)?;
        let r = self.attach_as(iface, id, cfg, &opts);
        if r.is_err()
            && let Err(e) = self.sync_scopes()
        {
            // The attach's own error matters more; repair clears the bit.
            log::warn!("taking {iface} out of its scopes again: {e}");
        }
        r
    }

    /// Loads the instance of attachment `id` and attaches it; pins the link
    /// and records the attachment.
    fn attach_as(
        &mut self,
        iface: &str,
        id: u32,
        cfg: IfaceConfig,
        opts: &AttachOptions,
    ) -> Result<Interface> {
        let (idx, netns) = (cfg.ifindex, cfg.netns);
        let link_path = self.pin.link_path(netns, idx);
        let instance = Instance {
            attachment: id,
            ..Instance::default()
        };
        let mut ebpf = load_instance(
            EBPF_OBJECT,
            Some(&self.pin),
            opts.role,
            opts.source_action,
            &[],
            &instance,
        )?;
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
        if let Err(e) = self.attachments.insert(id, cfg) {
            drop(pinned.unpin());
            return Err(e);
        }
        Ok(self.interface(&cfg))
    }

    /// The `[interface.NAME]`s of `cfg` to attach: those not attached in
    /// this network namespace. One that is missing, or attached otherwise
    /// than the file says, is an error naming its line (nothing is
    /// attached then).
    pub(super) fn interfaces_to_attach(&self, cfg: &Config) -> Result<Vec<Change>> {
        let here = netns::current()?;
        let attached = self.interfaces()?;
        let mut out = Vec::new();
        for (name, ic) in &cfg.interfaces {
            let at_line = |error: Error| {
                Error::Config(ConfigError::Invalid {
                    line: ic.line,
                    field: format!("interface.{name}"),
                    error: Box::new(error),
                })
            };
            let idx = ifindex(name).map_err(at_line)?;
            let o = ic.options;
            let wanted = format!("{} / {} / {}", o.role, o.source_action, o.mode);
            match attached
                .iter()
                .find(|i| i.netns == here.ino && i.ifindex == idx)
            {
                Some(i) => {
                    let now = format!("{} / {} / {}", i.role, i.source_action, i.requested_mode);
                    if now != wanted {
                        return Err(at_line(Error::AttachedOtherwise {
                            iface: name.clone(),
                            attached: now,
                            wanted,
                        }));
                    }
                }
                None => out.push(Change {
                    action: ChangeAction::Added,
                    kind: ChangeKind::Interface,
                    group: String::new(),
                    name: name.clone(),
                    detail: format!("attached as {wanted}"),
                }),
            }
        }
        Ok(out)
    }

    /// The id of the attachment of interface `ifindex` of namespace
    /// `netns`, if it is attached.
    pub fn attachment_id(&self, netns: NetnsId, ifindex: u32) -> Result<Option<u32>> {
        Ok(self.attachments.find(netns, ifindex)?.map(|(id, _)| id))
    }

    /// Every attached interface, of every network namespace.
    pub fn interfaces(&self) -> Result<Vec<Interface>> {
        let mut out: Vec<Interface> = self
            .attachments
            .all()?
            .iter()
            .map(|(_, cfg)| self.interface(cfg))
            .collect();
        out.sort_by(|a, b| (&a.name, a.netns).cmp(&(&b.name, b.netns)));
        Ok(out)
    }

    /// Detaches `iface` (of the current network namespace), or every
    /// interface (of every namespace) when `None`. Returns the names
    /// detached.
    pub fn detach(&mut self, iface: Option<&str>) -> Result<Vec<String>> {
        require_root("detaching XDP programs")?;
        let _lock = self.lock()?;
        let all = self.attachments.all()?;
        let targets: Vec<(u32, IfaceConfig)> = match iface {
            None => all,
            Some(name) => {
                let netns = netns::current()?;
                let current = ifindex(name).ok();
                let (here, elsewhere): (Vec<_>, Vec<_>) =
                    all.into_iter().partition(|(_, c)| c.netns == netns);
                let found: Vec<(u32, IfaceConfig)> = here
                    .into_iter()
                    .filter(|(_, c)| c.name_str() == name || Some(c.ifindex) == current)
                    .collect();
                if found.is_empty() {
                    if elsewhere.iter().any(|(_, c)| c.name_str() == name) {
                        return Err(Error::AttachedElsewhere(name.to_string()));
                    }
                    return Err(Error::NotAttached(name.to_string()));
                }
                found
            }
        };
        let mut done = Vec::new();
        for (id, cfg) in targets {
            self.unpin_link(&cfg)?;
            self.attachments.remove(id)?;
            done.push(cfg.name_str());
        }
        self.sync_scopes()?;
        Ok(done)
    }

    /// Detaches exactly the attachment `i` (its namespace and index), as
    /// [`Dataplane::attach`] returned it; false when it is no longer
    /// recorded (e.g. its interface was deleted and the attachment
    /// forgotten).
    pub fn detach_interface(&mut self, i: &Interface) -> Result<bool> {
        require_root("detaching XDP programs")?;
        let _lock = self.lock()?;
        let Some((id, cfg)) = self
            .attachments
            .all()?
            .into_iter()
            .find(|(_, c)| c.netns.ino == i.netns && c.ifindex == i.ifindex)
        else {
            return Ok(false);
        };
        self.unpin_link(&cfg)?;
        self.attachments.remove(id)?;
        self.sync_scopes()?;
        Ok(true)
    }

    fn unpin_link(&self, cfg: &IfaceConfig) -> Result<()> {
        let path = self.pin.link_path(cfg.netns, cfg.ifindex);
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
}

/// Interface `cfg` as recorded, in the mode asked for.
pub(super) fn recorded_interface(cfg: &IfaceConfig) -> Interface {
    let requested = AttachMode::from_code(cfg.mode);
    Interface {
        name: cfg.name_str(),
        ifindex: cfg.ifindex,
        netns: cfg.netns.ino,
        role: IfaceRole::from_u8(cfg.role),
        source_action: SourceAction::from_u8(cfg.source_action),
        mode: requested,
        requested_mode: requested,
    }
}

/// What the pinned XDP link of an attachment says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkPin {
    /// Attached: the program the link holds on the interface.
    Attached {
        /// The program's id (`bpftool prog show id N`).
        prog_id: u32,
    },
    /// The interface was deleted: the link is defunct.
    Defunct,
    /// No pin: someone removed it, which detached the program.
    Missing,
    /// The pin could not be read (the error).
    Unreadable(std::io::ErrorKind),
}

impl Dataplane {
    /// Every attachment with what its pinned link says (`anycast doctor`).
    pub fn attachment_links(&self) -> Result<Vec<(Interface, LinkPin)>> {
        let mut out = Vec::new();
        for (_, cfg) in self.attachments.all()? {
            let path = self.pin.link_path(cfg.netns, cfg.ifindex);
            let state = match xdp_link(&path) {
                Ok((0, _)) => LinkPin::Defunct,
                Ok((_, prog_id)) => LinkPin::Attached { prog_id },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => LinkPin::Missing,
                Err(e) => LinkPin::Unreadable(e.kind()),
            };
            out.push((self.interface(&cfg), state));
        }
        out.sort_by(|a, b| (&a.0.name, a.0.netns).cmp(&(&b.0.name, b.0.netns)));
        Ok(out)
    }

    /// Interface `cfg` as recorded, with the mode the kernel runs our
    /// program in: the program of the interface's pinned link, found among
    /// the interface's XDP programs (asked only when the interface is in
    /// this network namespace; another's shows the requested mode).
    fn interface(&self, cfg: &IfaceConfig) -> Interface {
        let mut i = recorded_interface(cfg);
        if !netns::current().is_ok_and(|id| id == cfg.netns) {
            return i;
        }
        let prog = PinnedLink::from_pin(self.pin.link_path(cfg.netns, cfg.ifindex))
            .ok()
            .and_then(|l| FdLink::from(l).info().ok())
            .map_or(0, |info| info.program_id());
        match xdp_attachment(cfg.ifindex)
            .ok()
            .and_then(|a| a.native(prog))
        {
            Some(true) => i.mode = AttachMode::Native,
            Some(false) => i.mode = AttachMode::Skb,
            None => {}
        }
        i
    }
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
