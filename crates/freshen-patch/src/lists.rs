//! apt's lists directory for the sandbox, seeded from what freshen verified.

use std::path::Path;

use freshen_apt::Fetcher;

use crate::error::{io_err, Result};

/// apt's name for a URI in `/var/lib/apt/lists` (`URItoFileName`): the
/// scheme and credentials dropped, unsafe bytes quoted as `%xx`, `/` as `_`.
fn apt_list_name(url: &str) -> String {
    // `file:/srv/repo` has no authority: apt names it `_srv_repo…`.
    let url = url.strip_prefix("file:").map_or(url, |p| p.strip_prefix("//").unwrap_or(p));
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let mut out = String::new();
    for b in format!("{host}/{path}").bytes() {
        if b"\\|{}[]<>\"^~_=!@#$%&*".contains(&b) || b <= 0x20 || b >= 0x7f {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push(if b == b'/' { '_' } else { b as char });
        }
    }
    out
}

/// The URL apt derives a source's files from: for flat repositories apt
/// keeps the suite as written (`./` gives `URI/./Packages`).
fn apt_dist_url(source: &freshen_apt::sources::SourceEntry) -> String {
    if source.is_flat() {
        format!("{}/{}", source.uri.trim_end_matches('/'), source.suite.trim_end_matches('/'))
    } else {
        source.dist_url()
    }
}

/// Builds apt's lists directory from the very Release files and `Packages`
/// indexes freshen verified and planned with, so apt in the sandbox sees
/// the same snapshot of the archive (no `apt-get update`: an archive that
/// publishes while freshen runs cannot change what gets installed).
pub(crate) fn seed(fetcher: &Fetcher, offers: &freshen_apt::archive::Offers, native: &str, foreign: &[String], lists: &Path) -> Result<()> {
    for a in &offers.archives {
        let (dist, apt_dist) = (a.source.dist_url(), apt_dist_url(&a.source));
        for doc in ["InRelease", "Release", "Release.gpg"] {
            if let Some(body) = fetcher.seen(&format!("{dist}/{doc}")) {
                let dest = lists.join(apt_list_name(&format!("{apt_dist}/{doc}")));
                std::fs::write(&dest, body).map_err(io_err(&dest))?;
            }
        }
        for arch in &a.source.architectures_of(native, foreign) {
            let Some(index) = freshen_apt::packages::fetch_index(fetcher, &a.source, &a.release, &a.component, arch)? else { continue };
            let url = if a.source.is_flat() { format!("{apt_dist}/Packages") } else { format!("{dist}/{}/binary-{arch}/Packages", a.component) };
            let dest = lists.join(apt_list_name(&url));
            if !dest.exists() {
                std::fs::hard_link(&index, &dest).or_else(|_| std::fs::copy(&index, &dest).map(|_| ())).map_err(io_err(&dest))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::apt_list_name;

    #[test]
    fn list_names_match_apt() {
        // Names apt 2.6 gave these URIs in /var/lib/apt/lists.
        assert_eq!(apt_list_name("http://deb.debian.org/debian/dists/bookworm/InRelease"), "deb.debian.org_debian_dists_bookworm_InRelease");
        assert_eq!(apt_list_name("http://127.0.0.1:8765/re_po~x/dists/st/Release"), "127.0.0.1:8765_re%5fpo%7ex_dists_st_Release");
        assert_eq!(apt_list_name("https://user:secret@example.org/a/./Packages"), "example.org_a_._Packages");
        assert_eq!(apt_list_name("file:/srv/repo/./InRelease"), "_srv_repo_._InRelease");
    }
}
