//! Writes the hostile inputs of the reliability tests into a folder (for `bench/hostile.sh`):
//! `cargo run --release --example hostile_inputs -- DIR`.

#[path = "../tests/common/hostile.rs"]
mod hostile;

fn main() -> std::io::Result<()> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "hostile".into()));
    std::fs::create_dir_all(&dir)?;
    let files: [(&str, Vec<u8>); 5] = [
        ("rle8-8000x5000.bmp", hostile::rle8_bmp(8000, 5000)),
        ("jpeg-declares-8000x5000.jpg", hostile::jpeg_declaring(8000, 5000)),
        ("jpeg-declares-60000x60000.jpg", hostile::jpeg_declaring(60000, 60000)),
        ("tiff-5000-one-byte-strips.tif", hostile::tiff_one_byte_strips(8000, 5000)),
        ("palette-lzw-bomb.tif", hostile::palette_tiff_lzw_bomb(512, 512, 250_000_000)),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), &bytes)?;
        println!("{name}\t{} bytes", bytes.len());
    }
    Ok(())
}
