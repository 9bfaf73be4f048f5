//! Progress on stderr: bars on a terminal (indicatif), one line per
//! finished step otherwise (logs, CI), nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use freshen_image::progress::Silent;
use freshen_image::{Progress, Task};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);
static REPORTER: OnceLock<Arc<dyn Progress>> = OnceLock::new();
static BARS: OnceLock<MultiProgress> = OnceLock::new();

pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `--quiet` was given.
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// The process's reporter, chosen once from `--quiet` and whether stderr
/// is a terminal.
pub fn reporter() -> Arc<dyn Progress> {
    REPORTER
        .get_or_init(|| {
            if QUIET.load(Ordering::Relaxed) {
                Arc::new(Silent)
            } else if std::io::stderr().is_terminal() && std::env::var_os("TERM").is_some_and(|t| t != "dumb") {
                let m = BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)));
                Arc::new(Bars(m.clone()))
            } else {
                Arc::new(Lines)
            }
        })
        .clone()
}

/// Stops drawing (before printing an error over the bars).
pub fn clear() {
    if let Some(m) = BARS.get() {
        let _ = m.clear();
    }
}

struct Bars(MultiProgress);

struct Bar(ProgressBar, MultiProgress);

impl Progress for Bars {
    fn begin(&self, label: &str, total: Option<u64>) -> Box<dyn Task> {
        let bar = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template("{msg:40!} {bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}").unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner().with_style(ProgressStyle::with_template("{spinner} {msg:40!} {bytes:>10} {elapsed:>4}").unwrap_or_else(|_| ProgressStyle::default_spinner())),
        };
        let bar = self.0.add(bar.with_message(freshen_image::escape(label).into_owned()));
        if total.is_none() {
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
        }
        Box::new(Bar(bar, self.0.clone()))
    }
}

impl Task for Bar {
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self, note: &str) {
        let msg = self.0.message();
        let line = format!("{msg}: {}", if note.is_empty() { done(self.0.position(), self.0.elapsed().as_secs_f64()) } else { freshen_image::escape(note).into_owned() });
        self.0.finish_and_clear();
        let _ = self.1.println(line);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if !self.0.is_finished() {
            self.0.abandon();
        }
    }
}

fn done(bytes: u64, secs: f64) -> String {
    if bytes == 0 {
        format!("done in {secs:.1} s")
    } else {
        format!("{:.1} MB in {secs:.1} s", bytes as f64 / 1e6)
    }
}

struct Lines;

struct Line {
    label: String,
    start: Instant,
    bytes: AtomicU64,
}

impl Progress for Lines {
    fn begin(&self, label: &str, _total: Option<u64>) -> Box<dyn Task> {
        Box::new(Line { label: freshen_image::escape(label).into_owned(), start: Instant::now(), bytes: AtomicU64::new(0) })
    }
}

impl Task for Line {
    fn inc(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }
    fn finish(&self, note: &str) {
        let note = if note.is_empty() { done(self.bytes.load(Ordering::Relaxed), self.start.elapsed().as_secs_f64()) } else { freshen_image::escape(note).into_owned() };
        eprintln!("{}: {note}", self.label);
    }
}
