//! Unpacking layers into overlayfs format, hostile archives, and the layer
//! cache. These tests need root (devices, owners, trusted xattrs, mounts).

use std::cell::Cell;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use freshen_image::{open_local, write_layer_from_dir, write_oci_layout, Image, ImageRef, ImageSource, Layer, LayoutImage, Platform};
use freshen_patch::cache::LayerCache;
use freshen_patch::unpack::{unpack_layer, UnpackStats};
use freshen_patch::Error;
use tar::{Builder, EntryType, Header};

const LABEL: &str = "sha256:test";

/// A tar built entry by entry.
struct Tar(Builder<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        Tar(Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, mode: u32, uid: u64, gid: u64, mtime: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        h.set_size(0);
        h
    }

    fn dir(mut self, path: &str, mode: u32, uid: u64, gid: u64, mtime: u64) -> Tar {
        let mut h = Tar::header(EntryType::Directory, mode, uid, gid, mtime);
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    fn file_with(mut self, path: &str, data: &[u8], mode: u32, uid: u64, gid: u64, mtime: u64) -> Tar {
        let mut h = Tar::header(EntryType::Regular, mode, uid, gid, mtime);
        h.set_size(data.len() as u64);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }

    fn file(self, path: &str, data: &[u8]) -> Tar {
        self.file_with(path, data, 0o644, 0, 0, 1_600_000_000)
    }

    fn symlink(self, path: &str, target: &str) -> Tar {
        self.raw(path.as_bytes(), EntryType::Symlink, target.as_bytes(), b"")
    }

    fn hardlink(self, path: &str, target: &str) -> Tar {
        self.raw(path.as_bytes(), EntryType::Link, target.as_bytes(), b"")
    }

    fn node(mut self, path: &str, kind: EntryType, major: u32, minor: u32, mode: u32) -> Tar {
        let mut h = Tar::header(kind, mode, 0, 0, 1_600_000_000);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    /// An entry with exactly these name and link bytes: the builder's own
    /// setters refuse `..` and absolute names.
    fn raw(mut self, name: &[u8], kind: EntryType, link: &[u8], data: &[u8]) -> Tar {
        let mut h = Tar::header(kind, 0o644, 0, 0, 1_600_000_000);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn pax(mut self, records: &[(&str, &[u8])]) -> Tar {
        self.0.append_pax_extensions(records.iter().copied()).unwrap();
        self
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// `base/dest`, empty, with `base` as the place nothing may escape to.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let base = tempfile::tempdir().unwrap();
    let dest = base.path().join("dest");
    fs::create_dir(&dest).unwrap();
    (base, dest)
}

fn unpack(tar: Tar, dest: &Path) -> freshen_patch::Result<UnpackStats> {
    unpack_layer(&tar.bytes()[..], dest, LABEL)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn lmeta(p: impl AsRef<Path>) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap()
}

fn assert_unsafe(res: freshen_patch::Result<UnpackStats>, what: &str) {
    match res {
        Err(Error::Unsafe { digest, entry, reason }) => {
            assert_eq!(digest, LABEL);
            assert!(!entry.is_empty() || !reason.is_empty());
            eprintln!("{what}: refused: {entry}: {reason}");
        }
        other => panic!("{what}: expected Error::Unsafe, got {other:?}"),
    }
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(path, name, &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn regular_entries_and_metadata() {
    let (_base, dest) = setup();
    // A v2 file capability: cap_net_bind_service, effective.
    let cap: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let tar = Tar::new()
        .dir("./", 0o755, 0, 0, 1_100_000_000)
        .dir("tmp", 0o1777, 0, 0, 1_200_000_000)
        .dir("usr/bin", 0o755, 0, 0, 1_300_000_000)
        .file_with("usr/bin/su", b"#!/bin/true\n", 0o4755, 0, 0, 1_000_000_000)
        .file_with("usr/bin/wall", b"wall", 0o2755, 0, 5, 1_000_000_001)
        .file_with("home/u/notes", b"hello", 0o600, 1234, 5678, 1_000_000_002)
        .pax(&[("SCHILY.xattr.security.capability", &cap), ("SCHILY.xattr.user.note", b"n")])
        .file_with("usr/bin/ping", b"ping", 0o755, 0, 0, 1_000_000_003)
        .pax(&[("SCHILY.xattr.trusted.overlay.redirect", b"/etc")])
        .file("usr/bin/sneaky", b"x")
        .symlink("usr/bin/sh", "dash")
        .symlink("etc/abs-link", "/etc/passwd")
        .hardlink("usr/bin/su2", "usr/bin/su")
        .node("dev/null", EntryType::Char, 1, 3, 0o666)
        .node("dev/loop0", EntryType::Block, 7, 0, 0o660)
        .node("run/fifo", EntryType::Fifo, 0, 0, 0o640)
        // Written after its parent directory entry: the directory's mtime still holds.
        .file("tmp/late", b"late");
    let stats = unpack(tar, &dest).unwrap();
    assert_eq!(stats.entries, 15);
    assert_eq!(stats.bytes, 12 + 4 + 5 + 4 + 1 + 4);

    let m = lmeta(dest.join("usr/bin/su"));
    assert!(m.is_file());
    assert_eq!(m.mode() & 0o7777, 0o4755);
    assert_eq!(m.mtime(), 1_000_000_000);
    assert_eq!(fs::read(dest.join("usr/bin/su")).unwrap(), b"#!/bin/true\n");
    let m = lmeta(dest.join("usr/bin/wall"));
    assert_eq!((m.mode() & 0o7777, m.gid()), (0o2755, 5));
    let m = lmeta(dest.join("home/u/notes"));
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777, m.mtime()), (1234, 5678, 0o600, 1_000_000_002));
    assert_eq!(xattr(&dest.join("usr/bin/ping"), "security.capability").as_deref(), Some(&cap[..]));
    assert_eq!(xattr(&dest.join("usr/bin/ping"), "user.note").as_deref(), Some(&b"n"[..]));
    assert_eq!(lmeta(dest.join("usr/bin/ping")).mtime(), 1_000_000_003);
    // Overlay's own xattrs are never taken from an archive.
    assert_eq!(xattr(&dest.join("usr/bin/sneaky"), "trusted.overlay.redirect"), None);

    // Directories: mode, and mtimes set after their children were written.
    let m = lmeta(dest.join("tmp"));
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o1777, 1_200_000_000));
    assert_eq!(lmeta(dest.join("usr/bin")).mtime(), 1_300_000_000);
    assert_eq!(lmeta(&dest).mtime(), 1_100_000_000);
    // Parents without an entry: 0755, root.
    let m = lmeta(dest.join("home/u"));
    assert_eq!((m.is_dir(), m.mode() & 0o7777, m.uid()), (true, 0o755, 0));

    // Symlinks are stored verbatim, never followed.
    assert_eq!(fs::read_link(dest.join("usr/bin/sh")).unwrap(), Path::new("dash"));
    assert_eq!(fs::read_link(dest.join("etc/abs-link")).unwrap(), Path::new("/etc/passwd"));
    assert!(lmeta(dest.join("etc/abs-link")).file_type().is_symlink());
    assert_eq!(lmeta(dest.join("usr/bin/sh")).mtime(), 1_600_000_000);

    // Hardlinks share the inode.
    let (a, b) = (lmeta(dest.join("usr/bin/su")), lmeta(dest.join("usr/bin/su2")));
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));

    let m = lmeta(dest.join("dev/null"));
    assert!(m.file_type().is_char_device());
    assert_eq!((m.rdev(), m.mode() & 0o7777), (rustix::fs::makedev(1, 3), 0o666));
    let m = lmeta(dest.join("dev/loop0"));
    assert!(m.file_type().is_block_device());
    assert_eq!(m.rdev(), rustix::fs::makedev(7, 0));
    let m = lmeta(dest.join("run/fifo"));
    assert!(m.file_type().is_fifo());
    assert_eq!(m.mode() & 0o7777, 0o640);
}

