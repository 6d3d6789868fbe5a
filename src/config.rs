//! Turns the parsed command line into settled settings before any I/O:
//! dates parsed, key found, base URL checked, format decided, every filter
//! checked against what the vendor can honour. Everything that can be wrong
//! with the input fails here, with exit 2 and a message that says what to do.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use url::{Host, Url};

use crate::cli::{FetchArgs, FilterArgs, OutputArgs, SourceArgs};
use crate::error::{Error, Result};
use crate::export::{Filters, Job};
use crate::fetch::{FetchSettings, RetryPolicy};
pub use crate::keys::{
    Environment, MAX_KEY_FILE_BYTES, ProcessEnvironment, read_key_file, shown_path,
};
use crate::model::{Resource, Vendor};
use crate::output::Destination;
pub use crate::output::OutputSettings;
use crate::sandbox;
use crate::secret::{ApiKey, looks_like_key};
use crate::time::{Bound, parse_when};
use crate::vendors::plan::SessionFilter;

/// Where a source's requests go.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// The built-in simulator, started when the run starts.
    Sandbox,
    Remote {
        base_url: Url,
        key: ApiKey,
        /// `--ca-cert` / `ca_cert`: trusted besides the system store.
        ca_certs: Vec<reqwest::Certificate>,
    },
}

/// One source of one run, ready to fetch.
#[derive(Debug, Clone)]
pub struct Source {
    /// The config-file name, for named sources.
    pub name: Option<String>,
    pub job: Job,
    pub endpoint: Endpoint,
}

#[derive(Debug, Clone)]
pub struct StateSettings {
    pub path: PathBuf,
    pub lock_timeout: Duration,
}

/// Everything a `pull` or `conversations` run needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub resource: Resource,
    pub sources: Vec<Source>,
    pub output: OutputSettings,
    pub fetch: FetchSettings,
    pub state: Option<StateSettings>,
    pub keep_going: bool,
}

/// The parts of `pull`/`conversations` arguments that `resolve` reads.
pub struct ExportArgs<'a> {
    pub resource: Resource,
    pub source: &'a SourceArgs,
    pub filters: &'a FilterArgs,
    pub channels: &'a [String],
    pub output: &'a OutputArgs,
    pub fetch: &'a FetchArgs,
}

