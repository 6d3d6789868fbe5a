//! Named sources from the TOML config file (docs/SPEC.md section 10): which vendor,
//! agent and project, and where the key comes from — never the key itself.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::keys::{Environment, read_key_file, warn_if_readable_by_others};
use crate::model::Vendor;
use crate::secret::{ApiKey, looks_like_key};

/// At most this much of a config file is read (a mistyped `--config
/// /dev/zero` must not read until memory runs out).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    vendor: Vendor,
    agent: String,
    project: Option<String>,
    base_url: Option<String>,
    api_key_env: Option<String>,
    api_key_file: Option<PathBuf>,
    ca_cert: Option<PathBuf>,
}

/// One `[sources.NAME]` table.
#[derive(Debug, Clone)]
pub struct SourceEntry {
    pub name: String,
    pub vendor: Vendor,
    pub agent: String,
    pub project: Option<String>,
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    pub api_key_file: Option<PathBuf>,
    /// A PEM file of certificates trusted besides the system store.
    pub ca_cert: Option<PathBuf>,
}

impl SourceEntry {
    /// The key from the named variable or file; with neither, the vendor's
    /// standard variable (`CHATZURI_API_KEY`, ...).
    pub fn key(&self, env: &dyn Environment) -> Result<ApiKey> {
        if let Some(path) = &self.api_key_file {
            return read_key_file(path, "api_key_file")
                .map_err(|e| Error::usage(format!("source {}: {}", self.name, e.message)));
        }
        let variable = self.api_key_env.as_deref().unwrap_or(self.vendor.key_env());
        env.var(variable).and_then(|k| ApiKey::new(&k)).ok_or_else(|| {
            if looks_like_key(variable) {
                Error::usage(format!(
                    "source {}: no key: the variable named by api_key_env is not set, and its name looks like a key (not shown)",
                    self.name
                ))
                .with_hint("api_key_env takes the name of the variable that holds the key (e.g. ACME_CHATZURI_KEY), never the key itself")
            } else {
                Error::usage(format!("source {}: no key: set {variable}", self.name))
                    .with_hint(format!("export {variable}=... (the config file names the variable; the key itself never goes in the file)"))
            }
        })
    }
}

/// The sources of a config file, in file order.
#[derive(Debug, Clone)]
pub struct Sources {
    pub path: PathBuf,
    pub entries: Vec<SourceEntry>,
}

impl Sources {
    /// The sources named on the command line (in that order), or all of
    /// them in file order.
    pub fn select(&self, names: &[String], all: bool) -> Result<Vec<&SourceEntry>> {
        if all {
            if self.entries.is_empty() {
                return Err(Error::usage(format!(
                    "{} defines no sources",
                    self.path.display()
                )));
            }
            return Ok(self.entries.iter().collect());
        }
        let mut chosen = Vec::new();
        for name in names {
            match self.entries.iter().find(|e| &e.name == name) {
                Some(entry) if chosen.iter().any(|c: &&SourceEntry| c.name == entry.name) => {}
                Some(entry) => chosen.push(entry),
                None => {
                    let known: Vec<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
                    let name = if looks_like_key(name) {
                        "(not shown: the name given looks like a key)".to_owned()
                    } else {
                        format!("{name:?}")
                    };
                    return Err(Error::usage(format!(
                        "no source named {name} in {}",
                        self.path.display()
                    ))
                    .with_hint(if known.is_empty() {
                        "the file defines no sources".to_owned()
                    } else {
                        format!("sources defined: {}", known.join(", "))
                    }));
                }
            }
        }
        Ok(chosen)
    }
}

/// `$XDG_CONFIG_HOME/leads/config.toml`, else `~/.config/leads/config.toml`.
pub fn default_path(env: &dyn Environment) -> Option<PathBuf> {
    if let Some(xdg) = env.var("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(xdg).join("leads").join("config.toml"));
    }
    env.var("HOME").map(|home| {
        PathBuf::from(home)
            .join(".config")
            .join("leads")
            .join("config.toml")
    })
}

pub fn load(path: Option<&Path>, env: &dyn Environment) -> Result<Sources> {
    let path = match path {
        Some(path) => path.to_owned(),
        None => default_path(env)
            .ok_or_else(|| Error::usage("no config file: set --config PATH (HOME is not set)"))?,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|file| file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| {
            Error::usage(format!("cannot read the config file {}: {e}", path.display()))
                .with_hint("named sources live in a TOML file: see \"Named sources\" in the README, or pass --config PATH")
        })?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Error::usage(format!(
            "the config file {} is larger than {} MiB: not a config file",
            path.display(),
            MAX_CONFIG_BYTES / (1024 * 1024)
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::usage(format!(
            "the config file {} is not text (UTF-8)",
            path.display()
        ))
    })?;
    warn_if_readable_by_others(&path, "config file");
    let sources = parse(&text, &path)?;
    Ok(sources)
}

