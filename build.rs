//! Lays out the functions an export runs together, hottest first, by
//! handing lld the list in `bench/hot-functions.txt` (written by
//! `bench/hot-functions.sh`). An export runs about 1.6 MB of the code of a
//! binary of about 10 MB; in the compiler's order those functions are
//! spread over the whole file, which costs cache and TLB misses each time
//! the latency-bound export wakes (bench row (b): 0.86-0.91x the CPU laid
//! out).
//!
//! Only lld knows `--symbol-ordering-file`, so the list is passed only
//! where rustc links with lld by default (x86_64 Linux with glibc, since
//! Rust 1.90) and nothing says another linker is used. A name the list
//! has and the binary does not (another toolchain or dependency changes
//! the hashes in the names) is skipped silently. `LEADS_HOT_FUNCTIONS=0`
//! leaves the list out.

use std::env;
use std::path::Path;
use std::process::Command;

const LIST: &str = "bench/hot-functions.txt";

fn main() {
    println!("cargo:rerun-if-changed={LIST}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LEADS_HOT_FUNCTIONS");
    if env::var("LEADS_HOT_FUNCTIONS").is_ok_and(|v| v == "0") || !links_with_lld() {
        return;
    }
    let list = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join(LIST);
    if !list.is_file() {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        list.display()
    );
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}

/// Whether rustc will link the binaries with its own lld: the default for
/// `x86_64-unknown-linux-gnu` from Rust 1.90, unless a linker, a linker
/// flavour or `-fuse-ld` is chosen.
fn links_with_lld() -> bool {
    let target = env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" || env::var_os("RUSTC_LINKER").is_some() {
        return false;
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker") || flags.contains("fuse-ld") {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let version = String::from_utf8_lossy(&out.stdout);
    let mut numbers = version
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split(['.', '-'])
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}
