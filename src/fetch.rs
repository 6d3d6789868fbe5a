//! The one place that talks HTTP: auth header, per-request timeout, pacing
//! (`--rate`), retries with exponential back-off and jitter that obey
//! `Retry-After`, the 64 MiB body cap, and turning statuses into typed errors
//! a person can act on. Vendor modules describe requests; this sends them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use tokio::sync::Mutex;
use url::Url;

use crate::error::{Error, ErrorKind, Result};
use crate::idle::Deferral;
use crate::model::Vendor;
use crate::pipe::PipeWriter;
use crate::secret::{self, ApiKey};
use crate::vendors::{AuthScheme, HttpMethod, RequestSpec, error_detail, excerpt};

/// A body above this is refused, whatever the server says it is.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// A `Retry-After` longer than this fails the run at once instead of hanging a cron job.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub retries: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// Exponential back-off with "equal jitter": a random delay between
    /// half and all of `base * 2^attempt`, capped, so retries of pages that
    /// failed together do not come back together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
        let ceiling = exponential.min(self.cap);
        ceiling.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

#[derive(Debug, Clone)]
pub struct FetchSettings {
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Requests per second, paced up front.
    pub rate: Option<f64>,
}

/// Counters shared by every request of a run, for the summary line.
#[derive(Debug, Default)]
pub struct FetchStats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    /// Retries that waited out a 429 (rate limited).
    pub rate_limit_waits: AtomicU64,
    /// The records the vendor says its listing holds (0: it does not say),
    /// for the progress indicator.
    pub expected: AtomicU64,
}

/// Spaces requests evenly at `--rate` per second across all tasks.
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    next_slot: Mutex<Instant>,
}

