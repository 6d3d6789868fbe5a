//! The built-in vendor simulator (SPEC section 8): one axum server on
//! loopback that serves the documented lead and conversation endpoints of
//! Chatzuri, NeoAgent and Robofy under path prefixes, with the vendors' own
//! auth header forms, envelopes, status codes, pagination and date filters,
//! filled with deterministic data from [`data`]. `leads sandbox` prints
//! [`describe`]; `pull --sandbox` starts it in-process on a free port.
//!
//! Served (prefix + the vendor's documented path):
//!
//! | vendor | base URL | endpoints |
//! |---|---|---|
//! | Chatzuri | `/chatzuri/api/v1` | `GET`/`POST /get-leads` (202), `GET`/`POST /get-conversations` (200); `page` from 1, `size` default 10, capped at 100 |
//! | NeoAgent | `/neoagent` | `POST /chat/Chatbot/LeadList`, `/ChatContentHistory`, `/GetMessageCountByChatbot`; no paging, whole window streamed |
//! | Robofy | `/robofy` | `GET /v1/ai-agent/leads/{project}/{chatbot}` (100 rows a page), `/v1/ai-agent/inbox/sessions/{chatbot}` (25 a page), `/v1/ai-agent/inbox/chats/{chatbot}/{session}` |
//!
//! A second Chatzuri prefix, `/chatzuri-post-only/api/v1`
//! ([`Sandbox::chatzuri_post_only_base_url`]), answers `GET
//! /get-conversations` with 405 so tests can exercise the client's POST
//! fallback without any option.

mod chatbase;
mod chatzuri;
pub mod data;
mod neoagent;
mod options;
mod robofy;
mod server;

pub use chatbase::{
    CHATBASE_EXPORT_MAX_LIMIT, CHATBASE_V1_DEFAULT_SIZE, CHATBASE_V1_MAX_SIZE,
    v1_conversation_wire as chatbase_v1_conversation_wire,
};
pub use chatzuri::{CHATZURI_DEFAULT_SIZE, CHATZURI_MAX_SIZE};
pub use options::SandboxOptions;
pub use robofy::{ROBOFY_LEADS_PER_PAGE, ROBOFY_SESSIONS_PER_PAGE};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Whether this build has the simulator (the `sandbox` feature).
pub const AVAILABLE: bool = true;

/// The agent (Chatzuri, Chatbase), serial number (NeoAgent) and chatbot
/// (Robofy) id that has data; any other id gets the vendor's 404.
pub const DEMO_AGENT: &str = "demo";
/// The Robofy project id that exists; another gets 404 `PROJECT_NOT_FOUND`.
pub const DEMO_PROJECT: &str = "1";
/// A Chatbase agent on a plan without API v2: the same data as
/// [`DEMO_AGENT`] on v1, and 403 `SUBSCRIPTION_API_RESTRICTED_PLAN` on the
/// v2 export, so a client's v1 fallback can be exercised.
pub const CHATBASE_V1_ONLY_AGENT: &str = "v1-only";

/// The simulated vendors. The simulator is an independent oracle: it has its
/// own names for the vendors and shares no code with the client; the client
/// reaches it by vendor name ([`Sandbox::base_url`], [`key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimVendor {
    Chatzuri,
    Neoagent,
    Robofy,
    Chatbase,
}

impl SimVendor {
    pub const ALL: [SimVendor; 4] = [
        SimVendor::Chatzuri,
        SimVendor::Neoagent,
        SimVendor::Robofy,
        SimVendor::Chatbase,
    ];

    /// The vendor's name on the command line (`--vendor NAME`).
    pub fn name(self) -> &'static str {
        match self {
            SimVendor::Chatzuri => "chatzuri",
            SimVendor::Neoagent => "neoagent",
            SimVendor::Robofy => "robofy",
            SimVendor::Chatbase => "chatbase",
        }
    }

    pub fn from_name(name: &str) -> Option<SimVendor> {
        SimVendor::ALL.into_iter().find(|v| v.name() == name)
    }

    pub fn display_name(self) -> &'static str {
        match self {
            SimVendor::Chatzuri => "Chatzuri",
            SimVendor::Neoagent => "NeoAgent",
            SimVendor::Robofy => "Robofy",
            SimVendor::Chatbase => "Chatbase",
        }
    }

    /// The variable the `leads` client reads the vendor's key from, for the
    /// start-up text.
    pub fn key_env(self) -> &'static str {
        match self {
            SimVendor::Chatzuri => "CHATZURI_API_KEY",
            SimVendor::Neoagent => "NEOAGENT_API_KEY",
            SimVendor::Robofy => "ROBOFY_API_KEY",
            SimVendor::Chatbase => "CHATBASE_API_KEY",
        }
    }

    /// The fixed key this vendor accepts; anything else gets its 401.
    pub fn key(self) -> &'static str {
        match self {
            SimVendor::Chatzuri => "sk-sandbox-chatzuri-0123456789",
            SimVendor::Neoagent => "sk-sandbox-neoagent-0123456789",
            SimVendor::Robofy => "sk-sandbox-robofy-0123456789",
            SimVendor::Chatbase => "sk-sandbox-chatbase-0123456789",
        }
    }

    /// Where the vendor is mounted; its base URL is the server's address
    /// followed by this.
    fn prefix(self) -> &'static str {
        match self {
            SimVendor::Chatzuri => "/chatzuri/api/v1",
            SimVendor::Neoagent => "/neoagent",
            SimVendor::Robofy => "/robofy",
            SimVendor::Chatbase => "/chatbase/api",
        }
    }
}

