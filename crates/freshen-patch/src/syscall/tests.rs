//! The unpacker and the differ run as any user through [`Emulated`]:
//! device nodes, owners and xattrs (`trusted.overlay.*` included) are
//! recorded by inode and read back as the real calls would show them.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{makedev, openat, FileType, Mode, OFlags, CWD};
use tar::EntryType as T;

use super::{Emulated, Stat, Syscall};
use crate::layer::{write_patch_layer_with, Compression, LayerOptions};
use crate::unpack::unpack_layer_with;
use crate::Error;

const OPAQUE: &str = "trusted.overlay.opaque";

/// A layer tar written field by field, so that names an archiver would
/// refuse (`..`, absolute) can be written too.
#[derive(Default)]
struct Layer(Vec<u8>);

impl Layer {
    fn add(&mut self, name: &str, kind: T, data: &[u8], f: impl FnOnce(&mut tar::Header)) -> &mut Layer {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(if kind == T::Directory { 0o755 } else { 0o644 });
        h.set_mtime(1_600_000_000);
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_size(data.len() as u64);
        f(&mut h);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }

    fn dir(&mut self, name: &str) -> &mut Layer {
        self.add(name, T::Directory, b"", |_| {})
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Layer {
        self.add(name, T::Regular, data, |_| {})
    }

    fn link(&mut self, name: &str, kind: T, target: &str) -> &mut Layer {
        self.add(name, kind, b"", |h| h.as_gnu_mut().unwrap().linkname[..target.len()].copy_from_slice(target.as_bytes()))
    }

    /// PAX records for the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Layer {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = k.len() + v.len() + 3;
            let mut len = rest + rest.to_string().len();
            len = rest + len.to_string().len();
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        self.add("././@PaxHeader", T::XHeader, &body, |_| {})
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.0.clone();
        out.extend_from_slice(&[0u8; 1024]);
        out
    }
}

fn unpack(sys: &Emulated, layer: &Layer, dest: &Path) -> crate::Result<crate::unpack::UnpackStats> {
    fs::create_dir_all(dest).unwrap();
    unpack_layer_with(sys, &layer.bytes()[..], dest, "sha256:test")
}

fn root_owned(h: &mut tar::Header) {
    h.set_uid(0);
    h.set_gid(0);
}

#[test]
fn whiteouts_and_opaque_directories() {
    let t = tempfile::tempdir().unwrap();
    let (sys, dest) = (Emulated::new(), t.path().join("root"));
    let mut l = Layer::default();
    l.dir("a/").file("a/.wh.b", b"").dir("c/").file("c/.wh..wh..opq", b"").file("d/.wh.e", b"");
    l.file("h/.wh.x", b"").dir("h/x/").file("k", b"kept").file(".wh.k", b"").file("a/.wh..wh.plnk", b"");
    unpack(&sys, &l, &dest).unwrap();
    assert!(sys.lstat(&dest.join("a/b")).unwrap().is_whiteout(), "a/.wh.b is a character device 0:0");
    assert!(sys.lstat(&dest.join("d/e")).unwrap().is_whiteout(), "the parent of a whiteout is created");
    assert_eq!(sys.xattrs(&dest.join("c"), false).unwrap().get(OPAQUE).map(Vec::as_slice), Some(&b"y"[..]));
    let x = sys.lstat(&dest.join("h/x")).unwrap();
    assert!(x.is_dir(), "a directory replaces the layer's own whiteout");
    assert_eq!(sys.xattrs(&dest.join("h/x"), false).unwrap().get(OPAQUE).map(Vec::as_slice), Some(&b"y"[..]));
    assert!(!sys.xattrs(&dest.join("a"), false).unwrap().contains_key(OPAQUE));
    assert_eq!(fs::read(dest.join("k")).unwrap(), b"kept", "a whiteout hides lower layers only");
    let names: Vec<String> = fs::read_dir(dest.join("a")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["b"], "aufs metadata is not written");
}

