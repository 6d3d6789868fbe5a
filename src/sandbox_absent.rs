//! The simulator's interface in a build without the `sandbox` feature:
//! [`AVAILABLE`] is false, [`Sandbox::start`] fails, and a [`Sandbox`]
//! cannot exist, so callers need no `cfg` of their own. The command line
//! checks [`AVAILABLE`] first and answers "this build has no sandbox".

/// Whether this build has the simulator (the `sandbox` feature).
pub const AVAILABLE: bool = false;

/// The Robofy project id of the simulator's demo data.
pub const DEMO_PROJECT: &str = "1";

#[path = "sandbox/options.rs"]
mod options;
pub use options::SandboxOptions;

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
