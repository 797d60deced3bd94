//! SVG charts: a line/area chart for time series and a bar chart for counts. The geometry is
//! `logic::chart`; here it becomes SVG with a title, a text description for screen readers,
//! axis labels and a tooltip per point. No inline styles (the page's CSP forbids them):
//! colours come from classes in paved.css.

use leptos::prelude::*;

use crate::logic::chart::{
    Frame, area_path, bars, label_indexes, line_path, nice_max, points, tick_count, ticks,
};
use crate::logic::format;

/// How values are written on axes and tooltips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueFormat {
    /// Rates from 0 to 1, as percentages.
    Percent,
    /// Counts.
    Count,
}

impl ValueFormat {
    fn write(self, v: f64) -> String {
        match self {
            ValueFormat::Percent => format::percent(v),
            ValueFormat::Count => format::count(v.round() as i64),
        }
    }
}

/// One series of a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its name (legend, tooltips).
    pub name: String,
    /// One value per label.
    pub values: Vec<f64>,
}

/// A line chart over labelled points; the first series is also drawn as an area.
#[component]
pub fn LineChart(
    /// Element id of the figure.
    #[prop(into)]
    id: String,
    /// Title (the figure's caption).
    #[prop(into)]
    title: String,
    /// What the chart shows, in words, for screen readers.
    #[prop(into)]
    description: String,
    /// One label per point (x axis).
    labels: Vec<String>,
    /// The series.
    series: Vec<Series>,
    /// How values are written.
    format: ValueFormat,
    /// Fixed top of the scale (e.g. 1 for rates); else a rounded maximum of the values.
    #[prop(optional)]
    max: Option<f64>,
) -> impl IntoView {
    let frame = Frame::STANDARD;
    let data_max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0f64, f64::max);
    let max = max.unwrap_or_else(|| nice_max(data_max));
    let title_id = format!("{id}-title");
    let desc_id = format!("{id}-desc");
    let labelled_by = format!("{title_id} {desc_id}");
    let grid = ticks(max, tick_count(max, format == ValueFormat::Count))
        .into_iter()
        .map(|t| {
            let y = frame.y_of(t, max);
            view! {
                <line class="grid" x1=frame.x0() x2=frame.x1() y1=y y2=y></line>
                <text class="tick" x=frame.x0() - 6.0 y=y + 4.0 text-anchor="end">{format.write(t)}</text>
            }
        })
        .collect_view();
    let x_labels = label_indexes(labels.len(), 6)
        .into_iter()
        .map(|i| {
            let x = frame.x_of(i, labels.len());
            let text = labels.get(i).cloned().unwrap_or_default();
            // The end labels grow inwards so they are not cut at the edges.
            let anchor = match i {
                _ if labels.len() == 1 => "middle",
                0 => "start",
                i if i + 1 == labels.len() => "end",
                _ => "middle",
            };
            view! { <text class="tick" x=x y=frame.height - 8.0 text-anchor=anchor>{text}</text> }
        })
        .collect_view();
    let show_points = labels.len() <= 60;
    let multi = series.len() > 1;
    let legend = series.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    let shapes = series
        .iter()
        .enumerate()
        .map(|(n, s)| {
            let pts = points(&s.values, max, &frame);
            let area = (n == 0).then(|| {
                view! { <path class=format!("area s{n}") d=area_path(&pts, frame.y_base())></path> }
            });
            let dots = show_points.then(|| {
                pts.iter()
                    .zip(&s.values)
                    .enumerate()
                    .map(|(i, ((x, y), v))| {
                        let label = labels.get(i).cloned().unwrap_or_default();
                        let tip = format!("{}: {} {}", label, format.write(*v), s.name);
                        view! {
                            <circle class=format!("pt s{n}") cx=*x cy=*y r="3">
                                <title>{tip}</title>
                            </circle>
                        }
                    })
                    .collect_view()
            });
            view! {
                {area}
                <path class=format!("line s{n}") d=line_path(&pts) fill="none"></path>
                {dots}
            }
        })
        .collect_view();
    view! {
        <figure class="chart" id=id>
            <figcaption id=title_id>{title}</figcaption>
            <svg
                class="chart-svg"
                viewBox=format!("0 0 {} {}", frame.width, frame.height)
                role="img"
                aria-labelledby=labelled_by
                preserveAspectRatio="xMidYMid meet"
            >
                <desc id=desc_id>{description}</desc>
                <line class="axis" x1=frame.x0() x2=frame.x1() y1=frame.y_base() y2=frame.y_base()></line>
                {grid}
                {x_labels}
                {shapes}
            </svg>
            {multi.then(|| view! {
                <ul class="legend">
                    {legend
                        .into_iter()
                        .enumerate()
                        .map(|(n, name)| view! { <li><span class=format!("swatch s{n}") aria-hidden="true"></span>{name}</li> })
                        .collect_view()}
                </ul>
            })}
        </figure>
    }
}

/// Vertical bars for labelled counts, each with its value above it.
#[component]
pub fn BarChart(
    /// Element id of the figure.
    #[prop(into)]
    id: String,
    /// Title (the figure's caption).
    #[prop(into)]
    title: String,
    /// (label, value) pairs.
    data: Vec<(String, f64)>,
    /// How values are written.
    format: ValueFormat,
) -> impl IntoView {
    // Room above the tallest bar for its value.
    let frame = Frame {
        top: 24.0,
        ..Frame::STANDARD
    };
    let values: Vec<f64> = data.iter().map(|(_, v)| *v).collect();
    let max = nice_max(values.iter().copied().fold(0.0, f64::max));
    let title_id = format!("{id}-title");
    let desc_id = format!("{id}-desc");
    let labelled_by = format!("{title_id} {desc_id}");
    let description = data
        .iter()
        .map(|(l, v)| format!("{l}: {}", format.write(*v)))
        .collect::<Vec<_>>()
        .join(", ");
    let rects = bars(&values, max, &frame, 0.35)
        .into_iter()
        .zip(data)
        .map(|(b, (label, v))| {
            let cx = b.x + b.width / 2.0;
            let value = format.write(v);
            view! {
                <rect class="bar" x=b.x y=b.y width=b.width height=b.height>
                    <title>{format!("{label}: {value}")}</title>
                </rect>
                <text class="bar-value" x=cx y=b.y - 4.0 text-anchor="middle">{value.clone()}</text>
                <text class="tick" x=cx y=frame.height - 8.0 text-anchor="middle">{label}</text>
            }
        })
        .collect_view();
    view! {
        <figure class="chart" id=id>
            <figcaption id=title_id.clone()>{title}</figcaption>
            <svg
                class="chart-svg"
                viewBox=format!("0 0 {} {}", frame.width, frame.height)
                role="img"
                aria-labelledby=labelled_by
                preserveAspectRatio="xMidYMid meet"
            >
                <desc id=desc_id>{description}</desc>
                <line class="axis" x1=frame.x0() x2=frame.x1() y1=frame.y_base() y2=frame.y_base()></line>
                {rects}
            </svg>
        </figure>
    }
}
