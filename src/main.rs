//! The `gatehouse` binary: the allocator, then the command line (`gatehouse::cli`).

use std::process::ExitCode;

/// jemalloc instead of glibc's malloc. The proxy path allocates and frees ~125 small blocks
/// per request (most inside Pingora): jemalloc takes ~15-20% off the worker's user CPU, and
/// does not fragment the way glibc did once sled's page cache churns at 1M users
/// (benches/README.md).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options (read before the first allocation; `_rjem_` is the prefix
/// tikv-jemalloc-sys builds with). A background thread returns freed memory to the OS within
/// about a second, so argon2's 19 MiB blocks do not stay resident in idle hashing threads'
/// arenas; without it purging waits for allocation activity in the same arena.
#[cfg(feature = "jemalloc")]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: Option<&u8> =
    Some(&b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0]);

fn main() -> ExitCode {
    gatehouse::cli::run()
}
