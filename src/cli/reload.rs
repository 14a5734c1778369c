//! `gatehouse reload`: sends SIGHUP to the running gatehouse named by `server.pid_file`, which
//! re-reads its config and certificates (`crate::reload`); its log says what changed.

use crate::config::Config;

pub fn run(config: &Config) -> Result<(), String> {
    let file = &config.server.pid_file;
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("server.pid_file {file}: {e} (is gatehouse running?)"))?;
    let pid: libc::pid_t = text.trim().parse().ok().filter(|p| *p > 0).ok_or_else(|| {
        format!(
            "server.pid_file {file}: {:?} is not a process id",
            text.trim()
        )
    })?;
    // A stale pid file may name another program by now: only signal a gatehouse.
    if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
        if !String::from_utf8_lossy(&cmdline).contains("gatehouse") {
            return Err(format!(
                "server.pid_file {file}: process {pid} is not gatehouse (a stale pid file?)"
            ));
        }
    }
    // SAFETY: kill(2) with a checked positive pid and a valid signal number.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        return Err(format!(
            "cannot signal process {pid} from {file}: {}",
            std::io::Error::last_os_error()
        ));
    }
    println!("sent SIGHUP to gatehouse (pid {pid}); its log says what the reload changed, or why it changed nothing");
    Ok(())
}