pub fn resolve(
    args: &ExportArgs<'_>,
    env: &dyn Environment,
    now: DateTime<Utc>,
) -> Result<Settings> {
    let source = args.source;
    if source.sandbox && !sandbox::AVAILABLE {
        return Err(Error::usage("this build has no sandbox"));
    }
    let filters = resolve_filters(args, now)?;
    let output = resolve_output(args.output, args.filters, args.resource, env)?;
    let fetch = resolve_fetch(args.fetch)?;
    let incremental = match (&args.filters.state, args.filters.incremental) {
        (Some(_), _) => Some("--state"),
        (None, true) => Some("--incremental"),
        (None, false) => None,
    };
    if let Some(incremental) = incremental {
        // The bookmark covers the whole agent: a run that writes only part of
        // it would move the bookmark past records it never wrote.
        let partial = [
            (filters.session.is_some(), "--session"),
            (!filters.channels.is_empty(), "--source"),
            (filters.limit.is_some(), "--limit"),
        ];
        if let Some((_, flag)) = partial.iter().find(|(set, _)| *set) {
            return Err(Error::usage(format!(
                "{incremental} cannot be combined with {flag}: the bookmark would move past records this run did not write"
            ))
            .with_hint("use it for whole-agent incremental runs; filter the output instead (e.g. with jq)"));
        }
    }
    let state = match &args.filters.state {
        Some(path) => {
            // Writing the export over the state (or its lock) would lose
            // one or the other; every spelling of the same file counts.
            if let Some(out) = output.file()
                && let Some(clash) = state_clash(out, path)
            {
                return Err(Error::usage(format!(
                    "-o {} is the same file as {clash}",
                    out.display()
                ))
                .with_hint("write the export and keep the state in different files"));
            }
            Some(StateSettings {
                path: path.clone(),
                lock_timeout: seconds(
                    "--lock-timeout",
                    args.filters.lock_timeout.unwrap_or(0.0),
                    true,
                )?,
            })
        }
        None if args.filters.lock_timeout.is_some()
            && !matches!(output.destination, Destination::Database(_)) =>
        {
            return Err(Error::usage(
                "--lock-timeout does nothing without --state or a database output: nothing else is locked",
            )
            .with_hint("add --state PATH, or drop --lock-timeout"));
        }
        None => None,
    };

    let sources = if !source.names.is_empty() || source.all {
        if source.vendor.is_some() || source.agent.is_some() || source.project.is_some() {
            return Err(Error::usage(
                "named sources cannot be combined with --vendor, --agent or --project",
            )
            .with_hint("either name sources from the config file, or give --vendor and --agent"));
        }
        if source.sandbox {
            return Err(Error::usage(
                "--sandbox works with --vendor and --agent, not with named sources",
            ));
        }
        // These would apply to every named source at once, and were
        // silently ignored: each source sets its own in the file.
        let per_source = [
            (source.base_url.is_some(), "--base-url", "base_url"),
            (
                source.api_key_file.is_some(),
                "--api-key-file",
                "api_key_file",
            ),
        ];
        if let Some((_, flag, field)) = per_source.iter().find(|(set, _, _)| *set) {
            return Err(
                Error::usage(format!("{flag} cannot be combined with named sources")).with_hint(
                    format!("set {field} for each source in the config file instead"),
                ),
            );
        }
        let defined = crate::sources::load(source.config.as_deref(), env)?;
        let chosen = defined.select(&source.names, source.all)?;
        let mut resolved = Vec::with_capacity(chosen.len());
        for entry in chosen {
            let job = build_job(
                args,
                entry.vendor,
                &entry.agent,
                entry.project.as_deref(),
                false,
                filters.clone(),
                now,
            )
            .map_err(|e| prefix_source(e, &entry.name))?;
            let base_url =
                check_base_url(&base_url_for(entry.vendor, entry.base_url.as_deref(), env))
                    .map_err(|e| prefix_source(e, &entry.name))?;
            let key = entry.key(env)?;
            let ca_certs = match &entry.ca_cert {
                Some(path) => read_ca_cert(path).map_err(|e| prefix_source(e, &entry.name))?,
                None => Vec::new(),
            };
            resolved.push(Source {
                name: Some(entry.name.clone()),
                job,
                endpoint: Endpoint::Remote {
                    base_url,
                    key,
                    ca_certs,
                },
            });
        }
        resolved
    } else {
        let vendor = source.vendor.ok_or_else(|| {
            Error::usage("which vendor? --vendor is required").with_hint(format!(
                "--vendor {} --agent ID, or name sources from the config file",
                Vendor::all()
                    .iter()
                    .map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join("|")
            ))
        })?;
        let agent = source
            .agent
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                Error::usage("which agent? --agent is required").with_hint(vendor.spec().agent_hint)
            })?;
        let job = build_job(
            args,
            vendor,
            agent,
            source.project.as_deref(),
            source.sandbox,
            filters,
            now,
        )?;
        let endpoint = if source.sandbox {
            if source.base_url.is_some()
                || source.api_key_file.is_some()
                || source.ca_cert.is_some()
            {
                return Err(Error::usage(
                    "--sandbox runs against the built-in simulator: drop --base-url, --api-key-file and --ca-cert",
                ));
            }
            Endpoint::Sandbox
        } else {
            let base_url = check_base_url(&base_url_for(vendor, source.base_url.as_deref(), env))?;
            let key = read_key(vendor, source.api_key_file.as_deref(), env)?;
            let ca_certs = match &source.ca_cert {
                Some(path) => read_ca_cert(path)?,
                None => Vec::new(),
            };
            Endpoint::Remote {
                base_url,
                key,
                ca_certs,
            }
        };
        vec![Source {
            name: None,
            job,
            endpoint,
        }]
    };

    Ok(Settings {
        resource: args.resource,
        sources,
        output,
        fetch,
        state,
        keep_going: source.keep_going,
    })
}

