//! Writes the seed corpora of the fuzz targets (`fuzz/run.sh` calls it): small images made
//! from the committed photos in every format the decoder reads, FER2013 CSV and FER+ vote
//! snippets, a tiny model file, a packed one-epoch run for `--resume`, WebSocket messages and
//! upload bodies. Usage: `cargo run --release --example fuzz_seeds -- OUT_DIR`.

use ferrite::Emotion;
use ferrite::model::{Arch, ModelSpec};
use image::{DynamicImage, ImageFormat};
use std::io::Cursor;
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn encode(img: &DynamicImage, format: ImageFormat) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format)?;
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: fuzz_seeds OUT_DIR"))?);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let photo = ferrite::data::imageio::decode(&std::fs::read(root.join("tests/fixtures/photos/astronaut.jpg"))?, &Default::default())?;

    // Images: 32x32 and 20x12, colour and gray, every format.
    let mut images: Vec<(String, Vec<u8>)> = Vec::new();
    for (w, h) in [(32, 32), (20, 12)] {
        let small = photo.resize_exact(w, h, image::imageops::FilterType::Triangle);
        for (img, kind) in [(DynamicImage::ImageRgb8(small.to_rgb8()), "rgb"), (DynamicImage::ImageLuma8(small.to_luma8()), "gray")] {
            for (format, ext) in [(ImageFormat::Jpeg, "jpg"), (ImageFormat::Png, "png"), (ImageFormat::Bmp, "bmp"), (ImageFormat::Tiff, "tif"), (ImageFormat::Gif, "gif")] {
                // GIF holds palette colour only: give it the RGBA picture.
                let img = if format == ImageFormat::Gif { DynamicImage::ImageRgba8(img.to_rgba8()) } else { img.clone() };
                images.push((format!("{kind}{w}x{h}.{ext}"), encode(&img, format)?));
            }
        }
    }
    let jpeg = images[0].1.clone();
    images.push(("truncated.jpg".into(), jpeg[..jpeg.len() / 2].to_vec()));
    for (name, bytes) in &images {
        write(&out.join("image_decode"), name, bytes)?;
        let mut framed = vec![1u8];
        framed.extend_from_slice(bytes);
        write(&out.join("ws_message"), name, &framed)?;
    }

    // FER2013 CSV: the header and one row (a row is about 9 kB: fuzz/run.sh caps this target's
    // inputs at 12 kB, so that its time goes to parsing, not to copying long inputs), a row of
    // every class with few pixels, a bad row.
    let face = photo.resize_exact(48, 48, image::imageops::FilterType::Triangle).to_luma8();
    let pixels: Vec<String> = face.as_raw().iter().map(|p| p.to_string()).collect();
    write(&out.join("fer2013_csv"), "row.csv", format!("emotion,pixels,Usage\n3,{},Training\n", pixels.join(" ")).as_bytes())?;
    let mut csv = String::from("emotion,pixels\n");
    for e in Emotion::ALL {
        csv.push_str(&format!("{},{}\n", e.csv_label(), pixels[..8].join(" ")));
    }
    write(&out.join("fer2013_csv"), "classes.csv", csv.as_bytes())?;
    write(&out.join("fer2013_csv"), "bad.csv", format!("emotion,pixels\n7,{}\n3,1 2 3\n", pixels.join(" ")).as_bytes())?;
    write(&out.join("fer2013_csv"), "list.csv", b"path,label,person\nhappy/a.png,happy,s1\n\"sad, very/b.png\",SAD,s2\n/abs/c.png,fear\n,angry\nx.png,contempt\n")?;

    // FER+ votes in their three forms.
    let cols = "neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF";
    let ferplus = out.join("ferplus_votes");
    write(&ferplus, "shared.csv", format!("file,ferplus_name,{cols}\nangry/a.jpg,fer0000001.png,8,0,0,1,1,0,0,0,0,0\n").as_bytes())?;
    write(
        &ferplus,
        "fer2013new.csv",
        format!("Usage,Image name,{cols}\nTraining,fer0000000.png,4,0,0,1,3,2,0,0,0,0\nTraining,,0,0,0,0,0,0,0,0,0,10\n").as_bytes(),
    )?;
    write(&ferplus, "label.csv", b"fer0000000.png,\"(0, 0, 48, 48)\",4,0,0,1,3,2,0,0,0,0\n")?;

    // A teacher file (distillation targets).
    let names: Vec<&str> = Emotion::ALL.iter().map(|e| e.name()).collect();
    write(
        &out.join("teacher_file"),
        "teacher.csv",
        format!("file,{}\nangry/a.jpg,0.7,0.1,0,0,0.2,0,0\n\"sad/b c.jpg\",0,0,0,0,0.5,0.5,0\n", names.join(",")).as_bytes(),
    )?;

    // A tiny model file, and a one-epoch run of it packed for the resume target.
    let mut spec = ModelSpec::new(Arch::Compact);
    spec.width = Some(4);
    let device = ferrite::device::training_device();
    let net = ferrite::model::Network::new(&spec, &device);
    let header = ferrite::model::file::ModelHeader::new(spec.clone(), ferrite::model::meta::ModelMeta::at_epoch(1));
    write(&out.join("model_file"), "tiny.ferrite", &ferrite::model::file::encode(&net, &header)?)?;
    let run = tempdir(&out)?;
    let mut cfg = ferrite::train::TrainConfig::new(spec, run.join("unused"));
    cfg.epochs = 1;
    cfg.batch_size = 16;
    let (tr, va) = (ferrite::data::synthetic(3, 1), ferrite::data::synthetic(1, 2));
    let done = ferrite::train::train_on(&cfg, &run.join("run"), &tr, &va, Default::default())?;
    let ckpt = run.join("run/checkpoints").join(format!("epoch-{:03}", done.state.epoch));
    let mut packed = Vec::new();
    for part in [run.join("run/config.json"), ckpt.join("state.json"), ckpt.join("model.ferrite")] {
        let bytes = std::fs::read(&part)?;
        packed.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        packed.extend_from_slice(&bytes);
    }
    packed.extend_from_slice(&std::fs::read(ckpt.join("optimizer.bpk"))?);
    write(&out.join("resume"), "run.bin", &packed)?;
    std::fs::remove_dir_all(&run)?;

    // WebSocket control messages (first byte even: text).
    for (i, text) in [r#"{"type": "reset"}"#, r#"{"type": "ping"}"#, r#"{"type": 1}"#, "not json"].iter().enumerate() {
        let mut m = vec![0u8];
        m.extend_from_slice(text.as_bytes());
        write(&out.join("ws_message"), &format!("control{i}"), &m)?;
    }

    // Forwarded headers (lines starting F: `Forwarded`; others `X-Forwarded-For`).
    for (i, text) in ["203.0.113.7, 10.0.0.1", "Ffor=192.0.2.60;proto=http, for=\"[2001:db8::17]:4711\"", "unknown\n198.51.100.2:80"].iter().enumerate() {
        write(&out.join("forwarded"), &format!("headers{i}"), text.as_bytes())?;
    }

    // Upload bodies: the Content-Type line, then the body.
    let upload = out.join("upload");
    let mut raw = b"image/jpeg\n".to_vec();
    raw.extend_from_slice(&jpeg);
    write(&upload, "raw.txt", &raw)?;
    let mut form = b"multipart/form-data; boundary=XyZ\n--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n".to_vec();
    form.extend_from_slice(&jpeg);
    form.extend_from_slice(b"\r\n--XyZ--\r\n");
    write(&upload, "multipart.txt", &form)?;
    write(&upload, "text.txt", b"multipart/form-data; boundary=XyZ\n--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ--\r\n")?;
    println!("seeds written to {}", out.display());
    Ok(())
}

/// A fresh scratch folder under `out`.
fn tempdir(out: &Path) -> anyhow::Result<PathBuf> {
    let dir = out.join(".scratch");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