#[test]
fn whiteouts_become_overlay_format() {
    let (_base, dest) = setup();
    let tar = Tar::new()
        .dir("etc", 0o755, 0, 0, 1)
        .file("etc/.wh.motd", b"")
        .file("a/b/.wh..wh..opq", b"")
        .file("a/b/new", b"new")
        // aufs bookkeeping is dropped.
        .file(".wh..wh.plnk", b"");
    unpack(tar, &dest).unwrap();
    let m = lmeta(dest.join("etc/motd"));
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), 0);
    assert!(fs::symlink_metadata(dest.join("etc/.wh.motd")).is_err());
    assert_eq!(xattr(&dest.join("a/b"), "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert_eq!(xattr(&dest.join("a"), "trusted.overlay.opaque"), None);
    assert!(fs::symlink_metadata(dest.join("a/b/.wh..wh..opq")).is_err());
    assert_eq!(listing(&dest), vec!["a", "etc"]);
}

#[test]
fn later_entries_replace_earlier_ones() {
    let (_base, dest) = setup();
    let tar = Tar::new()
        .file("f", b"one")
        .file("f", b"two")
        .dir("d", 0o700, 0, 0, 1)
        .file("d/keep", b"k")
        .dir("d", 0o755, 0, 0, 2) // a directory over a directory keeps it
        .dir("gone", 0o755, 0, 0, 1)
        .file("gone/child", b"c")
        .symlink("gone", "elsewhere") // anything else replaces it
        .file("l", b"target")
        .symlink("l", "f")
        .file(".wh.w", b"")
        .dir("w", 0o755, 0, 0, 1); // a directory over a whiteout of this layer: opaque
    unpack(tar, &dest).unwrap();
    assert_eq!(fs::read(dest.join("f")).unwrap(), b"two");
    assert_eq!(fs::read(dest.join("d/keep")).unwrap(), b"k");
    assert_eq!(lmeta(dest.join("d")).mode() & 0o7777, 0o755);
    assert_eq!(fs::read_link(dest.join("gone")).unwrap(), Path::new("elsewhere"));
    assert_eq!(fs::read_link(dest.join("l")).unwrap(), Path::new("f"));
    assert!(lmeta(dest.join("w")).is_dir());
    assert_eq!(xattr(&dest.join("w"), "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]));
}

#[test]
fn hostile_names_are_refused() {
    let (base, dest) = setup();
    assert_unsafe(unpack(Tar::new().raw(b"../escape", EntryType::Regular, b"", b"x"), &dest), "../escape");
    assert_unsafe(unpack(Tar::new().raw(b"a/../../escape", EntryType::Regular, b"", b"x"), &dest), "a/../../escape");
    assert_unsafe(unpack(Tar::new().raw(b"..", EntryType::Directory, b"", b""), &dest), "..");
    assert_unsafe(unpack(Tar::new().raw(b"a/.wh...", EntryType::Regular, b"", b""), &dest), "whiteout of ..");
    assert_eq!(listing(base.path()), vec!["dest"]);

    // Absolute names are refused, not stripped (see `clean` in unpack.rs):
    // either way nothing may land outside dest.
    let abs = format!("/freshen-test-abs-{}", std::process::id());
    let name = format!("{abs}/escape");
    assert_unsafe(unpack(Tar::new().raw(name.as_bytes(), EntryType::Regular, b"", b"x"), &dest), "absolute");
    assert!(!Path::new(&abs).exists());
    assert!(listing(&dest).is_empty());
}

#[test]
fn symlinked_parents_are_not_followed() {
    let (base, dest) = setup();
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path().to_str().unwrap();
    let tar = Tar::new().symlink("evil", out).file("evil/file", b"pwned");
    assert_unsafe(unpack(tar, &dest), "evil -> outside, evil/file");
    assert!(listing(outside.path()).is_empty());

    let (_base2, dest2) = setup();
    let tar = Tar::new().symlink("evil", out).dir("evil/sub", 0o755, 0, 0, 1);
    assert_unsafe(unpack(tar, &dest2), "evil -> outside, evil/sub/");
    let tar = Tar::new().symlink("evil2", out).file("evil2/.wh.x", b"");
    assert_unsafe(unpack(tar, &dest2), "evil -> outside, evil/.wh.x");
    let tar = Tar::new().symlink("evil3", out).file("evil3/.wh..wh..opq", b"");
    assert_unsafe(unpack(tar, &dest2), "evil -> outside, evil/.wh..wh..opq");
    assert!(listing(outside.path()).is_empty());
    assert_eq!(xattr(outside.path(), "trusted.overlay.opaque"), None);

    let tar = Tar::new().symlink("evil", "..").file("evil/x", b"pwned");
    let (base3, dest3) = setup();
    assert_unsafe(unpack(tar, &dest3), "evil -> .., evil/x");
    assert_eq!(listing(base3.path()), vec!["dest"]);

    // Links and nodes below a symlinked parent too.
    let (_b5, dest5) = setup();
    let tar = Tar::new().file("f", b"f").symlink("evil", out).hardlink("evil/hl", "f");
    assert_unsafe(unpack(tar, &dest5), "evil -> outside, hardlink evil/hl");
    let tar = Tar::new().symlink("evil", out).symlink("evil/sl", "/etc");
    assert_unsafe(unpack(tar, &dest5), "evil -> outside, symlink evil/sl");
    let tar = Tar::new().symlink("evil", out).node("evil/fifo", EntryType::Fifo, 0, 0, 0o644);
    assert_unsafe(unpack(tar, &dest5), "evil -> outside, fifo evil/fifo");
    assert!(listing(outside.path()).is_empty());

    // An entry over a symlink replaces the symlink; it never writes through it.
    let (_b6, dest6) = setup();
    let target = outside.path().join("target");
    fs::write(&target, b"original").unwrap();
    let mode = lmeta(outside.path()).mode();
    let tar = Tar::new()
        .symlink("f", target.to_str().unwrap())
        .file_with("f", b"replaced", 0o777, 0, 0, 1)
        .symlink("d", out)
        .dir("d", 0o777, 0, 0, 1)
        .symlink("n", target.to_str().unwrap())
        .node("n", EntryType::Fifo, 0, 0, 0o777);
    unpack(tar, &dest6).unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"original");
    assert_eq!(lmeta(&target).mode() & 0o777, 0o644);
    assert_eq!(lmeta(outside.path()).mode(), mode);
    assert_eq!(fs::read(dest6.join("f")).unwrap(), b"replaced");
    assert!(lmeta(dest6.join("d")).is_dir());
    assert!(lmeta(dest6.join("n")).file_type().is_fifo());
    assert_eq!(listing(outside.path()), vec!["target"]);

    // Even a symlink that points inside is not followed.
    let (_base4, dest4) = setup();
    let tar = Tar::new().dir("usr/lib", 0o755, 0, 0, 1).symlink("lib", "usr/lib").file("lib/x", b"x");
    assert_unsafe(unpack(tar, &dest4), "lib -> usr/lib, lib/x");
    assert_eq!(listing(&dest4.join("usr/lib")), Vec::<String>::new());
    assert_eq!(listing(base.path()), vec!["dest"]);
}

#[test]
fn hostile_hardlinks_are_refused() {
    let (base, dest) = setup();
    let sentinel = base.path().join("outside");
    fs::write(&sentinel, b"secret").unwrap();

    assert_unsafe(unpack(Tar::new().hardlink("x", "../outside"), &dest), "link to ../outside");
    assert_eq!(lmeta(&sentinel).nlink(), 1);

    let passwd_links = lmeta("/etc/passwd").nlink();
    assert_unsafe(unpack(Tar::new().hardlink("passwd", "/etc/passwd"), &dest), "link to /etc/passwd");
    assert_eq!(lmeta("/etc/passwd").nlink(), passwd_links);
    assert!(fs::symlink_metadata(dest.join("passwd")).is_err());

    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    fs::write(&secret, b"s").unwrap();
    let tar = Tar::new().symlink("evil", outside.path().to_str().unwrap()).hardlink("x", "evil/secret");
    let (_b2, dest2) = setup();
    assert_unsafe(unpack(tar, &dest2), "link through a symlink");
    assert_eq!(lmeta(&secret).nlink(), 1);
    assert!(fs::symlink_metadata(dest2.join("x")).is_err());

    let (_b3, dest3) = setup();
    assert_unsafe(unpack(Tar::new().hardlink("x", "missing"), &dest3), "link to a missing file");
    assert_unsafe(unpack(Tar::new().dir("d", 0o755, 0, 0, 1).hardlink("x", "d"), &dest3), "link to a directory");
    assert_eq!(listing(base.path()), vec!["dest", "outside"]);
    assert_eq!(listing(outside.path()), vec!["secret"]);

    // A hardlink to a symlink links the symlink itself.
    let (_b4, dest4) = setup();
    unpack(Tar::new().symlink("s", "/etc/passwd").hardlink("t", "s"), &dest4).unwrap();
    assert!(lmeta(dest4.join("t")).file_type().is_symlink());
    assert_eq!(lmeta(dest4.join("t")).ino(), lmeta(dest4.join("s")).ino());
    assert_eq!(lmeta("/etc/passwd").nlink(), passwd_links);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let (_base, dest) = setup();
    let mut junk = vec![0x42u8; 1024];
    assert!(unpack_layer(&junk[..], &dest, LABEL).is_err());
    junk = Tar::new().file("a", b"abc").bytes();
    junk.truncate(600); // cut in the middle of the data
    assert!(unpack_layer(&junk[..], &dest, LABEL).is_err());
    let huge_uid = {
        let mut h = Tar::header(EntryType::Regular, 0o644, u32::MAX as u64, 0, 0);
        let mut b = Builder::new(Vec::new());
        b.append_data(&mut h, "u", &[][..]).unwrap();
        b.into_inner().unwrap()
    };
    assert_unsafe(unpack_layer(&huge_uid[..], &dest, LABEL), "uid -1");
    assert!(unpack_layer(&[][..], &dest, LABEL).unwrap().entries == 0);
}

/// Unmounts when dropped, so a failing assertion leaves no mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn unpacked_layers_stack_as_overlay_lowers() {
    let base = tempfile::tempdir().unwrap();
    let (lower, upper, merged) = (base.path().join("lower"), base.path().join("upper"), base.path().join("merged"));
    for d in [&lower, &upper, &merged] {
        fs::create_dir(d).unwrap();
    }
    let bottom = Tar::new()
        .dir("etc", 0o755, 0, 0, 1)
        .file("etc/keep", b"keep")
        .file("etc/gone", b"gone")
        .dir("opq", 0o755, 0, 0, 1)
        .file("opq/old", b"old")
        .dir("opq/olddir", 0o755, 0, 0, 1);
    let top = Tar::new()
        .dir("etc", 0o755, 0, 0, 1)
        .file("etc/.wh.gone", b"")
        .dir("opq", 0o755, 0, 0, 1)
        .file("opq/.wh..wh..opq", b"")
        .file("opq/new", b"new");
    unpack(bottom, &lower).unwrap();
    unpack(top, &upper).unwrap();
    let opts = format!("lowerdir={}:{}", upper.display(), lower.display());
    let status = Command::new("mount").args(["-t", "overlay", "overlay", "-o", &opts]).arg(&merged).status().unwrap();
    assert!(status.success(), "mount -t overlay failed");
    let _guard = Mount(merged.clone());
    assert_eq!(fs::read(merged.join("etc/keep")).unwrap(), b"keep");
    assert!(fs::symlink_metadata(merged.join("etc/gone")).is_err(), "the whiteout hides the lower file");
    assert_eq!(listing(&merged.join("etc")), vec!["keep"]);
    assert_eq!(listing(&merged.join("opq")), vec!["new"], "the opaque directory hides the lower children");
}

/// An image source counting how often a layer is opened.
struct Counting<'a> {
    inner: &'a dyn ImageSource,
    opens: Cell<usize>,
}

