//! SIGINT, SIGTERM and SIGHUP, handled alike by every command: the
//! handler only writes the signal's number to a pipe (all it may safely
//! do); a thread reads it and calls the command's reaction with it, so
//! the exit status can say which signal it was (128 + number).

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

/// The signals a terminal (SIGINT, SIGHUP), systemd and `timeout`
/// (SIGTERM) stop a process with.
pub const STOP_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The write end of the pipe, for the handler.
static PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signal: libc::c_int) {
    let byte = signal as u8;
    let fd = PIPE.load(Ordering::Relaxed);
    // SAFETY: write(2) is async-signal-safe; the buffer is one live byte.
    unsafe {
        libc::write(fd, (&byte as *const u8).cast(), 1);
    }
}

/// Calls `react(signal)` on a thread of its own for each stop signal.
pub fn install(react: impl Fn(i32) + Send + 'static) -> io::Result<()> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors of a live array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    PIPE.store(fds[1], Ordering::SeqCst);
    std::thread::Builder::new().name("signals".into()).spawn(move || loop {
        let mut byte = 0u8;
        // SAFETY: reads one byte into a live buffer from our own pipe.
        match unsafe { libc::read(fds[0], (&mut byte as *mut u8).cast(), 1) } {
            1 => react(i32::from(byte)),
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return,
        }
    })?;
    for signal in STOP_SIGNALS {
        // SAFETY: installs a handler that only calls write(2); the
        // sigaction struct is zeroed and then filled as the manual says.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// The exit status a shell reports for a process ended by `signal`.
pub fn exit_code(signal: i32) -> i32 {
    128 + signal
}
