//! The chart of the exposure windows closed over the last 30 days, as SVG
//! in the page: one bar per day, as high as the longest window closed that
//! day, coloured by how long it was (the text says the same).

use std::fmt::Write;

use chrono::{DateTime, Duration, Utc};

use super::escape;
use crate::duration::human;
use crate::state::Window;

pub const DAYS: i64 = 30;
const W: f64 = 800.0;
const H: f64 = 200.0;
const LEFT: f64 = 66.0;
const BOTTOM: f64 = 32.0;
const TOP: f64 = 12.0;

/// The colour class of a window: closed within a day, within three, later.
pub fn band(seconds: i64) -> (&'static str, &'static str) {
    match seconds {
        s if s <= 86_400 => ("ok", "within a day"),
        s if s <= 3 * 86_400 => ("warn", "within 3 days"),
        _ => ("bad", "after more than 3 days"),
    }
}

/// The SVG for `windows` (those closed since 30 days before `now`).
pub fn svg(windows: &[Window], now: DateTime<Utc>) -> String {
    let start = (now - Duration::days(DAYS - 1)).date_naive();
    let mut days: Vec<Vec<i64>> = vec![Vec::new(); DAYS as usize];
    for w in windows {
        let i = (w.closed.date_naive() - start).num_days();
        if (0..DAYS).contains(&i) {
            days[i as usize].push(w.seconds);
        }
    }
    let longest = days.iter().flatten().copied().max().unwrap_or(0);
    // The scale's top, in hours: a round number above the longest window.
    let top_h = [1, 6, 12, 24, 48, 96, 168, 336, 720].into_iter().find(|h| h * 3600 >= longest).unwrap_or((longest / 3600 / 24 + 1) * 24) as f64;
    let plot_w = W - LEFT - 8.0;
    let plot_h = H - TOP - BOTTOM;
    let slot = plot_w / DAYS as f64;
    let y = |hours: f64| TOP + plot_h - hours / top_h * plot_h;
    let label = format!("Exposure windows closed per day over the last {DAYS} days; the longest was {}", if longest > 0 { human(longest) } else { "none".into() });
    let mut s = String::new();
    let _ = write!(s, r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg"><title id="chart-title">{}</title>"#, escape(&label));
    for k in 0..=4 {
        let hours = top_h * k as f64 / 4.0;
        let yy = y(hours);
        let text = axis_label(hours, top_h);
        let _ = write!(s, r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{text}</text>"#, W - 8.0, LEFT - 6.0, yy + 4.0);
    }
    for (i, day) in days.iter().enumerate() {
        let date = start + Duration::days(i as i64);
        let x = LEFT + i as f64 * slot;
        if (i % 7 == 0 && i as i64 <= DAYS - 5) || i as i64 == DAYS - 1 {
            let (at, anchor) = if i == 0 { (x, "start") } else if i as i64 == DAYS - 1 { (x + slot, "end") } else { (x + slot / 2.0, "middle") };
            let _ = write!(s, r#"<text class="axis" x="{at:.1}" y="{}" text-anchor="{anchor}">{}</text>"#, H - 6.0, date.format("%b %-d"));
        }
        let Some(&max) = day.iter().max() else { continue };
        let (class, _) = band(max);
        let top = y((max as f64 / 3600.0).min(top_h)).min(TOP + plot_h - 2.0);
        let tip = format!("{}: {} window{} closed, longest {}", date.format("%Y-%m-%d"), day.len(), if day.len() == 1 { "" } else { "s" }, human(max));
        let _ = write!(s, r#"<rect class="bar {class}" x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" rx="2"><title>{}</title></rect>"#, x + slot * 0.15, slot * 0.7, TOP + plot_h - top, escape(&tip));
    }
    let _ = write!(s, r#"<line class="base" x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}"/></svg>"#, W - 8.0, TOP + plot_h, TOP + plot_h);
    s
}

/// `0`, `15m`, `3h`, `1.5h`, `2d`: short enough for the axis.
fn axis_label(hours: f64, top_h: f64) -> String {
    match hours {
        0.0 => "0".into(),
        h if top_h <= 1.0 && h < 1.0 => format!("{}m", (h * 60.0).round()),
        h if top_h <= 48.0 => format!("{}h", (h * 10.0).round() / 10.0),
        h => format!("{}d", (h / 24.0 * 10.0).round() / 10.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_per_day_with_a_window() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z").unwrap().with_timezone(&Utc);
        let w = |days_ago: i64, hours: i64, target: &str| Window { target: target.into(), closed: now - Duration::days(days_ago), seconds: hours * 3600 };
        let svg = svg(&[w(1, 5, "a"), w(1, 30, "<b>"), w(3, 100, "c"), w(40, 1, "old")], now);
        assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
        assert!(svg.contains("bar warn") && svg.contains("bar bad") && svg.contains("2 windows closed, longest 1d 6h"), "{svg}");
        assert!(svg.contains("the longest was 4d 4h"));
    }
}
