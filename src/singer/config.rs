//! The tap's JSON config (SPEC section 12): one source flat, or a list
//! under `sources`, plus `start_date` and the fetch settings.
//!
//! Each source is settled by the same `config::resolve` as a command line:
//! the config's values become the flags they stand for, and the key reaches
//! it through the `Environment` (never as an argument), so a bad base URL,
//! a missing Robofy project or an out-of-range setting fails exactly as it
//! would on the command line, before anything is sent.

use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use clap::Parser;
use serde::Deserialize;
use serde_json::Value;

use crate::cli::{Cli, Command};
use crate::config::{Environment, ExportArgs, Settings};
use crate::error::{Error, Result};
use crate::model::{Resource, Vendor};
use crate::secret::looks_like_key;

/// One source as the config gives it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: Option<String>,
    vendor: Option<Vendor>,
    agent: Option<String>,
    project: Option<String>,
    base_url: Option<String>,
    ca_cert: Option<PathBuf>,
    api_key: Option<String>,
    api_key_env: Option<String>,
    api_key_file: Option<PathBuf>,
    sandbox: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(flatten)]
    source: RawSource,
    sources: Option<Vec<RawSource>>,
    start_date: Option<String>,
    concurrency: Option<Value>,
    page_size: Option<Value>,
    window_days: Option<Value>,
    timeout: Option<Value>,
    retries: Option<Value>,
    rate: Option<Value>,
    max_pages: Option<Value>,
}

/// Where one source's key comes from.
#[derive(Clone)]
enum KeySource {
    Inline(String),
    Variable(String),
    File(PathBuf),
    /// The vendor's standard variable.
    Standard,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Inline(_) => f.write_str("Inline(redacted)"),
            KeySource::Variable(v) => write!(f, "Variable({v})"),
            KeySource::File(p) => write!(f, "File({})", p.display()),
            KeySource::Standard => f.write_str("Standard"),
        }
    }
}

