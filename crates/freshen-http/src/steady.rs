//! The minimum-progress rule for response bodies: a server that sends its
//! headers and then stalls or trickles must not hold a transfer forever.
//! No byte for a whole window fails the read (the transport's per-read
//! timeout); fewer than [`MIN_RATE`] bytes a second on average over a
//! window of time spent waiting on the server fails it too. Only time
//! inside the server's reads counts, so a slow consumer (decompressing,
//! writing to disk) is never blamed on the server.

use std::io::{self, Read};
use std::time::{Duration, Instant};

/// Bytes a second a body must average over each window.
pub const MIN_RATE: u64 = 1024;

/// The window, in seconds, unless `FRESHEN_STALL_TIMEOUT` names another.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// The window from the environment (`FRESHEN_STALL_TIMEOUT`, seconds), else
/// [`DEFAULT_WINDOW`].
pub fn window_from_env() -> Duration {
    std::env::var("FRESHEN_STALL_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(DEFAULT_WINDOW, Duration::from_secs)
}

/// A body reader held to the minimum-progress rule.
pub struct Steady<R> {
    inner: R,
    window: Duration,
    /// Time spent in the server's reads, and bytes got, this window.
    waited: Duration,
    got: u64,
}

impl<R> Steady<R> {
    pub fn new(inner: R, window: Duration) -> Steady<R> {
        Steady { inner, window, waited: Duration::ZERO, got: 0 }
    }
}

impl<R: Read> Read for Steady<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = Instant::now();
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if is_timeout(&e) => {
                let secs = self.window.as_secs();
                return Err(io::Error::new(io::ErrorKind::TimedOut, format!("no byte from the server for {secs} s: a stalled transfer")));
            }
            Err(e) => return Err(e),
        };
        self.waited += start.elapsed();
        self.got += n as u64;
        if n > 0 && self.waited >= self.window {
            let need = MIN_RATE * self.window.as_secs().max(1);
            if self.got < need {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the server sent {} bytes in {} s, less than {MIN_RATE} bytes a second: a stalled transfer", self.got, self.waited.as_secs()),
                ));
            }
            (self.waited, self.got) = (Duration::ZERO, 0);
        }
        Ok(n)
    }
}

/// A read timeout, as the OS or ureq reports it.
fn is_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut || e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()).is_some_and(|u| matches!(u, ureq::Error::Timeout(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields one byte per read, each after `pause`.
    struct Slow(Duration, usize);

    impl Read for Slow {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.1 == 0 {
                return Ok(0);
            }
            std::thread::sleep(self.0);
            self.1 -= 1;
            buf[0] = b'x';
            Ok(1)
        }
    }

    #[test]
    fn trickle_fails_and_fast_bodies_pass() {
        let mut slow = Steady::new(Slow(Duration::from_millis(30), 1000), Duration::from_millis(100));
        let err = io::copy(&mut slow, &mut io::sink()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("stalled"), "{err}");
        let data = vec![7u8; 1 << 20];
        let mut fast = Steady::new(&data[..], Duration::from_millis(1));
        assert_eq!(io::copy(&mut fast, &mut io::sink()).unwrap(), 1 << 20);
    }
}
