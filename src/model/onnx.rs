//! ONNX export of a network (BatchNorm folded into the layer before it) and `FastModel`, a
//! tract-compiled copy of it for single-face inference, where it beats burn's per-op overhead.
//!
//! The exported graph takes `face` (N, 1, 48, 48), 8-bit pixels scaled to [0, 1] exactly as
//! `preprocess::normalize` does, and returns `probabilities` (N, 7) in `Emotion` order (softmax
//! included). Class names and the input scaling are also written to the model's metadata.

use crate::emotion::Emotion;
use crate::error::{Error, Result};
use crate::model::infer::{Tta, average_views};
use crate::model::quant::{InferencePrecision, Int8Calibration, quantize_weights};
use crate::model::{Layer, Network};
use crate::data::preprocess::{FACE_PIXELS, FACE_SIZE, normalize};
use burn::nn::PaddingConfig2d;
use burn::tensor::Tensor;
use prost::Message;
use std::sync::Arc;
use tract_onnx::pb;
use tract_onnx::prelude::{Datum, Framework, InferenceFact, InferenceModelExt, IntoRunnable, TypedRunnableModel, tvec};

/// ONNX opset the graph is written for (every op used exists unchanged since opset 13).
pub const OPSET: i64 = 13;

fn onnx_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Model(format!("{what}: {e}"))
}

fn values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| onnx_error("reading weights", format!("{e:?}")))
}

/// Inference ops with BatchNorm already folded in.
#[derive(Debug, Clone)]
enum Op {
    /// weight (C_out, C_in, K_h, K_w), bias (C_out), pads (top, left, bottom, right).
    Conv { w: Vec<f32>, dims: [usize; 4], b: Vec<f32>, pads: [usize; 4] },
    /// weight (D_in, D_out), bias (D_out).
    Gemm { w: Vec<f32>, dims: [usize; 2], b: Vec<f32> },
    Relu,
    MaxPool { kernel: [usize; 2], stride: [usize; 2] },
    GlobalAvgPool,
    Flatten,
    /// The centred `size` x `size` window of the 48x48 input.
    CenterCrop { size: usize },
}

fn conv_pads(padding: &PaddingConfig2d, kernel: [usize; 2]) -> Result<[usize; 4]> {
    match *padding {
        PaddingConfig2d::Valid => Ok([0; 4]),
        PaddingConfig2d::Explicit(t, l, b, r) => Ok([t, l, b, r]),
        PaddingConfig2d::Same if kernel[0] % 2 == 1 && kernel[1] % 2 == 1 => {
            let (h, w) = (kernel[0] / 2, kernel[1] / 2);
            Ok([h, w, h, w])
        }
        PaddingConfig2d::Same => Err(Error::OnnxExport(format!("'same' padding with even kernel {kernel:?}"))),
    }
}

