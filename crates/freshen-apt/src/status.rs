//! The dpkg database: `/var/lib/dpkg/status`, or one file per package in
//! `/var/lib/dpkg/status.d/` (distroless images).

use std::collections::HashMap;

use crate::deb822::{paragraphs, Paragraph};
use crate::error::{Error, Result};
use crate::version::{self, Version};

/// An installed package.
#[derive(Clone, Debug)]
pub struct Installed {
    pub name: String,
    pub arch: String,
    pub version: Version,
    pub source: String,
    pub source_version: Version,
    pub multi_arch: Option<String>,
    /// Raw `Provides`, `Depends` and `Pre-Depends` values.
    pub provides: String,
    pub depends: String,
    pub essential: bool,
    /// The dpkg selection is `hold` (`apt-mark hold`): apt never upgrades it.
    pub held: bool,
    /// The layer that last wrote this package's entry, when known.
    pub layer: Option<usize>,
}

/// States in which dpkg has files of the package on disk.
fn is_present(status: Option<&str>) -> bool {
    match status {
        // status.d entries of distroless images carry no Status field.
        None => true,
        Some(s) => match s.split_whitespace().nth(2) {
            Some("not-installed") | Some("config-files") | None => false,
            Some(_) => true,
        },
    }
}

fn parse_para(p: &Paragraph<'_>, file: &str) -> Result<Option<Installed>> {
    let perr = |line: usize, message: String| Error::Parse { file: file.to_string(), line, message };
    if !is_present(p.get("Status")) {
        return Ok(None);
    }
    let name = p.get("Package").ok_or_else(|| perr(p.line, "paragraph without a Package field".into()))?;
    let vf = p.field("Version").ok_or_else(|| perr(p.line, format!("package `{name}` has no Version")))?;
    let version = version::parse(vf.value()).map_err(|m| perr(vf.line, m))?;
    let arch = p.get("Architecture").unwrap_or("all").to_string();
    let (source, source_version) = match p.field("Source") {
        Some(f) => {
            let v = f.value();
            match v.split_once('(') {
                Some((n, rest)) => {
                    let sv = rest.trim_end().trim_end_matches(')');
                    (n.trim().to_string(), version::parse(sv).map_err(|m| perr(f.line, m))?)
                }
                None => (v.to_string(), version.clone()),
            }
        }
        None => (name.to_string(), version.clone()),
    };
    Ok(Some(Installed {
        name: name.to_string(),
        arch,
        version,
        source,
        source_version,
        multi_arch: p.get("Multi-Arch").map(str::to_string),
        provides: p.get("Provides").unwrap_or("").to_string(),
        depends: [p.get("Pre-Depends"), p.get("Depends")].into_iter().flatten().collect::<Vec<_>>().join(", "),
        essential: p.get("Essential") == Some("yes"),
        held: p.get("Status").and_then(|s| s.split_whitespace().next()) == Some("hold"),
        layer: None,
    }))
}

/// Parses a status file (or one `status.d` entry). `file` names it in errors.
pub fn parse_status(text: &str, file: &str) -> Result<Vec<Installed>> {
    let mut out = Vec::new();
    for p in paragraphs(text) {
        let p = p.map_err(|e| Error::Parse { file: file.to_string(), line: e.line, message: e.message })?;
        if let Some(i) = parse_para(&p, file)? {
            out.push(i);
        }
    }
    Ok(out)
}

/// Attributes each package to the last layer whose status file changed its
/// entry. `versions` are (layer, content) of the status file, bottom first.
pub fn attribute_layers(installed: &mut [Installed], versions: &[(usize, &[u8])]) {
    let mut last: HashMap<String, (&str, usize)> = HashMap::new();
    for (layer, data) in versions {
        let Ok(text) = std::str::from_utf8(data) else { continue };
        for p in paragraphs(text) {
            let Ok(p) = p else { break };
            let (Some(name), arch) = (p.get("Package"), p.get("Architecture").unwrap_or("all")) else { continue };
            let key = format!("{name}:{arch}");
            let body = p.fields.first().map_or("", |f| {
                let start = f.name.as_ptr() as usize - text.as_ptr() as usize;
                let lastf = p.fields.last().unwrap_or(f);
                let end = lastf.raw.as_ptr() as usize - text.as_ptr() as usize + lastf.raw.len();
                &text[start..end]
            });
            match last.get(&key) {
                Some((prev, _)) if *prev == body => {}
                _ => {
                    last.insert(key, (body, *layer));
                }
            }
        }
    }
    for i in installed {
        if let Some((_, layer)) = last.get(&format!("{}:{}", i.name, i.arch)) {
            i.layer = Some(*layer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc (2.36-9)\nVersion: 2.36-9+deb12u1\nDepends: libgcc-s1\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: amd64\n\nPackage: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2-1\n";

    #[test]
    fn parses_status() {
        let v = parse_status(S, "status").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].source, "glibc");
        assert_eq!(v[0].source_version.to_string(), "2.36-9");
        assert_eq!(v[1].source, "bash");
        assert!(!v[0].held);
        let h = parse_status(&S.replace("Status: install ok installed\nArchitecture: amd64\nVersion: 5.2-1", "Status: hold ok installed\nArchitecture: amd64\nVersion: 5.2-1"), "s").unwrap();
        assert!(h[1].held && !h[0].held);
        let e = parse_status("Package: x\nStatus: install ok installed\nVersion: !!\n", "/var/lib/dpkg/status").unwrap_err();
        assert_eq!(e.to_string(), "/var/lib/dpkg/status:3: invalid version `!!`");
    }

    #[test]
    fn attributes_layers() {
        let mut v = parse_status(S, "status").unwrap();
        let s2 = S.replace("Version: 5.2-1", "Version: 5.2-2");
        attribute_layers(&mut v, &[(0, S.as_bytes()), (2, s2.as_bytes())]);
        assert_eq!(v[0].layer, Some(0));
        assert_eq!(v[1].layer, Some(2));
    }
}
