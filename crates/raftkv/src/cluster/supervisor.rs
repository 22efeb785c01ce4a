//! The child `raftkv server` processes of a local cluster: spawning them,
//! relaying their log lines (prefixed `[node N]`) to our stderr, noticing a
//! child that exits and restarting it with the same flags and data dir after
//! a backoff, and stopping them all.
//!
//! Restarts: a child that exits is restarted after `--restart-delay`,
//! doubled for each exit in a row that came within `QUICK` of its start and
//! not by a signal (up to `MAX_DELAY`); after `GIVE_UP` such exits in a row
//! it is left down (it cannot start: its own log lines say why). Each exit
//! and restart is told on stderr.
//!
//! Invariant: no child outlives the supervisor. `Drop` stops every child
//! (SIGTERM, SIGKILL after 5 s), on error returns and panics too; on Linux a
//! child also gets SIGTERM if this process dies without running `Drop`
//! (`PR_SET_PDEATHSIG`).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// An exit this soon after a start counts as "could not start".
const QUICK: Duration = Duration::from_secs(10);
/// Longest wait before a restart.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// Quick exits in a row after which a child is left down.
const GIVE_UP: u32 = 5;
/// How long a stopping child gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

struct Slot {
    id: u64,
    label: String,
    args: Vec<String>,
    child: Option<Child>,
    started: Instant,
    /// Consecutive exits within `QUICK` of a start.
    quick_exits: u32,
    restart_at: Option<Instant>,
}

pub struct Supervisor {
    exe: PathBuf,
    /// First restart delay; `None`: never restart.
    restart_delay: Option<Duration>,
    slots: Vec<Slot>,
}

/// Writes one line to our stderr, ignoring a closed stderr.
pub fn note(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "raftkv cluster: {line}");
}

impl Supervisor {
    pub fn new(exe: PathBuf, restart_delay: Option<Duration>) -> Supervisor {
        Supervisor {
            exe,
            restart_delay,
            slots: Vec::new(),
        }
    }

    /// Starts a child for the first time.
    pub fn start(&mut self, id: u64, label: String, args: Vec<String>) -> Result<(), String> {
        let child =
            spawn(&self.exe, id, &args).map_err(|e| format!("cannot start {label}: {e}"))?;
        self.slots.push(Slot {
            id,
            label,
            args,
            child: Some(child),
            started: Instant::now(),
            quick_exits: 0,
            restart_at: None,
        });
        Ok(())
    }

    /// Fails naming the first child that has exited (used while the cluster
    /// is still starting: an exit then is a configuration problem).
    pub fn check_none_exited(&mut self) -> Result<(), String> {
        for s in &mut self.slots {
            if let Some(status) = exited(&mut s.child) {
                return Err(format!(
                    "{} exited during startup ({status}); stopping the cluster",
                    s.label
                ));
            }
        }
        Ok(())
    }

    /// Notices exits (telling them on stderr and scheduling a restart) and
    /// restarts the children whose delay has passed. Call it periodically.
    pub fn tick(&mut self) {
        let now = Instant::now();
        for s in &mut self.slots {
            if let Some(status) = exited(&mut s.child) {
                on_exit(s, status, self.restart_delay, now);
            }
            if s.restart_at.is_some_and(|t| t <= now) {
                s.restart_at = None;
                match spawn(&self.exe, s.id, &s.args) {
                    Ok(c) => {
                        note(&format!(
                            "{} restarted (pid {}; same flags and data dir)",
                            s.label,
                            c.id()
                        ));
                        s.child = Some(c);
                        s.started = now;
                    }
                    Err(e) => {
                        note(&format!("cannot restart {}: {e}", s.label));
                        on_exit(s, ExitStatus::default(), self.restart_delay, now);
                    }
                }
            }
        }
    }
}

/// Reports an exit and schedules the restart (or gives up).
fn on_exit(s: &mut Slot, status: ExitStatus, delay: Option<Duration>, now: Instant) {
    // Killed by a signal (kill -9, the OOM killer) is not "could not start".
    let quick = now.duration_since(s.started) < QUICK && status.signal().is_none();
    s.quick_exits = if quick { s.quick_exits + 1 } else { 0 };
    let Some(first) = delay else {
        note(&format!(
            "{} exited ({status}); not restarting it (--no-restart)",
            s.label
        ));
        return;
    };
    if s.quick_exits >= GIVE_UP {
        note(&format!(
            "{} exited ({status}), {GIVE_UP} times in a row within {} s of starting; \
             leaving it down (its log lines above say why)",
            s.label,
            QUICK.as_secs()
        ));
        return;
    }
    let wait = first
        .saturating_mul(1 << s.quick_exits.min(6))
        .min(MAX_DELAY);
    note(&format!(
        "{} exited ({status}); restarting it in {:.1} s",
        s.label,
        wait.as_secs_f64()
    ));
    s.restart_at = Some(now + wait);
}

/// The child's exit status if it has exited (the child is then forgotten).
fn exited(child: &mut Option<Child>) -> Option<ExitStatus> {
    let status = child.as_mut()?.try_wait().ok()??;
    *child = None;
    Some(status)
}

fn spawn(exe: &PathBuf, id: u64, args: &[String]) -> std::io::Result<Child> {
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; it only sets this child's
        // parent-death signal (we spawn from the main thread, which lives
        // as long as the supervisor).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn()?;
    relay(id, child.stdout.take());
    relay(id, child.stderr.take());
    Ok(child)
}

/// Copies `from` to our stderr line by line, each line prefixed with the node.
fn relay(node: u64, from: Option<impl Read + Send + 'static>) {
    let Some(from) = from else { return };
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            let _ = writeln!(std::io::stderr().lock(), "[node {node}] {line}");
        }
    });
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let children: Vec<&mut Child> = self
            .slots
            .iter_mut()
            .filter_map(|s| s.child.as_mut())
            .collect();
        for c in &children {
            // SAFETY: kill(2) on our own child's pid; SIGCONT in case it was stopped.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
                libc::kill(c.id() as i32, libc::SIGCONT);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for c in children {
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