pub fn parse(text: &str, path: &Path) -> Result<Sources> {
    let bad = |message: String| Error::usage(format!("config file {}: {message}", path.display()));
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e
            .span()
            .map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
                format!("line {line}, column {column}: ")
            })
            .unwrap_or_default();
        bad(format!("{at}{}", e.message().trim()))
    })?;
    if let Some(key) = table.keys().find(|k| *k != "sources") {
        return Err(bad(format!(
            "unknown top-level key {key:?}; sources go under [sources.NAME]"
        )));
    }
    let mut entries = Vec::new();
    if let Some(sources) = table.get("sources") {
        let sources = sources
            .as_table()
            .ok_or_else(|| bad("`sources` must be a table of [sources.NAME]".to_owned()))?;
        for (name, value) in sources {
            if let Some(fields) = value.as_table()
                && (fields.contains_key("api_key") || fields.contains_key("key"))
            {
                return Err(bad(format!("source {name}: a key is never stored in the config file"))
                        .with_hint("name the variable that holds it with api_key_env = \"VAR\", or a file with api_key_file = \"/path\""));
            }
            let raw: RawSource = value
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| bad(format!("source {name}: {}", e.message())))?;
            if let Some(variable) = &raw.api_key_env
                && (looks_like_key(variable) || !is_variable_name(variable))
            {
                return Err(bad(format!(
                    "source {name}: api_key_env must be the name of an environment variable (letters, digits, _); the value given is not (not shown: it may be a key)"
                ))
                .with_hint("api_key_env = \"ACME_CHATZURI_KEY\" names the variable that holds the key; the key itself never goes in the file"));
            }
            if raw.api_key_env.is_some() && raw.api_key_file.is_some() {
                return Err(bad(format!(
                    "source {name}: give api_key_env or api_key_file, not both"
                )));
            }
            entries.push(SourceEntry {
                name: name.clone(),
                vendor: raw.vendor,
                agent: raw.agent,
                project: raw.project,
                base_url: raw.base_url,
                api_key_env: raw.api_key_env,
                api_key_file: raw.api_key_file,
                ca_cert: raw.ca_cert,
            });
        }
    }
    Ok(Sources {
        path: path.to_owned(),
        entries,
    })
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[sources.website]
vendor = "chatzuri"
agent = "a1b2c3"
api_key_env = "ACME_CHATZURI_KEY"

[sources.shop]
vendor = "neoagent"
agent = "3254a9d0424c4806b9ea3d0763ccf000"
api_key_file = "/etc/leads/neoagent.key"

[sources.support]
vendor = "robofy"
project = "42"
agent = "bot-1"
api_key_env = "ROBOFY_API_KEY"
base_url = "https://agents.robofy.ai"
"#;

    #[test]
    fn the_spec_example_parses_in_file_order() {
        let sources = parse(EXAMPLE, Path::new("c.toml")).unwrap();
        let names: Vec<&str> = sources.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["website", "shop", "support"]);
        assert_eq!(sources.entries[2].project.as_deref(), Some("42"));
        let all: Vec<&str> = sources
            .select(&[], true)
            .unwrap()
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(all, ["website", "shop", "support"]);
        let some: Vec<&str> = sources
            .select(&["support".into(), "website".into()], false)
            .unwrap()
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(some, ["support", "website"]);
    }

    #[test]
    fn an_inline_key_is_refused() {
        let text = "[sources.x]\nvendor = \"chatzuri\"\nagent = \"a\"\napi_key = \"sk-123\"\n";
        let err = parse(text, Path::new("c.toml")).unwrap_err();
        assert!(err.message.contains("never stored"), "{}", err.message);
        assert!(!err.message.contains("sk-123"));
    }

    #[test]
    fn unknown_fields_and_names_are_usage_errors() {
        let err = parse(
            "[sources.x]\nvendor = \"chatzuri\"\nagent = \"a\"\ncolour = 1\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::Usage);
        let sources = parse(EXAMPLE, Path::new("c.toml")).unwrap();
        let err = sources.select(&["nope".into()], false).unwrap_err();
        assert!(err.hint.unwrap().contains("website, shop, support"));
    }
}
