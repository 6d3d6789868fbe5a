//! The simulator's options; also part of the interface a build without the
//! `sandbox` feature keeps (`src/sandbox_absent.rs`).

use std::time::Duration;

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
    /// Log each request served (method, path and query, status, time) at
    /// info level: `leads sandbox -v`.
    pub log_requests: bool,
    /// Every conversation message's text repeated to about N bytes (for
    /// memory tests with big pages); `None`: the ordinary short lines.
    pub message_bytes: Option<usize>,
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
            log_requests: false,
            message_bytes: None,
        }
    }
}
