//! A graceful stop (SIGTERM, SIGINT): the binary's signal handler calls
//! [`request`]; a pass polls [`requested`] between targets and steps, so
//! the step in flight finishes and nothing is left half done, and a
//! waiting `watch` is woken by the callbacks registered with
//! [`on_request`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static REQUESTED: AtomicBool = AtomicBool::new(false);
type Callback = Box<dyn Fn() + Send>;
static CALLBACKS: Mutex<Vec<Callback>> = Mutex::new(Vec::new());

/// Asks everything running to stop after its current step.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
    for callback in CALLBACKS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        callback();
    }
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Calls `callback` when a stop is asked for (at once if it already was).
pub fn on_request(callback: impl Fn() + Send + 'static) {
    let mut callbacks = CALLBACKS.lock().unwrap_or_else(|e| e.into_inner());
    if requested() {
        callback();
    }
    callbacks.push(Box::new(callback));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_seen_and_wakes_the_waiting() {
        let (tx, rx) = std::sync::mpsc::channel();
        on_request(move || {
            let _ = tx.send(());
        });
        assert!(!requested());
        assert!(rx.try_recv().is_err());
        request();
        assert!(requested());
        assert!(rx.recv_timeout(std::time::Duration::from_secs(1)).is_ok());
    }
}
