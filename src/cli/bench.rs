//! `ferrite bench`: training and inference speed of an architecture or a trained model.

use ferrite::InferencePrecision;
use ferrite::model::onnx::FastModel;
use super::{Ctx, NetArgs, load_model};
use anyhow::{Context, Result, bail};
use clap::Args;
use ferrite::model::file as modelfile;
use std::path::PathBuf;

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub net: NetArgs,
    /// Timed steps (after 5 untimed warm-up steps).
    #[arg(long, default_value_t = 30)]
    pub steps: usize,
    /// Print one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Instead of speeds, print where a training step's time goes (per layer forward,
    /// backward, optimizer update).
    #[arg(long)]
    pub profile: bool,
    /// Inference only, with a trained model's weights: a model file or run directory.
    #[arg(long, conflicts_with_all = ["profile", "embedded"])]
    pub model: Option<PathBuf>,
    /// Inference only, with the model embedded in this binary.
    #[arg(long, conflicts_with = "profile")]
    pub embedded: bool,
    /// Inference only, with `--arch`'s freshly initialised weights.
    #[arg(long, conflicts_with = "profile")]
    pub inference_only: bool,
    /// Training steps split over this many data-parallel replicas (as `train --replicas`).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
}

pub fn run(args: BenchArgs, ctx: &Ctx) -> Result<()> {
    let BenchArgs { net: net_args, steps, json, profile, model, embedded, inference_only, replicas } = args;
    let matmul = ctx.matmul;
    if embedded || model.is_some() || inference_only {
        let device = ferrite::device::inference_device();
        let (net, header, name) = if inference_only && !embedded && model.is_none() {
            let spec = net_args.spec(None)?;
            let net = ferrite::model::Network::new(&spec, &device);
            (net, modelfile::ModelHeader::new(spec, Default::default()), "random weights".to_string())
        } else {
            load_model(model.as_deref(), &device, matmul)?
        };
        let net = net.with_matmul(matmul);
        let (infer64, infer1) = ferrite::bench::measure_inference(&net, steps.max(1), 5);
        let fast = FastModel::new(&net).context("compiling the model with tract")?;
        let (fast64, fast1) = ferrite::bench::measure_fast(&fast, steps.max(1), 5).context("timing the compiled (tract) model")?;
        // The int8 path, where the model carries its calibration (the embedded default does).
        let int8 = match header.meta.int8 {
            Some(_) => {
                let q = FastModel::with_precision(&net, header.meta.int8.as_ref(), InferencePrecision::Int8).context("compiling the int8 model")?;
                Some(ferrite::bench::measure_fast(&q, steps.max(1), 5).context("timing the int8 model")?)
            }
            None => None,
        };
        let kernel = ferrite::model::quant::int8_kernel();
        let threads = rayon::current_num_threads();
        if json {
            println!(
                "{}",
                serde_json::json!({"model": name, "arch": header.spec.arch, "threads": threads,
                    "matmul": matmul.precision(),
                    "infer64_img_s": infer64, "infer1_ms": infer1,
                    "fast64_img_s": fast64, "fast1_ms": fast1,
                    "int8_64_img_s": int8.map(|t| t.0), "int8_1_ms": int8.map(|t| t.1), "int8_kernel": kernel})
            );
        } else {
            println!("{name} ({}) on {threads} threads, {} matmul:", header.spec.arch, matmul.precision());
            println!("  burn flex         {infer64:8.1} img/s (batch 64)");
            println!("  burn flex         {infer1:8.2} ms per face (batch 1, median)");
            println!("  compiled (tract)  {fast64:8.1} img/s (64 faces, one run each)");
            println!("  compiled (tract)  {fast1:8.2} ms per face (median)");
            match int8 {
                Some((q64, q1)) => {
                    println!("  compiled int8     {q64:8.1} img/s (64 faces, one run each; kernel: {kernel})");
                    println!("  compiled int8     {q1:8.2} ms per face (median; {:.2}x f32)", fast1 / q1);
                }
                None => println!("  compiled int8     - (the model carries no int8 calibration)"),
            }
        }
                
    } else if profile {
        let p = ferrite::bench::profile_step(&net_args.spec(None)?, steps.max(1), 3, matmul);
        if json {
            println!("{}", serde_json::to_string(&p)?);
        } else {
            println!("{:<36} {:>9} {:>7}", "stage (batch 64)", "ms", "share");
            for (name, ms) in &p.stages {
                println!("{name:<36} {ms:>9.1} {:>6.1}%", 100.0 * ms / p.total_ms);
            }
            println!("{:<36} {:>9.1}", "total", p.total_ms);
        }
                
    } else {
        if !(1..=16).contains(&replicas) {
            bail!("--replicas must be in 1..=16 (as for train), not {replicas}");
        }
        let r = ferrite::bench::measure(&net_args.spec(None)?, steps.max(1), 5, replicas, matmul);
        if json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!("{} {} on {} threads, {} matmul:", r.framework, r.arch, r.threads, r.matmul);
            println!("  training          {:8.1} img/s (batch 64)", r.train_img_s);
            println!("  inference         {:8.1} img/s (batch 64)", r.infer64_img_s);
            println!("  inference         {:8.2} ms per face (batch 1, median)", r.infer1_ms);
        }
                
    }
    Ok(())
}
