//! Output sinks for a scan: a human table and JSON. Both read one
//! [`Report`]; neither decides anything.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use freshen_apt::{Fix, HostInfo, Scan, System, Update};
use freshen_image::Image;
use serde_json::{json, Value};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub struct Report<'a> {
    pub reference: String,
    pub image: Option<&'a Image>,
    pub scan: &'a Scan,
    /// The updates in scope, with their changelog facts when read.
    pub rows: &'a [(&'a Update, Option<&'a Fix>)],
    pub host: Option<HostInfo>,
    pub now: DateTime<Utc>,
    pub requests: usize,
    pub elapsed: Duration,
    pub changelogs: bool,
}

fn layer_json(r: &Report, u: &Update) -> Value {
    let idx = r.scan.system.installed[u.installed_index].layer;
    match (idx, r.image) {
        (Some(i), Some(img)) => {
            let l = &img.layers[i];
            json!({"index": i, "digest": l.digest.to_string(), "created_by": l.created_by})
        }
        _ => Value::Null,
    }
}

fn layer_label(r: &Report, i: usize) -> String {
    let created = r.image.and_then(|img| img.layers.get(i)).and_then(|l| l.created_by.clone()).unwrap_or_default();
    let created = created.trim().trim_start_matches("/bin/sh -c ").trim_start_matches("#(nop) ").trim().to_string();
    let short: String = created.chars().take(60).collect();
    if short.is_empty() {
        format!("layer {i}")
    } else if short.len() < created.len() {
        format!("layer {i} ({short}…)")
    } else {
        format!("layer {i} ({short})")
    }
}

struct Summary {
    pending: usize,
    security: usize,
    held_back: usize,
    /// Of those held back: by `apt-mark hold`, and deferred by phasing.
    held: usize,
    phasing: usize,
    oldest_fix: Option<DateTime<Utc>>,
    layers: Vec<usize>,
}

fn summarize(r: &Report) -> Summary {
    let mut layers: Vec<usize> = r.rows.iter().filter_map(|(u, _)| r.scan.system.installed[u.installed_index].layer).collect();
    layers.sort();
    layers.dedup();
    Summary {
        pending: r.rows.len(),
        security: r.rows.iter().filter(|(u, _)| u.security).count(),
        held_back: r.rows.iter().filter(|(u, _)| u.held_back.is_some()).count(),
        held: r.rows.iter().filter(|(u, _)| u.held_back.as_deref() == Some(freshen_apt::policy::HELD_BY_SELECTION)).count(),
        phasing: r.rows.iter().filter(|(u, _)| u.held_back.as_deref().is_some_and(|h| h.starts_with(freshen_apt::policy::PHASING_PREFIX))).count(),
        oldest_fix: r.rows.iter().filter_map(|(_, f)| f.and_then(|f| f.fixed_on)).min(),
        layers,
    }
}

/// `13 security updates pending, oldest fix 41 days old, from layer 0 (debootstrap)`
fn summary_line(r: &Report, s: &Summary) -> String {
    if s.pending == 0 {
        return "no updates pending".to_string();
    }
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    let mut line = if s.security == s.pending {
        format!("{} pending", plural(s.security, "security update"))
    } else {
        format!("{} pending ({} security)", plural(s.pending, "update"), s.security)
    };
    if s.held_back > 0 {
        let mut why = Vec::new();
        if s.held > 0 {
            why.push(format!("{} by apt-mark hold", s.held));
        }
        if s.phasing > 0 {
            why.push(format!("{} phasing", s.phasing));
        }
        let why = if why.is_empty() { String::new() } else { format!(" ({})", why.join(", ")) };
        line.push_str(&format!(", {} held back{why}", s.held_back));
    }
    if let Some(d) = s.oldest_fix {
        line.push_str(&format!(", oldest fix {} days old", (r.now - d).num_days()));
    }
    if !s.layers.is_empty() && r.image.is_some() {
        let names: Vec<String> = s.layers.iter().map(|&i| layer_label(r, i)).collect();
        line.push_str(&format!(", from {}", names.join(", ")));
    }
    line
}