/// One source of the tap.
#[derive(Debug, Clone)]
pub struct TapSource {
    pub name: Option<String>,
    pub vendor: Vendor,
    pub agent: String,
    key: KeySource,
    /// The flags this source stands for (no key among them).
    flags: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct TapConfig {
    pub path: PathBuf,
    pub sources: Vec<TapSource>,
}

/// At most this much of a config file is read.
const MAX_CONFIG_BYTES: u64 = crate::sources::MAX_CONFIG_BYTES;

impl TapConfig {
    pub fn load(path: &Path) -> Result<TapConfig> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| {
                Error::usage(format!(
                    "cannot read the tap config {}: {e}",
                    crate::config::shown_path(path, "--config")
                ))
            })?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(Error::usage(format!(
                "the tap config {} is larger than 1 MiB: not a config file",
                path.display()
            )));
        }
        let config = TapConfig::parse(&bytes, path)?;
        if config
            .sources
            .iter()
            .any(|s| matches!(s.key, KeySource::Inline(_)))
        {
            crate::keys::warn_if_readable_by_others(path, "tap config (it holds a key)");
        }
        Ok(config)
    }

    pub fn parse(bytes: &[u8], path: &Path) -> Result<TapConfig> {
        let bad =
            |message: String| Error::usage(format!("tap config {}: {message}", path.display()));
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            // serde_json's message quotes no input, so no key can show.
            bad(format!("not JSON ({e})"))
        })?;
        let value = without_empty_values(value);
        let raw: RawConfig = serde_json::from_value(value).map_err(|e| {
            bad(e.to_string()).with_hint(
                "settings: vendor, agent, project, base_url, ca_cert, api_key, api_key_env, api_key_file, sandbox, or sources: [...]; start_date, concurrency, page_size, window_days, timeout, retries, rate, max_pages",
            )
        })?;
        let flat_given = raw.source.vendor.is_some() || raw.source.agent.is_some();
        let listed = match raw.sources.clone() {
            Some(_) if flat_given => {
                return Err(bad(
                    "give one source flat (vendor, agent, ...) or a `sources` list, not both"
                        .to_owned(),
                ));
            }
            Some(list) if list.is_empty() => {
                return Err(bad("`sources` is empty".to_owned()));
            }
            Some(list) => list,
            None => vec![raw.source.clone()],
        };
        let mut common = Vec::new();
        if let Some(start) = &raw.start_date {
            DateTime::parse_from_rfc3339(start.trim())
                .or_else(|_| {
                    // Meltano's date_iso8601 settings may be a bare date.
                    chrono::NaiveDate::parse_from_str(start.trim(), "%Y-%m-%d").map(|d| {
                        d.and_hms_opt(0, 0, 0)
                            .unwrap_or_default()
                            .and_utc()
                            .fixed_offset()
                    })
                })
                .map_err(|_| {
                    bad(format!(
                        "start_date {start:?} is not an RFC 3339 timestamp (2025-01-15T00:00:00Z)"
                    ))
                })?;
            common.push(format!("--since={}", start.trim()));
        }
        for (field, flag, value) in [
            ("concurrency", "--concurrency", &raw.concurrency),
            ("page_size", "--page-size", &raw.page_size),
            ("window_days", "--window", &raw.window_days),
            ("timeout", "--timeout", &raw.timeout),
            ("retries", "--retries", &raw.retries),
            ("rate", "--rate", &raw.rate),
            ("max_pages", "--max-pages", &raw.max_pages),
        ] {
            match value {
                None => {}
                Some(Value::Number(n)) => common.push(format!("{flag}={n}")),
                Some(Value::String(s)) if s.trim().parse::<f64>().is_ok() => {
                    common.push(format!("{flag}={}", s.trim()))
                }
                Some(_) => return Err(bad(format!("{field} must be a number"))),
            }
        }
        let mut sources = Vec::with_capacity(listed.len());
        for (index, entry) in listed.into_iter().enumerate() {
            let what = match &entry.name {
                Some(name) => format!("source {name}"),
                None if raw.sources.is_some() => format!("sources[{index}]"),
                None => "the source".to_owned(),
            };
            let vendor = entry.vendor.ok_or_else(|| {
                bad(format!("{what}: vendor is required")).with_hint(format!(
                    "one of: {}",
                    Vendor::all()
                        .iter()
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            let agent = entry
                .agent
                .clone()
                .ok_or_else(|| bad(format!("{what}: agent is required")))?;
            let given = [
                entry.api_key.is_some(),
                entry.api_key_env.is_some(),
                entry.api_key_file.is_some(),
            ];
            if given.iter().filter(|g| **g).count() > 1 {
                return Err(bad(format!(
                    "{what}: give one of api_key, api_key_env and api_key_file"
                )));
            }
            let key = match (&entry.api_key, &entry.api_key_env, &entry.api_key_file) {
                (Some(key), _, _) => KeySource::Inline(key.clone()),
                (_, Some(variable), _) => {
                    if looks_like_key(variable) {
                        return Err(bad(format!(
                            "{what}: api_key_env takes the name of a variable; the value given looks like a key (not shown)"
                        ))
                        .with_hint("put the key itself in api_key, or name its variable in api_key_env"));
                    }
                    KeySource::Variable(variable.clone())
                }
                (_, _, Some(path)) => KeySource::File(path.clone()),
                _ => KeySource::Standard,
            };
            // `--flag=value`: a value that starts with `-` stays a value.
            let mut flags = vec![format!("--vendor={vendor}"), format!("--agent={agent}")];
            for (flag, value) in [
                ("--project", entry.project.clone()),
                ("--base-url", entry.base_url.clone()),
                (
                    "--ca-cert",
                    entry.ca_cert.as_ref().map(|p| p.display().to_string()),
                ),
                (
                    "--api-key-file",
                    entry.api_key_file.as_ref().map(|p| p.display().to_string()),
                ),
            ] {
                if let Some(value) = value {
                    flags.push(format!("{flag}={value}"));
                }
            }
            if entry.sandbox == Some(true) {
                if entry.base_url.is_some() || !matches!(key, KeySource::Standard) {
                    return Err(bad(format!(
                        "{what}: sandbox runs against the built-in simulator: drop base_url and the key settings"
                    )));
                }
                flags.push("--sandbox".to_owned());
            }
            flags.extend(common.iter().cloned());
            sources.push(TapSource {
                name: entry.name.clone(),
                vendor,
                agent,
                key,
                flags,
            });
        }
        Ok(TapConfig {
            path: path.to_owned(),
            sources,
        })
    }
}

/// Meltano writes settings without a value as `""` or `null`: absent.
fn without_empty_values(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null() && v.as_str().is_none_or(|s| !s.trim().is_empty()))
                .map(|(k, v)| (k, without_empty_values(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_empty_values).collect()),
        other => other,
    }
}

/// The process environment, with the key of one source where `resolve`
/// looks for the vendor's variable.
struct SourceEnvironment<'a> {
    inner: &'a dyn Environment,
    vendor: Vendor,
    key: Option<String>,
}

impl Environment for SourceEnvironment<'_> {
    fn var(&self, name: &str) -> Option<String> {
        if name == self.vendor.key_env()
            && let Some(key) = &self.key
        {
            return Some(key.clone());
        }
        self.inner.var(name)
    }
}

