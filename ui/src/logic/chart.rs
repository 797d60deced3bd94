//! Chart geometry: scales, axis ticks, SVG paths for line and area charts, and bar rectangles.
//! Pure functions of numbers, so they are tested without a browser; `components::chart` draws
//! them.

/// The drawing area of a chart inside its SVG view box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    /// View box width.
    pub width: f64,
    /// View box height.
    pub height: f64,
    /// Space left of the plot (for the y axis labels).
    pub left: f64,
    /// Space right of the plot.
    pub right: f64,
    /// Space above the plot.
    pub top: f64,
    /// Space below the plot (for the x axis labels).
    pub bottom: f64,
}

impl Frame {
    /// The frame every chart of the UI uses (it scales with the SVG's CSS width).
    pub const STANDARD: Frame = Frame {
        width: 640.0,
        height: 220.0,
        left: 48.0,
        right: 16.0,
        top: 12.0,
        bottom: 28.0,
    };

    /// Left edge of the plot.
    pub fn x0(&self) -> f64 {
        self.left
    }

    /// Right edge of the plot.
    pub fn x1(&self) -> f64 {
        self.width - self.right
    }

    /// Top edge of the plot (the maximum value).
    pub fn y_top(&self) -> f64 {
        self.top
    }

    /// Bottom edge of the plot (the baseline, value 0).
    pub fn y_base(&self) -> f64 {
        self.height - self.bottom
    }

    /// Plot width.
    pub fn plot_width(&self) -> f64 {
        (self.x1() - self.x0()).max(0.0)
    }

    /// Plot height.
    pub fn plot_height(&self) -> f64 {
        (self.y_base() - self.y_top()).max(0.0)
    }

    /// The y coordinate of `value` on a scale from 0 to `max` (clamped to the plot).
    pub fn y_of(&self, value: f64, max: f64) -> f64 {
        let ratio = if max > 0.0 && value.is_finite() {
            (value / max).clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.y_base() - ratio * self.plot_height()
    }

    /// The x coordinate of point `index` of `count` evenly spread over the plot (a single point
    /// sits in the middle).
    pub fn x_of(&self, index: usize, count: usize) -> f64 {
        if count <= 1 {
            return self.x0() + self.plot_width() / 2.0;
        }
        self.x0() + self.plot_width() * index as f64 / (count - 1) as f64
    }
}

/// A "nice" upper bound for an axis: 1, 2, 2.5 or 5 times a power of ten, at least `max`
/// (1 when everything is 0).
pub fn nice_max(max: f64) -> f64 {
    if !max.is_finite() || max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        let candidate = step * magnitude;
        if candidate >= max * (1.0 - 1e-9) {
            return candidate;
        }
    }
    10.0 * magnitude
}

/// How many intervals to split an axis from 0 to `max` (a [`nice_max`]) into so that every
/// tick is a round number; with `integers`, small counts get one tick per unit (no `2.5`).
pub fn tick_count(max: f64, integers: bool) -> usize {
    if !max.is_finite() || max <= 0.0 {
        return 1;
    }
    if integers && max <= 5.0 {
        return (max.round() as usize).max(1);
    }
    let leading = max / 10f64.powf(max.log10().floor());
    // 1 → 0.2 steps, 2 → 0.5, 2.5 → 0.5, 5 → 1 (times the power of ten).
    if (leading - 2.0).abs() < 1e-9 { 4 } else { 5 }
}

/// `count + 1` evenly spaced tick values from 0 to `max`.
pub fn ticks(max: f64, count: usize) -> Vec<f64> {
    let count = count.max(1);
    (0..=count).map(|i| max * i as f64 / count as f64).collect()
}

/// The points of a series over the frame, values scaled to `max`.
pub fn points(values: &[f64], max: f64, frame: &Frame) -> Vec<(f64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (frame.x_of(i, values.len()), frame.y_of(*v, max)))
        .collect()
}