#[test]
fn hard_links() {
    let t = tempfile::tempdir().unwrap();
    let sys = Emulated::new();
    let mut l = Layer::default();
    l.file("usr/bin/a", b"data").link("usr/bin/b", T::Link, "usr/bin/a").link("b2", T::Link, "./usr//bin/a");
    let dest = t.path().join("ok");
    unpack(&sys, &l, &dest).unwrap();
    let (a, b, b2) = (fs::metadata(dest.join("usr/bin/a")).unwrap(), fs::metadata(dest.join("usr/bin/b")).unwrap(), fs::metadata(dest.join("b2")).unwrap());
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 3));
    assert_eq!(a.ino(), b2.ino());
    assert_eq!(fs::read(dest.join("usr/bin/b")).unwrap(), b"data");

    for (i, (layer, why)) in [
        (Layer::default().link("x", T::Link, "missing").bytes(), "does not exist in this layer"),
        (Layer::default().dir("d/").link("x", T::Link, "d").bytes(), "is a directory"),
        (Layer::default().dir("d/").file("d/f", b"").link("s", T::Symlink, "d").link("x", T::Link, "s/f").bytes(), "is a symlink"),
    ]
    .into_iter()
    .enumerate()
    {
        let dest = t.path().join(format!("bad{i}"));
        fs::create_dir_all(&dest).unwrap();
        match unpack_layer_with(&sys, &layer[..], &dest, "sha256:test") {
            Err(Error::Unsafe { reason, .. }) => assert!(reason.contains(why), "{reason}"),
            other => panic!("hard link {i} accepted: {other:?}"),
        }
        assert!(fs::symlink_metadata(dest.join("x")).is_err());
    }
}

#[test]
fn device_nodes_and_setuid_files_are_recorded() {
    let t = tempfile::tempdir().unwrap();
    let (sys, dest) = (Emulated::new(), t.path().join("root"));
    let mut l = Layer::default();
    l.dir("dev/").add("dev/null", T::Char, b"", |h| {
        root_owned(h);
        h.set_mode(0o666);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
    });
    l.add("dev/sda", T::Block, b"", |h| {
        h.set_device_major(8).unwrap();
        h.set_device_minor(0).unwrap();
    });
    l.add("dev/initctl", T::Fifo, b"", |h| h.set_mode(0o600));
    l.add("usr/bin/su", T::Regular, b"#!", |h| {
        root_owned(h);
        h.set_mode(0o4755);
    });
    l.add("usr/bin/wall", T::Regular, b"", |h| {
        h.set_uid(0);
        h.set_gid(5);
        h.set_mode(0o2755);
    });
    unpack(&sys, &l, &dest).unwrap();
    let st = |p: &str| sys.lstat(&dest.join(p)).unwrap();
    let null = st("dev/null");
    assert_eq!((null.kind, null.rdev, null.mode, null.uid, null.gid), (FileType::CharacterDevice, makedev(1, 3), 0o666, 0, 0));
    assert_eq!((st("dev/sda").kind, st("dev/sda").rdev), (FileType::BlockDevice, makedev(8, 0)));
    assert_eq!((st("dev/initctl").kind, st("dev/initctl").mode), (FileType::Fifo, 0o600));
    let su = st("usr/bin/su");
    assert_eq!((su.kind, su.mode, su.uid, su.gid, su.size), (FileType::RegularFile, 0o4755, 0, 0, 2));
    let wall = st("usr/bin/wall");
    assert_eq!((wall.mode, wall.uid, wall.gid), (0o2755, 0, 5));
    // Only the emulation holds the privileged state: the stand-ins are the runner's.
    let real = fs::symlink_metadata(dest.join("dev/null")).unwrap();
    assert!(real.is_file() && real.uid() == rustix::process::geteuid().as_raw());
}

