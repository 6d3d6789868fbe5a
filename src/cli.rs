//! The command line as typed: clap structures and nothing else. `config`
//! turns these into settled settings before any I/O happens, so the rest of
//! the program never sees the argument parser.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::model::Vendor;
use crate::output::Format;
use crate::schema::RecordKind;

/// The vendors' names joined for prose: "A, B and C".
pub(crate) fn vendor_names(name: fn(Vendor) -> &'static str) -> String {
    let names: Vec<&str> = Vendor::all().iter().map(|v| name(*v)).collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn about() -> String {
    format!(
        "Export leads and conversations from {} as JSON, NDJSON, CSV or XLSX",
        vendor_names(Vendor::display_name)
    )
}

fn after_help() -> String {
    let keys: Vec<&str> = Vendor::all().iter().map(|v| v.key_env()).collect();
    let bases: Vec<&str> = Vendor::all().iter().map(|v| v.base_url_env()).collect();
    let environment = [
        (keys.join(", "), "the vendors' keys"),
        (bases.join(", "), "base URLs (as --base-url)"),
        (
            "LEADS_CONFIG".to_owned(),
            "the named-sources file (else $XDG_CONFIG_HOME/leads/config.toml)",
        ),
        (
            "HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY".to_owned(),
            "proxies (never used for loopback)",
        ),
        (
            "SSL_CERT_FILE, SSL_CERT_DIR".to_owned(),
            "more trusted CA certificates",
        ),
        ("RUST_LOG".to_owned(), "a log filter, instead of -v"),
    ];
    let mut text = format!(
        "Keys come from {} or --api-key-file.\nTry it with no account: leads pull --vendor chatzuri --agent demo --sandbox --limit 5\n\nEnvironment:",
        keys.join(", ")
    );
    for (names, what) in environment {
        text.push_str(&format!("\n  {names}\n      {what}"));
    }
    text
}

fn agent_help() -> String {
    let hints: Vec<String> = Vendor::all()
        .iter()
        .map(|v| format!("{}: {}", v.as_str(), v.spec().agent_hint))
        .collect();
    format!("The agent to export ({})", hints.join("; "))
}

fn project_help() -> String {
    let with: Vec<&str> = Vendor::all()
        .iter()
        .filter(|v| v.spec().projects.is_some())
        .map(|v| v.display_name())
        .collect();
    format!("The project the agent belongs to ({})", with.join(", "))
}

fn base_url_help() -> String {
    let vars: Vec<&str> = Vendor::all().iter().map(|v| v.base_url_env()).collect();
    format!("Replace the vendor's base URL [env: {}]", vars.join(", "))
}

fn source_help() -> String {
    let with: Vec<String> = Vendor::all()
        .iter()
        .filter_map(|v| {
            let sources = v.spec().conversations.sources?;
            Some(format!("{}: {}", v.as_str(), sources.join(", ")))
        })
        .collect();
    format!(
        "Only conversations from this source (repeatable; matched ignoring case). {}",
        with.join(". ")
    )
}

#[derive(Debug, Parser)]
#[command(
    name = "leads",
    version,
    about = about(),
    long_about = None,
    after_help = after_help()
)]
pub struct Cli {
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Log each request (-v); more detail (-vv). RUST_LOG is honoured too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Print the one-line summary at the end even when stderr is not a
    /// terminal (a cron log), also with -q.
    #[arg(long, global = true)]
    pub summary: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Export leads (and NeoAgent appointments).
    Pull(PullArgs),
    /// Export conversations with their messages.
    Conversations(ConversationsArgs),
    /// Serve the simulated vendors on loopback.
    Sandbox(SandboxArgs),
    /// Check each source's settings and key with one cheap request.
    Check(CheckArgs),
    /// Print the JSON Schema (draft 2020-12) of a record kind.
    Schema {
        #[arg(value_enum)]
        kind: RecordKind,
    },
    /// Run as a Singer tap (the same as the tap-leads binary).
    Tap(TapArgs),
    /// Print what each vendor supports.
    Vendors,
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `leads man > ~/.local/share/man/man1/leads.1`.
    Man,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub fetch: FetchArgs,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct ConversationsArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[arg(long = "source", value_name = "NAME", help_heading = "Filters", help = source_help())]
    pub channels: Vec<String>,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub fetch: FetchArgs,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Source")]
pub struct SourceArgs {
    /// Named sources from the config file (section "Named sources" of the README).
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,