/// The network as a list of ops, each BatchNorm folded into the Conv or Dense before it:
/// with s = gamma / sqrt(var + eps), w' = w * s (per output channel), b' = (b - mean) * s + beta.
fn fold(net: &Network) -> Result<Vec<Op>> {
    let mut ops: Vec<Op> = Vec::new();
    for layer in net.layers() {
        match layer {
            Layer::Conv(c) => {
                if c.stride != [1, 1] || c.dilation != [1, 1] || c.groups != 1 {
                    return Err(Error::OnnxExport("only stride-1, undilated, ungrouped convolutions are supported".into()));
                }
                let dims = c.weight.val().dims();
                let b = c.bias.as_ref().map(|b| values(b.val())).transpose()?.unwrap_or_else(|| vec![0.0; dims[0]]);
                ops.push(Op::Conv { w: values(c.weight.val())?, dims, b, pads: conv_pads(&c.padding, c.kernel_size)? });
            }
            Layer::Linear(l) => {
                let dims = l.weight.val().dims();
                let b = l.bias.as_ref().map(|b| values(b.val())).transpose()?.unwrap_or_else(|| vec![0.0; dims[1]]);
                ops.push(Op::Gemm { w: values(l.weight.val())?, dims, b });
            }
            Layer::BatchNorm(bn) => {
                let gamma = values(bn.gamma.val())?;
                let beta = values(bn.beta.val())?;
                let mean = values(bn.running_mean.value())?;
                let var = values(bn.running_var.value())?;
                let scale: Vec<f32> =
                    gamma.iter().zip(&var).map(|(g, v)| g / (v + bn.epsilon as f32).sqrt()).collect();
                // Conv weights are (C_out, ...): channel = i / (C_in * K_h * K_w);
                // dense weights are (D_in, D_out): channel = i % D_out.
                let (w, b, block) = match ops.last_mut() {
                    Some(Op::Conv { w, dims, b, .. }) => (w, b, Some(dims[1] * dims[2] * dims[3])),
                    Some(Op::Gemm { w, b, .. }) => (w, b, None),
                    _ => return Err(Error::OnnxExport("BatchNorm must follow a Conv or Dense layer".into())),
                };
                if b.len() != scale.len() {
                    return Err(Error::OnnxExport("BatchNorm size does not match the layer before it".into()));
                }
                for (i, x) in w.iter_mut().enumerate() {
                    *x *= scale[block.map_or(i % scale.len(), |per| i / per)];
                }
                for (o, x) in b.iter_mut().enumerate() {
                    *x = (*x - mean[o]) * scale[o] + beta[o];
                }
            }
            Layer::Relu => ops.push(Op::Relu),
            Layer::CenterCrop(size) => ops.push(Op::CenterCrop { size }),
            Layer::MaxPool(p) => {
                if p.padding != PaddingConfig2d::Valid || p.dilation != [1, 1] || p.ceil_mode {
                    return Err(Error::OnnxExport("only unpadded, undilated max-pooling is supported".into()));
                }
                ops.push(Op::MaxPool { kernel: p.kernel_size, stride: p.stride });
            }
            Layer::GlobalAvgPool => ops.push(Op::GlobalAvgPool),
            Layer::Flatten => ops.push(Op::Flatten),
            // The identity at inference.
            Layer::Dropout(_) => {}
        }
    }
    Ok(ops)
}

fn tensor(name: &str, dims: &[usize], data: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: data,
        ..Default::default()
    }
}

/// An integer tensor (int8, uint8 and int32 values travel in `int32_data`, as ONNX stores them).
fn tensor_int(name: &str, dims: &[usize], data_type: pb::tensor_proto::DataType, data: Vec<i32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: data_type as i32,
        int32_data: data,
        ..Default::default()
    }
}

fn tensor_i64(name: &str, data: Vec<i64>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: vec![data.len() as i64],
        data_type: pb::tensor_proto::DataType::Int64 as i32,
        int64_data: data,
        ..Default::default()
    }
}