/// An SVG path through `points` (`M x y L x y ...`); empty without points.
pub fn line_path(points: &[(f64, f64)]) -> String {
    let mut d = String::new();
    for (i, (x, y)) in points.iter().enumerate() {
        let cmd = if i == 0 { 'M' } else { 'L' };
        if !d.is_empty() {
            d.push(' ');
        }
        d.push_str(&format!("{cmd}{} {}", round(*x), round(*y)));
    }
    d
}

/// A closed SVG path of the area between `points` and the baseline `base_y`; empty without
/// points.
pub fn area_path(points: &[(f64, f64)], base_y: f64) -> String {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return String::new();
    };
    format!(
        "M{} {} L{} {} {} L{} {} Z",
        round(first.0),
        round(base_y),
        round(first.0),
        round(first.1),
        line_path(&points[1..]).replace('M', "L"),
        round(last.0),
        round(base_y)
    )
    .replace("  ", " ")
}

/// One bar of a bar chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub width: f64,
    /// Height (0 for a value of 0).
    pub height: f64,
}

/// Widest bar drawn (a few categories would otherwise give slabs).
pub const MAX_BAR_WIDTH: f64 = 96.0;

/// Vertical bars for `values` over the frame, scaled to `max`, separated by `gap` (a fraction
/// of each slot, 0 to 0.9), at most [`MAX_BAR_WIDTH`] wide and centred in their slots.
pub fn bars(values: &[f64], max: f64, frame: &Frame, gap: f64) -> Vec<Bar> {
    if values.is_empty() {
        return Vec::new();
    }
    let slot = frame.plot_width() / values.len() as f64;
    let width = (slot - gap.clamp(0.0, 0.9) * slot).min(MAX_BAR_WIDTH);
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let y = frame.y_of(*v, max);
            Bar {
                x: round(frame.x0() + slot * i as f64 + (slot - width) / 2.0),
                y: round(y),
                width: round(width),
                height: round(frame.y_base() - y),
            }
        })
        .collect()
}

/// Rounds to 0.1 so the SVG text stays short and identical on the server and in the browser.
pub fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Which of `count` labels to print along an x axis so that at most `max_labels` show: the
/// first, the last, and evenly spaced ones between.
pub fn label_indexes(count: usize, max_labels: usize) -> Vec<usize> {
    if count == 0 || max_labels == 0 {
        return Vec::new();
    }
    if count <= max_labels {
        return (0..count).collect();
    }
    let slots = max_labels.max(2) - 1;
    let mut out: Vec<usize> = (0..=slots)
        .map(|i| ((count - 1) as f64 * i as f64 / slots as f64).round() as usize)
        .collect();
    out.dedup();
    out
}

