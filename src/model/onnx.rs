//! ONNX export of a network (BatchNorm folded into the layer before it) and `FastModel`, a
//! tract-compiled copy of it for single-face inference, where it beats burn's per-op overhead.
//!
//! The exported graph takes `face` (N, 1, 48, 48), 8-bit pixels scaled to [0, 1] exactly as
//! `preprocess::normalize` does, and returns `probabilities` (N, 7) in `Emotion` order (softmax
//! included). Class names and the input scaling are also written to the model's metadata.

use crate::emotion::Emotion;
use crate::error::{Error, Result};
use crate::model::infer::{Tta, average_views};
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
    for (j, member) in members.into_iter().enumerate() {
        let prefix = if single { String::new() } else { format!("m{j}.") };
        let mut last = "face".to_string();
        for (i, op) in fold(member)?.into_iter().enumerate() {
            last = match op {
                Op::Conv { w, dims, b, pads } => {
                    let (wn, bn) = (format!("{prefix}conv{i}.weight"), format!("{prefix}conv{i}.bias"));
                    init.push(tensor(&wn, &dims, w));
                    init.push(tensor(&bn, &[dims[0]], b));
                    let attrs = vec![ints("kernel_shape", &dims[2..]), ints("pads", &[pads[0], pads[1], pads[2], pads[3]])];
                    node("Conv", vec![last, wn, bn], attrs, None, &mut nodes)
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
    let meta = |k: &str, v: String| pb::StringStringEntryProto { key: k.to_string(), value: v };
    Ok(pb::ModelProto {
        ir_version: 7,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "ferrite".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        doc_string: "Facial expression recognition (FER2013): 48x48 grayscale face crops in, seven class probabilities out."
            .to_string(),
        metadata_props: vec![
            meta("labels", Emotion::ALL.map(|e| e.name()).join(",")),
            meta("input", "face: (N, 1, 48, 48) grayscale, pixel / 255 (values in [0, 1])".to_string()),
            meta("output", "probabilities: (N, 7), softmax, in the order of 'labels'".to_string()),
        ],
        graph: Some(pb::GraphProto {
            name: "ferrite".to_string(),
            node: nodes,
            initializer: init,
            input: vec![value_info("face", &[None, Some(1), Some(FACE_SIZE), Some(FACE_SIZE)])],
            output: vec![value_info("probabilities", &[None, Some(Emotion::COUNT)])],
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The network as ONNX file bytes.
pub fn to_bytes(net: &Network) -> Result<Vec<u8>> {
    Ok(to_proto(net)?.encode_to_vec())
}

/// A network compiled by tract for one face at a time: the fastest single-face path on CPU
/// (no per-op dispatch of an eager framework, BatchNorm folded away). Built once, shared.
#[derive(Clone)]
pub struct FastModel {
    plan: Arc<TypedRunnableModel>,
}

impl std::fmt::Debug for FastModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FastModel")
    }
}

impl FastModel {
    /// Compile `net` (its BatchNorm statistics, as inference uses them) for batch 1.
    pub fn new(net: &Network) -> Result<FastModel> {
        let proto = to_proto(net)?;
        let fact = InferenceFact::dt_shape(f32::datum_type(), tvec!(1, 1, FACE_SIZE, FACE_SIZE));
        let plan = tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .and_then(|m| m.with_input_fact(0, fact))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| Error::Tract { stage: "expression model: compiling with tract", source: e.into() })?;
        Ok(FastModel { plan })
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

    #[test]
    fn bytes_load_back_with_a_free_batch_dimension() {
        let mut spec = ModelSpec::new(Arch::Compact);
        spec.width = Some(4);
        let (net, faces) = trained_net(&spec);
        let bytes = to_bytes(&net).unwrap();
        let onnx = tract_onnx::onnx();
        let proto = onnx.proto_model_for_read(&mut &bytes[..]).unwrap();
        let labels = proto.metadata_props.iter().find(|m| m.key == "labels").unwrap();
        assert_eq!(labels.value, "angry,disgust,fear,happy,neutral,sad,surprise");
        let plan = onnx
            .model_for_proto_model(&proto)
            .and_then(|m| m.with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), tvec!(6, 1, 48, 48))))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .unwrap();
        let pixels: Vec<f32> = faces.iter().map(|&p| normalize(p)).collect();
        let input = tract_onnx::prelude::Tensor::from_shape(&[6, 1, 48, 48], &pixels).unwrap();
        let out = plan.run(tvec!(input.into())).unwrap();
        let got = out[0].to_plain_array_view::<f32>().unwrap();
        let want = FastModel::new(&net).unwrap().probs_each(&faces).unwrap();
        assert_eq!(got.shape(), &[6, 7]);
        for (row, w) in got.rows().into_iter().zip(&want) {
            for (x, y) in row.iter().zip(w) {
                assert!((x - y).abs() < 1e-5);
            }
        }
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
