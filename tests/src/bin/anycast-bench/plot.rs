//! The bench's plots: horizontal bar charts (median, whisker min..max)
//! drawn with plotters into SVG, with an axis, its unit and every case
//! labelled, so that a reader sees the comparison without the table.
//!
//! Text: plotters' SVG backend writes labels as SVG text for the viewer
//! to render, so no font is needed here (plotters is built without its
//! font features and only estimates label widths for the layout).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::{
    coord::ranged1d::SegmentValue,
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

/// One bar: the median and the whisker (min..max), in the plot's unit.
#[derive(Clone, Copy)]
pub(crate) struct Bar {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

/// One series of bars, one per label (None: not measured for that label).
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) bars: Vec<Option<Bar>>,
}

/// Colours of the series, in order.
const COLOURS: [RGBColor; 4] = [
    RGBColor(0x4a, 0x7e, 0xbb),
    RGBColor(0xe0, 0x8a, 0x2c),
    RGBColor(0x3c, 0xa0, 0x5a),
    RGBColor(0x9b, 0x59, 0xb6),
];

/// Writes a chart to `path`: one group of bars per label (top to bottom
/// in the order given), one bar per series in each group; `x_desc` names
/// the quantity and its unit. The axis is scaled to the largest median
/// (single-run cases have huge outliers): whiskers past it are clipped.
pub(crate) fn hbars(
    path: &Path,
    title: &str,
    x_desc: &str,
    labels: &[String],
    series: &[Series],
) -> Result<()> {
    let k = series.len().max(1);
    let rows = (labels.len() * k) as i32;
    let medians = series
        .iter()
        .flat_map(|s| s.bars.iter().flatten().map(|b| b.median));
    let x_max = medians.clone().fold(1e-9f64, f64::max) * 1.2;
    let x_min = medians.fold(0.0f64, f64::min) * 1.2;
    let longest = labels.iter().map(|l| l.len()).max().unwrap_or(10);
    let width = 1100u32;
    let height = 110 + 18 * rows.max(1) as u32;
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| anyhow!("plotting {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    // Row r (0 at the top) is segment rows-1-r: plotters counts upwards.
    let row_of = |label: usize, s: usize| rows - 1 - (label * k + s) as i32;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size((longest as u32 * 6 + 16).min(560))
        .build_cartesian_2d(x_min..x_max, (0..rows).into_segmented())
        .map_err(|e| err(&e))?;
    let label_of = |v: &SegmentValue<i32>| -> String {
        let (SegmentValue::CenterOf(y) | SegmentValue::Exact(y)) = v else {
            return String::new();
        };
        let r = (rows - 1 - y) as usize;
        // The group's label on its first bar.
        if r.is_multiple_of(k) {
            labels.get(r / k).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows as usize + 1)
        .y_label_formatter(&label_of)
        .y_label_style(("sans-serif", 11))
        .x_desc(x_desc)
        .x_label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 13))
        .draw()
        .map_err(|e| err(&e))?;
    for (si, s) in series.iter().enumerate() {
        let colour = COLOURS[si % COLOURS.len()];
        let bars: Vec<(i32, Bar)> = s
            .bars
            .iter()
            .enumerate()
            .filter_map(|(li, b)| Some((row_of(li, si), (*b)?)))
            .collect();
        let drawn = chart
            .draw_series(bars.iter().map(|&(y, b)| {
                let mut r = Rectangle::new(
                    [
                        (0.0f64.min(b.median), SegmentValue::Exact(y)),
                        (b.median.max(0.0), SegmentValue::Exact(y + 1)),
                    ],
                    colour.filled(),
                );
                r.set_margin(2, 2, 0, 0);
                r
            }))
            .map_err(|e| err(&e))?;
        if k > 1 {
            drawn.label(s.name.as_str()).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled())
            });
        }
        chart
            .draw_series(bars.iter().map(|&(y, b)| {
                PathElement::new(
                    [
                        (b.min.clamp(x_min, x_max), SegmentValue::CenterOf(y)),
                        (b.max.clamp(x_min, x_max), SegmentValue::CenterOf(y)),
                    ],
                    BLACK,
                )
            }))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(bars.iter().map(|&(y, b)| {
                Text::new(
                    format!("{:.2}", b.median),
                    (
                        b.median.max(0.0) + (x_max - x_min) * 0.005,
                        SegmentValue::CenterOf(y),
                    ),
                    ("sans-serif", 10)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                )
            }))
            .map_err(|e| err(&e))?;
    }
    if k > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