impl std::fmt::Display for SimVendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The fixed key the simulated vendor named `vendor_name` accepts; `None`
/// for a vendor the simulator does not serve.
pub fn key(vendor_name: &str) -> Option<&'static str> {
    SimVendor::from_name(vendor_name).map(SimVendor::key)
}

/// What the server has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SandboxStats {
    /// Requests answered (errors included).
    pub requests: u64,
    /// The most requests that were being handled at one time.
    pub max_in_flight: usize,
    /// Requests being handled now.
    pub in_flight: usize,
}

/// A running sandbox. Dropping it stops the server abruptly; [`Sandbox::shutdown`]
/// stops it gracefully.
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sandbox {
    /// Binds `127.0.0.1:port` and spawns the server on the current tokio
    /// runtime; returns as soon as it accepts connections.
    pub async fn start(options: SandboxOptions) -> std::io::Result<Sandbox> {
        let listener =
            tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, options.port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(server::Shared::new(options));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, Arc::clone(&shared), async move {
            let _ = stopped.await;
        }));
        Ok(Sandbox {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn options(&self) -> &SandboxOptions {
        &self.shared.options
    }

    /// The base URL a client configures for the vendor named `vendor_name`
    /// (the client appends the vendor's documented paths); `None` for a
    /// vendor the simulator does not serve.
    pub fn base_url(&self, vendor_name: &str) -> Option<String> {
        SimVendor::from_name(vendor_name).map(|v| self.url(v))
    }

    /// The base URL of `vendor`.
    pub fn url(&self, vendor: SimVendor) -> String {
        format!("http://{}{}", self.addr, vendor.prefix())
    }

    /// A Chatzuri base URL whose `get-conversations` refuses GET with 405
    /// (and serves POST), for testing the client's fallback.
    pub fn chatzuri_post_only_base_url(&self) -> String {
        format!("http://{}/chatzuri-post-only/api/v1", self.addr)
    }

    pub fn stats(&self) -> SandboxStats {
        self.shared.stats()
    }

    /// Stops accepting, lets requests in progress finish (up to 2 s), then
    /// stops.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            // Idle keep-alive connections of a client that is still alive
            // would otherwise hold graceful shutdown open.
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The start-up text of `leads sandbox`: per vendor its base URL, key and
/// ids, and example command lines.
pub fn describe(sandbox: &Sandbox) -> String {
    use std::fmt::Write;
    let options = sandbox.options();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "leads sandbox: simulated vendors on http://{} (seed {}, {} leads and {} conversations per vendor)",
        sandbox.addr(),
        options.seed,
        options.leads,
        options.conversations
    );
    let mut faults = Vec::new();
    if !options.latency.is_zero() {
        faults.push(format!(
            "{} ms latency per request",
            options.latency.as_millis()
        ));
    }
    if let Some(n) = options.fail_every {
        faults.push(format!("a 503 every {n} requests"));
    }
    if let Some(n) = options.rate_limit {
        faults.push(format!("429 above {n} requests/s"));
    }
    if !faults.is_empty() {
        let _ = writeln!(text, "faults: {}", faults.join(", "));
    }
    for vendor in SimVendor::ALL {
        let _ = writeln!(text);
        let _ = writeln!(text, "  {}", vendor.display_name());
        let _ = writeln!(text, "    base URL  {}", sandbox.url(vendor));
        let _ = writeln!(
            text,
            "    key       {}  (set {})",
            vendor.key(),
            vendor.key_env()
        );
        match vendor {
            SimVendor::Chatzuri => {
                let _ = writeln!(text, "    agent     {DEMO_AGENT}");
            }
            SimVendor::Neoagent => {
                let _ = writeln!(text, "    serial    {DEMO_AGENT}");
            }
            SimVendor::Robofy => {
                let _ = writeln!(text, "    project   {DEMO_PROJECT}");
                let _ = writeln!(text, "    chatbot   {DEMO_AGENT}");
            }
            SimVendor::Chatbase => {
                let _ = writeln!(
                    text,
                    "    agent     {DEMO_AGENT}  ({CHATBASE_V1_ONLY_AGENT}: a plan without API v2)"
                );
            }
        }
    }
    let _ = writeln!(text);
    let _ = writeln!(text, "Try, from another terminal:");
    for vendor in SimVendor::ALL {
        let project = if vendor == SimVendor::Robofy {
            format!(" --project {DEMO_PROJECT}")
        } else {
            String::new()
        };
        let _ = writeln!(
            text,
            "  {}={} leads pull --vendor {}{project} --agent {DEMO_AGENT} --base-url {}",
            vendor.key_env(),
            vendor.key(),
            vendor.name(),
            sandbox.url(vendor)
        );
    }
    let _ = writeln!(
        text,
        "(`leads conversations` takes the same flags.) Stop with Ctrl-C."
    );
    text
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod chatbase_tests;
