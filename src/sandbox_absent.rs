//! The simulator's interface in a build without the `sandbox` feature:
//! [`AVAILABLE`] is false, [`Sandbox::start`] fails, and a [`Sandbox`]
//! cannot exist, so callers need no `cfg` of their own. The command line
//! checks [`AVAILABLE`] first and answers "this build has no sandbox".

use std::time::Duration;

/// Whether this build has the simulator (the `sandbox` feature).
pub const AVAILABLE: bool = false;

/// The Robofy project id of the simulator's demo data.
pub const DEMO_PROJECT: &str = "1";

/// The simulator's options (see the `sandbox` feature's module).
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub port: u16,
    pub seed: u64,
    pub leads: usize,
    pub conversations: usize,
    pub latency: Duration,
    pub fail_every: Option<u64>,
    pub rate_limit: Option<u32>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            port: 0,
            seed: 42,
            leads: 250,
            conversations: 40,
            latency: Duration::ZERO,
            fail_every: None,
            rate_limit: None,
        }
    }
}

/// A running simulator: none in this build.
pub enum Sandbox {}

impl Sandbox {
    pub async fn start(_options: SandboxOptions) -> std::io::Result<Sandbox> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this build has no sandbox",
        ))
    }

    pub fn base_url(&self, _vendor_name: &str) -> Option<String> {
        match *self {}
    }

    pub async fn shutdown(self) {
        match self {}
    }
}

pub fn key(_vendor_name: &str) -> Option<&'static str> {
    None
}

pub fn describe(sandbox: &Sandbox) -> String {
    match *sandbox {}
}
