//! The shell script apt runs under in the sandbox, and the deterministic
//! `mktemp` it puts first on PATH.
//!
//! The script keeps apt's auto-installed marks: `apt-get install
//! --only-upgrade pkg=ver` marks the packages it names as manually
//! installed, which would change what `apt-get autoremove` does in the
//! patched image (and put `extended_states` in every patch layer). An
//! upgrade that brings no new package gets `extended_states` back byte for
//! byte; one that does keeps apt's marks for the new packages and gives
//! every package installed before its old mark.

use std::path::Path;

use freshen_apt::Update;

use crate::error::{io_err, Result};

/// Where the directory holding [`MKTEMP`] is mounted in the sandbox
/// (below `/run`, which never enters a layer). The script puts it first on
/// PATH, and apt passes that PATH on to dpkg's maintainer scripts through
/// `-o DPkg::Path` (by default apt sets a PATH of its own).
pub const BIN_DIR: &str = "/run/freshen/bin";

/// `mktemp` with names from a counter instead of random letters, so that a
/// maintainer script that records a temporary file's name (openssh's and
/// others' `ucf` calls store it in debconf's `config.dat`) writes the same
/// bytes on every run. Names are still created exclusively (mode 0600,
/// directories 0700) and never reused while they exist; the sandbox runs
/// nothing but apt. Anything it does not understand goes to the real one.
pub const MKTEMP: &str = r#"#!/bin/sh
# freshen: a deterministic mktemp for reproducible patch layers
real() { exec /usr/bin/mktemp "$@"; }
dir= dry= quiet= t= tmpdir= use_tmpdir= suffix= template=
parse() {
  while [ $# -gt 0 ]; do
    a=$1; shift
    case $a in
      --directory) dir=1 ;;
      --dry-run) dry=1 ;;
      --quiet) quiet=1 ;;
      --tmpdir) use_tmpdir=1 ;;
      --tmpdir=*) use_tmpdir=1; tmpdir=${a#--tmpdir=} ;;
      --suffix=*) suffix=${a#--suffix=} ;;
      -p) [ $# -gt 0 ] || return 1; use_tmpdir=1; tmpdir=$1; shift ;;
      -p?*) use_tmpdir=1; tmpdir=${a#-p} ;;
      -[dqut]*)
        f=${a#-}
        while [ -n "$f" ]; do
          case $f in
            d*) dir=1 ;; q*) quiet=1 ;; u*) dry=1 ;; t*) t=1 ;; *) return 1 ;;
          esac
          f=${f#?}
        done ;;
      -*) return 1 ;;
      *) [ -z "$template" ] || return 1; template=$a ;;
    esac
  done
}
parse "$@" || real "$@"
if [ -z "$template" ]; then template=tmp.XXXXXXXXXX; use_tmpdir=1; fi
case $template in */*) [ -z "$t" ] && [ -z "$use_tmpdir" ] || real "$@" ;; esac
if [ -n "$t" ]; then template=${TMPDIR:-${tmpdir:-/tmp}}/$template
elif [ -n "$use_tmpdir" ]; then template=${tmpdir:-${TMPDIR:-/tmp}}/$template; fi
base=$template; xs=0
while [ "${base%X}" != "$base" ]; do base=${base%X}; xs=$((xs + 1)); done
[ "$xs" -ge 3 ] || real "$@"
n=0
while [ "$n" -lt 100000 ]; do
  p=$base$(printf "%0${xs}d" "$n")$suffix
  n=$((n + 1))
  if [ -e "$p" ] || [ -L "$p" ]; then continue; fi
  if [ -n "$dry" ]; then echo "$p"; exit 0; fi
  if [ -n "$dir" ]; then
    mkdir -m 700 "$p" 2>/dev/null || continue
  else
    (umask 077; set -C; : > "$p") 2>/dev/null || continue
  fi
  echo "$p"; exit 0
done
[ -n "$quiet" ] || echo "mktemp: failed to create a file from template '$template'" >&2
exit 1
"#;

/// Writes [`MKTEMP`] into `dir` (mounted at [`BIN_DIR`]).
pub fn write_bin(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    crate::cleanup::make_dirs(dir)?;
    let p = dir.join("mktemp");
    std::fs::write(&p, MKTEMP).map_err(io_err(&p))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).map_err(io_err(&p))
}

/// The script that runs `action` (an apt-get command line), keeps the
/// auto-installed marks, and checks dpkg's and apt's state.
pub fn apt_script(action: &str) -> String {
    format!(
        r#"set -e
step() {{ echo "freshen-step $1 $(cat /proc/uptime)"; }}
export PATH={BIN_DIR}:$PATH
s=/tmp/.freshen-marks; rm -rf "$s"; mkdir -p "$s"
ext=/var/lib/apt/extended_states
installed() {{ dpkg-query -W -f '${{db:Status-Status}} ${{binary:Package}}\n' | sed -n 's/^installed //p' | sort; }}
if [ -e "$ext" ]; then cp -p "$ext" "$s/extended_states"; fi
installed > "$s/before"
apt-mark showauto | sort > "$s/auto"
step install
{action}
step marks
installed > "$s/after"
if cmp -s "$s/before" "$s/after"; then
  if [ -e "$s/extended_states" ]; then cp -p "$s/extended_states" "$ext"; else rm -f "$ext"; fi
else
  apt-mark showmanual | sort | comm -12 - "$s/auto" | xargs -r apt-mark auto >/dev/null
fi
rm -rf "$s"
step check
out=$(dpkg --audit)
if [ -n "$out" ]; then echo "dpkg --audit: $out"; exit 1; fi
apt-get -q check
step done
"#
    )
}

/// `/usr/sbin/policy-rc.d` in the sandbox: no service starts while
/// packages are patched.
const POLICY_RC_D: &str = "#!/bin/sh\n# freshen: no services start while packages are patched\nexit 101\n";

/// Writes [`POLICY_RC_D`] to `path`, executable.
pub fn write_policy_rc_d(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, POLICY_RC_D).map_err(io_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io_err(path))
}

/// The apt command the script runs: `upgrade` (`all`), else an
/// `install --only-upgrade` of exactly the planned versions.
pub fn apt_action(all: bool, todo: &[(usize, &Update)]) -> String {
    // apt gives dpkg the PATH of `DPkg::Path`: the script's, with its mktemp first.
    let apt_opts = "-q -y -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-unsafe-io -o Acquire::Languages=none -o APT::Install-Recommends=false -o APT::Install-Suggests=false -o DPkg::Path=\"$PATH\"";
    if all {
        format!("apt-get {apt_opts} upgrade")
    } else {
        let pkgs: Vec<String> = todo.iter().map(|(_, u)| format!("{}:{}={}", u.package, u.arch, u.candidate.version)).collect();
        format!("apt-get {apt_opts} install --only-upgrade {}", pkgs.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    fn mktemp(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
        let out = Command::new("sh").arg("-c").arg(super::MKTEMP).arg("mktemp").args(args).env("TMPDIR", dir).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    #[test]
    fn mktemp_is_deterministic_and_exclusive() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let t = d.path().display().to_string();
        let (ok, a) = mktemp(d.path(), &[]);
        assert!(ok);
        assert_eq!(a, format!("{t}/tmp.0000000000"));
        assert_eq!(std::fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
        // The name is taken: the next call gets the next one.
        assert_eq!(mktemp(d.path(), &[]).1, format!("{t}/tmp.0000000001"));
        let (_, dir) = mktemp(d.path(), &["-d", "-t", "ucf.XXXXXX"]);
        assert_eq!(dir, format!("{t}/ucf.000000"));
        assert!(std::path::Path::new(&dir).is_dir());
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(mktemp(d.path(), &["-p", &t, "--suffix=.conf", "x.XXX"]).1, format!("{t}/x.000.conf"));
        assert_eq!(mktemp(d.path(), &["--tmpdir", "y.XXXX"]).1, format!("{t}/y.0000"));
        let (_, dry) = mktemp(d.path(), &["-u"]);
        assert_eq!(dry, format!("{t}/tmp.0000000002"));
        assert!(!std::path::Path::new(&dry).exists());
        // A template relative to the working directory, and a bad one.
        let rel = Command::new("sh").arg("-c").arg(super::MKTEMP).arg("mktemp").arg("rel.XXXX").current_dir(d.path()).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&rel.stdout).trim(), "rel.0000");
        assert!(d.path().join("rel.0000").is_file());
        assert!(!mktemp(d.path(), &["bad.XX"]).0);
    }
}