impl Pacer {
    async fn wait(&self) {
        let slot = {
            let mut next = self.next_slot.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot.checked_add(self.interval).unwrap_or(slot);
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

/// Sends the requests of one source (one vendor, one agent, one key).
#[derive(Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    /// The base URL, parsed once: a request's URL is this with its path
    /// set, so the host is not parsed again for every request (a whole
    /// URL's parse was ~7,700 instructions, most of them the host's).
    base_url: Url,
    /// Its path without the trailing slash, which each endpoint's path
    /// follows.
    base_path: String,
    authorization: HeaderValue,
    /// Kept only to scrub it from anything a vendor echoes back.
    key: ApiKey,
    vendor: Vendor,
    agent: String,
    settings: FetchSettings,
    pacer: Option<Pacer>,
    pub stats: Arc<FetchStats>,
    /// Set while the source waits for its turn in a multi-source run: each
    /// request, and each part of a body, waits for an idle thread.
    pub deferral: Arc<Deferral>,
}

/// What went wrong with one attempt, before deciding whether to retry.
/// What an error answer's headers add to its message, fit to print.
#[derive(Debug, Clone, Default)]
struct AboutAnswer {
    /// The vendor's `x-request-id`, for its support.
    request_id: Option<String>,
    /// Where a 3xx pointed.
    location: Option<String>,
}

enum Attempt {
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
        body: Bytes,
        about: AboutAnswer,
    },
    Transport(String),
    /// This machine ran out of something (file descriptors): not the
    /// network's fault, and retrying at once would not help.
    LocalResource(String),
    /// The server's certificate did not verify: retrying cannot help.
    Untrusted(String),
    TooLarge,
    /// The reader of a piped body went away.
    Unwanted,
}

/// The URL of a request: `base` (whose path without its trailing slash is
/// `base_path`) with the endpoint's path, then the query. `None` when the
/// path would not survive parsing unchanged: a URL parser resolves `.` and
/// `..` segments, so an id from the vendor's data spelled that way would
/// send the request, and the key, to another endpoint.
fn request_url(base: &Url, base_path: &str, spec: &RequestSpec) -> Option<Url> {
    let mut url = base.clone();
    url.set_path(&format!("{base_path}{}", spec.path));
    url.path()
        .ends_with(spec.path.as_str())
        .then(|| with_query(url, spec))
}

fn with_query(mut url: Url, spec: &RequestSpec) -> Url {
    if !spec.query.is_empty() {
        url.query_pairs_mut()
            .extend_pairs(spec.query.iter().map(|(k, v)| (*k, v.as_str())));
    }
    url
}

impl Fetcher {
    pub fn new(
        vendor: Vendor,
        agent: &str,
        base_url: &Url,
        key: &ApiKey,
        auth: AuthScheme,
        settings: FetchSettings,
        extra_roots: &[reqwest::Certificate],
    ) -> Result<Fetcher> {
        let value = match auth {
            AuthScheme::Bearer => format!("Bearer {}", key.expose()),
            AuthScheme::Raw => key.expose().to_owned(),
        };
        let mut authorization = HeaderValue::from_str(&value).map_err(|_| {
            Error::usage(format!(
                "the {} key contains characters that cannot be sent in a header",
                vendor.display_name()
            ))
        })?;
        authorization.set_sensitive(true);
        let mut builder = reqwest::Client::builder();
        if crate::config::is_loopback(base_url) {
            // A proxy would see a loopback request (plain http:// is allowed
            // only there) with the key in clear text, and could not reach
            // this machine's loopback anyway.
            builder = builder.no_proxy();
        }
        if base_url.scheme() == "https" {
            builder = builder
                .tls_built_in_native_certs(true)
                .tls_built_in_webpki_certs(!system_store_has_roots());
            for root in extra_roots {
                builder = builder.add_root_certificate(root.clone());
            }
        } else {
            // Plain http:// to loopback never does TLS (redirects are not
            // followed): reading the system store would only cost time.
            builder = builder.tls_built_in_root_certs(false);
        }
        let client = builder
            .user_agent(concat!("leads/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            // Following a redirect to another host would drop (or, worse,
            // resend) the key; the vendors document none, so report it.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| Error::internal(format!("cannot build the HTTP client: {e}")))?;
        let pacer = settings.rate.filter(|r| *r > 0.0).map(|rate| Pacer {
            interval: Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::MAX),
            next_slot: Mutex::new(Instant::now()),
        });
        Ok(Fetcher {
            client,
            base_url: base_url.clone(),
            base_path: base_url.path().trim_end_matches('/').to_owned(),
            authorization,
            key: key.clone(),
            vendor,
            agent: agent.to_owned(),
            settings,
            pacer,
            stats: Arc::new(FetchStats::default()),
            deferral: Arc::default(),
        })
    }

    pub fn vendor(&self) -> Vendor {
        self.vendor
    }

    /// Text a vendor sent (or that holds something it sent), fit to print:
    /// the key removed after decoding, control and bidi characters escaped.
    pub fn printable(&self, text: &str) -> String {
        secret::printable(text, &self.key)
    }

    /// A short excerpt of a vendor body. The head of the body is made
    /// printable before it is cut, so a key straddling the cut, or
    /// spelled out in escapes longer than itself, leaves no part behind.
    pub fn excerpt(&self, body: &[u8]) -> String {
        let head = body.len().min(8 * 1024 + 12 * self.key.expose().len());
        excerpt(&self.printable(&String::from_utf8_lossy(&body[..head])))
    }

    pub fn agent(&self) -> &str {
        &self.agent
    }

    fn url(&self, spec: &RequestSpec) -> Result<Url> {
        request_url(&self.base_url, &self.base_path, spec).ok_or_else(|| {
            Error::vendor(format!(
                "{} sent an id that would change the endpoint of {} (path {}); refused",
                self.vendor.display_name(),
                spec.endpoint,
                crate::vendors::excerpt(&spec.path)
            ))
            .with_hint("nothing was sent; report it to the vendor")
        })
    }

    /// Sends `spec`, retrying what is worth retrying; the body of a 2xx
    /// answer goes into `pipe` as it arrives, so the caller can parse it
    /// while it is read. `what` names the page for messages ("page 3").
    /// An attempt that fails mid-body is sent again after a restart marker. `--timeout` is then
    /// the longest wait for the server (for the answer to start, or for the
    /// next part of the body), not counting the time the pipe is full.
    pub async fn fetch_into(
        &self,
        spec: &RequestSpec,
        what: &str,
        pipe: &mut PipeWriter,
    ) -> Result<()> {
        let url = self.url(spec)?;
        let retry = &self.settings.retry;
        let mut attempt = 0u32;
        loop {
            self.deferral.wait().await;
            if let Some(pacer) = &self.pacer {
                pacer.wait().await;
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            // A new attempt: what an earlier one delivered is void.
            pipe.restart();
            let started = Instant::now();
            let outcome = self.attempt(spec, &url, pipe).await;
            let elapsed = started.elapsed();
            let (delay, failure) = match outcome {
                Ok((status, length)) => {
                    tracing::info!(target: "leads::http", "{} {} ({what}) -> {} in {} ms, {} bytes", method_name(spec), url, status.as_u16(), elapsed.as_millis(), length);
                    return Ok(());
                }
                Err(Attempt::Status {
                    status,
                    retry_after,
                    body,
                    about,
                }) => {
                    tracing::info!(target: "leads::http", "{} {} ({what}) -> {} in {} ms", method_name(spec), url, status.as_u16(), elapsed.as_millis());
                    if !is_retryable_status(status) {
                        return Err(self.status_error(spec, what, status, &body, &about, attempt));
                    }
                    if let Some(wait) = retry_after
                        && wait > MAX_RETRY_AFTER
                    {
                        return Err(self
                            .status_error(spec, what, status, &body, &about, attempt)
                            .with_hint(retry_later_hint(wait, SystemTime::now())));
                    }
                    let delay = retry_after.unwrap_or_else(|| retry.backoff(attempt));
                    (delay, FailureSoFar::Status(status, body, about))
                }
                Err(Attempt::Transport(reason)) => {
                    tracing::info!(target: "leads::http", "{} {} -> {} after {:?}", method_name(spec), url, reason, elapsed);
                    (retry.backoff(attempt), FailureSoFar::Transport(reason))
                }
                Err(Attempt::LocalResource(reason)) => {
                    return Err(Error::local_file(format!(
                        "cannot open a connection to {} for {} {what} of agent {}: {reason}",
                        self.vendor.display_name(),
                        spec.endpoint,
                        self.agent
                    ))
                    .with_hint("this machine is out of file descriptors: lower --concurrency, pull fewer sources at once, or raise the limit (ulimit -n)"));
                }
                Err(Attempt::Untrusted(reason)) => {
                    tracing::info!(target: "leads::http", "{} {} -> {} after {:?}", method_name(spec), url, reason, elapsed);
                    return Err(self.network_error(spec, what, &url, &reason, attempt).with_hint(
                        "the server's certificate is not signed by a trusted CA: for an internal CA or a TLS-inspecting proxy, pass --ca-cert PATH (PEM) or set SSL_CERT_FILE / SSL_CERT_DIR",
                    ));
                }
                Err(Attempt::TooLarge) => {
                    return Err(Error::vendor(format!(
                        "{} sent a body larger than {} MiB for {} {} of agent {}; refused",
                        self.vendor.display_name(),
                        MAX_BODY_BYTES / (1024 * 1024),
                        spec.endpoint,
                        what,
                        self.agent
                    ))
                    .with_hint(self.vendor.spec().too_large_hint));
                }
                // The walk stopped wanting this body (it was dropped, or
                // reached --limit): nothing to report.
                Err(Attempt::Unwanted) => return Ok(()),
            };
            if attempt >= retry.retries {
                return Err(match failure {
                    FailureSoFar::Status(status, body, about) => {
                        self.status_error(spec, what, status, &body, &about, attempt)
                    }
                    FailureSoFar::Transport(reason) => {
                        self.network_error(spec, what, &url, &reason, attempt)
                    }
                });
            }
            attempt += 1;
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            if matches!(
                failure,
                FailureSoFar::Status(StatusCode::TOO_MANY_REQUESTS, ..)
            ) {
                self.stats.rate_limit_waits.fetch_add(1, Ordering::Relaxed);
            }
            tracing::warn!(target: "leads::http", "{} {} {}: {}; retry {}/{} in {:.1}s", self.vendor.display_name(), spec.endpoint, what, failure.describe(), attempt, retry.retries, delay.as_secs_f64());
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt: a 2xx body goes to `pipe` (its length is returned),
    /// any other answer's body is kept for the error.
    async fn attempt(
        &self,
        spec: &RequestSpec,
        url: &Url,
        pipe: &mut PipeWriter,
    ) -> std::result::Result<(StatusCode, usize), Attempt> {
        let method = match spec.method {
            HttpMethod::Get => Method::GET,
            HttpMethod::Post => Method::POST,
        };
        let mut request = self
            .client
            .request(method, url.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json");
        if let Some(body) = &spec.json_body {
            request = request.body(serde_json::to_vec(body).unwrap_or_default());
        }
        let transport = |e: reqwest::Error| {
            if is_local_resource_exhaustion(&e) {
                return Attempt::LocalResource(describe_reqwest(&e));
            }
            match untrusted_certificate(&e) {
                Some(reason) => Attempt::Untrusted(reason),
                None => Attempt::Transport(describe_reqwest(&e)),
            }
        };
        let mut response = self.waited(request.send()).await?.map_err(transport)?;
        let status = response.status();
        if tracing::enabled!(target: "leads::http", tracing::Level::DEBUG) {
            self.log_headers(spec, &response);
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(Attempt::TooLarge);
        }
        let headers = response.headers();
        // `Retry-After` first; without it, the reset time of the window a
        // rate limiter reports (epoch seconds, or milliseconds when the
        // number is too large to be seconds).
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(parse_retry_after)
            .or_else(|| {
                (status == StatusCode::TOO_MANY_REQUESTS)
                    .then(|| headers.get("x-ratelimit-reset"))
                    .flatten()
                    .and_then(|v| parse_rate_limit_reset(v, SystemTime::now()))
            });
        let printable_header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| excerpt(&self.printable(v.trim())))
                .filter(|v| !v.is_empty())
        };
        if status.is_success() {
            if let Some(length) = response.content_length() {
                pipe.announce(length);
            }
            let mut length = 0usize;
            while let Some(chunk) = {
                self.deferral.wait().await;
                self.next_chunk(&mut response).await?
            } {
                length += chunk.len();
                if length > MAX_BODY_BYTES {
                    return Err(Attempt::TooLarge);
                }
                if !pipe.send(chunk).await {
                    return Err(Attempt::Unwanted);
                }
            }
            return Ok((status, length));
        }
        let about = AboutAnswer {
            request_id: printable_header("x-request-id"),
            location: status
                .is_redirection()
                .then(|| printable_header("location"))
                .flatten(),
        };
        let mut body = BytesMut::new();
        while let Some(chunk) = self.next_chunk(&mut response).await? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(Attempt::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Err(Attempt::Status {
            status,
            retry_after,
            body: body.freeze(),
            about,
        })
    }

    async fn next_chunk(
        &self,
        response: &mut reqwest::Response,
    ) -> std::result::Result<Option<Bytes>, Attempt> {
        self.waited(response.chunk())
            .await?
            .map_err(|e| Attempt::Transport(describe_reqwest(&e)))
    }

    /// One wait for the server, at most `--timeout`.
    async fn waited<T>(&self, future: impl Future<Output = T>) -> std::result::Result<T, Attempt> {
        tokio::time::timeout(self.settings.timeout, future)
            .await
            .map_err(|_| Attempt::Transport("timed out".to_owned()))
    }

    /// -vv: what was sent and what came back, headers included; the key is
    /// never shown, and every vendor value goes through `printable`.
    fn log_headers(&self, spec: &RequestSpec, response: &reqwest::Response) {
        let sent = [
            ("authorization", "[not shown]"),
            ("accept", "application/json"),
            ("content-type", "application/json"),
        ]
        .map(|(k, v)| format!("{k}: {v}"))
        .join("; ");
        tracing::debug!(target: "leads::http", "{} {} sent headers: {sent}", method_name(spec), spec.endpoint);
        let received: Vec<String> = response
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes());
                format!("{name}: {}", excerpt(&self.printable(&value)))
            })
            .collect();
        tracing::debug!(target: "leads::http", "{} {} -> {} headers: {}", method_name(spec), spec.endpoint, response.status().as_u16(), received.join("; "));
    }

    fn status_error(
        &self,
        spec: &RequestSpec,
        what: &str,
        status: StatusCode,
        body: &[u8],
        about: &AboutAnswer,
        retries: u32,
    ) -> Error {
        let vendor = self.vendor.display_name();
        let agent = &self.agent;
        let code = status.as_u16();
        let detail = match error_detail(body) {
            Some(detail) => excerpt(&self.printable(&detail)),
            None => self.excerpt(body),
        };
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        };
        let after = if retries > 0 {
            format!(" after {} attempts", retries + 1)
        } else {
            String::new()
        };
        let (kind, hint) = match code {
            401 | 403 => (
                ErrorKind::Auth,
                format!("check the key in {} (or --api-key-file) and that it may read agent {agent}", self.vendor.key_env()),
            ),
            404 => (ErrorKind::NotFound, self.vendor.spec().not_found_hint.to_owned()),
            429 => (ErrorKind::Vendor, "the vendor is rate-limiting this key: lower --concurrency or set --rate, then run again".to_owned()),
            400 => (ErrorKind::Vendor, "the vendor rejected the request as invalid; check --since/--until and the agent id".to_owned()),
            _ => (ErrorKind::Vendor, "the vendor is failing; run again later (-v shows each request)".to_owned()),
        };
        let vendor_code = crate::vendors::error_code(body);
        // A vendor that names what it did not find (Robofy's
        // PROJECT_NOT_FOUND, SESSION_NOT_FOUND) is blamed for that thing.
        let missing = vendor_code
            .as_deref()
            .and_then(|c| c.strip_suffix("_NOT_FOUND"))
            .filter(|thing| !matches!(*thing, "AGENT" | "CHATBOT" | "RESOURCE"))
            .map(str::to_lowercase);
        let (kind, hint) = match (code, &about.location) {
            (300..=399, Some(_)) => (
                ErrorKind::Vendor,
                format!(
                    "use that as --base-url (or {}); redirects are not followed, so the key is never sent elsewhere",
                    self.vendor.base_url_env()
                ),
            ),
            _ => (kind, hint),
        };
        let subject = match (code, &about.location) {
            (300..=399, Some(location)) => {
                let base = location
                    .strip_suffix(spec.path.as_str())
                    .unwrap_or(location);
                format!(
                    "{vendor} answered {code} to {} {what}: the base URL redirects to {base}",
                    spec.endpoint
                )
            }
            (404, _) if missing.is_some() => format!(
                "{vendor} does not know the {} asked for in {} {what} of agent {agent}",
                missing.as_deref().unwrap_or_default(),
                spec.endpoint
            ),
            (401 | 403, _) => format!("{vendor} refused the key for agent {agent}"),
            (404, _) => format!("{vendor} does not know agent {agent}"),
            _ => format!(
                "{vendor} failed on {} {what} for agent {agent}",
                spec.endpoint
            ),
        };
        let hint = vendor_code
            .as_deref()
            .and_then(|c| (self.vendor.spec().code_hint)(c))
            .map_or(hint, str::to_owned);
        let request_id = about
            .request_id
            .as_ref()
            .map(|id| format!("; request id {id}"))
            .unwrap_or_default();
        let mut error = Error::new(
            kind,
            format!("{subject} (HTTP {code}{after}{detail}{request_id})"),
        )
        .with_hint(hint)
        .with_status(code);
        error.vendor_code = vendor_code;
        error
    }

