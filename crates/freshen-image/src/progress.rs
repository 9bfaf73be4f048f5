//! Progress reporting: libraries report, the binary draws. A [`Progress`]
//! hands out one [`Task`] per long step (pulling a layer, pushing a blob,
//! exporting from the Docker Engine); [`Counting`] feeds a task from a
//! stream as it is read.

use std::io::{self, Read};
use std::sync::Arc;

/// Where progress goes.
pub trait Progress: Send + Sync {
    /// A step begins: `label` says what (`pull sha256:ab12…`), `total` is
    /// its size in bytes when known.
    fn begin(&self, label: &str, total: Option<u64>) -> Box<dyn Task>;
}

/// One step in progress. Dropping a task without [`Task::finish`] means
/// it failed or was abandoned.
pub trait Task: Send + Sync {
    /// `n` more bytes done.
    fn inc(&self, n: u64);
    /// The step is complete; `note` is a short result (`skipped: exists`).
    fn finish(&self, note: &str);
}

/// Reports nothing.
pub struct Silent;

struct SilentTask;

impl Task for SilentTask {
    fn inc(&self, _: u64) {}
    fn finish(&self, _: &str) {}
}

impl Progress for Silent {
    fn begin(&self, _: &str, _: Option<u64>) -> Box<dyn Task> {
        Box::new(SilentTask)
    }
}

/// A shared silent reporter.
pub fn silent() -> Arc<dyn Progress> {
    Arc::new(Silent)
}

/// A reader that reports what passes through it.
pub struct Counting<R> {
    inner: R,
    task: Box<dyn Task>,
}

impl<R> Counting<R> {
    pub fn new(inner: R, task: Box<dyn Task>) -> Counting<R> {
        Counting { inner, task }
    }

    pub fn task(&self) -> &dyn Task {
        self.task.as_ref()
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.task.inc(n as u64);
        Ok(n)
    }
}
