//! Running Dokku's command: its own process group, stdout and stderr read
//! as they come (colour codes dropped), a deadline after which the group
//! is sent SIGTERM (Dokku's deploy traps it and removes the container it
//! was checking) and, if it lingers, SIGKILL.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Lines of combined output kept for the record.
pub const TAIL_LINES: usize = 40;
/// Most stdout lines kept (an app list).
const STDOUT_LINES: usize = 100_000;
/// How long the group has between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(30);
/// How long output is still read after the command exits (a background
/// child may hold the pipes open).
const DRAIN: Duration = Duration::from_secs(2);

/// What a run of the command gave.
pub struct Ran {
    /// `None` when it ran past its deadline and was killed.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<String>,
    /// The last [`TAIL_LINES`] lines of stdout and stderr, in the order read.
    pub tail: Vec<String>,
}

impl Ran {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// How the run ended, for messages: `exit status 1`, `killed after 30m`.
    pub fn ending(&self, timeout: Duration) -> String {
        match self.status {
            Some(s) => s.to_string(),
            None => format!("killed after running longer than {}s", timeout.as_secs()),
        }
    }
}

/// Runs `command args` (stdin closed) and waits at most `timeout`.
/// Fails only when it cannot be started.
pub fn run(command: &Path, args: &[&str], timeout: Duration) -> std::io::Result<Ran> {
    let mut child = Command::new(command).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).spawn()?;
    let (tx, rx) = mpsc::channel();
    for (stdout, pipe) in [(true, child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>)), (false, child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>))] {
        let (tx, pipe) = (tx.clone(), pipe.expect("piped"));
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).split(b'\n') {
                let Ok(line) = line else { break };
                if tx.send((stdout, strip_ansi(&String::from_utf8_lossy(&line)))).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut out = Output::default();
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            stop(&mut child);
            break None;
        }
        out.take(rx.recv_timeout(Duration::from_millis(100)).ok());
    };
    let drained = Instant::now() + DRAIN;
    while let Some(wait) = drained.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(wait) {
            Ok(line) => out.take(Some(line)),
            Err(_) => break,
        }
    }
    Ok(Ran { status, stdout: out.stdout, tail: out.tail.into() })
}

#[derive(Default)]
struct Output {
    stdout: Vec<String>,
    tail: VecDeque<String>,
}

impl Output {
    fn take(&mut self, line: Option<(bool, String)>) {
        let Some((is_stdout, line)) = line else { return };
        if is_stdout && self.stdout.len() < STDOUT_LINES {
            self.stdout.push(line.clone());
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }
}

/// SIGTERM to the command's group; SIGKILL to what is left of it after
/// [`TERM_GRACE`] (Dokku's deploy stops the container it was checking
/// when terminated, which takes a while).
fn stop(child: &mut Child) {
    use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};
    let Some(group) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) else { return };
    let _ = kill_process_group(group, Signal::TERM);
    let until = Instant::now() + TERM_GRACE;
    while Instant::now() < until && test_kill_process_group(group).is_ok() {
        let _ = child.try_wait(); // reaps the leader, so an exited group is gone
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = kill_process_group(group, Signal::KILL);
    let _ = child.wait();
}

/// `text` without terminal escape sequences (Dokku colours some output
/// and moves the cursor with `ESC[1G ESC[K`) and without a trailing `\r`.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.next_if_eq(&'[').is_some() {
            // CSI: parameters and intermediates up to a final byte @..~.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else if chars.next().is_some_and(|c| matches!(c, '(' | ')' | '*' | '+')) {
            // A character set designation: one more byte.
            chars.next();
        }
    }
    out.trim_end_matches('\r').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_dropped() {
        assert_eq!(strip_ansi("\x1b[1G\x1b[K-----> Deploying web\r"), "-----> Deploying web");
        assert_eq!(strip_ansi("\x1b[0;32mshop\x1b[0m"), "shop");
        assert_eq!(strip_ansi("a\x1b(Bb"), "ab");
        assert_eq!(strip_ansi("plain"), "plain");
    }

    fn script(dir: &Path, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("cmd");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn output_is_kept_and_the_tail_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = script(dir.path(), "i=0; while [ $i -lt 50 ]; do echo out $i; i=$((i+1)); done; sleep 0.3; echo err >&2; exit 3");
        let ran = run(&cmd, &[], Duration::from_secs(30)).unwrap();
        assert_eq!(ran.status.and_then(|s| s.code()), Some(3));
        assert_eq!((ran.stdout.len(), ran.stdout[49].as_str()), (50, "out 49"));
        assert_eq!(ran.tail.len(), TAIL_LINES);
        assert!(ran.tail.contains(&"err".to_string()) && !ran.tail.contains(&"out 0".to_string()), "{:?}", ran.tail);
    }

    #[test]
    fn a_command_past_its_deadline_is_stopped_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        let cmd = script(dir.path(), &format!("sleep 60 & echo $! > {}; echo started; wait", pid_file.display()));
        let started = Instant::now();
        let ran = run(&cmd, &[], Duration::from_secs(1)).unwrap();
        assert!(ran.status.is_none() && started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        assert_eq!(ran.tail, ["started"]);
        assert!(ran.ending(Duration::from_secs(1)).contains("longer than 1s"));
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let alive = || std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|s| !s.contains(") Z "));
        let until = Instant::now() + Duration::from_secs(5);
        while alive() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!alive(), "the command's child outlived it");
    }
}