    fn network_error(
        &self,
        spec: &RequestSpec,
        what: &str,
        url: &Url,
        reason: &str,
        retries: u32,
    ) -> Error {
        let host = url.host_str().unwrap_or("?");
        let reason = self.printable(reason);
        Error::new(
            ErrorKind::Network,
            format!(
                "cannot reach {} at {host} for {} {what} of agent {} after {}: {reason}",
                self.vendor.display_name(),
                spec.endpoint,
                self.agent,
                crate::words::counted(u64::from(retries) + 1, "attempt", "attempts")
            ),
        )
        .with_hint(format!(
            "check the network, a proxy (HTTPS_PROXY), --timeout, or --base-url / {}",
            self.vendor.base_url_env()
        ))
    }
}

enum FailureSoFar {
    Status(StatusCode, Bytes, AboutAnswer),
    Transport(String),
}

impl FailureSoFar {
    fn describe(&self) -> String {
        match self {
            FailureSoFar::Status(status, ..) => format!("HTTP {}", status.as_u16()),
            FailureSoFar::Transport(reason) => reason.clone(),
        }
    }
}

fn method_name(spec: &RequestSpec) -> &'static str {
    match spec.method {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
    }
}

pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// `Retry-After` as delay-seconds or as an HTTP date. A number of seconds
/// too large for any clock is still a (very long) wait, not no header.
pub fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(text.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// `X-RateLimit-Reset` as the wait until that instant: a Unix time in
/// seconds, or in milliseconds when it is at least 1e11 (1e11 seconds is
/// the year 5138; 1e11 milliseconds is 1973).
pub fn parse_rate_limit_reset(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    let number: f64 = text
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    let seconds = if number >= 1e11 {
        number / 1000.0
    } else {
        number
    };
    let at = SystemTime::UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(seconds).ok()?)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// "Too many open files" (EMFILE, ENFILE) anywhere in the error's chain.
fn is_local_resource_exhaustion(error: &reqwest::Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>()
            && matches!(io.raw_os_error(), Some(EMFILE | ENFILE))
        {
            return true;
        }
        source = inner.source();
    }
    false
}

