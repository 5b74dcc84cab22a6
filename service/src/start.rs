//! Why a server (`corridor gateway` or `corridor relay`) could not start.

use std::io;

use crate::ConfigError;

/// Why a server could not start: a configuration mistake (the binary exits
/// with status 2, naming the field and the fix), or a resource the system
/// refused (a socket, a TUN, a thread).
#[derive(Debug)]
pub enum StartError {
    /// A file or value the configuration names is wrong.
    Config(ConfigError),
    /// What was being set up, and why the system refused it.
    Io(&'static str, io::Error),
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartError::Config(e) => e.fmt(f),
            StartError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for StartError {}