#[test]
fn xattrs_are_recorded_and_overlay_ones_refused() {
    let t = tempfile::tempdir().unwrap();
    let (sys, dest) = (Emulated::new(), t.path().join("root"));
    let mut l = Layer::default();
    l.pax(&[("SCHILY.xattr.security.capability", b"\x01\x00\x00\x02"), ("SCHILY.xattr.user.mime", b"text/x"), ("SCHILY.xattr.trusted.overlay.opaque", b"y")]);
    l.file("usr/bin/ping", b"elf");
    l.pax(&[("SCHILY.xattr.user.on-link", b"1")]).link("usr/bin/ping6", T::Symlink, "ping");
    l.pax(&[("SCHILY.xattr.user.dir", b"d")]).dir("etc/");
    unpack(&sys, &l, &dest).unwrap();
    let want: BTreeMap<String, Vec<u8>> =
        [("security.capability".to_string(), b"\x01\x00\x00\x02".to_vec()), ("user.mime".to_string(), b"text/x".to_vec())].into();
    assert_eq!(sys.xattrs(&dest.join("usr/bin/ping"), false).unwrap(), want);
    assert_eq!(sys.xattrs(&dest.join("usr/bin/ping6"), false).unwrap().get("user.on-link").map(Vec::as_slice), Some(&b"1"[..]));
    assert!(!sys.xattrs(&dest.join("usr/bin/ping6"), false).unwrap().contains_key("security.capability"), "the link itself, not its target");
    assert_eq!(sys.xattrs(&dest.join("etc"), false).unwrap().get("user.dir").map(Vec::as_slice), Some(&b"d"[..]));
}

#[test]
fn paths_escaping_the_root_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let sys = Emulated::new();
    let outside = t.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("f"), "host").unwrap();
    let cases: Vec<(Layer, &str)> = vec![
        ({ let mut l = Layer::default(); l.file("../outside/x", b"!"); l }, "`..` component"),
        ({ let mut l = Layer::default(); l.file("a/../../outside/x", b"!"); l }, "`..` component"),
        ({ let mut l = Layer::default(); l.file("/etc/x", b"!"); l }, "absolute name"),
        ({ let mut l = Layer::default(); l.link("up", T::Symlink, "../outside").file("up/x", b"!"); l }, "is a symlink"),
        ({ let mut l = Layer::default(); l.link("abs", T::Symlink, "/").file("abs/tmp/x", b"!"); l }, "is a symlink"),
        ({ let mut l = Layer::default(); l.link("h", T::Link, "../outside/f"); l }, "`..` component"),
        ({ let mut l = Layer::default(); l.link("up", T::Symlink, "../outside").file("up/.wh.f", b""); l }, "is a symlink"),
        ({ let mut l = Layer::default(); l.file("a/.wh...", b""); l }, "malformed whiteout"),
    ];
    for (i, (layer, why)) in cases.iter().enumerate() {
        let dest = t.path().join(format!("root{i}"));
        match unpack(&sys, layer, &dest) {
            Err(Error::Unsafe { reason, .. }) => assert!(reason.contains(why), "case {i}: {reason}"),
            other => panic!("case {i} accepted: {other:?}"),
        }
    }
    let names: Vec<PathBuf> = fs::read_dir(&outside).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(names, [outside.join("f")]);
    assert_eq!(fs::read_to_string(outside.join("f")).unwrap(), "host");
    assert!(!sys.lstat(&outside.join("f")).unwrap().is_whiteout());
}

// The differ.

