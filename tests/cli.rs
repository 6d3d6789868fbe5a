//! The command line itself: help, version, completions, `leads vendors`, and
//! argument errors in the `leads: error:` form with exit 2.

mod common;

use common::{assert_exit, leads, run, stderr, stdout};

#[tokio::test]
async fn vendors_lists_every_vendor_resource_and_filter() {
    let mut cmd = leads();
    cmd.arg("vendors");
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let text = stdout(&output);
    for vendor in ["chatzuri", "neoagent", "robofy"] {
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
