//! Keras-style model summary (layer, output shape, parameters) and an architecture diagram.

use crate::error::{Error, Result};
use crate::model::{LayerRow, ModelSpec, Network, Pass};
use crate::data::preprocess::FACE_SIZE;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use std::collections::HashMap;
use std::fmt::Write as _;

/// A model's layer table with totals.
#[derive(Debug, Clone)]
pub struct Summary {
    pub arch: String,
    /// (Keras-style name, row).
    pub rows: Vec<(String, LayerRow)>,
    pub total: usize,
    pub trainable: usize,
    pub non_trainable: usize,
}

/// Trace one forward pass of a network of the spec's shape to list its layers (zero weights:
/// shapes and counts do not depend on them, and nothing is drawn from the seeded generator).
pub fn summarize(spec: &ModelSpec, device: &Device) -> Summary {
    let net = Network::zeroed(spec, device);
    let mut pass = Pass::traced();
    let x = Tensor::<4>::zeros([2, 1, FACE_SIZE, FACE_SIZE], device);
    let _ = net.valid().forward_with(x, &mut pass);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let rows: Vec<(String, LayerRow)> = pass
        .tape
        .into_rows()
        .into_iter()
        .map(|r| {
            let base = r.kind.keras_name();
            let k = seen.entry(base).or_insert(0);
            *k += 1;
            let name = if *k == 1 { base.to_string() } else { format!("{base}_{}", *k - 1) };
            (name, r)
        })
        .collect();
    let total: usize = rows.iter().map(|(_, r)| r.params).sum();
    let non_trainable: usize = rows.iter().map(|(_, r)| r.non_trainable).sum();
    debug_assert_eq!(total, net.num_params());
    Summary {
        arch: spec.arch.to_string(),
        rows,
        total,
        trainable: total - non_trainable,
        non_trainable,
    }
}

fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn shape_str(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("(None, {})", dims.join(", "))
}

impl Summary {
    /// The Keras-style table.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let line = "_".repeat(86);
        let _ = writeln!(s, "Model: \"{}\"", self.arch);
        let _ = writeln!(s, "{line}");
        let _ = writeln!(s, "{:<44}{:<26}{:>14}", "Layer (type)", "Output Shape", "Param #");
        let _ = writeln!(s, "{}", "=".repeat(86));
        for (i, (name, r)) in self.rows.iter().enumerate() {
            let _ = writeln!(
                s,
                "{:<44}{:<26}{:>14}",
                format!("{name} ({})", r.kind),
                shape_str(&r.shape),
                group(r.params)
            );
            if i + 1 < self.rows.len() {
                let _ = writeln!(s);
            }
        }
        let _ = writeln!(s, "{}", "=".repeat(86));
        let _ = writeln!(s, "Total params: {}", group(self.total));
        let _ = writeln!(s, "Trainable params: {}", group(self.trainable));
        let _ = writeln!(s, "Non-trainable params: {}", group(self.non_trainable));
        let _ = writeln!(s, "{line}");
        s
    }

    /// A vertical block diagram of the layers as SVG.
    pub fn to_svg(&self) -> String {
        let (w, box_h, gap) = (460, 34, 14);
        let h = 60 + self.rows.len() * (box_h + gap) + 40;
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"DejaVu Sans, sans-serif\" font-size=\"13\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"20\" y=\"30\" font-size=\"18\">ferrite {} (input 1x48x48, {} parameters)</text>\n",
            self.arch,
            group(self.total)
        );
        for (i, (name, r)) in self.rows.iter().enumerate() {
            let y = 50 + i * (box_h + gap);
            let [red, green, blue] = r.kind.color();
            let fill = format!("#{red:02x}{green:02x}{blue:02x}");
            let _ = writeln!(
                s,
                "<rect x=\"20\" y=\"{y}\" width=\"{}\" height=\"{box_h}\" rx=\"6\" fill=\"{fill}\" stroke=\"#555\"/>\n<text x=\"32\" y=\"{}\">{name} ({}) {} {}</text>",
                w - 40,
                y + 22,
                r.kind,
                shape_str(&r.shape).replace("None, ", ""),
                if r.params > 0 { format!("· {} params", group(r.params)) } else { String::new() }
            );
            if i + 1 < self.rows.len() {
                let _ = writeln!(
                    s,
                    "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#555\"/>",
                    y + box_h,
                    y + box_h + gap,
                    x = w / 2
                );
            }
        }
        s.push_str("</svg>\n");
        s
    }

    /// Write the diagram: `.svg` as vector, `.png` rendered with the embedded font.
    pub fn write_diagram(&self, path: &std::path::Path) -> Result<()> {
        match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()) {
            Some(e) if e == "svg" => crate::fsutil::write_atomic(path, self.to_svg().as_bytes()),
            #[cfg(feature = "plot")]
            Some(e) if e == "png" => layer_diagram(self, path),
            #[cfg(not(feature = "plot"))]
            Some(e) if e == "png" => Err(Error::Unsupported { what: "PNG diagrams need ferrite's `plot` feature; write .svg" }),
            _ => Err(Error::Config(format!("{}: diagram must end in .svg or .png", path.display()))),
        }
    }
}

