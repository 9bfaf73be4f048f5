//! The certificates TLS connections trust: the system's store as curl and
//! apt (OpenSSL, GnuTLS) read it, plus `--ca-file`.

use std::path::Path;

use ureq::tls::{Certificate, PemItem, RootCerts};

use crate::Error;

/// CA bundles of the common distributions (Debian's first).
const SYSTEM_BUNDLES: &[&str] = &["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

/// `$SSL_CERT_FILE` and `$SSL_CERT_DIR` when set (as OpenSSL reads them),
/// else the system bundle; plus `ca_file`. With no system store at all,
/// the Mozilla roots compiled into freshen.
pub(crate) fn root_certs(ca_file: Option<&Path>) -> Result<RootCerts, Error> {
    let mut certs = system_certs()?;
    if let Some(f) = ca_file {
        let pem = std::fs::read(f).map_err(|e| Error::Config(format!("--ca-file {}: {e}", f.display())))?;
        let extra = pem_certs(&pem);
        if extra.is_empty() {
            return Err(Error::Config(format!("--ca-file {}: no PEM certificate in it", f.display())));
        }
        certs.extend(extra);
    }
    Ok(if certs.is_empty() { RootCerts::WebPki } else { RootCerts::new_with_certs(&certs) })
}

fn system_certs() -> Result<Vec<Certificate<'static>>, Error> {
    let file = std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty());
    let dirs = std::env::var_os("SSL_CERT_DIR").filter(|v| !v.is_empty());
    let mut certs = Vec::new();
    if let Some(f) = &file {
        let pem = std::fs::read(f).map_err(|e| Error::Config(format!("SSL_CERT_FILE {}: {e}", Path::new(f).display())))?;
        certs.extend(pem_certs(&pem));
    }
    if let Some(dirs) = &dirs {
        for dir in std::env::split_paths(dirs) {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for p in paths {
                if let Ok(pem) = std::fs::read(&p) {
                    certs.extend(pem_certs(&pem));
                }
            }
        }
    }
    if file.is_none() && dirs.is_none() {
        if let Some(pem) = SYSTEM_BUNDLES.iter().find_map(|p| std::fs::read(p).ok()) {
            certs.extend(pem_certs(&pem));
        }
    }
    Ok(certs)
}

fn pem_certs(pem: &[u8]) -> Vec<Certificate<'static>> {
    ureq::tls::parse_pem(pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect()
}
