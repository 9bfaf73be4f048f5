#![no_main]
//! The layer walker the unpacker uses (the same tar guard, names resolved
//! beneath the root, whiteouts, links, devices, PAX xattrs), writing into
//! a fresh directory with the privileged calls emulated. Whatever it
//! accepts or refuses, nothing may appear outside that directory.
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use freshen_patch::syscall::Emulated;
use freshen_patch::unpack::unpack_layer_with;
use libfuzzer_sys::fuzz_target;

static RUN: AtomicU64 = AtomicU64::new(0);

fn base() -> PathBuf {
    std::env::temp_dir().join(format!("freshen-fuzz-unpack-{}", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    let base = base();
    let dest = base.join(RUN.fetch_add(1, Ordering::Relaxed).to_string());
    std::fs::create_dir_all(&dest).unwrap();
    let _ = unpack_layer_with(&Emulated::new(), data, &dest, "sha256:fuzz");
    let outside: Vec<_> = std::fs::read_dir(&base).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(outside, [dest.clone()], "written outside the destination");
    make_removable(&dest);
    std::fs::remove_dir_all(&dest).unwrap();
});

/// Directories unpacked with mode 0 are only removable again when writable.
fn make_removable(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                make_removable(&e.path());
            }
        }
    }
}