/// Counts of each distinct label, most first (ties by label), for a bar chart.
pub fn tally<I: IntoIterator<Item = String>>(labels: I) -> Vec<(String, f64)> {
    let mut counts: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    for l in labels {
        *counts.entry(l).or_default() += 1.0;
    }
    let mut out: Vec<(String, f64)> = counts.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Frame = Frame {
        width: 100.0,
        height: 60.0,
        left: 10.0,
        right: 10.0,
        top: 10.0,
        bottom: 10.0,
    };

    #[test]
    fn nice_max_rounds_up_to_a_readable_bound() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(-3.0), 1.0);
        assert_eq!(nice_max(f64::NAN), 1.0);
        assert_eq!(nice_max(1.0), 1.0);
        assert_eq!(nice_max(0.73), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(12.0), 20.0);
        assert_eq!(nice_max(21.0), 25.0);
        assert_eq!(nice_max(480.0), 500.0);
    }

    #[test]
    fn tick_counts_give_round_ticks() {
        assert_eq!(tick_count(1.0, false), 5, "0, 20%, 40%, ...");
        assert_eq!(tick_count(20.0, true), 4, "0, 5, 10, 15, 20");
        assert_eq!(tick_count(25.0, true), 5, "0, 5, 10, ...");
        assert_eq!(tick_count(500.0, true), 5);
        assert_eq!(tick_count(5.0, true), 5, "one per unit");
        assert_eq!(tick_count(2.0, true), 2);
        assert_eq!(tick_count(1.0, true), 1);
        assert_eq!(tick_count(0.0, true), 1);
        for (max, integers) in [
            (20.0, true),
            (25.0, true),
            (5.0, true),
            (2.0, true),
            (100.0, true),
        ] {
            for t in ticks(max, tick_count(max, integers)) {
                assert_eq!(t, t.round(), "{t} on an axis to {max}");
            }
        }
    }

    #[test]
    fn few_bars_stay_narrow_and_centred() {
        let wide = Frame { width: 1000.0, ..F };
        let b = bars(&[1.0], 1.0, &wide, 0.35);
        assert_eq!(b[0].width, MAX_BAR_WIDTH);
        assert_eq!(b[0].x, round(10.0 + (980.0 - MAX_BAR_WIDTH) / 2.0));
    }

    #[test]
    fn ticks_split_the_axis_evenly() {
        assert_eq!(ticks(1.0, 4), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(ticks(10.0, 0), vec![0.0, 10.0]);
    }

    #[test]
    fn values_map_into_the_plot_with_zero_on_the_baseline() {
        assert_eq!(F.y_of(0.0, 10.0), 50.0);
        assert_eq!(F.y_of(10.0, 10.0), 10.0);
        assert_eq!(F.y_of(5.0, 10.0), 30.0);
        assert_eq!(F.y_of(20.0, 10.0), 10.0, "clamped at the top");
        assert_eq!(F.y_of(3.0, 0.0), 50.0, "no scale: baseline");
        assert_eq!(F.x_of(0, 3), 10.0);
        assert_eq!(F.x_of(2, 3), 90.0);
        assert_eq!(F.x_of(0, 1), 50.0, "a single point is centred");
    }

    #[test]
    fn line_and_area_paths_follow_the_points() {
        let pts = points(&[0.0, 10.0, 5.0], 10.0, &F);
        assert_eq!(pts, vec![(10.0, 50.0), (50.0, 10.0), (90.0, 30.0)]);
        assert_eq!(line_path(&pts), "M10 50 L50 10 L90 30");
        assert_eq!(
            area_path(&pts, 50.0),
            "M10 50 L10 50 L50 10 L90 30 L90 50 Z"
        );
        assert_eq!(line_path(&[]), "");
        assert_eq!(area_path(&[], 50.0), "");
        assert_eq!(area_path(&[(5.0, 7.0)], 50.0), "M5 50 L5 7 L5 50 Z");
    }

    #[test]
    fn bars_fill_their_slots_minus_the_gap() {
        let b = bars(&[10.0, 0.0, 5.0, 2.5], 10.0, &F, 0.5);
        assert_eq!(b.len(), 4);
        assert_eq!(
            b[0],
            Bar {
                x: 15.0,
                y: 10.0,
                width: 10.0,
                height: 40.0
            }
        );
        assert_eq!(b[1].height, 0.0);
        assert_eq!(b[2].y, 30.0);
        assert_eq!(b[3].x, 75.0);
        assert!(bars(&[], 1.0, &F, 0.2).is_empty());
    }

    #[test]
    fn tally_counts_labels_most_first() {
        let t = tally(["waf", "authn", "waf", "ratelimit", "authn", "waf"].map(String::from));
        assert_eq!(
            t,
            vec![
                ("waf".to_string(), 3.0),
                ("authn".to_string(), 2.0),
                ("ratelimit".to_string(), 1.0)
            ]
        );
        assert!(tally(Vec::<String>::new()).is_empty());
    }

    #[test]
    fn x_labels_are_thinned_keeping_both_ends() {
        assert_eq!(label_indexes(3, 6), vec![0, 1, 2]);
        assert_eq!(label_indexes(30, 4), vec![0, 10, 19, 29]);
        assert_eq!(label_indexes(0, 4), Vec::<usize>::new());
        assert_eq!(label_indexes(5, 1), vec![0, 4]);
    }
}
