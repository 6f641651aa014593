//! Pictures: training curves, confusion-matrix heatmap, per-class sample grid.

use crate::data::Dataset;
use crate::emotion::Emotion;
use crate::error::{Error, Result};
use crate::draw::{perr, render_png, render_png_on};
use crate::eval::metrics::Report;
use crate::data::preprocess::FACE_SIZE;
use crate::train::EpochRecord;
use plotters::prelude::*;
use std::path::Path;

/// Loss and accuracy per epoch, train vs validation, side by side.
pub fn curves(history: &[EpochRecord], path: &Path) -> Result<()> {
    if history.is_empty() {
        return Err(Error::Plot("no epochs to plot".into()));
    }
    render_png(path, (1100, 420), |root| {
        let (left, right) = root.split_horizontally(550);
        let last = history.len() as f64 + 0.5;
        type Get = fn(&EpochRecord) -> f64;
        let panels: [(&DrawingArea<_, _>, &str, Get, Get, bool); 2] = [
            (&left, "loss", |r| r.train_loss, |r| r.val_loss, false),
            (&right, "accuracy", |r| r.train_acc, |r| r.val_acc, true),
        ];
        for (area, title, train, val, is_acc) in panels {
            let values: Vec<f64> = history.iter().flat_map(|r| [train(r), val(r)]).filter(|v| v.is_finite()).collect();
            let (mut lo, mut hi) = values.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            if is_acc {
                lo = (lo - 0.02).max(0.0);
                hi = (hi + 0.02).min(1.0);
            } else {
                lo = (lo * 0.95).max(0.0);
                hi *= 1.05;
            }
            if hi <= lo {
                hi = lo + 1.0;
            }
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(0.5..last, lo..hi)
                .map_err(perr)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .x_label_formatter(&|v| if (v - v.round()).abs() < 1e-6 { format!("{v:.0}") } else { String::new() })
                .y_label_formatter(&|v| if is_acc { format!("{:.0}%", v * 100.0) } else { format!("{v:.2}") })
                .draw()
                .map_err(perr)?;
            for (name, get, color) in [("train", train, BLUE), ("val", val, RED)] {
                let pts: Vec<(f64, f64)> = history.iter().map(|r| (r.epoch as f64, get(r))).collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(perr)?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
                chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(perr)?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(perr)?;
        }
        Ok(())
    })
}

/// Confusion matrix heatmap, rows normalised to recall, counts printed in each cell.
pub fn confusion(report: &Report, title: &str, path: &Path) -> Result<()> {
    let n = report.classes.len();
    let cell = 80i32;
    let (ox, oy) = (120i32, 70i32);
    let w = (ox + cell * n as i32 + 30) as u32;
    let h = (oy + cell * n as i32 + 70) as u32;
    render_png(path, (w, h), |root| {
        root.draw(&Text::new(title.to_string(), (ox, 20), ("sans-serif", 20).into_font()))
            .map_err(perr)?;
        for (r, row) in report.confusion.iter().enumerate() {
            let total: u64 = row.iter().sum::<u64>().max(1);
            for (c, &v) in row.iter().enumerate() {
                let frac = v as f64 / total as f64;
                let shade = (255.0 * (1.0 - frac)) as u8;
                let color = RGBColor(shade, shade, 255);
                let (x0, y0) = (ox + c as i32 * cell, oy + r as i32 * cell);
                root.draw(&Rectangle::new([(x0, y0), (x0 + cell, y0 + cell)], color.filled()))
                    .map_err(perr)?;
                root.draw(&Rectangle::new([(x0, y0), (x0 + cell, y0 + cell)], BLACK.mix(0.3)))
                    .map_err(perr)?;
                let fg = if frac > 0.5 { WHITE } else { BLACK };
                root.draw(&Text::new(
                    format!("{v}"),
                    (x0 + 8, y0 + cell / 2 - 18),
                    ("sans-serif", 18).into_font().color(&fg),
                ))
                .map_err(perr)?;
                root.draw(&Text::new(
                    format!("{:.0}%", frac * 100.0),
                    (x0 + 8, y0 + cell / 2 + 4),
                    ("sans-serif", 15).into_font().color(&fg),
                ))
                .map_err(perr)?;
            }
            root.draw(&Text::new(
                report.classes[r].clone(),
                (10, oy + r as i32 * cell + cell / 2 - 8),
                ("sans-serif", 16).into_font(),
            ))
            .map_err(perr)?;
        }
        for (c, name) in report.classes.iter().enumerate() {
            root.draw(&Text::new(
                name.clone(),
                (ox + c as i32 * cell + 6, oy + n as i32 * cell + 8),
                ("sans-serif", 15).into_font(),
            ))
            .map_err(perr)?;
        }
        root.draw(&Text::new(
            "rows: true class, columns: predicted".to_string(),
            (ox, oy + n as i32 * cell + 36),
            ("sans-serif", 14).into_font().color(&BLACK.mix(0.7)),
        ))
        .map_err(perr)?;
        root.draw(&Text::new("true \\ predicted".to_string(), (10, oy - 24), ("sans-serif", 14).into_font()))
            .map_err(perr)?;
        Ok(())
    })
}

/// A grid of up to `per_class` sample faces for every class, one row per class, at 2x scale.
pub fn sample_grid(ds: &Dataset, per_class: usize, path: &Path) -> Result<()> {
    let scale = 2usize;
    let side = FACE_SIZE * scale;
    let label_w = 110usize;
    let w = label_w + per_class.max(1) * (side + 4);
    let h = Emotion::COUNT * (side + 4) + 4;
    let mut buf = vec![255u8; w * h * 3];
    for e in Emotion::ALL {
        let row = e.index();
        let picks = (0..ds.len()).filter(|&i| ds.labels[i] == e).take(per_class);
        for (k, i) in picks.enumerate() {
            let face = ds.face(i);
            let (x0, y0) = (label_w + k * (side + 4), 4 + row * (side + 4));
            for y in 0..side {
                for x in 0..side {
                    let v = face[(y / scale) * FACE_SIZE + x / scale];
                    let o = ((y0 + y) * w + x0 + x) * 3;
                    buf[o..o + 3].copy_from_slice(&[v, v, v]);
                }
            }
        }
    }
    let counts = ds.class_counts();
    render_png_on(path, buf, (w as u32, h as u32), |root| {
        for e in Emotion::ALL {
            let y = (4 + e.index() * (side + 4) + side / 2) as i32;
            let [r, g, b] = e.color();
            root.draw(&Text::new(e.name().to_string(), (8, y - 16), ("sans-serif", 18).into_font().color(&RGBColor(r, g, b))))
                .map_err(perr)?;
            root.draw(&Text::new(format!("{}", counts[e.index()]), (8, y + 6), ("sans-serif", 14).into_font()))
                .map_err(perr)?;
        }
        Ok(())
    })
}

/// A training callback that redraws the run's `curves.png` after every epoch (a warning where
/// drawing fails; training goes on).
pub fn curves_each_epoch() -> crate::train::EpochCallback {
    std::sync::Arc::new(|run: &crate::train::RunDir, state: &crate::train::TrainState| {
        if let Err(e) = curves(&state.history, &run.curves()) {
            tracing::warn!("could not draw curves: {e}");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(epoch: usize) -> EpochRecord {
        EpochRecord {
            epoch,
            lr: 1e-3,
            train_loss: 1.5 / epoch as f64,
            train_acc: 0.3 + 0.05 * epoch as f64,
            val_loss: 1.6 / epoch as f64,
            val_acc: 0.28 + 0.04 * epoch as f64,
            val_macro_f1: 0.2,
            epoch_seconds: 1.0,
            elapsed_seconds: epoch as f64,
            val_balanced_acc: 0.25,
        }
    }

    #[test]
    fn plots_are_valid_pngs() {
        let dir = crate::fsutil::TempDir::new().unwrap();
        let p = dir.path().join("curves.png");
        curves(&[rec(1), rec(2), rec(3)], &p).unwrap();
        let img = image::open(&p).unwrap();
        assert_eq!((img.width(), img.height()), (1100, 420));
        // Something other than white was drawn.
        assert!(img.to_rgb8().pixels().any(|px| px.0 != [255, 255, 255]));

        let mut c = crate::eval::metrics::Confusion::default();
        c.add(Emotion::Happy, Emotion::Happy);
        c.add(Emotion::Sad, Emotion::Fear);
        let q = dir.path().join("confusion.png");
        confusion(&c.report(None), "test", &q).unwrap();
        assert!(image::open(&q).is_ok());

        let ds = Dataset::from_faces(vec![128; 2 * crate::data::preprocess::FACE_PIXELS], vec![Emotion::Angry, Emotion::Surprise]);
        let g = dir.path().join("grid.png");
        sample_grid(&ds, 4, &g).unwrap();
        assert!(image::open(&g).is_ok());
        assert!(curves(&[], &dir.path().join("none.png")).is_err());
    }
}

/// One sample of a person's expression over time (a video timeline row).
#[derive(Debug, Clone, PartialEq)]
pub struct TimelinePoint {
    pub time_s: f64,
    pub track: u32,
    pub probs: [f32; Emotion::COUNT],
}

/// Each person's (track's) seven probabilities over time, one panel per person (the
/// `max_tracks` seen longest, in order of first appearance).
pub fn timeline(points: &[TimelinePoint], max_tracks: usize, path: &Path) -> Result<()> {
    let mut counts: std::collections::BTreeMap<u32, usize> = std::collections::BTreeMap::new();
    for p in points {
        *counts.entry(p.track).or_default() += 1;
    }
    if counts.is_empty() {
        return Err(Error::Plot("no faces to plot".into()));
    }
    let mut tracks: Vec<(u32, usize)> = counts.into_iter().collect();
    tracks.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    tracks.truncate(max_tracks.max(1));
    tracks.sort_by_key(|t| t.0);
    let t_end = points.iter().map(|p| p.time_s).fold(0.0f64, f64::max).max(1e-3);
    let panel_h = 260u32;
    render_png(path, (1000, panel_h * tracks.len() as u32), |root| {
        let panels = root.split_evenly((tracks.len(), 1));
        for (area, (id, _)) in panels.iter().zip(&tracks) {
            let mut chart = ChartBuilder::on(area)
                .caption(format!("person #{id}"), ("sans-serif", 18))
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(46)
                .right_y_label_area_size(90)
                .build_cartesian_2d(0.0..t_end, 0.0..1.0f64)
                .map_err(perr)?;
            chart
                .configure_mesh()
                .x_desc("seconds")
                .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
                .draw()
                .map_err(perr)?;
            let mine: Vec<&TimelinePoint> = points.iter().filter(|p| p.track == *id).collect();
            for e in Emotion::ALL {
                let [r, g, b] = e.color();
                let color = RGBColor(r, g, b);
                // Break the line where the person was not seen for over a second.
                let mut segment: Vec<(f64, f64)> = Vec::new();
                let mut segments = Vec::new();
                for p in &mine {
                    if segment.last().is_some_and(|&(t, _)| p.time_s - t > 1.0) {
                        segments.push(std::mem::take(&mut segment));
                    }
                    segment.push((p.time_s, p.probs[e.index()] as f64));
                }
                segments.push(segment);
                for (k, s) in segments.into_iter().enumerate() {
                    let series = chart.draw_series(LineSeries::new(s, color.stroke_width(2))).map_err(perr)?;
                    if k == 0 {
                        series
                            .label(e.name())
                            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(3)));
                    }
                }
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(perr)?;
        }
        Ok(())
    })
}
