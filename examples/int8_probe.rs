//! Probe: int8 vs f32 through tract on FER2013 faces: agreement, accuracy on the folder labels
//! and single-face speed (one thread). Usage: int8_probe [CALIB_DIR] [VAL_DIR] [PER_CLASS]
//! PROBE_OPS=1: print the optimised int8 graph's ops instead; PROBE_LOOP=1: only time 100 faces
//! each way (for `perf record`).
use ferrite::data::{Dataset, LoadOptions};
use ferrite::model::onnx::FastModel;
use ferrite::model::quant::Int8Calibration;
use std::path::PathBuf;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let calib_dir = PathBuf::from(args.get(1).cloned().unwrap_or("../shared/data/fer2013/train".into()));
    let val_dir = PathBuf::from(args.get(2).cloned().unwrap_or("../shared/data/fer2013/val".into()));
    let per_class: usize = args.get(3).map_or(300, |s| s.parse().unwrap());
    let device = ferrite::device::inference_device();
    let (net, header) = ferrite::model::embedded::default_model(&device)?;
    let opts = LoadOptions { max_per_class: Some(per_class), contrast: header.contrast(), ..Default::default() };
    let calib = Dataset::load(&calib_dir, &opts)?;
    let t = Instant::now();
    let c = Int8Calibration::measure(&net, &calib.faces, "probe")?;
    println!("calibration on {} faces: {:.1}s, ranges {:?}", calib.len(), t.elapsed().as_secs_f64(), c.conv_max);
    if std::env::var_os("PROBE_OPS").is_some() {
        use tract_onnx::prelude::*;
        let proto = ferrite::model::onnx::to_proto_int8(&net, &c)?;
        let m = tract_onnx::onnx().model_for_proto_model(&proto)?.with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), tvec!(1, 1, 48, 48)))?.into_optimized()?;
        for n in m.nodes() {
            println!("{} {} {:?}", n.name, n.op.name(), n.outputs.iter().map(|o| format!("{:?}", o.fact)).collect::<Vec<_>>());
        }
        return Ok(());
    }
    let val = Dataset::load(&val_dir, &LoadOptions { contrast: header.contrast(), ..Default::default() })?;
    if std::env::var_os("PROBE_LOOP").is_some() {
        let i8m = FastModel::new_int8(&net, &c)?;
        let f32m = FastModel::new(&net)?;
        for (name, m) in [("f32", &f32m), ("int8", &i8m), ("f32", &f32m), ("int8", &i8m)] {
            let t = Instant::now();
            for i in 0..100 {
                m.probs(calib.face(i))?;
            }
            println!("{name}: {:.3} ms per face", t.elapsed().as_secs_f64() * 10.0);
        }
        return Ok(());
    }
    let f32m = FastModel::new(&net)?;
    let i8m = FastModel::new_int8(&net, &c)?;
    let a = f32m.probs_each(&val.faces)?;
    let b = i8m.probs_each(&val.faces)?;
    let argmax = |p: &[f32; 7]| (0..7).max_by(|&i, &j| p[i].total_cmp(&p[j])).unwrap();
    let agree = a.iter().zip(&b).filter(|(x, y)| argmax(x) == argmax(y)).count();
    let maxdiff = a.iter().zip(&b).map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max)).fold(0f32, f32::max);
    let acc = |p: &Vec<[f32; 7]>| p.iter().zip(&val.labels).filter(|(x, l)| argmax(x) == l.index()).count() as f64 / val.len() as f64;
    println!("val {} faces: labels agree {:.2}%, max prob diff {maxdiff:.3}, folder-label acc f32 {:.2}% int8 {:.2}%", val.len(), 100.0 * agree as f64 / val.len() as f64, 100.0 * acc(&a), 100.0 * acc(&b));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    pool.install(|| -> anyhow::Result<()> {
        for round in 0..2 {
            for (name, m) in [("f32", &f32m), ("int8", &i8m)] {
                let mut times = Vec::new();
                for i in 0..400 {
                    let t = Instant::now();
                    m.probs(val.face(i))?;
                    times.push(t.elapsed().as_secs_f64() * 1e3);
                }
                times.sort_by(f64::total_cmp);
                println!("round {round} {name}: median {:.3} ms per face", times[200]);
            }
        }
        Ok(())
    })?;
    Ok(())
}
