//! freshen against apt on a corpus of real Debian images: each variant is
//! built with mmdebstrap from its release suite only (so fixes from
//! -updates and -security are pending), cached once per day in the target
//! directory, packed as an OCI layout and scanned; apt in a chroot of the
//! same root is the oracle for every (package, architecture, installed,
//! candidate, security, held back). Then the image is patched (default
//! security scope) and the result checked in a chroot: nothing in scope
//! left but what apt cannot install, a clean `dpkg --audit`, the auto and
//! hold marks unchanged, held packages at their versions, every installed
//! version one the image's own sources offer. Needs root, mmdebstrap,
//! runc, umoci and Debian's archive.
//!
//! A new variant is one entry of the `corpus!` table at the end.

mod common;

use std::fmt::{Debug, Display};
use std::process::Command;

use common::*;

struct Variant {
    /// What mmdebstrap builds.
    spec: RootfsSpec,
    /// Run on a copy of the built root (`sh -c THEN sh ROOT`, cached like
    /// it), e.g. to hold packages; empty for none.
    then: &'static str,
    /// Packages on dpkg hold in the image.
    holds: usize,
    /// apt must find updates pending (the image is stale).
    stale: bool,
}

/// Holds the first two packages `apt list --upgradable` names today.
const HOLD_TWO_PENDING: &str = r#"
cp /etc/resolv.conf "$1/etc/resolv.conf"
chroot "$1" apt-get -qq update
chroot "$1" apt list --upgradable 2>/dev/null | grep -F '[upgradable from' | cut -d/ -f1 | head -n2 | xargs chroot "$1" apt-mark hold
find "$1/var/lib/apt/lists" -maxdepth 1 -type f ! -name lock -delete
rm -f "$1/etc/resolv.conf" "$1"/var/cache/apt/*.bin
"#;

/// What went wrong in one variant, reported together at the end.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn eq<T: PartialEq + Debug>(&mut self, what: &str, got: T, want: T) {
        if got != want {
            self.0.push(format!("{what}:\n    got:  {got:?}\n    want: {want:?}"));
        }
    }

    /// `got` and `want` hold the same items; the difference is reported.
    fn same<T: PartialEq + Display>(&mut self, what: &str, got: &[T], want: &[T]) {
        let only = |a: &[T], b: &[T]| a.iter().filter(|p| !b.contains(p)).map(|p| format!("\n      {p}")).collect::<String>();
        let (extra, missing) = (only(got, want), only(want, got));
        if !extra.is_empty() || !missing.is_empty() {
            self.0.push(format!("{what}:\n    only got:{extra}\n    only want:{missing}"));
        }
    }
}

/// `name` or `name:arch` is in `list` (as `apt-mark` prints names).
fn listed(list: &[String], p: &Pending) -> bool {
    list.iter().any(|h| *h == p.package || *h == format!("{}:{}", p.package, p.arch))
}

/// Installed packages whose version no source offers (`apt list --installed` says `local`).
fn local(chroot: &Chroot) -> Vec<String> {
    chroot.run(&["apt", "list", "--installed"]).lines().filter(|l| l.contains(",local]")).map(str::to_string).collect()
}

fn check(name: &str, v: &Variant) {
    let t0 = std::time::Instant::now();
    let base = rootfs(&v.spec);
    let root = if v.then.is_empty() { base } else { derived_rootfs(&base, v.then) };
    let work = tempdir();
    let _cleanup = Cleanup(vec![work.clone()]);
    let layout = work.join("oci");
    let image = pack(&[(&root, &format!("mmdebstrap {name}"))], &layout, name);
    let cache = work.join("cache");
    let mut f = Failures::default();

    // The scan against apt.
    let (code, scan) = scan_json(&image, &[], &cache);
    let original = Chroot::copy_of(&root);
    let apt = apt_pending(&original);
    let holds = original.lines(&["apt-mark", "showhold"]);
    let auto = original.lines(&["apt-mark", "showauto"]);
    let local_before = local(&original);
    let rows: String = apt.iter().map(|p| format!("\n  {p}")).collect();
    eprintln!("{name}: built and scanned in {:?}; holds {holds:?}; freshen: {}; apt:{rows}", t0.elapsed(), scan["summary"]["text"]);
    assert_eq!(holds.len(), v.holds, "{name}: the image's holds");
    assert!(!v.stale || !apt.is_empty(), "{name}: nothing pending: the test image is not stale");
    f.same("scan (got: freshen, want: apt)", &pending(&scan), &apt);
    f.eq("scan exit code", code, if apt.is_empty() { 0 } else { 3 });

    // Patch in the default (security) scope.
    let kept: Vec<Pending> = apt.iter().filter(|p| p.held_back).cloned().collect();
    let installable = apt.iter().any(|p| p.security && !listed(&holds, p));
    let patched = format!("oci:{}:patched", layout.display());
    let out = freshen(&["patch", &image, "-o", &patched], &cache);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{name}: patch: {}{stderr}", String::from_utf8_lossy(&out.stdout));
    let error = stderr.lines().filter(|l| l.starts_with("error")).collect::<Vec<_>>().join(" ");
    f.eq(&format!("patch exit code {error}"), out.status.code(), Some(if installable { 0 } else { 4 }));
    if out.status.code() == Some(0) {
        let (_, rescan) = scan_json(&patched, &["--only", "security"], &cache);
        let left: Vec<Pending> = pending(&rescan).into_iter().filter(|p| !listed(&holds, p) && !kept.iter().any(|k| k.package == p.package && k.arch == p.arch)).collect();
        f.same("security updates left after the patch (freshen's re-scan), other than held or kept back", &left, &[]);
        let bundle = work.join("bundle");
        let st = Command::new("umoci").args(["unpack", "--image", &format!("{}:patched", layout.display())]).arg(&bundle).output().expect("umoci");
        assert!(st.status.success(), "umoci unpack: {}", String::from_utf8_lossy(&st.stderr));
        let after = Chroot::at(bundle.join("rootfs"));
        let left: Vec<Pending> = apt_pending(&after).into_iter().filter(|p| p.security && !listed(&holds, p) && !kept.iter().any(|k| k.package == p.package && k.arch == p.arch)).collect();
        f.same("security updates left after the patch (apt in the patched root), other than held or kept back", &left, &[]);
        f.eq("dpkg --audit after the patch", after.run(&["dpkg", "--audit"]), String::new());
        f.same("apt-mark showauto (got: after the patch, want: before)", &after.lines(&["apt-mark", "showauto"]), &auto);
        f.eq("apt-mark showhold (got: after the patch, want: before)", after.lines(&["apt-mark", "showhold"]), holds.clone());
        let versions = |c: &Chroot| -> Vec<String> {
            let mut args = vec!["dpkg-query", "-W", "-f", "${binary:Package} ${Version}\\n"];
            args.extend(holds.iter().map(String::as_str));
            if holds.is_empty() { Vec::new() } else { c.lines(&args) }
        };
        f.eq("held packages (got: after the patch, want: before)", versions(&after), versions(&original));
        f.same("installed versions no source offers, `apt list --installed` `local` (got: after the patch, want: before)", &local(&after), &local_before);
    }
    eprintln!("{name}: done in {:?}", t0.elapsed());
    assert!(f.0.is_empty(), "{name}: {} failed check(s):\n  {}", f.0.len(), f.0.join("\n  "));
}

macro_rules! corpus {
    ($($name:ident: $v:expr,)*) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name), &$v);
            }
        )*
    };
}

corpus! {
    // The stale bookworm minbase with two of today's pending updates on hold.
    holds: Variant { spec: STALE, then: HOLD_TWO_PENDING, holds: 2, stale: true },
    // A foreign architecture whose security source is restricted to amd64.
    i386: Variant {
        spec: RootfsSpec {
            include: &["libc6:i386"],
            architectures: &["amd64", "i386"],
            sources: "deb http://deb.debian.org/debian bookworm main\n\
                deb http://deb.debian.org/debian bookworm-updates main\n\
                deb [arch=amd64] http://deb.debian.org/debian-security bookworm-security main\n",
            ..STALE
        },
        then: "",
        holds: 0,
        stale: true,
    },
    bullseye: Variant {
        spec: RootfsSpec { suite: "bullseye", sources: debian_sources!("bullseye"), ..STALE },
        then: "",
        holds: 0,
        stale: true,
    },
    // deb822 sources only, with Signed-By.
    trixie_deb822: Variant {
        spec: RootfsSpec {
            suite: "trixie",
            sources_path: "etc/apt/sources.list.d/debian.sources",
            sources: "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie trixie-updates\nComponents: main\n\
                Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: trixie-security\nComponents: main\n\
                Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
            ..STALE
        },
        then: "",
        holds: 0,
        stale: false,
    },
    // trixie as a source too, bookworm the default release: bookworm's own
    // versions (990) win over everything else (500), its -security suite included.
    default_release: Variant {
        spec: STALE,
        then: r#"echo 'deb http://deb.debian.org/debian trixie main' >> "$1/etc/apt/sources.list"
            echo 'APT::Default-Release "bookworm";' > "$1/etc/apt/apt.conf.d/99default-release""#,
        holds: 0,
        stale: false,
    },
    // The bench's image: a minbase with a toolchain and Python.
    big: Variant {
        spec: RootfsSpec {
            include: &["python3", "curl", "openssl", "ca-certificates", "libxml2", "git", "build-essential", "python3-pip", "libssl-dev"],
            ..STALE
        },
        then: "",
        holds: 0,
        stale: true,
    },
}