    /// Pull every source of the config file.
    #[arg(long, conflicts_with = "names")]
    pub all: bool,

    /// Config file with named sources [default: $XDG_CONFIG_HOME/leads/config.toml].
    #[arg(long, value_name = "PATH", env = "LEADS_CONFIG")]
    pub config: Option<PathBuf>,

    /// Which platform.
    #[arg(long, value_enum, ignore_case = true)]
    pub vendor: Option<Vendor>,

    #[arg(long, value_name = "ID", help = agent_help())]
    pub agent: Option<String>,

    #[arg(long, value_name = "ID", help = project_help())]
    pub project: Option<String>,

    #[arg(long, value_name = "URL", help = base_url_help())]
    pub base_url: Option<String>,

    /// Read the key from this file (first line, trimmed) instead of the environment.
    #[arg(long, value_name = "PATH")]
    pub api_key_file: Option<PathBuf>,

    /// Also trust the certificates in this PEM file (an internal CA or a TLS-inspecting proxy).
    #[arg(long, value_name = "PATH")]
    pub ca_cert: Option<PathBuf>,

    /// Run against the built-in simulated vendor: no account, no network.
    #[arg(long)]
    pub sandbox: bool,

    /// With several sources: write those that succeed and report the others.
    #[arg(long)]
    pub keep_going: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Filters")]
pub struct FilterArgs {
    /// Only records created at or after WHEN: YYYY-MM-DD, RFC 3339, or 90m/36h/7d/2w ago.
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    pub since: Option<String>,

    /// Only records created at or before WHEN (same forms as --since).
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    pub until: Option<String>,

    /// Only records of one chat session (NeoAgent sessionID, Robofy sessionId).
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,

    /// Stop after N records.
    #[arg(allow_negative_numbers = true, long, value_name = "N", value_parser = count)]
    pub limit: Option<u64>,

    /// Incremental run: write only records newer than the bookmark in this file.
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,

    /// Database outputs: start each source from the newest created_at already stored.
    #[arg(long)]
    pub incremental: bool,

    /// Wait this long for another run's lock: on --state [default: 0, fail
    /// at once], on a database output [default: 60].
    #[arg(allow_negative_numbers = true, long, value_name = "SECS")]
    pub lock_timeout: Option<f64>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Output format [default: json, or from the -o extension; jsonl = ndjson].
    #[arg(long, value_enum, ignore_case = true)]
    pub format: Option<Format>,

    /// Write to PATH atomically instead of stdout ("-" is stdout); .json, .ndjson/.jsonl, .csv, .xlsx, and .gz after a text format; FILE.db/.sqlite/.sqlite3 or postgres://... is a database.
    #[arg(short, long, value_name = "PATH|URL")]
    pub output: Option<PathBuf>,

    /// CSV and XLSX: these columns, in this order (id,created_at,email,fields.company,...; all-fields adds one per custom field).
    #[arg(long, value_name = "LIST")]
    pub columns: Option<String>,

    /// Add the vendor's original record as `raw` (JSON and NDJSON).
    #[arg(long)]
    pub raw: bool,

    /// Do not prefix CSV cells that a spreadsheet would run as a formula.
    #[arg(long)]
    pub no_formula_guard: bool,

    /// Start CSV with a UTF-8 byte-order mark.
    #[arg(long)]
    pub bom: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Fetch")]
pub struct FetchArgs {
    /// Records per page where the vendor pages by number [default: 100].
    #[arg(allow_negative_numbers = true, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: Option<u32>,

    /// Requests in flight at once (1 = strictly sequential).
    #[arg(allow_negative_numbers = true, long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,

