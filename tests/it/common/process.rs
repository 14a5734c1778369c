//! The machine around the server under test: the binary, free loopback ports, the memory and
//! liveness of a process read from /proc, and command-line runs with a deadline.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The `gatehouse` binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gatehouse")
}

/// Every port the harness has handed out in this test binary (`listener`, `free_port`): each
/// goes to one scenario for the whole run. The scenarios share one process, and one that stops
/// a server and starts it again on its port (a restart, a mail server or a database coming
/// back) must not find the port taken meanwhile by another scenario's listener, which asked
/// the kernel for any free port and could have been offered the one just released.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A listener on a loopback port that no scenario of this run has had before.
pub fn listener() -> TcpListener {
    // Ports refused here stay bound until a new one comes, so that the kernel offers others.
    let mut refused = Vec::new();
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = l.local_addr().expect("local addr").port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
        if handed_out.insert(port) {
            return l;
        }
        refused.push(l);
    }
}

/// A port nobody listens on right now, and that no other scenario of this run was given.
pub fn free_port() -> u16 {
    listener().local_addr().expect("local addr").port()
}

/// `N` different free ports (each listener gets its own: two `127.0.0.1:0` listeners would
/// share one socket in Pingora).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let mut ports = [0u16; N];
    for i in 0..N {
        ports[i] = loop {
            let p = free_port();
            if !ports[..i].contains(&p) {
                break p;
            }
        };
    }
    ports
}

/// A loopback address nobody listens on: an upstream that is down.
pub fn free_addr() -> SocketAddr {
    ([127, 0, 0, 1], free_port()).into()
}

/// Resident memory of a process in KiB (0 when it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// True once `pid` is gone; a child that exited but was not reaped yet (a zombie) counts.
pub fn has_exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// The binary with no `GATEHOUSE_*` variable inherited from whoever runs the tests.
pub fn clean_command() -> Command {
    let mut cmd = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("GATEHOUSE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A finished (or timed-out) command-line run.
#[derive(Debug)]
pub struct CliRun {
    /// `None`: killed at the deadline.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// stdout then stderr, for messages that may go to either.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn assert_ok(&self, what: &str) -> &Self {
        assert!(
            self.succeeded(),
            "{what}: exit {:?}\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Its output (stdout or stderr) contains `text`, in any letter case: `why` says what that
    /// shows.
    #[track_caller]
    pub fn assert_says(&self, text: &str, why: &str) -> &Self {
        assert!(
            self.output().to_lowercase().contains(&text.to_lowercase()),
            "{why}: no {text:?} in\n{}",
            self.output()
        );
        self
    }

    /// Exited by itself, with a failure status.
    #[track_caller]
    pub fn assert_failed(&self, what: &str) -> &Self {
        let status = self.status.unwrap_or_else(|| {
            panic!(
                "{what}: did not exit within the deadline:\n{}",
                self.output()
            )
        });
        assert!(
            !status.success(),
            "{what}: must exit non-zero, got {status}:\n{}",
            self.output()
        );
        self
    }
}

/// Runs `cmd` to completion, killing it after `deadline`.
pub fn run(mut cmd: Command, deadline: Duration) -> CliRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn gatehouse");
    let until = Instant::now() + deadline;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    CliRun {
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    }
}
