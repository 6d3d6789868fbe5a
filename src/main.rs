//! `leads`: parse the command line and run it; `leads::process` turns the
//! outcome into an exit code in exactly one place.

use std::process::ExitCode;

use clap::Parser;

use leads::cli::Cli;

// Every lead costs a few dozen small allocations (parsed strings, model
// strings, output buffers); mimalloc serves them in about a third less CPU
// than glibc's allocator, measured on the benchmark's 200,000-lead export.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc asks the kernel for transparent huge pages, and where THP is in
/// `madvise` mode (the common default) it gets them: a 2 MiB page touched
/// for a few KiB then counts whole in the resident set, and is zeroed whole
/// first. Without them NeoAgent's 1M-lead export peaks at 48 MB instead of
/// 68, in the same CPU time (bench/run.sh, section throughput).
///
/// It runs as a constructor ahead of mimalloc's own (priority 101), not
/// from `main`: by `main`, mimalloc's start-up and the runtime's first
/// allocations had already faulted in two huge pages (4 MiB zeroed, 8% of
/// the latency-bound export's CPU).
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array.00100")]
static WITHOUT_TRANSPARENT_HUGE_PAGES: extern "C" fn() = {
    extern "C" fn without_transparent_huge_pages() {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and only changes
        // this process's huge-page policy; if it fails, nothing else
        // changes. It allocates nothing, so it may run before the
        // allocator is set up.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
    without_transparent_huge_pages
};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return leads::process::argument_error(error),
    };
    leads::process::init_logging(cli.quiet, cli.verbose);
    // The sandbox serves until Ctrl-C: that is how it is stopped, not a
    // failure.
    let serving = matches!(cli.command, leads::cli::Command::Sandbox(_));
    leads::process::execute(serving, |now| leads::commands::run(cli, now))
}