/// The layer diagram of [`Summary::to_svg`] as PNG.
#[cfg(feature = "plot")]
fn layer_diagram(summary: &Summary, path: &std::path::Path) -> Result<()> {
    use crate::draw::{perr, render_png};
    use plotters::prelude::*;
    let (w, box_h, gap) = (520i32, 30i32, 10i32);
    let h = 60 + summary.rows.len() as i32 * (box_h + gap) + 20;
    render_png(path, (w as u32, h as u32), |root| {
        root.draw(&Text::new(
            format!("ferrite {} · {} parameters", summary.arch, summary.total),
            (16, 18),
            ("sans-serif", 18).into_font(),
        ))
        .map_err(perr)?;
        for (i, (name, r)) in summary.rows.iter().enumerate() {
            let y = 50 + i as i32 * (box_h + gap);
            let [red, green, blue] = r.kind.color();
            let fill = RGBColor(red, green, blue);
            root.draw(&Rectangle::new([(16, y), (w - 16, y + box_h)], fill.filled())).map_err(perr)?;
            root.draw(&Rectangle::new([(16, y), (w - 16, y + box_h)], BLACK.mix(0.5))).map_err(perr)?;
            let dims: Vec<String> = r.shape.iter().map(|d| d.to_string()).collect();
            root.draw(&Text::new(
                format!("{name} ({}) [{}] {}", r.kind, dims.join("x"), if r.params > 0 { format!("{} params", r.params) } else { String::new() }),
                (26, y + 8),
                ("sans-serif", 14).into_font(),
            ))
            .map_err(perr)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Arch, LayerKind};

    #[test]
    fn reference_matches_the_keras_parameter_counts() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device();
        let s = summarize(&ModelSpec::new(Arch::Reference), &device);
        assert_eq!(s.total, 4_478_727);
        assert_eq!(s.trainable, 4_474_759);
        assert_eq!(s.non_trainable, 3_968);
        let text = s.to_text();
        assert!(text.contains("Total params: 4,478,727"), "{text}");
        assert!(text.contains("Trainable params: 4,474,759"));
    }

    #[test]
    fn reference_layer_shapes() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device();
        let s = summarize(&ModelSpec::new(Arch::Reference), &device);
        let shapes: Vec<(&str, Vec<usize>)> = s
            .rows
            .iter()
            .filter(|(_, r)| matches!(r.kind, LayerKind::MaxPooling2D | LayerKind::Dense | LayerKind::Flatten))
            .map(|(_, r)| (r.kind.keras_type(), r.shape.clone()))
            .collect();
        assert_eq!(
            shapes,
            vec![
                ("MaxPooling2D", vec![64, 24, 24]),
                ("MaxPooling2D", vec![128, 12, 12]),
                ("MaxPooling2D", vec![512, 6, 6]),
                ("MaxPooling2D", vec![512, 3, 3]),
                ("Flatten", vec![4608]),
                ("Dense", vec![256]),
                ("Dense", vec![512]),
                ("Dense", vec![7]),
            ]
        );
        assert!(s.to_svg().starts_with("<svg"));
    }
}
