//! The Singer tap (SPEC section 12): `tap-leads` and `leads tap`.
//!
//! A tap is the same export as `pull`/`conversations` with another output:
//! the JSON config is turned into the same settled sources (through
//! `config::resolve`, so every check of the command line applies), the same
//! export functions walk the vendors, and the records go out as Singer
//! `RECORD` messages instead of a file. Bookmarks are those of `--state`,
//! kept in the Singer state instead of a state file.
//!
//! - `config`: the tap's JSON config into settled sources;
//! - `catalog`: the streams, `--discover`, and what a catalog selects;
//! - `messages`: the Singer message writer (stdout carries nothing else);
//! - `sync`: one run, source after source, `STATE` after each stream.

pub mod catalog;
pub mod config;
pub mod messages;
pub mod sync;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::cli::TapArgs;
use crate::config::Environment;
use crate::error::{Error, Result};
use crate::model::Vendor;

pub async fn run(args: &TapArgs, env: &dyn Environment, now: DateTime<Utc>) -> Result<()> {
    if args.about {
        return print_json(&about());
    }
    if args.discover {
        return print_json(&catalog::discover());
    }
    let path = args.config.as_deref().ok_or_else(|| {
        Error::usage("--config FILE is required to sync")
            .with_hint("tap-leads --config config.json [--state state.json] [--catalog catalog.json], or --discover / --about")
    })?;
    let config = config::TapConfig::load(path)?;
    let catalog_path = args.catalog.as_deref().or(args.properties.as_deref());
    let selection = match catalog_path {
        Some(path) => catalog::Selection::load(path)?,
        None => catalog::Selection::default_streams(),
    };
    let state = match &args.state {
        Some(path) => sync::TapState::load(path)?,
        None => sync::TapState::default(),
    };
    sync::run(&config, &selection, state, env, now).await
}

fn print_json(value: &Value) -> Result<()> {
    use std::io::Write;
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::internal(format!("cannot serialize: {e}")))?;
    text.push('\n');
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(crate::app::write_error)
}

/// `--about`: name, version, capabilities and settings, in the shape the
/// Meltano SDK's taps print with `--about --format=json`.
pub fn about() -> Value {
    let vendors: Vec<&str> = Vendor::all().iter().map(|v| v.as_str()).collect();
    let setting = |name: &str, kind: &str, description: &str| json!({"name": name, "kind": kind, "description": description});
    let mut api_key = setting(
        "api_key",
        "password",
        "The vendor's secret key (or api_key_env / api_key_file).",
    );
    api_key["secret"] = json!(true);
    let mut vendor = setting("vendor", "options", "Which platform.");
    vendor["options"] = json!(
        vendors
            .iter()
            .map(|v| json!({"label": v, "value": v}))
            .collect::<Vec<_>>()
    );
    json!({
        "name": "tap-leads",
        "version": env!("CARGO_PKG_VERSION"),
        "description": format!(
            "Leads and conversations of {} in one model",
            crate::cli::vendor_names(crate::model::Vendor::display_name)
        ),
        "capabilities": ["catalog", "discover", "state", "about"],
        "settings": [
            vendor,
            setting("agent", "string", "Agent (chatbot) id; NeoAgent serial number; Robofy chatbot id or PROJECT/CHATBOT."),
            setting("project", "string", "Robofy project id."),
            setting("base_url", "string", "Replaces the vendor's default base URL."),
            setting("ca_cert", "string", "A PEM file of certificates trusted besides the system store."),
            api_key,
            setting("api_key_env", "string", "The environment variable that holds the key."),
            setting("api_key_file", "string", "A file whose first line is the key."),
            setting("sources", "array", "Several sources: objects with name, vendor, agent, project, base_url, ca_cert and a key setting."),
            setting("start_date", "date_iso8601", "Only records created at or after this time (RFC 3339)."),
            setting("concurrency", "integer", "Requests in flight at once (default 4)."),
            setting("page_size", "integer", "Records per page where the vendor pages by number."),
            setting("window_days", "integer", "Days per NeoAgent date window (default 30)."),
            setting("timeout", "integer", "Per-request timeout in seconds (default 30)."),
            setting("retries", "integer", "Retries of a retryable failure (default 4)."),
            setting("rate", "number", "At most this many requests per second."),
            setting("sandbox", "boolean", "Run against the built-in simulated vendors (no account)."),
        ],
    })
}