impl ImageSource for Counting<'_> {
    fn image(&self) -> &Image {
        self.inner.image()
    }
    fn open_layer(&self, layer: &Layer) -> freshen_image::Result<Box<dyn Read + Send + '_>> {
        self.opens.set(self.opens.get() + 1);
        self.inner.open_layer(layer)
    }
}

/// An OCI layout at `base/layout` holding one layer made from a small tree;
/// `diff_id` replaces the layer's real diff id in the config when given.
fn layout(base: &Path, diff_id: Option<freshen_image::Digest>) -> (PathBuf, freshen_image::LayerBlob) {
    let tree = base.join("tree");
    fs::create_dir_all(tree.join("etc/apt")).unwrap();
    fs::write(tree.join("etc/apt/sources.list"), b"deb http://deb.debian.org/debian bookworm main\n").unwrap();
    fs::write(tree.join("etc/hostname"), b"box\n").unwrap();
    fs::set_permissions(tree.join("etc/hostname"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("hostname", tree.join("etc/name")).unwrap();
    let layout = base.join("layout");
    let mut blob = write_layer_from_dir(&tree, &layout, Some(1_700_000_000), "test").unwrap();
    let real = blob.clone();
    if let Some(d) = diff_id {
        blob.diff_id = d;
    }
    let host = Platform::host();
    write_oci_layout(&layout, &LayoutImage { tag: "t", os: "linux", architecture: &host.architecture, layers: &[blob] }).unwrap();
    (layout, real)
}

fn open_layout(layout: &Path) -> freshen_image::StoreSource {
    open_local(&ImageRef::parse(&format!("oci:{}:t", layout.display())).unwrap(), &Platform::host()).unwrap()
}

fn tmp_leftovers(root: &Path) -> Vec<String> {
    listing(root).into_iter().filter(|n| n.starts_with(".tmp-")).collect()
}

#[test]
fn cache_unpacks_once() {
    let base = tempfile::tempdir().unwrap();
    let (layout, blob) = layout(base.path(), None);
    let src = open_layout(&layout);
    let counting = Counting { inner: &src, opens: Cell::new(0) };
    let root = base.path().join("cache/layers");
    // A leftover of a killed run gets in nobody's way.
    fs::create_dir_all(root.join(".tmp-999999999-0/etc")).unwrap();
    let cache = LayerCache::new(root.clone());
    let layer = &src.image().layers[0];
    let first = cache.ensure(&counting, layer).unwrap();
    assert_eq!(first, root.join(blob.diff_id.hex()));
    assert_eq!(fs::read(first.join("etc/hostname")).unwrap(), b"box\n");
    assert_eq!(lmeta(first.join("etc/hostname")).mode() & 0o7777, 0o600);
    assert_eq!(fs::read_link(first.join("etc/name")).unwrap(), Path::new("hostname"));
    let ino = lmeta(&first).ino();
    let second = cache.ensure(&counting, layer).unwrap();
    assert_eq!(second, first);
    assert_eq!(lmeta(&second).ino(), ino);
    assert_eq!(counting.opens.get(), 1, "the second ensure must not unpack again");
    assert_eq!(tmp_leftovers(&root), vec![".tmp-999999999-0"]);
}

#[test]
fn cache_is_shared_by_concurrent_users() {
    let base = tempfile::tempdir().unwrap();
    let (layout, blob) = layout(base.path(), None);
    let root = base.path().join("cache/layers");
    let paths: Vec<PathBuf> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (layout, root) = (&layout, &root);
                s.spawn(move || {
                    let src = open_layout(layout);
                    LayerCache::new(root.clone()).ensure(&src, &src.image().layers[0]).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for p in &paths {
        assert_eq!(*p, root.join(blob.diff_id.hex()));
    }
    assert_eq!(fs::read(paths[0].join("etc/hostname")).unwrap(), b"box\n");
    assert_eq!(listing(&root), vec![blob.diff_id.hex().to_string()]);
}

#[test]
fn corrupt_blob_leaves_no_entry() {
    let base = tempfile::tempdir().unwrap();
    let (layout, blob) = layout(base.path(), None);
    let path = layout.join("blobs/sha256").join(blob.digest.hex());
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(&path, &bytes).unwrap();
    let src = open_layout(&layout);
    let root = base.path().join("cache/layers");
    let err = LayerCache::new(root.clone()).ensure(&src, &src.image().layers[0]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("digest mismatch") && msg.contains(blob.digest.hex()), "{msg}");
    assert!(!root.join(blob.diff_id.hex()).exists());
    assert!(listing(&root).is_empty(), "{:?}", listing(&root));
}

#[test]
fn wrong_diff_id_leaves_no_entry() {
    let base = tempfile::tempdir().unwrap();
    let wrong = freshen_image::Digest::of(b"not this layer");
    let (layout, blob) = layout(base.path(), Some(wrong.clone()));
    let src = open_layout(&layout);
    let root = base.path().join("cache/layers");
    let err = LayerCache::new(root.clone()).ensure(&src, &src.image().layers[0]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("diff id mismatch") && msg.contains(blob.digest.hex()), "{msg}");
    assert!(!root.join(wrong.hex()).exists());
    assert!(!root.join(blob.diff_id.hex()).exists());
    assert!(listing(&root).is_empty(), "{:?}", listing(&root));
}