/// The one rule for where a source's requests go, single or named alike:
/// the explicit URL, else the vendor's `*_BASE_URL` variable, else the
/// vendor's default.
fn base_url_for(vendor: Vendor, explicit: Option<&str>, env: &dyn Environment) -> String {
    match explicit {
        Some(url) => url.to_owned(),
        None => env
            .var(vendor.base_url_env())
            .unwrap_or_else(|| vendor.default_base_url().to_owned()),
    }
}

/// Whether `out` names the state file at `state` or its lock file, by
/// real path (symlinks and `..` resolved) or, when both exist, by identity
/// (hard links). Describes the clash.
fn state_clash(out: &Path, state: &Path) -> Option<String> {
    let real_out = crate::state::resolve_path(out).ok();
    let real_state = crate::state::resolve_path(state).ok();
    let lock = real_state
        .as_deref()
        .map(crate::state::lock_path)
        .unwrap_or_else(|| crate::state::lock_path(state));
    let same = |a: &Path, real_a: Option<&Path>, b: &Path| {
        real_a.is_some_and(|real| real == b) || same_existing_file(a, b)
    };
    let state_real = real_state.as_deref().unwrap_or(state);
    if same(out, real_out.as_deref(), state_real) || same_existing_file(out, state) {
        return Some(format!("--state {}", state.display()));
    }
    if same(out, real_out.as_deref(), &lock) {
        return Some(format!("the state's lock file {}", lock.display()));
    }
    None
}

fn same_existing_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

fn prefix_source(mut error: Error, name: &str) -> Error {
    error.message = format!("source {name}: {}", error.message);
    error
}

fn resolve_filters(args: &ExportArgs<'_>, now: DateTime<Utc>) -> Result<Filters> {
    let since = args
        .filters
        .since
        .as_deref()
        .map(|w| parse_when(w, Bound::Since, now))
        .transpose()?;
    let until = args
        .filters
        .until
        .as_deref()
        .map(|w| parse_when(w, Bound::Until, now))
        .transpose()?;
    if let (Some(since), Some(until)) = (since, until)
        && since > until
    {
        return Err(Error::usage(format!(
            "--since ({}) is after --until ({})",
            crate::model::format_timestamp(&since),
            crate::model::format_timestamp(&until)
        )));
    }
    let session = args
        .filters
        .session
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Ok(Filters {
        since,
        until,
        session,
        channels: args.channels.to_vec(),
        limit: args.filters.limit,
    })
}

