//! `widesweep`: parses arguments, sets up logging, and turns errors into a
//! message with its whole context chain and an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use widesweep::Cli;

/// Training allocates and frees activation-sized buffers every step; glibc
/// hands each back to the kernel and faults it in again (zeroed pages, TLB
/// shootdowns on every core), which cost a third of a CPU training step.
/// mimalloc reuses them, keeping freed memory for 1 s before returning it:
/// a step's forward and backward passes free and reallocate buffers of the
/// same sizes within that, while memory freed long before does not add to
/// the peak. Measured on WRN-28-10, batch 128 (BENCHMARKS.md): 1 s kept the
/// peak 8 % under PyTorch's, 5 s put it level with PyTorch's, 0 s was 10 %
/// slower; never purging cost 14 % more peak memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` of mimalloc's `mi_option_e`: the value just before
/// `mi_option_use_numa_nodes`, which libmimalloc-sys names (this one it does
/// not). The test below checks it by its documented default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = libmimalloc_sys::mi_option_use_numa_nodes - 1;

const PURGE_DELAY_MS: std::ffi::c_long = 1_000;

/// Keeps freed memory in the process for reuse, unless the user set
/// `MIMALLOC_PURGE_DELAY` (read by mimalloc itself).
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting an option is a plain store in mimalloc, valid at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("WIDESWEEP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cli.default_log_level()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    match widesweep::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option index is right: it reads a default purge delay of
    /// mimalloc's (10 ms in version 2, 1000 ms in version 3), then the value set.
    #[test]
    fn purge_delay_option_is_the_one_set() {
        // SAFETY: option reads and writes are plain loads and stores in mimalloc.
        unsafe {
            if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
                let default = libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY);
                assert!([10, 1000].contains(&default), "option {MI_OPTION_PURGE_DELAY} reads {default}");
            }
            keep_freed_memory();
            if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
                assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), PURGE_DELAY_MS);
            }
        }
    }
}
