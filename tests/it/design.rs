//! Design guards for docs/SPEC.md section 3, 4 and 9 (issue 5): not benchmarks and
//! not timed, but the properties the performance rests on, checked against
//! an in-process sandbox whose small latency makes requests overlap.
//!
//! - With `--concurrency 8`, output is still in page order.
//! - `--concurrency N` never has more than N requests in flight at the
//!   server, and more than one when N > 1: Chatzuri pages, NeoAgent date
//!   windows, Robofy per-session message requests.
//! - Robofy token paging never has more than one request in flight.
//!
//! The flat-memory guard is `tests/flat_memory.rs`, a release-mode test.

use std::time::Duration;

use crate::common::{assert_exit, leads, ndjson, run};
use leads::model::Vendor;
use leads::sandbox::{DEMO_AGENT, DEMO_PROJECT, Sandbox, SandboxOptions, SandboxStats, data};

const SEED: u64 = 42;
const LATENCY: Duration = Duration::from_millis(20);

async fn start(leads: usize, conversations: usize) -> Sandbox {
    Sandbox::start(SandboxOptions {
        seed: SEED,
        leads,
        conversations,
        latency: LATENCY,
        ..SandboxOptions::default()
    })
    .await
    .expect("the sandbox starts")
}

/// Runs `leads <command> --vendor V --agent demo --base-url ... <args>`
/// against `sandbox` with NDJSON on stdout and returns the parsed records and
/// the server's counters for this run (a fresh sandbox per call).
async fn export(
    sandbox: &Sandbox,
    command: &str,
    vendor: Vendor,
    args: &[&str],
) -> (Vec<serde_json::Value>, SandboxStats) {
    let mut cmd = leads();
    cmd.arg(command)
        .args([
            "--vendor",
            vendor.as_str(),
            "--agent",
            DEMO_AGENT,
            "--base-url",
        ])
        .arg(crate::common::sandbox_url(sandbox, vendor))
        .args(["--format", "ndjson", "-q"])
        .args(args)
        .env(vendor.key_env(), crate::common::sandbox_key(vendor));
    if vendor == Vendor::Robofy && command == "pull" {
        cmd.args(["--project", DEMO_PROJECT]);
    }
    let output = run(cmd).await;
    assert_exit(&output, 0);
    (ndjson(&output), sandbox.stats())
}

fn ids(records: &[serde_json::Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().expect("id is a string").to_owned())
        .collect()
}

fn assert_bounded(what: &str, concurrency: usize, stats: SandboxStats) {
    assert!(
        stats.max_in_flight <= concurrency,
        "{what}: --concurrency {concurrency} had {} requests in flight at the server",
        stats.max_in_flight
    );
    if concurrency > 1 {
        assert!(
            stats.max_in_flight > 1,
            "{what}: --concurrency {concurrency} never had two requests in flight ({} requests in all)",
            stats.requests
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatzuri_pages_fetched_concurrently_come_out_in_page_order() {
    let total = 1_500;
    let sandbox = start(total, 0).await;
    let (records, stats) = export(
        &sandbox,
        "pull",
        Vendor::Chatzuri,
        &["--page-size", "20", "--concurrency", "8"],
    )
    .await;
    let expected: Vec<String> = (0..total)
        .map(|i| {
            data::lead(crate::common::sim(Vendor::Chatzuri), SEED, i, total)
                .id
                .expect("Chatzuri leads have ids")
        })
        .collect();
    assert_eq!(
        ids(&records),
        expected,
        "records not in the vendor's page order"
    );
    // 75 full pages, the empty one that ends the listing and the second look
    // at page 1 that proves the head did not move; up to 7 more may have been
    // in flight past the end and aborted.
    assert!(
        stats.requests >= 77 && stats.requests <= 77 + 7,
        "{} requests",
        stats.requests
    );
    assert_bounded("Chatzuri pages", 8, stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatzuri_pages_in_flight_never_exceed_the_concurrency() {
    for concurrency in [1usize, 3, 8] {
        let sandbox = start(600, 0).await;
        let n = concurrency.to_string();
        let (records, stats) = export(
            &sandbox,
            "pull",
            Vendor::Chatzuri,
            &["--page-size", "20", "--concurrency", &n],
        )
        .await;
        assert_eq!(records.len(), 600);
        assert_bounded("Chatzuri pages", concurrency, stats);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neoagent_windows_in_flight_never_exceed_the_concurrency() {
    // The sandbox's data spans 2025-01-01 .. 2025-07-01: 7-day windows make
    // 26 requests.
    let range = [
        "--since",
        "2025-01-01",
        "--until",
        "2025-06-30T23:59:59Z",
        "--window",
        "7",
    ];
    let mut first: Option<Vec<String>> = None;
    for concurrency in [1usize, 3, 8] {
        let sandbox = start(400, 0).await;
        let n = concurrency.to_string();
        let args: Vec<&str> = range
            .iter()
            .copied()
            .chain(["--concurrency", n.as_str()])
            .collect();
        let (records, stats) = export(&sandbox, "pull", Vendor::Neoagent, &args).await;
        assert_eq!(
            records.len(),
            400,
            "windows overlap by a day; duplicates must be dropped"
        );
        assert!(
            stats.requests >= 26,
            "{} requests: not split into 7-day windows",
            stats.requests
        );
        assert_bounded("NeoAgent windows", concurrency, stats);
        // Windows are yielded in window order whatever the concurrency.
        let got = ids(&records);
        match &first {
            None => first = Some(got),
            Some(sequential) => assert_eq!(
                &got, sequential,
                "--concurrency {concurrency} changed the order"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robofy_session_messages_in_flight_never_exceed_the_concurrency() {
    let total = 60;
    for concurrency in [1usize, 3, 8] {
        let sandbox = start(0, total).await;
        let n = concurrency.to_string();
        let (records, stats) = export(
            &sandbox,
            "conversations",
            Vendor::Robofy,
            &["--concurrency", &n],
        )
        .await;
        assert_eq!(records.len(), total);
        let expected: Vec<String> = (0..total)
            .map(|i| data::conversation(crate::common::sim(Vendor::Robofy), SEED, i, total).id)
            .collect();
        assert_eq!(
            ids(&records),
            expected,
            "conversations not in the inbox's order"
        );
        assert_bounded("Robofy session messages", concurrency, stats);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robofy_token_paging_is_strictly_sequential() {
    let sandbox = start(1_000, 0).await;
    let (records, stats) = export(&sandbox, "pull", Vendor::Robofy, &["--concurrency", "8"]).await;
    assert_eq!(records.len(), 1_000);
    assert!(
        stats.requests >= 10,
        "{} requests for 10 pages",
        stats.requests
    );
    assert_eq!(
        stats.max_in_flight, 1,
        "a token page was requested before the previous one was answered"
    );
}
