//! `--html`: one self-contained page with the summary and two inline SVG
//! charts, the latency percentile curve and round trips per second.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::report::Report;

const W: f64 = 640.0;
const H: f64 = 280.0;
const LEFT: f64 = 60.0;
const BOTTOM: f64 = 36.0;
const TOP: f64 = 16.0;
const RIGHT: f64 = 16.0;

/// Percentiles on the curve's x axis, spaced as 1/(1-p) on a log scale.
const PERCENTILES: [f64; 12] = [
    0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
];

pub fn render(report: &Report, latency_us: &Histogram<u64>) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>load: {} over {}</title>\
         <style>body{{font-family:sans-serif;margin:2em;color:#222}}pre{{background:#f4f4f4;padding:1em}}\
         svg{{background:#fff;border:1px solid #ccc;margin:0.5em 0}}text{{font-size:11px;fill:#333}}</style>\
         </head><body><h1>{} over {}</h1><pre>{}</pre>",
        escape(report.mode),
        escape(&report.transport),
        escape(report.mode),
        escape(&report.transport),
        escape(&report.summary())
    );
    page.push_str("<h2>Latency by percentile (ms)</h2>");
    page.push_str(&percentile_curve(latency_us));
    let ticks = report.timeline.as_deref().unwrap_or_default();
    page.push_str("<h2>Round trips per second</h2>");
    let rates: Vec<f64> = ticks.iter().map(|t| t.round_trips as f64).collect();
    page.push_str(&bars(&rates, "/s"));
    page.push_str("<h2>p99 latency of each second (ms)</h2>");
    let p99s: Vec<f64> = ticks.iter().map(|t| t.p99_ms).collect();
    page.push_str(&bars(&p99s, " ms"));
    page.push_str("</body></html>\n");
    page
}

fn x_of_percentile(p: f64) -> f64 {
    // 0 → 0, 90 → 1, 99 → 2, 99.9 → 3 ... capped at 5 (99.999).
    let q = (1.0 - p / 100.0).max(1e-5);
    (-q.log10()).min(5.0)
}

fn percentile_curve(us: &Histogram<u64>) -> String {
    let mut svg = open_svg();
    if us.is_empty() {
        svg.push_str("<text x='80' y='140'>no round trips</text></svg>");
        return svg;
    }
    let points: Vec<(f64, f64)> = PERCENTILES
        .iter()
        .map(|&p| {
            let v = if p >= 100.0 {
                us.max()
            } else {
                us.value_at_percentile(p)
            };
            (x_of_percentile(p), v as f64 / 1000.0)
        })
        .collect();
    let y_max = nice_max(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let px = |x: f64| LEFT + x / 5.0 * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / y_max * (H - BOTTOM - TOP);
    axes(&mut svg, y_max, "ms");
    for (label, x) in [
        ("0", 0.0),
        ("90", 1.0),
        ("99", 2.0),
        ("99.9", 3.0),
        ("99.99", 4.0),
        ("99.999", 5.0),
    ] {
        let _ = write!(
            svg,
            "<text x='{:.1}' y='{:.1}' text-anchor='middle'>{label}%</text>",
            px(x),
            H - BOTTOM + 14.0
        );
    }
    let path: Vec<String> = points
        .iter()
        .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
        .collect();
    let _ = write!(
        svg,
        "<polyline fill='none' stroke='#c0392b' stroke-width='2' points='{}'/>",
        path.join(" ")
    );
    for &(x, y) in &points {
        let _ = write!(
            svg,
            "<circle cx='{:.1}' cy='{:.1}' r='2.5' fill='#c0392b'><title>{y:.3} ms</title></circle>",
            px(x),
            py(y)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One bar a second.
fn bars(series: &[f64], unit: &str) -> String {
    let mut svg = open_svg();
    if series.is_empty() {
        svg.push_str("<text x='80' y='140'>no round trips</text></svg>");
        return svg;
    }
    let y_max = nice_max(series.iter().copied().fold(0.0, f64::max));
    let n = series.len() as f64;
    let px = |i: f64| LEFT + i / n * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / y_max * (H - BOTTOM - TOP);
    axes(&mut svg, y_max, unit);
    let bar = (W - LEFT - RIGHT) / n;
    for (i, &v) in series.iter().enumerate() {
        let _ = write!(
            svg,
            "<rect x='{:.1}' y='{:.1}' width='{:.1}' height='{:.1}' fill='#2e86c1'><title>t={}s: {v}{unit}</title></rect>",
            px(i as f64) + bar * 0.1,
            py(v),
            bar * 0.8,
            H - BOTTOM - py(v),
            i + 1
        );
    }
    let step = (series.len() / 10).max(1);
    for i in (0..series.len()).step_by(step) {
        let _ = write!(
            svg,
            "<text x='{:.1}' y='{:.1}' text-anchor='middle'>{}s</text>",
            px(i as f64 + 0.5),
            H - BOTTOM + 14.0,
            i + 1
        );
    }
    svg.push_str("</svg>");
    svg
}

fn open_svg() -> String {
    format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='{H}' viewBox='0 0 {W} {H}'>"
    )
}

fn axes(svg: &mut String, y_max: f64, unit: &str) {
    let _ = write!(
        svg,
        "<line x1='{LEFT}' y1='{TOP}' x2='{LEFT}' y2='{0}' stroke='#555'/>\
         <line x1='{LEFT}' y1='{0}' x2='{1}' y2='{0}' stroke='#555'/>",
        H - BOTTOM,
        W - RIGHT
    );
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let y = H - BOTTOM - f64::from(i) / 4.0 * (H - BOTTOM - TOP);
        let _ = write!(
            svg,
            "<line x1='{LEFT}' y1='{y:.1}' x2='{}' y2='{y:.1}' stroke='#eee'/>\
             <text x='{}' y='{:.1}' text-anchor='end'>{} {unit}</text>",
            W - RIGHT,
            LEFT - 4.0,
            y + 4.0,
            trim(v)
        );
    }
}

fn trim(v: f64) -> String {
    if v >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A round axis top at or above `v`.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&top| top >= v)
        .unwrap_or(10.0 * magnitude)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Tick;

    #[test]
    fn the_page_holds_both_charts_and_the_summary() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for us in [1_000, 2_000, 3_000, 40_000] {
            h.record(us).unwrap();
        }
        let report = Report {
            mode: "run",
            transport: "ws".into(),
            timeline: Some(vec![
                Tick {
                    t: 1,
                    round_trips: 10,
                    p99_ms: 0.5,
                },
                Tick {
                    t: 2,
                    round_trips: 30,
                    p99_ms: 12.25,
                },
            ]),
            ..Report::default()
        };
        let page = render(&report, &h);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert_eq!(page.matches("<svg").count(), 3);
        assert!(page.contains("<polyline"));
        assert_eq!(page.matches("<rect").count(), 4);
        assert!(page.contains("t=2s: 12.25 ms"), "p99 of the second second");
        assert!(page.contains("run over ws"));
        assert!(page.contains("<title>40.0"), "max point on the curve");
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.3), 10.0);
        assert_eq!(nice_max(180.0), 200.0);
        assert_eq!(nice_max(2.1), 2.5);
    }
}