fn parent_fd(path: &Path) -> OwnedFd {
    openat(CWD, path.parent().unwrap(), OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap()
}

fn name_of(path: &Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    path.file_name().unwrap().as_bytes()
}

fn write(p: &Path, data: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

fn mknod(sys: &Emulated, p: &Path, kind: FileType, dev: u64) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    sys.mknodat(parent_fd(p).as_fd(), name_of(p), kind, Mode::from_bits_truncate(0o644), dev).unwrap();
}

fn chown(sys: &Emulated, p: &Path, uid: u32, gid: u32) {
    sys.chownat(parent_fd(p).as_fd(), name_of(p), uid, gid).unwrap();
}

fn setxattr(sys: &Emulated, p: &Path, name: &str, value: &[u8]) {
    sys.setxattrat(parent_fd(p).as_fd(), name_of(p), name, value).unwrap();
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// One entry of a written layer.
#[derive(Debug, PartialEq, Eq)]
struct Written {
    name: String,
    kind: T,
    mode: u32,
    uid: u64,
    link: Option<String>,
    dev: Option<(u32, u32)>,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn diff(sys: &Emulated, upper: &Path, lower: &Path, blobs: &Path) -> (Vec<Written>, crate::layer::LayerStats) {
    let (written, stats, _) = diff_blob(sys, upper, lower, blobs);
    (written, stats)
}

/// As [`diff`], with the path of the layer blob.
fn diff_blob(sys: &Emulated, upper: &Path, lower: &Path, blobs: &Path) -> (Vec<Written>, crate::layer::LayerStats, PathBuf) {
    let opts = LayerOptions { clamp_mtime: 1_700_000_000, compression: Compression::Gzip, docker_media_types: false, exclude: vec![], created_by: "test".into() };
    let (layer, stats) = write_patch_layer_with(sys, upper, lower, blobs, &opts).unwrap();
    let f = fs::File::open(blobs.join(layer.digest.hex())).unwrap();
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(f));
    let mut out = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let mut xattrs = Vec::new();
        if let Some(pax) = e.pax_extensions().unwrap() {
            for r in pax {
                let r = r.unwrap();
                if let Some(k) = r.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.push((k.to_string(), r.value_bytes().to_vec()));
                }
            }
        }
        let kind = h.entry_type();
        let dev = matches!(kind, T::Char | T::Block).then(|| (h.device_major().unwrap().unwrap(), h.device_minor().unwrap().unwrap()));
        out.push(Written {
            name: e.path().unwrap().to_string_lossy().into_owned(),
            kind,
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            link: e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned()),
            dev,
            xattrs,
        });
        e.read_to_end(&mut Vec::new()).unwrap();
    }
    (out, stats, blobs.join(layer.digest.hex()))
}