pub fn text(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let sys = &r.scan.system;
    let os = sys.os.pretty_name.clone().or_else(|| sys.os.id.clone()).unwrap_or_else(|| "unknown OS".into());
    // Every line carries text from the image (names, versions, layer
    // commands): control characters in it are escaped.
    let line_out = |out: &mut dyn Write, line: &str| writeln!(out, "{}", freshen_image::escape(line));
    line_out(out, &format!("{}: {os}, {}, {} packages installed", r.reference, sys.native_arch, sys.installed.len()))?;
    if !r.rows.is_empty() {
        let multi_arch = names_with_several_archs(sys);
        let mut rows: Vec<[String; 7]> = vec![[
            "SOURCE".into(),
            "PACKAGE".into(),
            "INSTALLED".into(),
            "CANDIDATE".into(),
            "SUITE".into(),
            "SECURITY".into(),
            if r.changelogs { "CVES".into() } else { "NOTE".into() },
        ]];
        let mut last_source = String::new();
        for (u, fix) in r.rows {
            let src = if u.candidate.source == last_source { String::new() } else { u.candidate.source.clone() };
            last_source = u.candidate.source.clone();
            let mut note = Vec::new();
            if let Some(f) = fix {
                if !f.cves.is_empty() {
                    note.push(f.cves.join(" "));
                }
                if let Some(d) = f.fixed_on {
                    note.push(format!("fixed {}", d.format("%Y-%m-%d")));
                }
            }
            if let Some(h) = &u.held_back {
                note.push(format!("held back: {h}"));
            }
            rows.push([
                src,
                package_label(sys, &multi_arch, u),
                u.installed.to_string(),
                u.candidate.version.to_string(),
                u.suite.clone(),
                if u.security { "yes".into() } else { "no".into() },
                note.join("; "),
            ]);
        }
        table(&rows, out)?;
    }
    if let Some(h) = &r.host {
        let last = h
            .unattended_upgrades_last_run
            .and_then(|t| DateTime::<Utc>::from_timestamp(t as i64, 0))
            .map(|d| format!(", last ran {}", d.format("%Y-%m-%d %H:%M UTC")))
            .unwrap_or_default();
        let uu = match (h.unattended_upgrades_installed, h.unattended_upgrades_enabled) {
            (false, _) => "not installed".to_string(),
            (true, false) => format!("installed but not enabled{last}"),
            (true, true) => format!("enabled{last}"),
        };
        line_out(out, &format!("host: unattended-upgrades {uu}; reboot {}", if h.reboot_required { "required" } else { "not required" }))?;
    }
    line_out(out, &summary_line(r, &summarize(r)))
}

/// Names installed for more than one architecture (`zlib1g:amd64` and
/// `zlib1g:i386`).
fn names_with_several_archs(sys: &System) -> HashSet<&str> {
    let mut archs: HashMap<&str, HashSet<&str>> = HashMap::new();
    for p in &sys.installed {
        archs.entry(p.name.as_str()).or_default().insert(if p.arch == "all" { sys.native_arch.as_str() } else { p.arch.as_str() });
    }
    archs.into_iter().filter(|(_, a)| a.len() > 1).map(|(n, _)| n).collect()
}

/// A package as apt names it: `name:arch` for a foreign architecture or a
/// name installed for several, else `name`.
fn package_label(sys: &System, multi_arch: &HashSet<&str>, u: &Update) -> String {
    let foreign = u.arch != sys.native_arch && u.arch != "all";
    if foreign || multi_arch.contains(u.package.as_str()) {
        format!("{}:{}", u.package, u.arch)
    } else {
        u.package.clone()
    }
}