/// The hint for a `Retry-After` too long to wait for: when to run again (an
/// HTTP date, in UTC), or that the vendor named no time a calendar holds.
fn retry_later_hint(wait: Duration, now: SystemTime) -> String {
    // httpdate formats only up to the end of the year 9999 (and panics after).
    const LAST_HTTP_DATE: Duration = Duration::from_secs(253_402_300_799);
    let when = now.checked_add(wait).filter(|when| {
        when.duration_since(SystemTime::UNIX_EPOCH)
            .is_ok_and(|d| d <= LAST_HTTP_DATE)
    });
    match when {
        Some(when) => format!(
            "the vendor asked to retry after {}s (at {}); run again then",
            wait.as_secs(),
            httpdate::fmt_http_date(when)
        ),
        None => format!(
            "the vendor asked to retry after {}s, which is no time on any calendar; run again later, and if it persists, report it to the vendor",
            wait.as_secs()
        ),
    }
}

/// Whether the system trust store (or `SSL_CERT_FILE` / `SSL_CERT_DIR`,
/// which replace it) holds any certificate. Only if it is empty are the
/// bundled roots used, so a machine whose administrator removed a CA does not
/// trust it anyway; a container without a store still works.
fn system_store_has_roots() -> bool {
    static HAS_ROOTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS_ROOTS.get_or_init(|| !rustls_native_certs::load_native_certs().certs.is_empty())
}