/// The per-vendor checks, read from the vendor's description: what it can
/// honour, its projects, its page size.
fn build_job(
    args: &ExportArgs<'_>,
    vendor: Vendor,
    agent: &str,
    project: Option<&str>,
    sandbox: bool,
    mut filters: Filters,
    now: DateTime<Utc>,
) -> Result<Job> {
    let resource = args.resource;
    let spec = vendor.spec();
    let info = spec.resource(resource);
    let name = vendor.display_name();
    let mut agent = agent.trim().to_owned();
    let mut project = project
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned);

    match spec.projects {
        Some(projects) => {
            if let Some((in_agent, chatbot)) = agent.split_once('/') {
                let (in_agent, chatbot) = (in_agent.trim().to_owned(), chatbot.trim().to_owned());
                if in_agent.is_empty() || chatbot.is_empty() || chatbot.contains('/') {
                    return Err(Error::usage(format!(
                        "--agent {agent}: expected PROJECT/AGENT"
                    )));
                }
                if project.as_ref().is_some_and(|p| *p != in_agent) {
                    return Err(Error::usage(format!(
                        "--project {} disagrees with the project in --agent {agent}",
                        project.unwrap_or_default()
                    )));
                }
                project = Some(in_agent);
                agent = chatbot;
            }
            if resource == projects.required_for && project.is_none() {
                if sandbox {
                    project = Some(sandbox::DEMO_PROJECT.to_owned());
                } else {
                    return Err(Error::usage(format!(
                        "{name} {} need a project id",
                        resource.as_str()
                    ))
                    .with_hint(projects.hint));
                }
            }
        }
        None if project.is_some() => {
            let with_projects: Vec<&str> = Vendor::all()
                .iter()
                .filter(|v| v.spec().projects.is_some())
                .map(|v| v.display_name())
                .collect();
            return Err(Error::usage(format!(
                "--project is only for {}; {name} has no projects",
                with_projects.join(", ")
            )));
        }
        None => {}
    }

    // `.` and `..` would be read as path navigation, sending the request
    // (and the key) to another endpoint.
    for (flag, value) in [
        ("--agent", Some(agent.as_str())),
        ("--project", project.as_deref()),
        ("--session", filters.session.as_deref()),
    ] {
        if let Some(value) = value
            && crate::vendors::is_dot_segment(value)
        {
            return Err(Error::usage(format!(
                "{flag} {value:?} is not an id: it would be read as a path"
            )));
        }
    }

    if let Some(session) = filters.session.as_deref() {
        match info.session {
            SessionFilter::Unsupported => {
                return Err(Error::usage(format!(
                    "{name} cannot filter {} by session: --session is not supported for {}",
                    resource.as_str(),
                    vendor.as_str()
                ))
                .with_hint("filter the output instead, e.g. with jq"));
            }
            SessionFilter::SessionId { numeric: true, .. } if session.parse::<i64>().is_err() => {
                return Err(Error::usage(format!(
                    "--session {session}: {name} session ids are numbers"
                )));
            }
            _ => {}
        }
    }

    if !filters.channels.is_empty() {
        let Some(known) = info.sources else {
            let with_sources: Vec<&str> = Vendor::all()
                .iter()
                .filter(|v| v.spec().resource(resource).sources.is_some())
                .map(|v| v.as_str())
                .collect();
            return Err(Error::usage(format!(
                "{name} cannot filter {} by source: --source is only supported for {}",
                resource.as_str(),
                with_sources.join(", ")
            )));
        };
        let mut canonical = Vec::new();
        for channel in &filters.channels {
            match known
                .iter()
                .find(|c| c.eq_ignore_ascii_case(channel.trim()))
            {
                Some(value) => canonical.push((*value).to_owned()),
                None => {
                    return Err(Error::usage(format!(
                        "--source {channel:?} is not a {name} source"
                    ))
                    .with_hint(format!("one of: {}", known.join(", "))));
                }
            }
        }
        filters.channels = canonical;
    }

    let page_size = match (info.page_size, args.fetch.page_size) {
        (Some(limits), Some(size)) if size > limits.max => {
            return Err(Error::usage(format!(
                "--page-size {size}: {name} returns at most {} {} a page",
                limits.max,
                resource.as_str()
            ))
            .with_hint(
                "a larger size would be cut short by the vendor and end the listing early",
            ));
        }
        (_, Some(size)) => size,
        (Some(limits), None) => limits.default,
        (None, None) => DEFAULT_PAGE_SIZE,
    };

    Ok(Job {
        vendor,
        agent,
        project,
        resource,
        filters,
        page_size,
        concurrency: args.fetch.concurrency as usize,
        max_pages: args.fetch.max_pages,
        window_days: args.fetch.window,
        keep_raw: args.output.raw,
        now,
    })
}

/// The page size of vendors whose pages have none (it is not sent).
const DEFAULT_PAGE_SIZE: u32 = 100;

