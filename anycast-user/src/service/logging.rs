//! The service's log level: `[service] log-level` in the file, unless
//! `RUST_LOG` is set.
//!
//! Precedence, at start and at every reload: `RUST_LOG` when it is set
//! (and not empty) decides alone, as it does for every command; otherwise
//! the file's `log-level`; otherwise [`SERVICE_DEFAULT`]. The level is the
//! `log` crate's maximum level, which can change while the process runs;
//! the logger itself must then let every record through (see
//! [`rust_log_is_set`]).

use std::{fmt, str::FromStr};

use log::LevelFilter;

use crate::error::Error;

/// The service's level when neither `RUST_LOG` nor the file names one:
/// its events (a member's health changing, a reload) are at `info`.
pub const SERVICE_DEFAULT: LogLevel = LogLevel::Info;

/// A level of `[service] log-level`, from fewest lines to most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// What stops the service or a part of it.
    Error,
    /// What it survives but an operator should see.
    Warn,
    /// One line per event: a member's health changes, reloads, changes
    /// applied, the metrics endpoint.
    Info,
    /// Also every probe's result (member, group, kind, latency or reason).
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// Every level, in the file's spelling.
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];

    /// The `log` crate's filter of this level.
    pub fn filter(self) -> LevelFilter {
        match self {
            LogLevel::Error => LevelFilter::Error,
            LogLevel::Warn => LevelFilter::Warn,
            LogLevel::Info => LevelFilter::Info,
            LogLevel::Debug => LevelFilter::Debug,
            LogLevel::Trace => LevelFilter::Trace,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        })
    }
}

impl FromStr for LogLevel {
    type Err = Error;

    /// The file's spelling only (lower case), as every other key's values.
    fn from_str(s: &str) -> Result<Self, Error> {
        LogLevel::ALL
            .into_iter()
            .find(|l| l.to_string() == s)
            .ok_or_else(|| Error::InvalidLogLevel(s.to_string()))
    }
}

/// Whether `RUST_LOG` is set to something (an empty value counts as
/// unset, as env_logger reads it).
pub fn rust_log_is_set() -> bool {
    std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty())
}

/// The level the service runs at: none when `RUST_LOG` decides
/// (`rust_log`), else the file's (`file`), else [`SERVICE_DEFAULT`].
pub fn service_level(rust_log: bool, file: Option<LogLevel>) -> Option<LogLevel> {
    if rust_log {
        None
    } else {
        Some(file.unwrap_or(SERVICE_DEFAULT))
    }
}

/// Applies the level of [`service_level`] to this process (at start and
/// after each reload); what changed, as a line to report, if anything did.
pub fn apply(file: Option<LogLevel>) -> Option<String> {
    let rust_log = rust_log_is_set();
    match service_level(rust_log, file) {
        Some(level) => {
            let before = log::max_level();
            log::set_max_level(level.filter());
            (before != level.filter()).then(|| format!("log level: {level}"))
        }
        None => file.map(|l| format!("log level: RUST_LOG is set and overrides log-level {l}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_read_as_the_file_spells_them_and_nothing_else() {
        for l in LogLevel::ALL {
            assert_eq!(l.to_string().parse::<LogLevel>().ok(), Some(l));
        }
        assert_eq!("debug".parse::<LogLevel>().ok(), Some(LogLevel::Debug));
        for bad in ["DEBUG", "warning", "", "verbose", "info "] {
            let e = bad.parse::<LogLevel>().err().map(|e| e.to_string());
            assert!(
                e.as_deref()
                    .is_some_and(|e| e.contains("error, warn, info, debug or trace")),
                "{bad:?}: {e:?}"
            );
        }
        // From fewest lines to most, as the log crate orders them.
        let filters: Vec<LevelFilter> = LogLevel::ALL.iter().map(|l| l.filter()).collect();
        assert!(filters.windows(2).all(|w| w[0] < w[1]), "{filters:?}");
    }

    #[test]
    fn rust_log_overrides_the_file_which_overrides_info() {
        use LogLevel::{Debug, Info, Warn};
        assert_eq!(service_level(false, None), Some(Info));
        assert_eq!(service_level(false, Some(Debug)), Some(Debug));
        assert_eq!(service_level(false, Some(Warn)), Some(Warn));
        assert_eq!(service_level(true, Some(Debug)), None);
        assert_eq!(service_level(true, None), None);
    }
}