impl TapSource {
    /// The bookmark key of this source in the Singer state.
    pub fn state_key(&self) -> String {
        format!("{}/{}", self.vendor.as_str(), self.agent.trim())
    }

    /// The settled export of `resource` from this source.
    pub fn settle(
        &self,
        resource: Resource,
        env: &dyn Environment,
        now: DateTime<Utc>,
    ) -> Result<Settings> {
        let command = match resource {
            Resource::Leads => "pull",
            Resource::Conversations => "conversations",
        };
        let argv = ["leads", command, "--format", "ndjson"]
            .into_iter()
            .map(str::to_owned)
            .chain(self.flags.iter().cloned());
        let what = self.name.as_deref().map_or_else(
            || format!("{} agent {}", self.vendor.display_name(), self.agent),
            |n| format!("source {n}"),
        );
        let cli = Cli::try_parse_from(argv).map_err(|e| {
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid setting");
            Error::usage(format!(
                "tap config, {what}: {}",
                first.trim().trim_start_matches("error: ")
            ))
        })?;
        let key = match &self.key {
            KeySource::Inline(key) => Some(key.clone()),
            KeySource::Variable(variable) => Some(self.inner_var(env, variable, &what)?),
            KeySource::File(_) | KeySource::Standard => None,
        };
        let env = SourceEnvironment {
            inner: env,
            vendor: self.vendor,
            key,
        };
        let (source, filters, output, fetch, channels): (_, _, _, _, &[String]) = match &cli.command
        {
            Command::Pull(a) => (&a.source, &a.filters, &a.output, &a.fetch, &[]),
            Command::Conversations(a) => (&a.source, &a.filters, &a.output, &a.fetch, &[]),
            _ => return Err(Error::internal("tap: unexpected command")),
        };
        let args = ExportArgs {
            resource,
            source,
            filters,
            channels,
            output,
            fetch,
        };
        crate::config::resolve(&args, &env, now).map_err(|mut e| {
            if !e.message.starts_with("source ") {
                e.message = format!("tap config, {what}: {}", e.message);
            }
            e
        })
    }

    fn inner_var(&self, env: &dyn Environment, variable: &str, what: &str) -> Result<String> {
        env.var(variable).ok_or_else(|| {
            Error::usage(format!("tap config, {what}: no key: {variable} is not set"))
                .with_hint("api_key_env names the environment variable that holds the key")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoEnv;
    impl Environment for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-06-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_flat_source_with_an_inline_key_settles_with_its_fetch_settings() {
        let text = br#"{"vendor": "chatzuri", "agent": "a1", "api_key": "k-123456789012345",
            "base_url": "http://127.0.0.1:9", "start_date": "2025-01-01T00:00:00Z",
            "concurrency": 3, "page_size": "50", "project": ""}"#;
        let config = TapConfig::parse(text, Path::new("c.json")).unwrap();
        assert_eq!(config.sources.len(), 1);
        assert!(!format!("{config:?}").contains("k-123456789012345"));
        let settings = config.sources[0]
            .settle(Resource::Leads, &NoEnv, now())
            .unwrap();
        let job = &settings.sources[0].job;
        assert_eq!((job.concurrency, job.page_size), (3, 50));
        assert_eq!(
            job.filters.since.map(|t| t.to_rfc3339()),
            Some("2025-01-01T00:00:00+00:00".to_owned())
        );
    }

    #[test]
    fn bad_settings_are_usage_errors_naming_the_setting() {
        for (text, needle) in [
            (r#"{"vendor": "chatzuri"}"#, "agent is required"),
            (r#"{"agent": "a"}"#, "vendor is required"),
            (
                r#"{"vendor": "chatzuri", "agent": "a", "colour": 1}"#,
                "colour",
            ),
            (
                r#"{"vendor": "chatzuri", "agent": "a", "start_date": "yesterday"}"#,
                "start_date",
            ),
            (
                r#"{"vendor": "chatzuri", "agent": "a", "api_key": "x", "api_key_env": "Y"}"#,
                "one of api_key",
            ),
            (r#"{"sources": []}"#, "empty"),
        ] {
            let err = TapConfig::parse(text.as_bytes(), Path::new("c.json")).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::Usage, "{text}");
            assert!(err.message.contains(needle), "{text}: {}", err.message);
        }
        let config = TapConfig::parse(
            br#"{"vendor": "chatzuri", "agent": "a", "api_key": "k", "concurrency": 0}"#,
            Path::new("c.json"),
        )
        .unwrap();
        let err = config.sources[0]
            .settle(Resource::Leads, &NoEnv, now())
            .unwrap_err();
        assert!(err.message.contains("concurrency"), "{}", err.message);
    }
}