/// The output flags (settled by [`crate::output::settle`]) and the rules
/// between them and the bookmark flags: `--incremental` needs a database,
/// `--state` cannot have one, `--lock-timeout` also sets a database's wait.
fn resolve_output(
    args: &OutputArgs,
    filters: &FilterArgs,
    resource: Resource,
    env: &dyn Environment,
) -> Result<OutputSettings> {
    let mut output = crate::output::settle(args, resource, env)?;
    let Destination::Database(database) = &mut output.destination else {
        if filters.incremental {
            return Err(Error::usage(
                "--incremental needs a database output: the table is the bookmark",
            )
            .with_hint("-o leads.db (SQLite) or -o postgres://...; for files use --state PATH"));
        }
        return Ok(output);
    };
    if filters.state.is_some() {
        return Err(
            Error::usage("--state cannot be combined with a database output")
                .with_hint("use --incremental: each run starts from the newest created_at already in the table"),
        );
    }
    if let Some(secs) = filters.lock_timeout {
        database.lock_timeout = seconds("--lock-timeout", secs, true)?;
    }
    database.incremental = filters.incremental;
    Ok(output)
}

/// A number of seconds from the command line, as a `Duration`; a negative,
/// infinite or absurdly large value is a usage error, not a panic.
fn seconds(flag: &str, value: f64, zero_ok: bool) -> Result<Duration> {
    let valid = value.is_finite() && (value > 0.0 || (zero_ok && value == 0.0));
    valid
        .then(|| Duration::try_from_secs_f64(value).ok())
        .flatten()
        .filter(|d| *d <= Duration::from_secs(366 * 24 * 3600))
        .ok_or_else(|| {
            Error::usage(format!(
                "{flag} {value}: must be a {}number of seconds, at most a year",
                if zero_ok { "" } else { "positive " }
            ))
        })
}

fn resolve_fetch(args: &FetchArgs) -> Result<FetchSettings> {
    let timeout = seconds("--timeout", args.timeout, false)?;
    if let Some(rate) = args.rate
        && !(rate.is_finite() && (0.01..=1_000_000.0).contains(&rate))
    {
        return Err(Error::usage(format!(
            "--rate {rate}: must be a number of requests per second from 0.01 to 1000000"
        )));
    }
    Ok(FetchSettings {
        timeout,
        retry: RetryPolicy {
            retries: args.retries,
            base: Duration::from_millis(args.retry_base_ms),
            cap: Duration::from_secs(30),
        },
        rate: args.rate,
    })
}

/// The key from `--api-key-file` or the vendor's variable. Never from argv.
pub fn read_key(vendor: Vendor, file: Option<&Path>, env: &dyn Environment) -> Result<ApiKey> {
    if let Some(path) = file {
        return read_key_file(path, "--api-key-file");
    }
    let variable = vendor.key_env();
    env.var(variable).and_then(|k| ApiKey::new(&k)).ok_or_else(|| {
        Error::usage(format!("no {} key: set {variable}", vendor.display_name()))
            .with_hint(format!("export {variable}=... (or put it in a file and pass --api-key-file PATH); try --sandbox to run without an account"))
    })
}

/// At most this much of a `--ca-cert` file is read.
const MAX_CA_CERT_BYTES: u64 = 4 * 1024 * 1024;

/// The certificates of a `--ca-cert` PEM file (one or more).
pub fn read_ca_cert(path: &Path) -> Result<Vec<reqwest::Certificate>> {
    use std::io::Read;
    let shown = shown_path(path, "--ca-cert");
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CA_CERT_BYTES + 1).read_to_end(&mut pem))
        .map_err(|e| Error::usage(format!("cannot read the CA certificate file {shown}: {e}")))?;
    let invalid = || {
        Error::usage(format!(
            "the CA certificate file {shown} holds no valid PEM certificate"
        ))
        .with_hint("--ca-cert takes a PEM file with one or more -----BEGIN CERTIFICATE----- blocks")
    };
    if pem.len() as u64 > MAX_CA_CERT_BYTES {
        return Err(invalid());
    }
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| invalid())?;
    // reqwest parses the DER only when the client is built; check it here
    // so a corrupt file is a usage error naming it, before anything is sent.
    let test_builder = certs.iter().cloned().fold(
        reqwest::Client::builder().tls_built_in_root_certs(false),
        reqwest::ClientBuilder::add_root_certificate,
    );
    if certs.is_empty() || test_builder.build().is_err() {
        return Err(invalid());
    }
    Ok(certs)
}

