//! Progress of a long import on stderr: an indicatif bar on a terminal, otherwise plain lines
//! (a log or a CI job) at most every 10% or 5 s. Measured in bytes of the dump read, which
//! is known up front; the count of users rides along.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A plain line at least this often...
const LINE_EVERY: Duration = Duration::from_secs(5);
/// ...or when this much more of the file is done...
const LINE_STEP: f64 = 0.10;
/// ...but never more often than this (a small file prints its first and last line only).
const LINE_GAP: Duration = Duration::from_secs(1);

/// A reader that counts the bytes read through it (for the progress of a streamed file).
pub struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Counting<R> {
    pub fn new(inner: R) -> (Counting<R>, Arc<AtomicU64>) {
        let read = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&read);
        (Counting { inner, read }, counter)
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// When the plain reporter prints its next line.
#[derive(Debug, Clone, Copy)]
struct Cadence {
    last_at: Instant,
    last_fraction: f64,
}

impl Cadence {
    fn due(&self, now: Instant, fraction: f64) -> bool {
        let since = now.saturating_duration_since(self.last_at);
        // The epsilon keeps 0.3 - 0.2 a tenth.
        let step = fraction - self.last_fraction + 1e-9 >= LINE_STEP;
        since >= LINE_GAP && (since >= LINE_EVERY || step)
    }
}

/// One phase of the import ("checking", "writing") over a file of `total` bytes.
pub struct Progress {
    phase: &'static str,
    total: u64,
    started: Instant,
    bar: Option<ProgressBar>,
    cadence: Cadence,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl Progress {
    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn start(phase: &'static str, total: u64) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        Progress::with(phase, total, terminal, Instant::now())
    }

    fn with(phase: &'static str, total: u64, terminal: bool, now: Instant) -> Progress {
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(total);
            // The template is a constant: it parses, but never panic over a progress bar.
            if let Ok(style) = ProgressStyle::with_template(
                "import: {prefix:<8} [{bar:40}] {percent:>3}% {binary_bytes}/{binary_total_bytes} {msg} ({eta} left)",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(phase);
            bar
        });
        if bar.is_none() {
            eprintln!("import: {phase}: {} to read", mib(total));
        }
        Progress {
            phase,
            total,
            started: now,
            bar,
            cadence: Cadence {
                last_at: now,
                last_fraction: 0.0,
            },
        }
    }

    fn fraction(&self, done: u64) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            (done as f64 / self.total as f64).min(1.0)
        }
    }

    /// `done` bytes read so far, `users` user entries so far.
    pub fn update(&mut self, done: u64, users: usize) {
        self.update_at(Instant::now(), done, users);
    }

    fn update_at(&mut self, now: Instant, done: u64, users: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            bar.set_message(format!("{users} users"));
            return;
        }
        let fraction = self.fraction(done);
        if self.cadence.due(now, fraction) {
            eprintln!(
                "import: {}: {:.0}% ({} of {}, {users} users)",
                self.phase,
                fraction * 100.0,
                mib(done),
                mib(self.total)
            );
            self.cadence = Cadence {
                last_at: now,
                last_fraction: fraction,
            };
        }
    }

    /// The phase's last line: what it did and how long it took.
    pub fn finish(self, users: usize) {
        let took = self.started.elapsed().as_secs_f64();
        let line = format!(
            "import: {} done: {users} users, {} in {took:.1} s",
            self.phase,
            mib(self.total)
        );
        match self.bar {
            Some(bar) => bar.finish_with_message(format!("{users} users")),
            None => eprintln!("{line}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_every_tenth_or_five_seconds_never_twice_a_second() {
        let t0 = Instant::now();
        let c = Cadence {
            last_at: t0,
            last_fraction: 0.2,
        };
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert!(!c.due(at(500), 0.9), "not twice within a second");
        assert!(c.due(at(1_000), 0.3), "10% more after a second");
        assert!(!c.due(at(4_000), 0.25), "less than 10% and under 5 s");
        assert!(c.due(at(5_000), 0.21), "5 s passed");
    }

    #[test]
    fn the_counting_reader_counts() {
        let (mut r, n) = Counting::new(&b"hello world"[..]);
        let mut buf = Vec::new();
        r.read_to_end(&mut buf).expect("read");
        assert_eq!(n.load(Ordering::Relaxed), 11);
    }

    #[test]
    fn an_empty_file_is_done() {
        let p = Progress::with("checking", 0, false, Instant::now());
        assert_eq!(p.fraction(0), 1.0);
        let p = Progress::with("checking", 200, false, Instant::now());
        assert_eq!(p.fraction(50), 0.25);
    }
}
