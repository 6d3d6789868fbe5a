//! The command line itself: help, version, completions, `leads vendors`, and
//! argument errors in the `leads: error:` form with exit 2.

use crate::common::{assert_exit, leads, run, stderr, stdout};

#[tokio::test]
async fn vendors_lists_every_vendor_resource_and_filter() {
    let mut cmd = leads();
    cmd.arg("vendors");
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let text = stdout(&output);
    for vendor in leads::model::Vendor::all().iter().map(|v| v.as_str()) {
        for resource in ["leads", "conversations"] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(vendor) && l.contains(resource)),
                "{vendor} {resource} missing:\n{text}"
            );
        }
    }
    for column in ["--since/--until", "--session", "--source", "--page-size"] {
        assert!(text.lines().next().unwrap().contains(column), "{column}");
    }
    assert!(stderr(&output).is_empty());
}

#[tokio::test]
async fn completions_print_a_script_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete"),
        ("zsh", "#compdef leads"),
        ("fish", "complete -c leads"),
    ] {
        let mut cmd = leads();
        cmd.args(["completions", shell]);
        let output = run(cmd).await;
        assert_exit(&output, 0);
        let text = stdout(&output);
        assert!(text.contains(marker), "{shell}");
        assert!(
            text.contains("conversations"),
            "{shell} completes subcommands"
        );
    }
}

#[tokio::test]
async fn help_and_version_exit_0_on_stdout() {
    for args in [vec!["--help"], vec!["pull", "--help"], vec!["--version"]] {
        let mut cmd = leads();
        cmd.args(&args);
        let output = run(cmd).await;
        assert_exit(&output, 0);
        assert!(!stdout(&output).is_empty(), "{args:?}");
    }
}

#[tokio::test]
async fn argument_errors_are_one_line_with_a_hint_and_exit_2() {
    for args in [
        vec![
            "pull",
            "--vendor",
            "chatzuri",
            "--agent",
            "a",
            "--frobnicate",
        ],
        vec!["pull", "--vendor", "hubspot", "--agent", "a"],
        vec![
            "pull",
            "--vendor",
            "chatzuri",
            "--agent",
            "a",
            "--concurrency",
            "0",
        ],
        vec![
            "pull", "--vendor", "chatzuri", "--agent", "a", "--format", "xml",
        ],
        vec!["explode"],
    ] {
        let mut cmd = leads();
        cmd.args(&args);
        let output = run(cmd).await;
        assert_exit(&output, 2);
        let err = stderr(&output);
        let lines: Vec<&str> = err.lines().collect();
        assert!(lines[0].starts_with("leads: error: "), "{args:?}: {err}");
        assert!(lines.len() <= 2, "{args:?}: {err}");
        assert!(
            lines.get(1).is_none_or(|l| l.starts_with("hint: ")),
            "{args:?}: {err}"
        );
        assert!(stdout(&output).is_empty());
    }
}

#[tokio::test]
async fn sandbox_with_a_base_url_is_a_usage_error() {
    let mut cmd = leads();
    cmd.args([
        "pull",
        "--vendor",
        "chatzuri",
        "--agent",
        "demo",
        "--sandbox",
        "--base-url",
        "https://example.com",
    ]);
    let output = run(cmd).await;
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("--sandbox"));
}

#[tokio::test]
async fn out_of_range_seconds_and_rates_are_usage_errors_not_panics() {
    for args in [
        vec!["--timeout", "1e20"],
        vec!["--timeout", "0"],
        vec!["--timeout", "-1"],
        vec!["--rate", "1e-30"],
        vec!["--rate", "0"],
        vec![
            "--state",
            "/tmp/leads-cli-test-state.json",
            "--lock-timeout",
            "inf",
        ],
        vec![
            "--state",
            "/tmp/leads-cli-test-state.json",
            "--lock-timeout",
            "-2",
        ],
    ] {
        let mut cmd = leads();
        cmd.args([
            "pull",
            "--vendor",
            "chatzuri",
            "--agent",
            "demo",
            "--sandbox",
        ]);
        cmd.args(&args);
        let output = run(cmd).await;
        assert_exit(&output, 2);
        let err = stderr(&output);
        assert!(err.starts_with("leads: error: "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// The bookmark covers the whole agent, so a run that writes only part of
/// it must not move it.
#[tokio::test]
async fn state_with_a_partial_filter_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    for (command, args) in [
        ("pull", vec!["--limit", "5"]),
        ("pull", vec!["--vendor", "robofy", "--session", "s-1"]),
        ("conversations", vec!["--source", "WhatsApp"]),
    ] {
        let mut cmd = leads();
        cmd.arg(command);
        if !args.contains(&"--vendor") {
            cmd.args(["--vendor", "chatzuri"]);
        }
        cmd.args(["--agent", "demo", "--sandbox", "--state"])
            .arg(&state)
            .args(&args);
        let output = run(cmd).await;
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains("--state cannot be combined"),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(!state.exists(), "no state written");
    }
}

/// Waiting for another run's lock must not make the run deaf to Ctrl-C.
#[tokio::test]
async fn ctrl_c_while_waiting_for_the_state_lock_exits_130_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let lock = std::fs::File::create(dir.path().join("state.json.lock")).unwrap();
    lock.try_lock().unwrap();
    let binary = assert_cmd::cargo::cargo_bin("leads");
    let mut child = std::process::Command::new(binary)
        .args([
            "pull",
            "--vendor",
            "chatzuri",
            "--agent",
            "demo",
            "--sandbox",
            "--lock-timeout",
            "30",
            "--state",
        ])
        .arg(&state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let started = std::time::Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "it waited for the lock first"
    );
    assert!(!state.exists());
    drop(lock);
}

/// docs/SPEC.md section 1: the one-line summary goes to stderr with -v (stderr is
/// not a terminal here), never to stdout, and not without -v.
#[tokio::test]
async fn summary_line_counts_what_the_run_did_with_v_only() {
    let mut quiet = leads();
    quiet.args([
        "pull",
        "--vendor",
        "robofy",
        "--agent",
        "demo",
        "--sandbox",
        "--format",
        "ndjson",
    ]);
    let output = run(quiet).await;
    assert_exit(&output, 0);
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));

    let mut verbose = leads();
    verbose.args([
        "pull",
        "--vendor",
        "robofy",
        "--agent",
        "demo",
        "--sandbox",
        "--format",
        "ndjson",
        "-v",
    ]);
    let output = run(verbose).await;
    assert_exit(&output, 0);
    assert_eq!(stdout(&output).lines().count(), 250);
    let summary = stderr(&output)
        .lines()
        .find(|l| l.starts_with("leads: ") && l.contains("written"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no summary line in:\n{}", stderr(&output)));
    // The default sandbox: 250 Robofy leads on three token pages.
    assert!(
        summary.starts_with("leads: 250 leads written, 3 pages, 3 requests (0 retried), 0 duplicates dropped, 0 filtered out, "),
        "{summary}"
    );
    assert!(summary.ends_with('s'), "{summary}");
    assert!(!stdout(&output).contains("written"));
}
