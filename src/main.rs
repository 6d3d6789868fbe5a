//! `leads`: parse the command line and run it; `leads::process` turns the
//! outcome into an exit code in exactly one place.

use std::process::ExitCode;

use clap::Parser;

use leads::cli::Cli;

// Every lead costs a few dozen small allocations (parsed strings, model
// strings, output buffers); mimalloc serves them in about a third less CPU
// than glibc's allocator, measured on the benchmark's 200,000-lead export.
#[global_allocator]
static ALLOCATOR: Mimalloc = Mimalloc;

/// mimalloc, asked for a size alone where the alignment is one every block
/// of that size has anyway (the rule std's `System` allocator follows for
/// `malloc`): the `mimalloc` crate always calls the aligned entry points,
/// whose extra checks were 2% of the 20k-lead export's instructions.
struct Mimalloc;

/// What mimalloc, like `malloc`, aligns every block of at least this size to.
const MIN_ALIGN: usize = 16;

fn plain(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

// SAFETY: each call passes the layout's size (and, where the alignment may
// be more than a plain block has, its alignment) to the matching mimalloc
// function; every block is freed by `mi_free`, which takes blocks from
// either kind of entry point.
unsafe impl std::alloc::GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_malloc, mi_malloc_aligned};
        // SAFETY: as for the impl.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi_malloc(layout.size()).cast()
            } else {
                mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_zalloc, mi_zalloc_aligned};
        // SAFETY: as for the impl.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        // SAFETY: as for the impl.
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        use libmimalloc_sys::{mi_realloc, mi_realloc_aligned};
        // SAFETY: as for the impl.
        unsafe {
            if plain(layout.align(), new_size) {
                mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

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