/// Rows as aligned columns, two spaces apart (the last column unpadded).
pub fn table<R: AsRef<[String]>>(rows: &[R], out: &mut dyn Write) -> std::io::Result<()> {
    let cols = rows.first().map_or(0, |r| r.as_ref().len());
    let widths: Vec<usize> = (0..cols).map(|c| rows.iter().map(|r| r.as_ref()[c].chars().count()).max().unwrap_or(0)).collect();
    for row in rows {
        let row = row.as_ref();
        let mut line = String::new();
        for (c, w) in widths.iter().enumerate().take(cols.saturating_sub(1)) {
            line.push_str(&format!("{:<w$}  ", row[c], w = *w));
        }
        if let Some(last) = row.last() {
            line.push_str(last);
        }
        // Cells carry text from images and the state database: control
        // characters are escaped.
        writeln!(out, "{}", freshen_image::escape(line.trim_end()))?;
    }
    Ok(())
}

pub fn json(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let sys = &r.scan.system;
    let s = summarize(r);
    let updates: Vec<Value> = r
        .rows
        .iter()
        .map(|(u, fix)| {
            let mut v = json!({
                "package": u.package,
                "arch": u.arch,
                "installed": u.installed.to_string(),
                "candidate": u.candidate.version.to_string(),
                "source_package": u.candidate.source,
                "source_version": u.candidate.source_version.to_string(),
                "suite": u.suite,
                "security": u.security,
                "held_back": u.held_back.is_some(),
                "held_back_reason": u.held_back,
                "layer": layer_json(r, u),
            });
            if r.changelogs {
                let f = fix.cloned().unwrap_or_default();
                v["cves"] = json!(f.cves);
                v["fixed_on"] = json!(f.fixed_on.map(|d| d.format("%Y-%m-%d").to_string()));
                if let Some(e) = f.error {
                    v["changelog_error"] = json!(e);
                }
            }
            v
        })
        .collect();
    let sources: Vec<Value> = r
        .scan
        .offers
        .archives
        .iter()
        .map(|a| {
            json!({
                "uri": a.source.uri,
                "suite": a.source.suite,
                "component": a.component,
                "origin": a.release.origin,
                "label": a.release.label,
                "archive": a.release.suite,
                "codename": a.release.codename,
                "date": a.release.date.map(|d| d.to_rfc3339()),
                "valid_until": a.release.valid_until.map(|d| d.to_rfc3339()),
                "security": a.release.is_security(),
            })
        })
        .collect();
    let mut doc = json!({
        "image": r.reference,
        "manifest_digest": r.image.and_then(|i| i.manifest_digest.as_ref()).map(|d| d.to_string()),
        "config_digest": r.image.map(|i| i.config_digest.to_string()),
        "os": {
            "id": sys.os.id,
            "version_id": sys.os.version_id,
            "codename": sys.os.codename,
            "pretty_name": sys.os.pretty_name,
            "debian_version": sys.os.debian_version,
        },
        "architecture": sys.native_arch,
        "installed_packages": sys.installed.len(),
        "sources": sources,
        "updates": updates,
        "summary": {
            "pending": s.pending,
            "security": s.security,
            "held_back": s.held_back,
            "held": s.held,
            "phasing": s.phasing,
            "oldest_fix": s.oldest_fix.map(|d| d.format("%Y-%m-%d").to_string()),
            "exposed_days": s.oldest_fix.map(|d| (r.now - d).num_days()),
            "layers": s.layers,
            "text": summary_line(r, &s),
        },
        "warnings": r.scan.offers.warnings,
        "http_requests": r.requests,
        "elapsed_ms": r.elapsed.as_millis() as u64,
    });
    if let Some(h) = &r.host {
        doc["host"] = json!({
            "unattended_upgrades_installed": h.unattended_upgrades_installed,
            "unattended_upgrades_enabled": h.unattended_upgrades_enabled,
            "unattended_upgrades_last_run": h.unattended_upgrades_last_run.and_then(|t| DateTime::<Utc>::from_timestamp(t as i64, 0)).map(|d| d.to_rfc3339()),
            "reboot_required": h.reboot_required,
        });
    }
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}
