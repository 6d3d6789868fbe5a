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

pub mod data;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::model::Vendor;

/// The agent (Chatzuri), serial number (NeoAgent) and chatbot (Robofy) id
/// that has data; any other id gets the vendor's 404.
pub const DEMO_AGENT: &str = "demo";
/// The Robofy project id that exists; another gets 404 `PROJECT_NOT_FOUND`.
pub const DEMO_PROJECT: &str = "1";

/// The fixed key each simulated vendor accepts; anything else gets that
/// vendor's 401.
pub fn key(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Chatbase => unreachable!("the sandbox does not simulate Chatbase yet"),
        Vendor::Chatzuri => "sk-sandbox-chatzuri-0123456789",
        Vendor::Neoagent => "sk-sandbox-neoagent-0123456789",
        Vendor::Robofy => "sk-sandbox-robofy-0123456789",
    }
}

/// How the sandbox behaves. Every vendor serves `leads` leads and
/// `conversations` conversations of its own, generated from `seed`.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// 0 picks a free port.
    pub port: u16,
    pub seed: u64,
    pub leads: usize,
    pub conversations: usize,
    /// Slept before every response.
    pub latency: Duration,
    /// Every Nth request (counted over all vendors, from 1) gets a 503.
    pub fail_every: Option<u64>,
    /// More than N requests in the current one-second window get 429 with
    /// `Retry-After: 1`.
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

    /// The base URL a client configures for `vendor`; the client appends the
    /// vendor's documented paths.
    pub fn base_url(&self, vendor: Vendor) -> String {
        let prefix = match vendor {
            Vendor::Chatbase => unreachable!("the sandbox does not simulate Chatbase yet"),
            Vendor::Chatzuri => "/chatzuri/api/v1",
            Vendor::Neoagent => "/neoagent",
            Vendor::Robofy => "/robofy",
        };
        format!("http://{}{prefix}", self.addr)
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
    for vendor in Vendor::ALL {
        let _ = writeln!(text);
        let _ = writeln!(text, "  {}", vendor.display_name());
        let _ = writeln!(text, "    base URL  {}", sandbox.base_url(vendor));
        let _ = writeln!(
            text,
            "    key       {}  (set {})",
            key(vendor),
            vendor.key_env()
        );
        match vendor {
            Vendor::Chatbase => unreachable!("the sandbox does not simulate Chatbase yet"),
            Vendor::Chatzuri => {
                let _ = writeln!(text, "    agent     {DEMO_AGENT}");
            }
            Vendor::Neoagent => {
                let _ = writeln!(text, "    serial    {DEMO_AGENT}");
            }
            Vendor::Robofy => {
                let _ = writeln!(text, "    project   {DEMO_PROJECT}");
                let _ = writeln!(text, "    chatbot   {DEMO_AGENT}");
            }
        }
    }
    let _ = writeln!(text);
    let _ = writeln!(text, "Try, from another terminal:");
    for vendor in Vendor::ALL {
        let project = if vendor == Vendor::Robofy {
            format!(" --project {DEMO_PROJECT}")
        } else {
            String::new()
        };
        let _ = writeln!(
            text,
            "  {}={} leads pull --vendor {}{project} --agent {DEMO_AGENT} --base-url {}",
            vendor.key_env(),
            key(vendor),
            vendor.as_str(),
            sandbox.base_url(vendor)
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
