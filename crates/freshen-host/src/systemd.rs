//! systemd's notification protocol for `Type=notify` units: one datagram
//! per state change (`READY=1`, `STOPPING=1`, `STATUS=...`,
//! `WATCHDOG=1`) to the unix socket `$NOTIFY_SOCKET` names (a path, or an
//! abstract name written `@name`). Without that variable (not started by
//! systemd) nothing is sent.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use tracing::warn;

/// Sends `state` (`KEY=VALUE` lines) to the service manager, if any.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let socket = socket.to_string_lossy().into_owned();
    if let Err(e) = send(&socket, state) {
        warn!(socket = %socket, error = %e, "cannot notify the service manager");
    }
}

fn send(socket: &str, state: &str) -> std::io::Result<()> {
    let addr = match socket.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())?
        }
        None => SocketAddr::from_pathname(socket)?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when set for
/// this process (`$WATCHDOG_PID` unset or this pid).
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim() != std::process::id().to_string() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Sends `WATCHDOG=1` every [`watchdog_interval`] from a thread of its
/// own, until `alive` says no.
pub fn spawn_watchdog(alive: impl Fn() -> bool + Send + 'static) {
    let Some(every) = watchdog_interval() else { return };
    std::thread::spawn(move || {
        while alive() {
            notify("WATCHDOG=1");
            std::thread::sleep(every);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_reach_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        use std::os::linux::net::SocketAddrExt;
        let name = format!("freshen-test-{}", std::process::id());
        let abs = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        send(&format!("@{name}"), "STOPPING=1").unwrap();
        let n = abs.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
