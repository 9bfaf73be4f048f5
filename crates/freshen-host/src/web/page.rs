//! The status page: server-rendered HTML with inline CSS, no script.
//! Everything from images and the Engine (names, reasons, log lines) is
//! escaped.

use std::fmt::Write;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};

use super::{chart, escape};
use crate::duration::human;
use crate::report::StatusReport;
use crate::state::{FixStatus, Incident, State, TargetStatus};

/// Fixes listed per target before "and N more".
const FIXES_SHOWN: usize = 6;
const INCIDENTS: usize = 20;

/// The page for the state in `state` at `now`; the host below `root`.
pub fn render(state: &State, root: &Path, now: DateTime<Utc>) -> crate::Result<String> {
    let report = StatusReport::read(state, root, now)?;
    let windows = state.closed_windows(now - Duration::days(chart::DAYS))?;
    let incidents = state.incidents(INCIDENTS)?;
    let last_pass = state.last_good_pass()?;
    let mut b = String::with_capacity(64 * 1024);
    head(&mut b, now);
    let s = report.summary();
    let _ = write!(b, r#"<section class="tiles" aria-label="Summary">"#);
    tile(&mut b, "Targets", &s.targets.to_string(), "", "");
    let (class, note) = if s.exposed == 0 { ("ok", "none exposed") } else { ("bad", "with a pending security fix") };
    tile(&mut b, "Exposed", &s.exposed.to_string(), class, note);
    tile(&mut b, "Pending security fixes", &s.pending_security.to_string(), if s.pending_security == 0 { "ok" } else { "bad" }, "");
    let longest = s.longest.map(human).unwrap_or_else(|| "none".into());
    tile(&mut b, "Longest open exposure", &longest, s.longest.map_or("ok", |l| chart::band(l).0), "");
    match last_pass {
        Some(at) => tile(&mut b, "Last successful pass", &human((now - at).num_seconds().max(0)), "", &format!("ago · {}", stamp(at))),
        None => tile(&mut b, "Last successful pass", "never", "warn", ""),
    }
    b.push_str("</section>");

    let _ = write!(b, r#"<section aria-labelledby="targets-h"><h2 id="targets-h">Targets</h2>"#);
    if report.targets.is_empty() {
        b.push_str(r#"<p class="empty">No targets yet: the first pass has not found any running container, Dokku app or configured image.</p>"#);
    } else {
        b.push_str(r#"<table class="targets"><thead><tr><th scope="col">Status</th><th scope="col">Target</th><th scope="col" class="num">Security fixes</th><th scope="col">Exposed for</th><th scope="col">Last action</th></tr></thead>"#);
        for t in &report.targets {
            target_rows(&mut b, t);
        }
        b.push_str("</table>");
    }
    b.push_str("</section>");

    let _ = write!(b, r#"<section aria-labelledby="chart-h"><h2 id="chart-h">Exposure windows closed, last {} days</h2>"#, chart::DAYS);
    let mut lengths: Vec<i64> = windows.iter().map(|w| w.seconds).collect();
    lengths.sort_unstable();
    if lengths.is_empty() {
        b.push_str(r#"<p class="muted">No window closed in this period.</p>"#);
    } else {
        let _ = write!(
            b,
            r#"<p class="muted">{} window{} closed · median {} · longest {}</p>"#,
            lengths.len(),
            if lengths.len() == 1 { "" } else { "s" },
            human(lengths[lengths.len() / 2]),
            human(*lengths.last().unwrap_or(&0))
        );
    }
    b.push_str(r#"<figure>"#);
    b.push_str(&chart::svg(&windows, now));
    b.push_str(r#"<figcaption class="legend"><span class="key ok"></span>closed within a day <span class="key warn"></span>within 3 days <span class="key bad"></span>after more than 3 days</figcaption></figure></section>"#);

    let _ = write!(b, r#"<section aria-labelledby="incidents-h"><h2 id="incidents-h">Rollbacks and failures</h2>"#);
    if incidents.is_empty() {
        b.push_str(r#"<p class="muted">None recorded.</p>"#);
    } else {
        b.push_str(r#"<ul class="incidents">"#);
        for i in &incidents {
            incident(&mut b, i, now);
        }
        b.push_str("</ul>");
    }
    b.push_str("</section>");

    host(&mut b, &report);
    let _ = write!(b, r#"<footer>Rendered {} · <a href="/api/status">/api/status</a> · <a href="/metrics">/metrics</a></footer></main></body></html>"#, stamp(now));
    Ok(b)
}

/// The page shown when the state cannot be read (no pass yet, say).
pub fn error(message: &str, now: DateTime<Utc>) -> String {
    let mut b = String::new();
    head(&mut b, now);
    let _ = write!(b, r#"<section><h2>No status yet</h2><p class="reason">{}</p></section></main></body></html>"#, escape(message));
    b
}

fn head(b: &mut String, now: DateTime<Utc>) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let _ = write!(
        b,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta http-equiv="refresh" content="60"><title>freshen · {h}</title><style>{CSS}</style></head><body><main><header><h1><span class="brand">freshen</span> {h}</h1><p class="muted">Pending security fixes in what this host runs · <time datetime="{t}">{s}</time></p></header>"#,
        h = escape(&host),
        t = now.to_rfc3339(),
        s = stamp(now)
    );
}

fn tile(b: &mut String, label: &str, value: &str, class: &str, note: &str) {
    let _ = write!(b, r#"<div class="tile {class}"><div class="label">{}</div><div class="value">{}</div>"#, escape(label), escape(value));
    if !note.is_empty() {
        let _ = write!(b, r#"<div class="note">{}</div>"#, escape(note));
    }
    b.push_str("</div>");
}

/// The status a target is shown with: class, symbol, words.
fn status(t: &TargetStatus) -> (&'static str, &'static str, &'static str) {
    match (t.last_action.as_deref(), t.pending_security) {
        (Some("failed"), _) => ("bad", "✕", "Failed"),
        (Some("rolled-back"), _) => ("bad", "↺", "Rolled back"),
        (_, n) if n > 0 => ("warn", "!", "Exposed"),
        (Some("patched"), _) => ("ok", "✓", "Patched"),
        (Some("skipped"), _) => ("muted", "–", "Skipped"),
        _ => ("ok", "✓", "Up to date"),
    }
}

fn target_rows(b: &mut String, t: &TargetStatus) {
    let (class, symbol, words) = status(t);
    let id = format!("t-{}-{}", t.kind, t.name.bytes().map(|c| if c.is_ascii_alphanumeric() { c as char } else { '-' }).collect::<String>());
    let _ = write!(
        b,
        r#"<tbody class="target" id="{id}"><tr><td class="c-status" data-label="Status"><div><span class="badge {class}"><span aria-hidden="true">{symbol}</span> {words}</span></div></td><td class="c-target" data-label="Target"><div><div class="name">{name}</div><div class="sub">{kind} · <span class="image" title="{image}">{short}</span></div></div></td><td class="c-fixes num" data-label="Security fixes"><div><span class="count {cc}">{n}</span></div></td><td class="c-exposed" data-label="Exposed for"><div>{exp}</div></td><td class="c-action" data-label="Last action"><div>"#,
        id = escape(&id),
        name = escape(&t.name),
        kind = escape(&t.kind),
        image = escape(&t.image),
        short = escape(short_image(&t.image)),
        cc = if t.pending_security > 0 { "bad" } else { "ok" },
        n = t.pending_security,
        exp = t.exposure_seconds.map(|e| format!(r#"<span class="exposure {}">{}</span>"#, chart::band(e).0, human(e))).unwrap_or_else(|| r#"<span class="muted">—</span>"#.into()),
    );
    match (&t.last_action, t.last_action_at) {
        (Some(a), Some(at)) => {
            let _ = write!(b, r#"{} <time class="muted" datetime="{}">{}</time>"#, escape(a), at.to_rfc3339(), stamp(at));
        }
        _ => b.push_str(r#"<span class="muted">—</span>"#),
    }
    if let Some(r) = &t.last_reason {
        let _ = write!(b, r#"<div class="reason">{}</div>"#, escape(r));
    }
    if t.rollbacks > 0 {
        let _ = write!(b, r#"<div class="note">{} rollback{}</div>"#, t.rollbacks, if t.rollbacks == 1 { "" } else { "s" });
    }
    b.push_str("</div></td></tr>");
    let security: Vec<&FixStatus> = t.fixes.iter().filter(|f| f.pending.counts()).collect();
    if !security.is_empty() {
        b.push_str(r#"<tr class="fixes"><td colspan="5"><ul>"#);
        for f in security.iter().take(FIXES_SHOWN) {
            fix(b, f, t.distro.as_deref());
        }
        if security.len() > FIXES_SHOWN {
            let _ = write!(b, r#"<li class="muted">and {} more (<a href="/api/status">all in /api/status</a>)</li>"#, security.len() - FIXES_SHOWN);
        }
        b.push_str("</ul></td></tr>");
    }
    b.push_str("</tbody>");
}

fn fix(b: &mut String, f: &FixStatus, distro: Option<&str>) {
    let p = &f.pending;
    let _ = write!(
        b,
        r#"<li><span class="pkg">{}</span> <span class="ver">{} → {}</span> "#,
        escape(&p.package),
        escape(&p.installed),
        escape(&p.candidate)
    );
    for cve in &p.cves {
        match tracker(distro, cve) {
            Some(url) => {
                let _ = write!(b, r#"<a class="cve" href="{}">{}</a> "#, escape(&url), escape(cve));
            }
            None => {
                let _ = write!(b, r#"<span class="cve">{}</span> "#, escape(cve));
            }
        }
    }
    if let Some(e) = f.exposure_seconds {
        let _ = write!(b, r#"<span class="exposure {}">exposed {}</span>"#, chart::band(e).0, human(e));
    }
    b.push_str("</li>");
}

/// An image named by its id, shortened as `docker ps` does.
fn short_image(image: &str) -> &str {
    match image.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 => &image[..7 + 12],
        _ => image,
    }
}

/// The distribution's security tracker page for `cve`.
pub fn tracker(distro: Option<&str>, cve: &str) -> Option<String> {
    let valid = cve.strip_prefix("CVE-").is_some_and(|rest| rest.bytes().all(|c| c.is_ascii_digit() || c == b'-'));
    match distro? {
        "debian" if valid => Some(format!("https://security-tracker.debian.org/tracker/{cve}")),
        "ubuntu" if valid => Some(format!("https://ubuntu.com/security/{cve}")),
        _ => None,
    }
}

fn incident(b: &mut String, i: &Incident, now: DateTime<Utc>) {
    let (symbol, words) = if i.result == "rolled-back" { ("↺", "Rolled back") } else { ("✕", "Failed") };
    let _ = write!(
        b,
        r#"<li><span class="badge bad"><span aria-hidden="true">{symbol}</span> {words}</span> <strong>{}</strong> <time class="muted" datetime="{}" title="{}">{}</time>"#,
        escape(&i.target),
        i.at.to_rfc3339(),
        stamp(i.at),
        ago(i.at, now)
    );
    if let Some(r) = &i.reason {
        let _ = write!(b, r#"<div class="reason">{}</div>"#, escape(r));
    }
    if let Some(l) = i.logs.as_deref().filter(|l| !l.trim().is_empty()) {
        let _ = write!(b, r#"<details><summary>Last log lines</summary><pre>{}</pre></details>"#, escape(l));
    }
    b.push_str("</li>");
}

fn host(b: &mut String, r: &StatusReport) {
    let h = &r.host;
    b.push_str(r#"<section aria-labelledby="host-h"><h2 id="host-h">This host</h2><dl class="host">"#);
    if let Some(e) = &h.error {
        let _ = write!(b, r#"<dt>Host packages</dt><dd><span class="badge muted">unknown</span> {}</dd>"#, escape(e));
    } else {
        let (class, text) = match (h.unattended_upgrades_installed, h.unattended_upgrades_enabled) {
            (false, _) => ("bad", "not installed".to_string()),
            (true, false) => ("warn", "installed, not enabled (APT::Periodic::Unattended-Upgrade)".to_string()),
            (true, true) => ("ok", format!("enabled, last run {}", h.unattended_upgrades_last_run.map(stamp).unwrap_or_else(|| "never".into()))),
        };
        let _ = write!(b, r#"<dt>unattended-upgrades</dt><dd><span class="badge {class}">{}</span> {}</dd>"#, if class == "ok" { "on" } else { "attention" }, escape(&text));
        let (class, text) = if h.reboot_required { ("warn", "Reboot required") } else { ("ok", "No reboot required") };
        let _ = write!(b, r#"<dt>Reboot</dt><dd><span class="badge {class}">{text}</span></dd>"#);
    }
    b.push_str("</dl></section>");
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ago", human((now - t).num_seconds().max(0)))
}

const CSS: &str = r#"
:root{--bg:#f6f7f9;--card:#fff;--fg:#1b1f24;--muted:#5b6470;--line:#dde1e6;--ok:#1a7f37;--ok-bg:#dafbe1;--warn:#9a6700;--warn-bg:#fff8c5;--bad:#b42318;--bad-bg:#ffebe9;--accent:#0b5cad}
@media (prefers-color-scheme:dark){:root{--bg:#0f1216;--card:#171b21;--fg:#e6e9ed;--muted:#9aa4b0;--line:#2b323b;--ok:#4ac26b;--ok-bg:#12361f;--warn:#d4a72c;--warn-bg:#3a2e05;--bad:#ff7b72;--bad-bg:#47100d;--accent:#58a6ff}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1180px;margin:0 auto;padding:20px 20px 40px}
header h1{margin:0;font-size:1.5rem;font-weight:650;overflow-wrap:anywhere}
.brand{color:var(--accent)}
h2{font-size:1.1rem;margin:28px 0 10px}
a{color:var(--accent)}
.muted{color:var(--muted)}
header p{margin:4px 0 0}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;margin-top:18px}
.tile{background:var(--card);border:1px solid var(--line);border-left:5px solid var(--line);border-radius:8px;padding:10px 14px}
.tile.ok{border-left-color:var(--ok)}.tile.warn{border-left-color:var(--warn)}.tile.bad{border-left-color:var(--bad)}
.tile .label{font-size:.8rem;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.tile .value{font-size:1.6rem;font-weight:650;font-variant-numeric:tabular-nums;white-space:nowrap}
.tile .note,.note{font-size:.8rem;color:var(--muted)}
table.targets{width:100%;border-collapse:collapse;background:var(--card);border:1px solid var(--line);border-radius:8px;overflow:hidden}
.targets th{text-align:left;font-size:.8rem;color:var(--muted);font-weight:600;padding:8px 12px;border-bottom:1px solid var(--line);text-transform:uppercase;letter-spacing:.04em}
.targets td{padding:10px 12px;vertical-align:top}
.targets tbody.target{border-top:1px solid var(--line)}
.num{text-align:right}
.targets th:nth-child(2){width:26%}
.name{font-weight:600;overflow-wrap:anywhere}
.sub{font-size:.85rem;color:var(--muted);overflow-wrap:anywhere}
.image{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.8rem}
.count{font-weight:700;font-size:1.1rem;font-variant-numeric:tabular-nums}
.count.bad,.exposure.bad{color:var(--bad)}.count.ok,.exposure.ok{color:var(--ok)}.exposure.warn{color:var(--warn)}
.exposure{font-weight:600}
.badge{display:inline-block;white-space:nowrap;font-size:.8rem;font-weight:650;padding:2px 8px;border-radius:999px;border:1px solid transparent}
.badge.ok{color:var(--ok);background:var(--ok-bg)}.badge.warn{color:var(--warn);background:var(--warn-bg)}.badge.bad{color:var(--bad);background:var(--bad-bg)}.badge.muted{color:var(--muted);border-color:var(--line)}
.reason{font-size:.85rem;color:var(--muted);overflow-wrap:anywhere;margin-top:2px}
tr.fixes td{padding-top:0}
.fixes ul{list-style:none;margin:0;padding:8px 10px;background:var(--bg);border-radius:6px;font-size:.88rem}
.fixes li{padding:3px 0;overflow-wrap:anywhere}
.pkg{font-weight:600}.ver{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.8rem;color:var(--muted)}
.cve{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.8rem;margin-right:2px}
figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px}
.chart{width:100%;height:auto;display:block}
.chart .grid{stroke:var(--line);stroke-width:1}.chart .base{stroke:var(--muted);stroke-width:1}
.chart .axis{fill:var(--muted);font-size:11px}
.chart .bar.ok,.key.ok{fill:var(--ok);background:var(--ok)}.chart .bar.warn,.key.warn{fill:var(--warn);background:var(--warn)}.chart .bar.bad,.key.bad{fill:var(--bad);background:var(--bad)}
.legend{font-size:.8rem;color:var(--muted);margin-top:6px}
.key{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 10px;vertical-align:-1px}
.incidents{list-style:none;margin:0;padding:0;background:var(--card);border:1px solid var(--line);border-radius:8px}
.incidents li{padding:10px 14px;border-top:1px solid var(--line)}.incidents li:first-child{border-top:0}
pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.8rem;background:var(--bg);padding:8px;border-radius:6px;max-height:16em;overflow:auto}
summary{cursor:pointer;font-size:.85rem;color:var(--accent)}
dl.host{display:grid;grid-template-columns:max-content 1fr;gap:8px 16px;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px;margin:0}
dl.host dt{color:var(--muted)}dl.host dd{margin:0}
footer{margin-top:28px;font-size:.8rem;color:var(--muted)}
.empty{background:var(--card);border:1px dashed var(--line);border-radius:8px;padding:16px}
@media (max-width:700px){
main{padding:14px 12px 30px}
.tiles{grid-template-columns:repeat(2,1fr);gap:8px}
.tile .value{font-size:1.3rem}
table.targets,.targets tbody,.targets tr,.targets td{display:block;width:100%}
.targets thead{display:none}
.targets tbody.target{padding:10px 12px}
.targets td{padding:3px 0;text-align:left}
.targets tr:first-child{display:grid;grid-template-columns:auto auto 1fr;grid-template-areas:"target target target" "status fixes exposed" "action action action";gap:6px 18px}
.targets tr:first-child td{width:auto}
.c-target{grid-area:target}.c-status{grid-area:status}.c-fixes{grid-area:fixes}.c-exposed{grid-area:exposed}.c-action{grid-area:action}
.targets td[data-label]::before{content:attr(data-label);display:block;font-size:.7rem;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.targets td.c-target::before,.targets td.c-action::before{display:none}
.tiles>.tile:last-child:nth-child(odd){grid-column:span 2}
.chart .axis{font-size:24px}
.c-target .name{font-size:1.05rem}
tr.fixes td{padding-top:6px}
dl.host{grid-template-columns:1fr}
}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, DeployRecord, Kind, Outcome, Pending, Target};

    #[test]
    fn everything_from_images_is_escaped_and_cves_link_to_the_tracker() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open_writer(dir.path()).unwrap();
        let now = Utc::now();
        let target = |name: &str| Target { kind: Kind::Container, name: name.into(), image: "<img src=x onerror=alert(1)>".into(), image_id: None, source: None, skip: None };
        let fix = Pending {
            package: "libc6".into(),
            arch: "amd64".into(),
            installed: "1".into(),
            candidate: "2".into(),
            suite: "noble-security".into(),
            security: true,
            held_back: None,
            held: false,
            cves: vec!["CVE-2026-1234".into(), "CVE-\"><script>".into()],
            fixed_on: None,
        };
        let evil = Outcome { pending: Some(vec![fix]), distro: Some("ubuntu".into()), ..Outcome::new(target("<script>alert(1)</script>"), Action::Failed, Some("<b>bold</b>".into())) };
        let rolled = Outcome {
            deploy: Some(DeployRecord { result: Action::RolledBack, reason: Some("unhealthy".into()), logs: Some("</pre><script>x</script>".into()), at: now }),
            pending: Some(vec![]),
            ..Outcome::new(target("web"), Action::RolledBack, Some("unhealthy".into()))
        };
        let pass = s.begin_pass(now, false).unwrap();
        s.record_pass(pass, &[], &[evil, rolled], true, now, None).unwrap();
        let page = render(&State::open_reader(dir.path()).unwrap(), dir.path(), now).unwrap();
        assert!(!page.contains("<script") && !page.contains("<img") && !page.contains("<b>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && page.contains("&lt;/pre&gt;&lt;script&gt;x"), "{page}");
        assert!(page.contains(r#"href="https://ubuntu.com/security/CVE-2026-1234""#), "{page}");
        assert!(page.contains(r#"<span class="cve">CVE-&quot;&gt;&lt;script&gt;</span>"#), "not a CVE id: no link: {page}");
        assert!(page.contains("Rolled back") && page.contains("Failed") && page.contains("<svg"), "{page}");
        assert_eq!(tracker(Some("debian"), "CVE-2026-1"), Some("https://security-tracker.debian.org/tracker/CVE-2026-1".into()));
        assert_eq!(tracker(None, "CVE-2026-1"), None);
    }
}