/// What overlayfs leaves in an upper directory: whiteouts (devices 0:0),
/// new device nodes, a file made setuid, a file given a capability, one
/// rewritten as it was (owner and xattrs included), and hard links.
#[test]
fn differ_writes_whiteouts_devices_setuid_xattrs_and_links() {
    let t = tempfile::tempdir().unwrap();
    let sys = Emulated::new();
    let (lower, upper, blobs) = (t.path().join("lower"), t.path().join("upper"), t.path().join("blobs"));
    for root in [&lower, &upper] {
        write(&root.join("etc/kept"), "same\n");
        chown(&sys, &root.join("etc/kept"), 0, 0);
        setxattr(&sys, &root.join("etc/kept"), "user.a", b"1");
        write(&root.join("bin/su"), "su\n");
        chown(&sys, &root.join("bin/su"), 0, 0);
        write(&root.join("bin/ping"), "ping\n");
    }
    write(&lower.join("etc/gone"), "x\n");
    write(&lower.join("etc/attr"), "same\n");
    setxattr(&sys, &lower.join("etc/attr"), "user.a", b"1");
    write(&upper.join("etc/attr"), "same\n");
    setxattr(&sys, &upper.join("etc/attr"), "user.a", b"2");
    mknod(&sys, &upper.join("etc/gone"), FileType::CharacterDevice, 0);
    mknod(&sys, &upper.join("etc/never-there"), FileType::CharacterDevice, 0);
    mknod(&sys, &upper.join("srv/null"), FileType::CharacterDevice, makedev(1, 3));
    chown(&sys, &upper.join("srv/null"), 0, 0);
    mknod(&sys, &upper.join("srv/sda"), FileType::BlockDevice, makedev(8, 1));
    chmod(&upper.join("bin/su"), 0o4755);
    setxattr(&sys, &upper.join("bin/ping"), "security.capability", b"\x01cap");
    write(&upper.join("usr/lib/a"), "linked\n");
    fs::hard_link(upper.join("usr/lib/a"), upper.join("usr/lib/b")).unwrap();
    for root in [&lower, &upper] {
        for d in ["etc", "bin"] {
            chmod(&root.join(d), 0o755);
        }
    }
    let (written, stats, blob) = diff_blob(&sys, &upper, &lower, &blobs);
    let uid = rustix::process::geteuid().as_raw() as u64;
    let entry = |name: &str, kind: T, mode: u32, uid: u64| Written { name: name.into(), kind, mode, uid, link: None, dev: None, xattrs: vec![] };
    let mut want = vec![
        entry("bin/", T::Directory, 0o755, uid),
        Written { xattrs: vec![("security.capability".into(), b"\x01cap".to_vec())], ..entry("bin/ping", T::Regular, 0o644, uid) },
        entry("bin/su", T::Regular, 0o4755, 0),
        entry("etc/", T::Directory, 0o755, uid),
        Written { xattrs: vec![("user.a".into(), b"2".to_vec())], ..entry("etc/attr", T::Regular, 0o644, uid) },
        entry("etc/.wh.gone", T::Regular, 0o644, 0),
    ];
    let srv_mode = fs::metadata(upper.join("srv")).unwrap().mode() & 0o7777;
    want.push(entry("srv/", T::Directory, srv_mode, uid));
    want.push(Written { dev: Some((1, 3)), ..entry("srv/null", T::Char, 0o644, 0) });
    want.push(Written { dev: Some((8, 1)), ..entry("srv/sda", T::Block, 0o644, uid) });
    let usr_mode = fs::metadata(upper.join("usr")).unwrap().mode() & 0o7777;
    want.push(entry("usr/", T::Directory, usr_mode, uid));
    want.push(entry("usr/lib/", T::Directory, usr_mode, uid));
    want.push(entry("usr/lib/a", T::Regular, 0o644, uid));
    want.push(Written { link: Some("usr/lib/a".into()), ..entry("usr/lib/b", T::Link, 0o644, uid) });
    let file_mode = fs::metadata(upper.join("usr/lib/a")).unwrap().mode() & 0o7777;
    for w in &mut want {
        if w.mode == 0o644 && matches!(w.kind, T::Regular | T::Link) && !w.name.contains(".wh.") {
            w.mode = file_mode;
        }
    }
    assert_eq!(written, want);
    assert_eq!((stats.whiteouts, stats.unchanged_dropped, stats.files), (1, 1, 5));

    // The unpacker reads the layer back as the differ meant it.
    let (back, dest) = (Emulated::new(), t.path().join("back"));
    fs::create_dir_all(&dest).unwrap();
    unpack_layer_with(&back, flate2::read::MultiGzDecoder::new(fs::File::open(blob).unwrap()), &dest, "sha256:patch").unwrap();
    let st = |p: &str| back.lstat(&dest.join(p)).unwrap();
    assert!(st("etc/gone").is_whiteout());
    assert_eq!((st("bin/su").mode, st("bin/su").uid), (0o4755, 0));
    assert_eq!((st("srv/null").kind, st("srv/null").rdev, st("srv/null").uid), (FileType::CharacterDevice, makedev(1, 3), 0));
    assert_eq!(back.xattrs(&dest.join("bin/ping"), false).unwrap().get("security.capability").map(Vec::as_slice), Some(&b"\x01cap"[..]));
    assert_eq!(fs::metadata(dest.join("usr/lib/b")).unwrap().ino(), fs::metadata(dest.join("usr/lib/a")).unwrap().ino());
}

