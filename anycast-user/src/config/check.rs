//! A member's `[group.G.member.M.check]` table: validated into a
//! [`Check`], every error on its own line and field.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Checker;
use crate::{
    error::{ConfigError, Error},
    health::{Check, Probe, Target, parse_rcode},
};

/// The check table as TOML has it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    kind: Spanned<String>,
    port: Option<Spanned<i64>>,
    send: Option<Spanned<String>>,
    expect: Option<Spanned<String>>,
    query: Option<Spanned<String>>,
    rcode: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    status: Option<Spanned<i64>>,
    command: Option<Spanned<Vec<String>>>,
    interval: Option<Spanned<f64>>,
    timeout: Option<Spanned<f64>>,
    rise: Option<Spanned<i64>>,
    fall: Option<Spanned<i64>>,
    target: Option<Spanned<String>>,
}

fn bad(s: impl Into<String>) -> Error {
    Error::InvalidCheck(s.into())
}

/// The keys each kind takes beyond the timing ones.
fn keys_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "tcp" => &["port"],
        "udp" => &["port", "send", "expect"],
        "dns" => &["port", "query", "rcode"],
        "http" => &["port", "path", "status"],
        "exec" => &["command"],
        _ => &[],
    }
}

impl RawCheck {
    /// Validates the table of member `field` (`group.G.member.M`).
    pub(super) fn check(&self, c: &Checker, field: &str) -> Result<Check, ConfigError> {
        let f = |key: &'static str| move || format!("{field}.check.{key}");
        let kind = self.kind.get_ref().as_str();
        let given: [(&str, Option<usize>); 9] = [
            ("port", self.port.as_ref().map(|v| c.line(v))),
            ("send", self.send.as_ref().map(|v| c.line(v))),
            ("expect", self.expect.as_ref().map(|v| c.line(v))),
            ("query", self.query.as_ref().map(|v| c.line(v))),
            ("rcode", self.rcode.as_ref().map(|v| c.line(v))),
            ("path", self.path.as_ref().map(|v| c.line(v))),
            ("status", self.status.as_ref().map(|v| c.line(v))),
            ("command", self.command.as_ref().map(|v| c.line(v))),
            ("target", self.target.as_ref().map(|v| c.line(v))),
        ];
        let port = |default: Option<u16>| -> Result<u16, ConfigError> {
            match &self.port {
                Some(p) => c.check(
                    p,
                    f("port"),
                    u16::try_from(*p.get_ref())
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or_else(|| bad("a port is 1 to 65535")),
                ),
                None => default.ok_or_else(|| ConfigError::Invalid {
                    line: c.line(&self.kind),
                    field: f("port")(),
                    error: Box::new(bad(format!("a {kind} check needs a port"))),
                }),
            }
        };
        let probe = match kind {
            "tcp" => Probe::Tcp { port: port(None)? },
            "udp" => {
                let send = self.send.as_ref().ok_or_else(|| ConfigError::Invalid {
                    line: c.line(&self.kind),
                    field: f("send")(),
                    error: Box::new(bad("a udp check needs a payload to send")),
                })?;
                Probe::Udp {
                    port: port(None)?,
                    send: send.get_ref().as_bytes().to_vec(),
                    expect: self
                        .expect
                        .as_ref()
                        .map(|e| e.get_ref().as_bytes().to_vec()),
                }
            }
            "dns" => {
                let query = self.query.as_ref().ok_or_else(|| ConfigError::Invalid {
                    line: c.line(&self.kind),
                    field: f("query")(),
                    error: Box::new(bad("a dns check needs a name to query")),
                })?;
                let name = query.get_ref();
                let labels_ok = name
                    .trim_end_matches('.')
                    .split('.')
                    .all(|l| !l.is_empty() && l.len() < 64 && l.is_ascii());
                c.check(
                    query,
                    f("query"),
                    if labels_ok && name.len() < 254 {
                        Ok(())
                    } else {
                        Err(bad(
                            "a name of ASCII labels of 1 to 63 characters, at most 253 in all",
                        ))
                    },
                )?;
                let rcode = match &self.rcode {
                    Some(r) => c.check(
                        r,
                        f("rcode"),
                        parse_rcode(r.get_ref()).ok_or_else(|| {
                            bad("one of NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED")
                        }),
                    )?,
                    None => 0,
                };
                Probe::Dns {
                    port: port(Some(53))?,
                    query: name.clone(),
                    rcode,
                }
            }
            "http" => {
                let path = match &self.path {
                    Some(p) => c.check(
                        p,
                        f("path"),
                        if p.get_ref().starts_with('/')
                            && !p
                                .get_ref()
                                .chars()
                                .any(|ch| ch.is_whitespace() || ch.is_control())
                        {
                            Ok(p.get_ref().clone())
                        } else {
                            Err(bad("a path starts with / and has no spaces"))
                        },
                    )?,
                    None => "/".into(),
                };
                let status = match &self.status {
                    Some(s) => c.check(
                        s,
                        f("status"),
                        u16::try_from(*s.get_ref())
                            .ok()
                            .filter(|s| (100..600).contains(s))
                            .ok_or_else(|| bad("an HTTP status is 100 to 599")),
                    )?,
                    None => 200,
                };
                Probe::Http {
                    port: port(Some(80))?,
                    path,
                    status,
                }
            }
            "exec" => {
                let command = self.command.as_ref().ok_or_else(|| ConfigError::Invalid {
                    line: c.line(&self.kind),
                    field: f("command")(),
                    error: Box::new(bad(
                        "an exec check needs a command (a list: program, arguments)",
                    )),
                })?;
                c.check(
                    command,
                    f("command"),
                    if command.get_ref().first().is_some_and(|p| !p.is_empty()) {
                        Ok(())
                    } else {
                        Err(bad("the command's first element is the program to run"))
                    },
                )?;
                Probe::Exec {
                    command: command.get_ref().clone(),
                }
            }
            "icmp" => {
                return c.check(
                    &self.kind,
                    f("kind"),
                    Err(bad(
                        "icmp checks are not built yet: use udp, tcp, dns, http or exec",
                    )),
                );
            }
            _ => {
                return c.check(
                    &self.kind,
                    f("kind"),
                    Err(bad("the kind is one of icmp, tcp, udp, http, dns, exec")),
                );
            }
        };
        // A key another kind takes is a mistake here, not something to ignore.
        let allowed = keys_of(kind);
        for (key, line) in given {
            if let Some(line) = line
                && key != "target"
                && !allowed.contains(&key)
            {
                return Err(ConfigError::Invalid {
                    line,
                    field: f(key)(),
                    error: Box::new(bad(format!("a {kind} check takes no {key}"))),
                });
            }
        }
        let seconds = |v: &Option<Spanned<f64>>, key: &'static str, default: Duration| match v {
            Some(s) => c.check(
                s,
                f(key),
                Duration::try_from_secs_f64(*s.get_ref())
                    .ok()
                    .filter(|d| *d >= Duration::from_millis(10) && *d <= Duration::from_secs(3600))
                    .ok_or_else(|| bad("seconds, from 0.01 to 3600")),
            ),
            None => Ok(default),
        };
        let interval = seconds(&self.interval, "interval", Check::DEFAULT_INTERVAL)?;
        let timeout = seconds(
            &self.timeout,
            "timeout",
            Check::DEFAULT_TIMEOUT.min(interval),
        )?;
        if timeout > interval
            && let Some(t) = &self.timeout
        {
            return c.check(
                t,
                f("timeout"),
                Err(bad(format!(
                    "the timeout is longer than the interval ({} s)",
                    interval.as_secs_f64()
                ))),
            );
        }
        let count = |v: &Option<Spanned<i64>>, key: &'static str, default: u32| match v {
            Some(n) => c.check(
                n,
                f(key),
                u32::try_from(*n.get_ref())
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| bad("a count from 1 to 100")),
            ),
            None => Ok(default),
        };
        let rise = count(&self.rise, "rise", Check::DEFAULT_RISE)?;
        let fall = count(&self.fall, "fall", Check::DEFAULT_FALL)?;
        let target = match &self.target {
            None => Target::Anycast,
            Some(t) => c.check(
                t,
                f("target"),
                match t.get_ref().as_str() {
                    "anycast" => Ok(Target::Anycast),
                    "unicast" => Ok(Target::Unicast),
                    _ => Err(bad("the target is anycast or unicast")),
                },
            )?,
        };
        Ok(Check {
            probe,
            interval,
            timeout,
            rise,
            fall,
            target,
        })
    }
}