    /// Per-request timeout in seconds.
    #[arg(
        allow_negative_numbers = true,
        long,
        value_name = "SECS",
        default_value_t = 30.0
    )]
    pub timeout: f64,

    /// Retries of a retryable failure.
    #[arg(allow_negative_numbers = true, long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub retries: u32,

    /// At most N requests per second to the vendor.
    #[arg(allow_negative_numbers = true, long, value_name = "N")]
    pub rate: Option<f64>,

    /// Fail (exit 5) after N pages of one listing.
    #[arg(allow_negative_numbers = true, long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=u64::from(u32::MAX)))]
    pub max_pages: u64,

    /// Days per NeoAgent date window.
    #[arg(allow_negative_numbers = true, long, value_name = "DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub window: u32,

    /// First retry delay in milliseconds (doubles each retry, with jitter; for tests).
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 500,
        env = "LEADS_RETRY_BASE_MS",
        hide = true
    )]
    pub retry_base_ms: u64,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(allow_negative_numbers = true, long, default_value_t = 8787)]
    pub port: u16,
    /// Seed of the generated data.
    #[arg(allow_negative_numbers = true, long, default_value_t = 42)]
    pub seed: u64,
    /// Leads per vendor.
    #[arg(allow_negative_numbers = true, long, default_value_t = 250)]
    pub leads: usize,
    /// Conversations per vendor.
    #[arg(allow_negative_numbers = true, long, default_value_t = 40)]
    pub conversations: usize,
    /// Delay before every response, in milliseconds.
    #[arg(allow_negative_numbers = true, long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Answer every Nth request with 503.
    #[arg(allow_negative_numbers = true, long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub fail_every: Option<u64>,
    /// Answer 429 with Retry-After above N requests per second.
    #[arg(allow_negative_numbers = true, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: Option<u32>,
    /// Repeat every conversation message's text to about N bytes.
    #[arg(allow_negative_numbers = true, long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub message_bytes: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// At the end of the run, success or failure, write a report to PATH
    /// (JSON; Prometheus text format when PATH ends in .prom).
    #[arg(long, value_name = "PATH", help_heading = "Output")]
    pub report: Option<PathBuf>,
}

/// How `leads check` prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    Table,
    Ndjson,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// How to print the results [default: table].
    #[arg(long, value_enum, default_value = "table")]
    pub format: CheckFormat,
    #[command(flatten)]
    pub fetch: FetchArgs,
}

/// The Singer tap's command line (SPEC section 12).
#[derive(Debug, Args)]
pub struct TapArgs {
    /// Tap configuration (JSON): one source, or a `sources` list.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The last STATE message's value, from an earlier run.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Which streams and properties to emit (a catalog from --discover).
    #[arg(long, value_name = "FILE", conflicts_with = "properties")]
    pub catalog: Option<PathBuf>,
    /// The legacy name of --catalog.
    #[arg(long, value_name = "FILE")]
    pub properties: Option<PathBuf>,
    /// Print the catalog of streams and exit.
    #[arg(long)]
    pub discover: bool,
    /// Print what the tap is and its settings, and exit.
    #[arg(long)]
    pub about: bool,
    /// With --about: the output format (Meltano asks for json).
    #[arg(long, value_name = "FORMAT", requires = "about")]
    pub format: Option<String>,
}

/// `tap-leads`: the tap as a binary of its own, as Meltano runs it.
#[derive(Debug, Parser)]
#[command(
    name = "tap-leads",
    version,
    about = format!(
        "Singer tap for leads and conversations of {}",
        vendor_names(Vendor::display_name)
    )
)]
pub struct TapCli {
    /// Only errors on stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// Log each request (-v); more detail (-vv).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(flatten)]
    pub tap: TapArgs,
}

/// A count of records: a whole number, 0 or more, with a message about the
/// number rather than about its digits.
fn count(text: &str) -> Result<u64, String> {
    match text.trim().parse::<i128>() {
        Ok(n) if n < 0 => Err(format!("{n} is negative: give 0 or more")),
        Ok(n) => u64::try_from(n).map_err(|_| format!("{n} is too large")),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}