/// A maintainer script's `rm -rf DIR; mkdir DIR` with one file as it
/// was: overlayfs marks DIR opaque. The layer must not hide the file it
/// drops as unchanged, so it writes whiteouts for what is gone instead
/// of an opaque marker, also below new directories in DIR. Secrets the
/// sandbox made stay out and are counted.
#[test]
fn recreated_directory_is_written_as_differences() {
    let t = tempfile::tempdir().unwrap();
    let sys = Emulated::new();
    let (lower, upper, blobs) = (t.path().join("lower"), t.path().join("upper"), t.path().join("blobs"));
    write(&lower.join("d/kept.txt"), "same\n");
    write(&lower.join("d/old.txt"), "old\n");
    write(&lower.join("d/sub/gone.txt"), "x\n");
    write(&lower.join("d/sub/also.txt"), "y\n");
    write(&upper.join("d/kept.txt"), "same\n");
    write(&upper.join("d/new.txt"), "new\n");
    write(&upper.join("d/sub/also.txt"), "y\n");
    write(&upper.join("etc/ssh/ssh_host_ed25519_key"), "secret\n");
    write(&upper.join("etc/keygen.conf"), "x\n");
    fs::create_dir_all(lower.join("etc/ssh")).unwrap();
    for p in [&lower, &upper] {
        for d in ["d", "d/sub", "etc", "etc/ssh"] {
            chmod(&p.join(d), 0o755);
        }
    }
    setxattr(&sys, &upper.join("d"), OPAQUE, b"y");
    let (written, stats) = diff(&sys, &upper, &lower, &blobs);
    let names: Vec<&str> = written.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["d/", "d/new.txt", "d/.wh.old.txt", "d/sub/", "d/sub/.wh.gone.txt", "etc/", "etc/keygen.conf"]);
    assert!(written.iter().all(|w| w.xattrs.is_empty()), "no opaque marker is written");
    assert_eq!(stats.secrets_left_out, ["etc/ssh/ssh_host_ed25519_key"]);
    assert_eq!((stats.whiteouts, stats.unchanged_dropped), (2, 2));
}

/// A lower layer's absolute symlink on the path of a changed file
/// (`d -> HOST`, replaced by a directory in the upper one) is resolved
/// inside the image: the host directory it names is never compared
/// with, so a file equal to the host's is still written, and the host's
/// names give no whiteouts.
#[test]
fn lower_symlinks_resolve_inside_the_image() {
    let t = tempfile::tempdir().unwrap();
    let sys = Emulated::new();
    let (lower, upper, blobs, host) = (t.path().join("lower"), t.path().join("upper"), t.path().join("blobs"), t.path().join("host"));
    write(&host.join("x"), "same as the host\n");
    write(&host.join("host-only-name"), "h\n");
    fs::create_dir_all(&lower).unwrap();
    std::os::unix::fs::symlink(&host, lower.join("d")).unwrap();
    write(&upper.join("d/x"), "same as the host\n");
    chmod(&upper.join("d"), 0o755);
    chmod(&host, 0o755);
    setxattr(&sys, &upper.join("d"), OPAQUE, b"y");
    let (written, stats) = diff(&sys, &upper, &lower, &blobs);
    let names: Vec<&str> = written.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["d/", "d/x"]);
    assert_eq!((stats.whiteouts, stats.unchanged_dropped), (0, 0));
}

/// The stand-in of a removed device node forgets its record, so a new
/// file that reuses the inode number is not taken for a device.
#[test]
fn emulation_forgets_unlinked_inodes() {
    let t = tempfile::tempdir().unwrap();
    let sys = Emulated::new();
    let p = t.path().join("n");
    mknod(&sys, &p, FileType::CharacterDevice, 0);
    let st: Stat = sys.lstat(&p).unwrap();
    assert!(st.is_whiteout());
    sys.unlinkat(parent_fd(&p).as_fd(), b"n", rustix::fs::AtFlags::empty()).unwrap();
    assert!(sys.inodes.lock().unwrap().is_empty());
}
