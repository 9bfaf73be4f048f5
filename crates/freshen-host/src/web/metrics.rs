//! `/metrics`: the state database's numbers per target and in total, and
//! what the running watch observed itself ([`Live`]), in the OpenMetrics
//! text format Prometheus scrapes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::error::Result;
use crate::state::{Exposure, State};

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What only the running watch knows.
pub struct Live {
    pass_seconds: Histogram,
    /// Release files whose change the watch saw, and when.
    published: Mutex<BTreeMap<String, DateTime<Utc>>>,
}

impl Default for Live {
    fn default() -> Live {
        // 0.5 s .. ~68 min: a pass that reuses every scan up to one that
        // patches a host's worth of images.
        Live { pass_seconds: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.5, 2.0, 14)), published: Mutex::new(BTreeMap::new()) }
    }
}

impl Live {
    /// A pass took `seconds`.
    pub fn pass_done(&self, seconds: f64) {
        self.pass_seconds.observe(seconds);
    }

    /// The watch saw the Release file `url` change at `at`.
    pub fn published(&self, url: &str, at: DateTime<Utc>) {
        self.published.lock().unwrap_or_else(|e| e.into_inner()).insert(url.to_string(), at);
    }
}

type Labels = Vec<(&'static str, String)>;

/// The metrics text for the state in `state` at `now`.
pub fn render(state: &State, live: &Live, now: DateTime<Utc>) -> Result<String> {
    let targets = state.exposures(now)?;
    let mut registry = Registry::default();
    per_target(&mut registry, &targets);
    let totals = state.totals()?;
    for (name, help, value) in [
        ("freshen_patches", "Deploys of a patched image that were accepted", totals.patched),
        ("freshen_rollbacks", "Deploys of a patched image that were rolled back", totals.rolled_back),
        ("freshen_failures", "Targets a pass left failed", totals.failed),
    ] {
        let c = Counter::<u64>::default();
        c.inc_by(value);
        registry.register(name, help, c);
    }
    if let Some(at) = state.last_good_pass()? {
        let g = Gauge::<i64>::default();
        g.set(at.timestamp());
        registry.register("freshen_last_successful_pass_timestamp_seconds", "When the latest pass without error finished", g);
    }
    let mut sources = state.sources_seen()?;
    sources.extend(live.published.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(u, t)| (u.clone(), *t)));
    let family = Family::<Labels, Gauge>::default();
    for (url, at) in sources {
        family.get_or_create(&vec![("source", url)]).set(at.timestamp());
    }
    registry.register("freshen_source_last_change_timestamp_seconds", "When freshen first saw the current content of each Release file", family);
    registry.register("freshen_pass_duration_seconds", "How long the passes of this watch took", live.pass_seconds.clone());
    let mut out = String::new();
    encode(&mut out, &registry).expect("writing to a String");
    Ok(out)
}

fn per_target(registry: &mut Registry, targets: &[Exposure]) {
    let pending = Family::<Labels, Gauge>::default();
    let exposure = Family::<Labels, Gauge>::default();
    for t in targets {
        // Not the image: a label that changes with each deploy would start
        // a new series.
        let labels = vec![("kind", t.kind.clone()), ("target", t.name.clone())];
        pending.get_or_create(&labels).set(t.pending_security as i64);
        exposure.get_or_create(&labels).set(t.exposure_seconds.unwrap_or(0));
    }
    registry.register("freshen_pending_security_fixes", "Security fixes apt-get upgrade would install in the target's image", pending);
    registry.register("freshen_open_exposure_seconds", "How long the target's oldest pending security fix has been available", exposure);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, Kind, Outcome, Pending, Target};

    #[test]
    fn per_target_gauges_totals_and_the_pass_histogram() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open_writer(dir.path()).unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let fix = Pending { package: "libc6".into(), arch: "amd64".into(), installed: "1".into(), candidate: "2".into(), suite: "s".into(), security: true, held_back: None, held: false, cves: vec![], fixed_on: None };
        let target = Target { kind: Kind::Container, name: "web".into(), image: "web:1".into(), image_id: None, source: None, skip: None };
        let pass = s.begin_pass(t0, false).unwrap();
        s.record_pass(pass, &[], &[Outcome { pending: Some(vec![fix]), ..Outcome::new(target, Action::Failed, Some("boom".into())) }], true, t0, None).unwrap();
        let live = Live::default();
        live.pass_done(3.0);
        let text = render(&State::open_reader(dir.path()).unwrap(), &live, t0 + chrono::Duration::seconds(90)).unwrap();
        for line in [
            "freshen_pending_security_fixes{kind=\"container\",target=\"web\"} 1",
            "freshen_open_exposure_seconds{kind=\"container\",target=\"web\"} 90",
            "freshen_failures_total 1",
            "freshen_patches_total 0",
            "freshen_last_successful_pass_timestamp_seconds 1767225600",
            "freshen_pass_duration_seconds_count 1",
            "freshen_pass_duration_seconds_bucket{le=\"4.0\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