/// The reason, when a request failed because the server's certificate did
/// not verify (not signed by a trusted CA, expired, for another name).
fn untrusted_certificate(error: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(inner) = source {
        // hyper-rustls hands rustls errors up inside io::Errors (nested),
        // whose `source` skips the wrapped error itself.
        let mut tls = inner.downcast_ref::<rustls::Error>();
        let mut io = inner.downcast_ref::<std::io::Error>();
        while let Some(wrapped) = io.and_then(|e| e.get_ref()) {
            tls = tls.or_else(|| wrapped.downcast_ref::<rustls::Error>());
            io = wrapped.downcast_ref::<std::io::Error>();
        }
        if let Some(rustls::Error::InvalidCertificate(reason)) = tls {
            let reason = match reason {
                rustls::CertificateError::UnknownIssuer => "issuer unknown".to_owned(),
                rustls::CertificateError::Expired
                | rustls::CertificateError::ExpiredContext { .. } => "expired".to_owned(),
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. } => {
                    "issued for another host name".to_owned()
                }
                other => format!("{other:?}"),
            };
            return Some(format!("TLS certificate not trusted ({reason})"));
        }
        source = inner.source();
    }
    None
}

/// A one-line reason for a transport failure, without the URL (the caller
/// adds the host) and never with headers.
fn describe_reqwest(error: &reqwest::Error) -> String {
    let mut reason = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else if error.is_body() || error.is_decode() {
        "the connection broke while reading the body".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    let mut last = None;
    while let Some(inner) = source {
        last = Some(inner.to_string());
        source = inner.source();
    }
    if let Some(last) = last {
        reason.push_str(": ");
        reason.push_str(&last);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Setting the path of the parsed base gives the URL that parsing the
    /// base and path joined gave (the way before, which parsed the host
    /// again for every request), and refuses the same paths.
    #[test]
    fn request_urls_are_those_of_parsing_the_joined_url() {
        let joined = |base: &Url, spec: &RequestSpec| {
            let text = format!("{}{}", base.as_str().trim_end_matches('/'), spec.path);
            let url = Url::parse(&text).ok()?;
            url.path()
                .ends_with(spec.path.as_str())
                .then(|| with_query(url, spec))
        };
        let bases = [
            "http://127.0.0.1:9",
            "http://127.0.0.1:18500/chatzuri/api/v1",
            "https://h.example/api/v1/",
            "http://[::1]:80/",
            "https://h.example/a%20b/c",
        ];
        let paths = [
            "/get-leads",
            "/agents/a%20b/leads",
            "/x/../y",
            "/x/%2e%2E/y",
            "/x/./y",
            "/x/.",
            "/a\\b",
            "/%41/\u{fc}/a%2Fb",
            "/sp ace/tab\t",
            "/q%3Fx%23y",
            "//double",
        ];
        let mut refused = 0;
        for base in bases {
            let base = Url::parse(base).unwrap();
            let base_path = base.path().trim_end_matches('/').to_owned();
            for path in paths {
                for query in [
                    vec![],
                    vec![("page", "2".to_owned()), ("q", "a b&c".to_owned())],
                ] {
                    let spec = RequestSpec {
                        query,
                        ..RequestSpec::get("test", path.to_owned())
                    };
                    let built = request_url(&base, &base_path, &spec);
                    assert_eq!(built, joined(&base, &spec), "{base} + {path}");
                    refused += usize::from(built.is_none());
                }
            }
        }
        assert!(refused >= 4 * 5 * 2, "only {refused} refused");
    }

    #[test]
    fn retry_after_in_both_forms() {
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("7")),
            Some(Duration::from_secs(7))
        );
        let later = SystemTime::now() + Duration::from_secs(30);
        let date = HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap();
        let parsed = parse_retry_after(&date).unwrap();
        assert!(
            parsed <= Duration::from_secs(30) && parsed >= Duration::from_secs(28),
            "{parsed:?}"
        );
        let past = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let policy = RetryPolicy {
            retries: 4,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        };
        for attempt in 0..10 {
            let delay = policy.backoff(attempt);
            let ceiling =
                (Duration::from_millis(500) * 2u32.pow(attempt)).min(Duration::from_secs(30));
            assert!(
                delay <= ceiling && delay >= ceiling / 2,
                "attempt {attempt}: {delay:?}"
            );
        }
    }

    #[test]
    fn retry_after_beyond_any_calendar_does_not_overflow() {
        for secs in [u64::MAX, 300_000_000_000, 253_402_300_799] {
            let hint = retry_later_hint(Duration::from_secs(secs), SystemTime::now());
            assert!(hint.contains("no time on any calendar"), "{secs}: {hint}");
        }
        let hint = retry_later_hint(Duration::from_secs(3600), SystemTime::now());
        assert!(hint.contains("GMT"), "{hint}");
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("99999999999999999999999")),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(StatusCode::from_u16(code).unwrap()));
        }
        for code in [400, 401, 403, 404, 405, 501] {
            assert!(!is_retryable_status(StatusCode::from_u16(code).unwrap()));
        }
    }
}