/// Whether the URL's host is loopback (`localhost`, `127.0.0.0/8`, `::1`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// A base URL as it may be shown: without userinfo, query or fragment, and
/// not at all when it looks like a key given by mistake.
fn shown_url(text: &str) -> String {
    let text = text.trim();
    if looks_like_key(text) {
        return "(not shown: it looks like a key)".to_owned();
    }
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, text),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let path = &path[..path.find(['?', '#']).unwrap_or(path.len())];
    let shown = match scheme {
        Some(scheme) => format!("{scheme}://{host}{path}"),
        None => format!("{host}{path}"),
    };
    crate::secret::escape_controls(&shown)
}

/// `https://` anywhere; `http://` only to a loopback host, so a key never
/// crosses a network in clear text. Userinfo is refused (reqwest would send
/// it as a second `Authorization` and `-v` would log it), and so are a query
/// and a fragment (endpoint paths are appended to the base URL, so they would
/// end up inside the path or be dropped).
pub fn check_base_url(text: &str) -> Result<Url> {
    let shown = shown_url(text);
    let url = Url::parse(text.trim())
        .map_err(|e| Error::usage(format!("base URL {shown} is not a URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::usage(format!(
            "refusing base URL {shown}: it carries a user name or password (user:pass@)"
        ))
        .with_hint(
            "drop the user:pass@ part; the key comes from the vendor's variable or --api-key-file",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::usage(format!(
            "refusing base URL {shown}: it has a query string or fragment (?... or #...)"
        ))
        .with_hint("give the base URL only (scheme, host and optional path prefix)"));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" => {
            if is_loopback(&url) {
                Ok(url)
            } else {
                Err(Error::usage(format!(
                    "refusing plain http:// base URL {shown}: keys travel only over TLS"
                ))
                .with_hint(
                    "use https://; http:// is allowed only for localhost, 127.0.0.0/8 and ::1",
                ))
            }
        }
        other => Err(
            Error::usage(format!("base URL {shown}: scheme {other} is not supported"))
                .with_hint("use https://"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback() {
        for ok in [
            "https://www.chatzuri.com/api/v1",
            "http://localhost:8080",
            "http://127.0.0.1:9/x",
            "http://127.1.2.3",
            "http://[::1]:80/",
        ] {
            assert!(check_base_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com",
            "http://10.0.0.1",
            "http://localhost.evil.com",
            "ftp://localhost",
            "not a url",
        ] {
            let err = check_base_url(bad).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::Usage, "{bad}");
        }
    }

    struct FakeEnv(Vec<(&'static str, &'static str)>);
    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn missing_key_names_the_variable() {
        let err = read_key(Vendor::Neoagent, None, &FakeEnv(vec![])).unwrap_err();
        assert!(err.message.contains("NEOAGENT_API_KEY"), "{}", err.message);
        let key = read_key(
            Vendor::Neoagent,
            None,
            &FakeEnv(vec![("NEOAGENT_API_KEY", " k1 \n")]),
        )
        .unwrap();
        assert_eq!(key.expose(), "k1");
    }

    #[test]
    fn key_file_first_line_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "  secret-1  \nsecond line\n").unwrap();
        assert_eq!(
            read_key(Vendor::Robofy, Some(&path), &FakeEnv(vec![]))
                .unwrap()
                .expose(),
            "secret-1"
        );
        let missing = read_key(
            Vendor::Robofy,
            Some(&dir.path().join("nope")),
            &FakeEnv(vec![]),
        )
        .unwrap_err();
        assert_eq!(missing.kind, crate::error::ErrorKind::Usage);
    }
}
