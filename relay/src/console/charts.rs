//! The console's charts: SVG drawn on the node by plotters and put inline in the page, so
//! nothing is fetched from elsewhere and no script draws them. Text is left to the browser
//! (plotters writes `<text>` elements; no font is bundled).

use maud::{html, Markup, PreEscaped};
use plotters::prelude::*;

/// Colours of the series, in order (distinct in print and for most colour vision).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0x1f, 0x5f, 0xa8),
    RGBColor(0xd9, 0x6c, 0x06),
    RGBColor(0x2e, 0x8b, 0x3e),
    RGBColor(0xb0, 0x1e, 0x2d),
    RGBColor(0x6a, 0x3d, 0x9a),
    RGBColor(0x8c, 0x56, 0x2b),
    RGBColor(0x4d, 0x4d, 0x4d),
    RGBColor(0x0f, 0x8f, 0x8f),
];

const WIDTH: u32 = 720;
const HEIGHT: u32 = 220;

/// One line of a time chart: a label and a value per minute.
pub(super) struct Line {
    pub(super) label: String,
    /// (unix minute, value)
    pub(super) points: Vec<(u64, f64)>,
}

/// Keeps label text plain: the SVG is put in the page as it is.
fn plain(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '<' | '>' | '&' | '"' | '\''))
        .collect()
}

/// The top of a chart's value axis for values up to `top`: a tenth of room, 1 when empty.
fn scale_top(top: f64) -> f64 {
    if top <= 0.0 {
        1.0
    } else {
        top * 1.1
    }
}

/// A value-axis label: one decimal on a small scale, whole numbers otherwise.
fn value_label(y_max: f64, v: f64) -> String {
    if y_max < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// Vietnam time (UTC+7) of a unix minute, as HH:MM.
fn clock(minute: u64) -> String {
    let m = (minute + 7 * 60) % (24 * 60);
    format!("{:02}:{:02}", m / 60, m % 60)
}

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A chart of `lines` from minute `from` to `to`, with a legend. `id` names the `<figure>`.
pub(super) fn time_chart(
    id: &str,
    title: &str,
    y_desc: &str,
    from: u64,
    to: u64,
    lines: &[Line],
) -> Markup {
    let top = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max);
    let y_max = scale_top(top);
    let to = to.max(from + 1);
    let mut svg = String::new();
    let drawn = (|| -> Result<(), String> {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(48)
            .build_cartesian_2d(from..to, 0.0..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(5)
            .x_label_formatter(&|m| clock(*m))
            .y_label_formatter(&|v| value_label(y_max, *v))
            .y_desc(plain(y_desc))
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, l) in lines.iter().enumerate() {
            // Few points: each is marked too, so a single minute still shows.
            let marks = if l.points.len() <= 120 { 3 } else { 0 };
            chart
                .draw_series(
                    LineSeries::new(l.points.iter().copied(), colour(i).stroke_width(2))
                        .point_size(marks),
                )
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
    })();
    figure(
        id,
        title,
        drawn,
        svg,
        lines.iter().map(|l| l.label.as_str()),
    )
}

/// A bar chart: one bar per (label, value).
pub(super) fn bar_chart(id: &str, title: &str, y_desc: &str, bars: &[(String, f64)]) -> Markup {
    let top = bars.iter().map(|b| b.1).fold(0.0_f64, f64::max);
    let y_max = scale_top(top);
    let n = bars.len().max(1) as f64;
    let mut svg = String::new();
    let drawn = (|| -> Result<(), String> {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..n, 0.0..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len().max(1) * 2 + 1)
            .x_label_formatter(&|x| {
                // A label under the middle of each bar only.
                let i = x.floor();
                if (x - i - 0.5).abs() < 1e-6 && i >= 0.0 {
                    bars.get(i as usize)
                        .map(|b| plain(&b.0))
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_labels(5)
            .y_label_formatter(&|v| value_label(y_max, *v))
            .y_desc(plain(y_desc))
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let x = i as f64;
                Rectangle::new([(x + 0.15, 0.0), (x + 0.85, b.1)], colour(i).filled())
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    })();
    figure(id, title, drawn, svg, std::iter::empty())
}

fn figure<'a>(
    id: &str,
    title: &str,
    drawn: Result<(), String>,
    svg: String,
    legend: impl Iterator<Item = &'a str>,
) -> Markup {
    let legend: Vec<&str> = legend.collect();
    html! {
        figure.chart id=(id) {
            figcaption { (title) }
            @match drawn {
                Ok(()) => (PreEscaped(svg)),
                Err(e) => p.error { (e) },
            }
            @if !legend.is_empty() {
                ul.legend {
                    @for (i, l) in legend.iter().enumerate() {
                        li { span class=(format!("swatch c{}", i % PALETTE.len())) {} (l) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_time_chart_draws_each_line_and_its_legend() {
        let lines = vec![
            Line {
                label: "in".into(),
                points: (0..60).map(|m| (1000 + m, (m % 7) as f64)).collect(),
            },
            Line {
                label: "<out>".into(),
                points: vec![(1000, 1.0), (1059, 3.0)],
            },
        ];
        let html = time_chart("c", "Documents", "per minute", 1000, 1060, &lines).into_string();
        assert!(html.contains("<svg"), "{html}");
        // One line per series, in the palette's first two colours (axes are drawn in black).
        assert!(
            html.contains(r##"stroke="#1F5FA8" stroke-width="2""##),
            "{html}"
        );
        assert!(
            html.contains(r##"stroke="#D96C06" stroke-width="2""##),
            "{html}"
        );
        assert!(html.contains("&lt;out&gt;"), "legend escaped by maud");
        // Axis labels are Vietnam time: minute 1000 is 16:40 UTC, 23:40 in Hanoi.
        assert!(html.contains("23:40"), "{html}");
    }

    #[test]
    fn a_bar_chart_draws_a_bar_per_value_and_labels_them_plainly() {
        let bars = vec![("on time".to_string(), 7.0), ("<late>".to_string(), 2.0)];
        let html = bar_chart("b", "Timeliness", "documents", &bars).into_string();
        assert!(html.contains("on time"), "{html}");
        assert!(
            html.contains(">late<") || html.contains("\nlate\n"),
            "{html}"
        );
        assert!(!html.contains("<late>"), "{html}");
    }

    #[test]
    fn empty_charts_still_draw() {
        let html = time_chart("e", "Nothing", "n", 5, 5, &[]).into_string();
        assert!(html.contains("<svg"));
        let html = bar_chart("e", "Nothing", "n", &[]).into_string();
        assert!(html.contains("<svg"));
    }
}