fn ints(name: &str, v: &[usize]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[Option<usize>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(n) => Value::DimValue(*n as i64),
                None => Value::DimParam("N".to_string()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The network as an ONNX model (opset 13): input `face` (N, 1, 48, 48), output
/// `probabilities` (N, 7). An ensemble becomes one branch per member (initializers prefixed
/// `m0.`, `m1.`, ...) whose softmax outputs are summed and scaled by 1/k.
pub fn to_proto(net: &Network) -> Result<pb::ModelProto> {
    Ok(build(net, None)?.0)
}

/// The network as a quantized ONNX model: each convolution followed by a ReLU becomes a
/// `QLinearConv` on 8-bit activations (uint8: after a ReLU they are never negative, and the
/// ReLU is the clamp at zero) with int8 weights scaled per output channel and int32 biases;
/// `calibration` gives each convolution's output range. Pooling runs on the 8-bit values; the
/// dense head and the softmax stay f32. Same input and output as [`to_proto`].
pub fn to_proto_int8(net: &Network, calibration: &Int8Calibration) -> Result<pb::ModelProto> {
    Ok(build(net, Some(calibration))?.0)
}

/// The graph, f32 or quantized, and the names of its convolutions' outputs.
fn build(net: &Network, quant: Option<&Int8Calibration>) -> Result<(pb::ModelProto, Vec<String>)> {
    use pb::tensor_proto::DataType;
    if let Some(bad) = quant.and_then(|c| c.conv_max.iter().find(|m| !(m.is_finite() && **m > 0.0))) {
        return Err(Error::Model(format!("the int8 calibration has a convolution range of {bad}: each must be a positive number")));
    }
    let mut conv_names = Vec::new();
    let mut nodes: Vec<pb::NodeProto> = Vec::new();
    let mut init = Vec::new();
    let node = |op: &str, inputs: Vec<String>, attrs: Vec<pb::AttributeProto>, out: Option<&str>, nodes: &mut Vec<pb::NodeProto>| {
        let out = out.map_or_else(|| format!("{}_{}", op.to_lowercase(), nodes.len()), str::to_string);
        nodes.push(pb::NodeProto {
            input: inputs,
            output: vec![out.clone()],
            name: out.clone(),
            op_type: op.to_string(),
            attribute: attrs,
            ..Default::default()
        });
        out
    };
    let members = net.members();
    let single = members.len() == 1;
    let mut probs = Vec::new();
    // Quantized graphs: the scale of the 8-bit tensor `last` names (None: it is f32).
    let mut scale: Option<f32>;
    for (j, member) in members.into_iter().enumerate() {
        let prefix = if single { String::new() } else { format!("m{j}.") };
        let mut last = "face".to_string();
        scale = None;
        let ops = fold(member)?;
        for (i, op) in ops.iter().cloned().enumerate() {
            let relu_next = matches!(ops.get(i + 1), Some(Op::Relu));
            // Leaving the 8-bit part of the graph: back to f32 for everything but pooling, a
            // quantized convolution and the ReLU it already applied.
            let stays_8bit = matches!(op, Op::MaxPool { .. } | Op::CenterCrop { .. } | Op::Relu) || (matches!(op, Op::Conv { .. }) && relu_next);
            if let Some(s) = scale.filter(|_| !stays_8bit) {
                let names = [format!("{prefix}deq{i}.scale"), format!("{prefix}deq{i}.zero")];
                init.push(tensor(&names[0], &[], vec![s]));
                init.push(tensor_int(&names[1], &[], DataType::Uint8, vec![0]));
                let [sn, zn] = names;
                last = node("DequantizeLinear", vec![last, sn, zn], Vec::new(), None, &mut nodes);
                scale = None;
            }
            last = match op {
                Op::Conv { w, dims, b, pads } if quant.is_some() && relu_next => {
                    let calibration = quant.expect("checked");
                    let k = conv_names.len();
                    let out_max = *calibration.conv_max.get(k).ok_or_else(|| {
                        Error::Model(format!("the int8 calibration has {} convolution ranges; the network has more", calibration.conv_max.len()))
                    })?;
                    conv_names.push(String::new());
                    let p = format!("{prefix}qconv{i}");
                    // Into 8 bits: the input pixels (in [0, 1]) exactly, at 1/255 a step.
                    let x_scale = match scale {
                        Some(s) => s,
                        None => {
                            let s = 1.0 / 255.0;
                            init.push(tensor(&format!("{p}.in_scale"), &[], vec![s]));
                            init.push(tensor_int(&format!("{p}.in_zero"), &[], DataType::Uint8, vec![0]));
                            last = node("QuantizeLinear", vec![last, format!("{p}.in_scale"), format!("{p}.in_zero")], Vec::new(), None, &mut nodes);
                            s
                        }
                    };
                    let (wq, w_scales) = quantize_weights(&w, dims[0]);
                    let y_scale = out_max / 255.0;
                    let bq: Vec<i32> =
                        b.iter().zip(&w_scales).map(|(b, ws)| (b / (x_scale * ws)).round().clamp(i32::MIN as f32, i32::MAX as f32) as i32).collect();
                    init.push(tensor(&format!("{p}.x_scale"), &[], vec![x_scale]));
                    init.push(tensor_int(&format!("{p}.x_zero"), &[], DataType::Uint8, vec![0]));
                    init.push(tensor_int(&format!("{p}.weight"), &dims, DataType::Int8, wq));
                    init.push(tensor(&format!("{p}.w_scale"), &[dims[0]], w_scales));
                    init.push(tensor_int(&format!("{p}.w_zero"), &[], DataType::Int8, vec![0]));
                    init.push(tensor(&format!("{p}.y_scale"), &[], vec![y_scale]));
                    init.push(tensor_int(&format!("{p}.y_zero"), &[], DataType::Uint8, vec![0]));
                    init.push(tensor_int(&format!("{p}.bias"), &[dims[0]], DataType::Int32, bq));
                    let inputs = ["x_scale", "x_zero", "weight", "w_scale", "w_zero", "y_scale", "y_zero", "bias"].map(|n| format!("{p}.{n}"));
                    let mut all = vec![last];
                    all.extend(inputs.iter().take(2).cloned());
                    all.extend(inputs.into_iter().skip(2));
                    scale = Some(y_scale);
                    let attrs = vec![ints("kernel_shape", &dims[2..]), ints("pads", &[pads[0], pads[1], pads[2], pads[3]])];
                    node("QLinearConv", all, attrs, None, &mut nodes)
                }
                // The quantized convolution before it clamped at zero already.
                Op::Relu if scale.is_some() => last,
                Op::Conv { w, dims, b, pads } => {
                    let (wn, bn) = (format!("{prefix}conv{i}.weight"), format!("{prefix}conv{i}.bias"));
                    init.push(tensor(&wn, &dims, w));
                    init.push(tensor(&bn, &[dims[0]], b));
                    let attrs = vec![ints("kernel_shape", &dims[2..]), ints("pads", &[pads[0], pads[1], pads[2], pads[3]])];
                    let out = node("Conv", vec![last, wn, bn], attrs, None, &mut nodes);
                    conv_names.push(out.clone());
                    out
                }
                Op::Gemm { w, dims, b } => {
                    let (wn, bn) = (format!("{prefix}dense{i}.weight"), format!("{prefix}dense{i}.bias"));
                    init.push(tensor(&wn, &dims, w));
                    init.push(tensor(&bn, &[dims[1]], b));
                    node("Gemm", vec![last, wn, bn], Vec::new(), None, &mut nodes)
                }
                Op::Relu => node("Relu", vec![last], Vec::new(), None, &mut nodes),
                Op::MaxPool { kernel, stride } => {
                    node("MaxPool", vec![last], vec![ints("kernel_shape", &kernel), ints("strides", &stride)], None, &mut nodes)
                }
                Op::GlobalAvgPool => {
                    let pooled = node("GlobalAveragePool", vec![last], Vec::new(), None, &mut nodes);
                    node("Flatten", vec![pooled], vec![int("axis", 1)], None, &mut nodes)
                }
                Op::Flatten => node("Flatten", vec![last], vec![int("axis", 1)], None, &mut nodes),
                Op::CenterCrop { size } => {
                    // The input is FACE_SIZE square (the graph's declared input shape).
                    let top = (FACE_SIZE.saturating_sub(size) / 2) as i64;
                    let names = [format!("{prefix}crop{i}.starts"), format!("{prefix}crop{i}.ends"), format!("{prefix}crop{i}.axes")];
                    init.push(tensor_i64(&names[0], vec![top, top]));
                    init.push(tensor_i64(&names[1], vec![top + size as i64, top + size as i64]));
                    init.push(tensor_i64(&names[2], vec![2, 3]));
                    let [s, e, a] = names;
                    node("Slice", vec![last, s, e, a], Vec::new(), None, &mut nodes)
                }
            };
        }
        let out = single.then_some("probabilities");
        probs.push(node("Softmax", vec![last], vec![int("axis", 1)], out, &mut nodes));
    }
    if !single {
        // (N, 7) x k -> sum -> / k: the members' mean probabilities.
        let k = probs.len();
        let mut sum = probs.remove(0);
        for p in probs {
            sum = node("Add", vec![sum, p], Vec::new(), None, &mut nodes);
        }
        init.push(tensor("ensemble.scale", &[1], vec![1.0 / k as f32]));
        node("Mul", vec![sum, "ensemble.scale".to_string()], Vec::new(), Some("probabilities"), &mut nodes);
    }
    if let Some(c) = quant
        && c.conv_max.len() != conv_names.len()
    {
        return Err(Error::Model(format!(
            "the int8 calibration has {} convolution ranges; the network has {}",
            c.conv_max.len(),
            conv_names.len()
        )));
    }
    let meta = |k: &str, v: String| pb::StringStringEntryProto { key: k.to_string(), value: v };
    let mut metadata_props = vec![
        meta("labels", Emotion::ALL.map(|e| e.name()).join(",")),
        meta("input", "face: (N, 1, 48, 48) grayscale, pixel / 255 (values in [0, 1])".to_string()),
        meta("output", "probabilities: (N, 7), softmax, in the order of 'labels'".to_string()),
    ];
    if let Some(c) = quant {
        metadata_props.push(meta("quantization", format!("int8 weights per output channel, uint8 activations; ranges from {} faces of {}", c.faces, c.source)));
    }
    let proto = pb::ModelProto {
        ir_version: 7,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "ferrite".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        doc_string: "Facial expression recognition (FER2013): 48x48 grayscale face crops in, seven class probabilities out."
            .to_string(),
        metadata_props,
        graph: Some(pb::GraphProto {
            name: "ferrite".to_string(),
            node: nodes,
            initializer: init,
            input: vec![value_info("face", &[None, Some(1), Some(FACE_SIZE), Some(FACE_SIZE)])],
            output: vec![value_info("probabilities", &[None, Some(Emotion::COUNT)])],
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok((proto, conv_names))
}

/// `proto` compiled by tract for batches of `batch` faces; `outputs` names the values each run
/// returns (none: the graph's own output).
fn compile_plan(proto: &pb::ModelProto, batch: usize, outputs: &[String]) -> tract_onnx::prelude::TractResult<Arc<TypedRunnableModel>> {
    let mut model = tract_onnx::onnx().model_for_proto_model(proto)?;
    if !outputs.is_empty() {
        model = model.with_outputs_by_name(outputs)?;
    }
    model
        .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), tvec!(batch, 1, FACE_SIZE, FACE_SIZE)))?
        .into_optimized()?
        .into_runnable()
}

/// The network as ONNX file bytes.
pub fn to_bytes(net: &Network) -> Result<Vec<u8>> {
    Ok(to_proto(net)?.encode_to_vec())
}

impl Int8Calibration {
    /// Measure `net`'s convolution ranges on `faces` (`n * FACE_PIXELS` bytes, preprocessed as
    /// the model expects): for each convolution, the [`COVERED`](crate::model::quant::COVERED)
    /// quantile of the faces' largest outputs after the ReLU. `source` says where they came from.
    pub fn measure(net: &Network, faces: &[u8], source: &str) -> Result<Int8Calibration> {
        use crate::model::quant::COVERED;
        let n = faces.len() / FACE_PIXELS;
        if n == 0 || !faces.len().is_multiple_of(FACE_PIXELS) {
            return Err(Error::Model(format!("int8 calibration needs whole faces ({FACE_PIXELS} bytes each), got {} bytes", faces.len())));
        }
        let tract = |stage: &'static str| move |e: tract_onnx::prelude::TractError| Error::Tract { stage, source: e.into() };
        let (proto, names) = build(net, None)?;
        const BATCH: usize = 32;
        let plan = compile_plan(&proto, BATCH, &names).map_err(tract("int8 calibration: compiling"))?;
        // Per convolution, each face's largest output.
        let mut maxima: Vec<Vec<f32>> = vec![Vec::with_capacity(n); names.len()];
        for chunk in faces.chunks(BATCH * FACE_PIXELS) {
            let real = chunk.len() / FACE_PIXELS;
            let mut pixels: Vec<f32> = chunk.iter().map(|&p| normalize(p)).collect();
            pixels.resize(BATCH * FACE_PIXELS, 0.0);
            let input = tract_onnx::prelude::Tensor::from_shape(&[BATCH, 1, FACE_SIZE, FACE_SIZE], &pixels).map_err(tract("int8 calibration: input"))?;
            let out = plan.run(tvec!(input.into())).map_err(tract("int8 calibration: running"))?;
            for (k, t) in out.iter().enumerate() {
                let view = t.to_plain_array_view::<f32>().map_err(tract("int8 calibration: output"))?;
                for face in view.outer_iter().take(real) {
                    maxima[k].push(face.iter().fold(0f32, |m, &x| m.max(x)));
                }
            }
        }
        let conv_max = maxima
            .into_iter()
            .map(|mut m| {
                m.sort_by(f32::total_cmp);
                let at = ((m.len() as f64 * COVERED).ceil() as usize).clamp(1, m.len()) - 1;
                m[at]
            })
            .collect();
        Ok(Int8Calibration { conv_max, faces: n, source: source.to_string() })
    }
}

/// A network compiled by tract for one face at a time: the fastest single-face path on CPU
/// (no per-op dispatch of an eager framework, BatchNorm folded away). Built once, shared.
#[derive(Clone)]
pub struct FastModel {
    plan: Arc<TypedRunnableModel>,
    precision: InferencePrecision,
}

impl std::fmt::Debug for FastModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FastModel")
    }
}

impl FastModel {
    /// Compile `net` (its BatchNorm statistics, as inference uses them) for batch 1.
    pub fn new(net: &Network) -> Result<FastModel> {
        Self::compile(&to_proto(net)?, InferencePrecision::F32)
    }

    /// Compile `net` quantized to 8 bits with `calibration`'s ranges ([`to_proto_int8`]).
    pub fn new_int8(net: &Network, calibration: &Int8Calibration) -> Result<FastModel> {
        Self::compile(&to_proto_int8(net, calibration)?, InferencePrecision::Int8)
    }

    /// Compile `net` at `precision`; int8 takes the model's `calibration` (`meta.int8`), and
    /// a model without one is a [`Error::Setting`] naming `precision`.
    pub fn with_precision(net: &Network, calibration: Option<&Int8Calibration>, precision: InferencePrecision) -> Result<FastModel> {
        match (precision, calibration) {
            (InferencePrecision::F32, _) => Self::new(net),
            (InferencePrecision::Int8, Some(calibration)) => Self::new_int8(net, calibration),
            (InferencePrecision::Int8, None) => Err(Error::Setting {
                name: "precision",
                value: "int8".into(),
                expected: "f32 for this model: it carries no int8 calibration (export it quantized first)".into(),
            }),
        }
    }

    /// The numbers it computes with.
    pub fn precision(&self) -> InferencePrecision {
        self.precision
    }

    fn compile(proto: &pb::ModelProto, precision: InferencePrecision) -> Result<FastModel> {
        let plan =
            compile_plan(proto, 1, &[]).map_err(|e| Error::Tract { stage: "expression model: compiling with tract", source: e.into() })?;
        Ok(FastModel { plan, precision })
    }

    /// Class probabilities of one 48x48 face (`FACE_PIXELS` 8-bit pixels), in `Emotion` order.
    pub fn probs(&self, face: &[u8]) -> Result<[f32; Emotion::COUNT]> {
        if face.len() != FACE_PIXELS {
            return Err(Error::Model(format!("a face has {FACE_PIXELS} pixels, got {}", face.len())));
        }
        let pixels: Vec<f32> = face.iter().map(|&p| normalize(p)).collect();
        let input = tract_onnx::prelude::Tensor::from_shape(&[1, 1, FACE_SIZE, FACE_SIZE], &pixels)
            .map_err(|e| Error::Tract { stage: "expression model: input", source: e.into() })?;
        let out = self.plan.run(tvec!(input.into())).map_err(|e| Error::Tract { stage: "expression model: running", source: e.into() })?;
        let view = out[0].to_plain_array_view::<f32>().map_err(|e| Error::Tract { stage: "expression model: output", source: e.into() })?;
        let mut p = [0.0; Emotion::COUNT];
        for (dst, src) in p.iter_mut().zip(view.iter()) {
            *dst = *src;
        }
        Ok(p)
    }

    /// Probabilities of each face in `faces` (`n * FACE_PIXELS` bytes), one run per face, the
    /// faces spread over the CPU threads.
    pub fn probs_each(&self, faces: &[u8]) -> Result<Vec<[f32; Emotion::COUNT]>> {
        use rayon::prelude::*;
        if !faces.len().is_multiple_of(FACE_PIXELS) {
            return Err(Error::Model(format!("faces are {FACE_PIXELS} pixels each, got {} bytes", faces.len())));
        }
        faces.par_chunks_exact(FACE_PIXELS).map(|f| self.probs(f)).collect()
    }

    /// Probabilities of each face with the views of `tta` averaged (`evaluate::average_views`).
    pub fn probs_tta(&self, faces: &[u8], tta: Tta) -> Result<Vec<[f32; Emotion::COUNT]>> {
        average_views(faces, tta, |batch| self.probs_each(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::inference_device;
    use crate::model::infer::predict_probs;
    use crate::model::{Arch, ModelSpec};
    use burn::module::Module;

    /// Random faces and a network whose BatchNorm statistics are not the identity (a few
    /// training-mode passes update them), so folding is really exercised.
    fn trained_net(spec: &ModelSpec) -> (Network, Vec<u8>) {
        let _rng = crate::rng_lock();
        let device = inference_device();
        let train_dev = device.clone().autodiff();
        let net = Network::new(spec, &train_dev);
        let faces: Vec<u8> = (0..6 * FACE_PIXELS).map(|i| ((i * 37 + i / 97) % 251) as u8).collect();
        for _ in 0..3 {
            let x = crate::data::preprocess::faces_tensor(&faces, &train_dev);
            let _ = net.forward(x);
        }
        let net = net.valid();
        let moved = net.layers().iter().any(|l| match l {
            Layer::BatchNorm(bn) => values(bn.running_mean.value()).unwrap().iter().any(|m| m.abs() > 1e-6),
            _ => false,
        });
        assert!(moved, "BatchNorm statistics were not updated: the test would not exercise folding");
        (net, faces)
    }

    #[test]
    fn exported_graph_computes_what_forward_does() {
        for (arch, width, crop) in [(Arch::Compact, Some(8), None), (Arch::Compact, Some(8), Some(40)), (Arch::Reference, None, None)] {
            let mut spec = ModelSpec::new(arch);
            spec.width = width;
            spec.crop = crop;
            spec.stem_convs = crop.map(|_| 1);
            let (net, faces) = trained_net(&spec);
            check_against_burn(&net, &faces, &arch.to_string());
        }
        // An ensemble: one branch per member, probabilities averaged.
        let member = |crop: Option<usize>| {
            let mut spec = ModelSpec::new(Arch::Compact);
            spec.width = Some(4);
            spec.crop = crop;
            spec
        };
        let (net, faces) = trained_net(&ModelSpec::ensemble(vec![member(None), member(Some(40)), ModelSpec::new(Arch::Reference)]));
        check_against_burn(&net, &faces, "ensemble");
    }

    /// `predict`, `detect` and `video` average views through the compiled graph; `evaluate`
    /// through burn: the two agree for every view set.
    #[test]
    fn test_time_views_agree_with_burn() {
        let mut spec = ModelSpec::new(Arch::Compact);
        spec.width = Some(4);
        spec.crop = Some(40);
        spec.stem_convs = Some(1);
        let (net, faces) = trained_net(&spec);
        let fast = FastModel::new(&net).unwrap();
        for tta in [Tta::None, Tta::Flip, Tta::Ten, Tta::Thirty, Tta::Ninety] {
            let burn = crate::model::infer::predict_probs_tta(&net, &faces, &inference_device(), tta);
            let ours = fast.probs_tta(&faces, tta).unwrap();
            for (a, b) in burn.iter().zip(&ours) {
                for (x, y) in a.iter().zip(b) {
                    assert!((x - y).abs() < 1e-4, "{tta:?}: burn {a:?} vs onnx {b:?}");
                }
            }
        }
    }

    fn check_against_burn(net: &Network, faces: &[u8], what: &str) {
        let burn = predict_probs(net, faces, &inference_device());
        let fast = FastModel::new(net).unwrap().probs_each(faces).unwrap();
        assert_eq!(burn.len(), fast.len());
        for (a, b) in burn.iter().zip(&fast) {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() < 1e-4, "{what}: burn {a:?} vs onnx {b:?}");
            }
        }
    }

    /// ONNX file bytes read back and run by tract on `faces` at once: one row per face.
    fn run_bytes(bytes: &[u8], faces: &[u8]) -> (pb::ModelProto, Vec<Vec<f32>>) {
        let proto = tract_onnx::onnx().proto_model_for_read(&mut &bytes[..]).unwrap();
        let n = faces.len() / FACE_PIXELS;
        let plan = compile_plan(&proto, n, &[]).unwrap();
        let pixels: Vec<f32> = faces.iter().map(|&p| normalize(p)).collect();
        let input = tract_onnx::prelude::Tensor::from_shape(&[n, 1, FACE_SIZE, FACE_SIZE], &pixels).unwrap();
        let out = plan.run(tvec!(input.into())).unwrap();
        let view = out[0].to_plain_array_view::<f32>().unwrap();
        assert_eq!(view.shape(), &[n, Emotion::COUNT]);
        (proto, view.rows().into_iter().map(|r| r.to_vec()).collect())
    }

    #[test]
    fn bytes_load_back_with_a_free_batch_dimension() {
        let mut spec = ModelSpec::new(Arch::Compact);
        spec.width = Some(4);
        let (net, faces) = trained_net(&spec);
        let (proto, got) = run_bytes(&to_bytes(&net).unwrap(), &faces);
        let labels = proto.metadata_props.iter().find(|m| m.key == "labels").unwrap();
        assert_eq!(labels.value, "angry,disgust,fear,happy,neutral,sad,surprise");
        let want = FastModel::new(&net).unwrap().probs_each(&faces).unwrap();
        assert_eq!(got.len(), 6);
        for (row, w) in got.iter().zip(&want) {
            for (x, y) in row.iter().zip(w) {
                assert!((x - y).abs() < 1e-5);
            }
        }
    }

    /// The quantized graph: written as bytes, it loads back into tract and gives what the
    /// compiled int8 model gives, within 0.05 of f32; a model without calibration cannot be
    /// asked for int8, and the error names the setting.
    #[test]
    fn the_int8_graph_reloads_and_follows_f32() {
        let mut spec = ModelSpec::new(Arch::Compact);
        spec.width = Some(8);
        spec.crop = Some(40);
        spec.stem_convs = Some(1);
        let (net, faces) = trained_net(&spec);
        let calibration = Int8Calibration::measure(&net, &faces, "test faces").unwrap();
        assert_eq!(calibration.conv_max.len(), 7, "{calibration:?}");
        assert!(calibration.conv_max.iter().all(|m| *m > 0.0 && m.is_finite()), "{calibration:?}");
        let (proto, reloaded) = run_bytes(&to_proto_int8(&net, &calibration).unwrap().encode_to_vec(), &faces);
        assert!(proto.graph.as_ref().unwrap().node.iter().filter(|n| n.op_type == "QLinearConv").count() == 7);
        let int8 = FastModel::new_int8(&net, &calibration).unwrap();
        assert_eq!(int8.precision(), InferencePrecision::Int8);
        let (q, f) = (int8.probs_each(&faces).unwrap(), FastModel::new(&net).unwrap().probs_each(&faces).unwrap());
        for ((row, q), f) in reloaded.iter().zip(&q).zip(&f) {
            for ((r, q), f) in row.iter().zip(q).zip(f) {
                assert!((r - q).abs() < 1e-5, "reloaded {r} vs compiled {q}");
                assert!((q - f).abs() < 0.05, "int8 {q} vs f32 {f}");
            }
        }
        // The ranges must match the network.
        let short = Int8Calibration { conv_max: vec![1.0; 3], ..calibration.clone() };
        assert!(to_proto_int8(&net, &short).unwrap_err().to_string().contains("3 convolution ranges"));
        let mut broken = calibration;
        broken.conv_max[2] = f32::INFINITY;
        assert!(to_proto_int8(&net, &broken).unwrap_err().to_string().contains("range of inf"));
        let err = FastModel::with_precision(&net, None, InferencePrecision::Int8).unwrap_err();
        assert!(matches!(err, Error::Setting { name: "precision", .. }), "{err}");
        assert_eq!("INT8".parse::<InferencePrecision>().unwrap(), InferencePrecision::Int8);
        assert!("int4".parse::<InferencePrecision>().is_err());
    }

    #[test]
    fn wrong_face_size_is_an_error() {
        let mut spec = ModelSpec::new(Arch::Compact);
        spec.width = Some(4);
        let (net, _) = trained_net(&spec);
        let err = FastModel::new(&net).unwrap().probs(&[0u8; 10]).unwrap_err();
        assert!(err.to_string().contains("2304"), "{err}");
    }
}
