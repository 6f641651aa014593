//! A network as data: the list of layers each architecture describes once, and the one
//! interpreter that runs it. Forward passes, layer tables (`summary`), diagrams and the ONNX
//! exporter all read the same list.

use crate::kernels::{self, Matmul, Replica};
use burn::module::Module;
use burn::tensor::Tensor;

/// What a layer is, for tables, diagrams and exporters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerKind {
    Conv2D,
    BatchNormalization,
    Relu,
    MaxPooling2D,
    Dropout,
    Cropping2D,
    GlobalAveragePooling2D,
    Flatten,
    Dense,
}

impl LayerKind {
    /// The Keras layer type ("Conv2D", "Activation(relu)", ...).
    pub fn keras_type(self) -> &'static str {
        match self {
            LayerKind::Conv2D => "Conv2D",
            LayerKind::BatchNormalization => "BatchNormalization",
            LayerKind::Relu => "Activation(relu)",
            LayerKind::MaxPooling2D => "MaxPooling2D",
            LayerKind::Dropout => "Dropout",
            LayerKind::Cropping2D => "Cropping2D",
            LayerKind::GlobalAveragePooling2D => "GlobalAveragePooling2D",
            LayerKind::Flatten => "Flatten",
            LayerKind::Dense => "Dense",
        }
    }

    /// The Keras layer name stem ("conv2d", "activation", ...).
    pub fn keras_name(self) -> &'static str {
        match self {
            LayerKind::Conv2D => "conv2d",
            LayerKind::BatchNormalization => "batch_normalization",
            LayerKind::Relu => "activation",
            LayerKind::MaxPooling2D => "max_pooling2d",
            LayerKind::Dropout => "dropout",
            LayerKind::Cropping2D => "cropping2d",
            LayerKind::GlobalAveragePooling2D => "global_average_pooling2d",
            LayerKind::Flatten => "flatten",
            LayerKind::Dense => "dense",
        }
    }

    /// The fill colour of the layer's box in diagrams (SVG and PNG).
    pub fn color(self) -> [u8; 3] {
        match self {
            LayerKind::Conv2D => [0xf4, 0xb1, 0x83],
            LayerKind::Dense => [0x9d, 0xc3, 0xe6],
            LayerKind::BatchNormalization => [0xc5, 0xe0, 0xb4],
            LayerKind::MaxPooling2D => [0xff, 0xe6, 0x99],
            LayerKind::Dropout => [0xe7, 0xe6, 0xe6],
            _ => [0xff, 0xff, 0xff],
        }
    }
}

impl std::fmt::Display for LayerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.keras_type())
    }
}

/// One layer of a network, in execution order, borrowing its parameters.
#[derive(Debug, Clone, Copy)]
pub enum Layer<'a> {
    /// Stride-1 "same" convolution (`kernels::conv` on flex).
    Conv(&'a burn::nn::conv::Conv2d),
    /// BatchNorm over channels (after a convolution) or features (after a dense layer).
    BatchNorm(&'a burn::nn::BatchNorm),
    Relu,
    /// 2x2, stride-2 max-pool (`kernels::pool` on flex).
    MaxPool(&'a burn::nn::pool::MaxPool2d),
    /// Training-time dropout; the identity at inference (exporters leave it out).
    Dropout(&'a burn::nn::Dropout),
    /// The centred `size` x `size` window of the image: (N, C, H, W) -> (N, C, size, size).
    CenterCrop(usize),
    /// Mean over height and width: (N, C, H, W) -> (N, C).
    GlobalAvgPool,
    /// (N, C, H, W) -> (N, C*H*W).
    Flatten,
    Linear(&'a burn::nn::Linear),
}

impl Layer<'_> {
    pub fn kind(&self) -> LayerKind {
        match self {
            Layer::Conv(_) => LayerKind::Conv2D,
            Layer::BatchNorm(_) => LayerKind::BatchNormalization,
            Layer::Relu => LayerKind::Relu,
            Layer::MaxPool(_) => LayerKind::MaxPooling2D,
            Layer::Dropout(_) => LayerKind::Dropout,
            Layer::CenterCrop(_) => LayerKind::Cropping2D,
            Layer::GlobalAvgPool => LayerKind::GlobalAveragePooling2D,
            Layer::Flatten => LayerKind::Flatten,
            Layer::Linear(_) => LayerKind::Dense,
        }
    }

    /// (all parameters, those not trained by gradient: BatchNorm's running statistics).
    pub fn params(&self) -> (usize, usize) {
        match self {
            Layer::Conv(c) => (c.num_params(), 0),
            Layer::BatchNorm(bn) => (bn.num_params(), 2 * bn.gamma.dims()[0]),
            Layer::Linear(l) => (l.num_params(), 0),
            _ => (0, 0),
        }
    }
}

/// One forward pass's context besides the input: the layer tape, and in a data-parallel
/// training replica its state (dropout seeds, BatchNorm updates held back).
#[derive(Default)]
pub struct Pass<'a> {
    pub tape: Tape,
    pub replica: Option<&'a mut Replica>,
}

impl Pass<'_> {
    /// A pass that records every layer on its tape.
    pub fn traced() -> Pass<'static> {
        Pass { tape: Tape::on(), replica: None }
    }
}

/// A layer's input or output: an image batch or a feature batch.
enum Act {
    Map(Tensor<4>),
    Flat(Tensor<2>),
}

impl Act {
    fn map(self, layer: LayerKind) -> Tensor<4> {
        match self {
            Act::Map(x) => x,
            Act::Flat(_) => panic!("layer description: {layer} after the image was flattened"),
        }
    }
}

/// Run `layers` on `x` (N, C, H, W) with the convolutions' products in precision `mm`,
/// recording each layer on `pass`'s tape: the (N, K) output of the last layer.
pub fn run(layers: &[Layer], x: Tensor<4>, mm: Matmul, pass: &mut Pass) -> Tensor<2> {
    let mut act = Act::Map(x);
    for layer in layers {
        let kind = layer.kind();
        act = match *layer {
            Layer::Conv(c) => Act::Map(kernels::conv::forward(c, act.map(kind), mm)),
            Layer::BatchNorm(bn) => match act {
                Act::Map(x) => Act::Map(kernels::batch_norm::batch_norm(bn, x, pass.replica.as_deref_mut())),
                Act::Flat(x) => Act::Flat(kernels::batch_norm::batch_norm(bn, x, pass.replica.as_deref_mut())),
            },
            Layer::Relu => match act {
                Act::Map(x) => Act::Map(burn::tensor::activation::relu(x)),
                Act::Flat(x) => Act::Flat(burn::tensor::activation::relu(x)),
            },
            Layer::MaxPool(p) => Act::Map(kernels::pool::forward(p, act.map(kind))),
            Layer::Dropout(d) => match act {
                Act::Map(x) => Act::Map(kernels::dropout::forward(d, x, pass.replica.as_deref_mut())),
                Act::Flat(x) => Act::Flat(kernels::dropout::forward(d, x, pass.replica.as_deref_mut())),
            },
            Layer::CenterCrop(k) => Act::Map(center_crop(act.map(kind), k)),
            Layer::GlobalAvgPool => Act::Flat(act.map(kind).mean_dim(3).mean_dim(2).flatten(1, 3)),
            Layer::Flatten => Act::Flat(act.map(kind).flatten(1, 3)),
            Layer::Linear(l) => match act {
                Act::Flat(x) => Act::Flat(l.forward(x)),
                Act::Map(_) => panic!("layer description: Dense before the image is flattened"),
            },
        };
        if pass.tape.is_on() {
            let (params, non_trainable) = layer.params();
            match &act {
                Act::Map(x) => pass.tape.record(kind, x, params, non_trainable),
                Act::Flat(x) => pass.tape.record(kind, x, params, non_trainable),
            }
        }
    }
    match act {
        Act::Flat(x) => x,
        Act::Map(_) => panic!("layer description: the network ends on an image, not class scores"),
    }
}

/// (N, C, H, W) -> (N, C, k, k), the centred window; the input itself when it is no larger.
fn center_crop(x: Tensor<4>, k: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    if k == 0 || (h <= k && w <= k) {
        return x;
    }
    let (k_h, k_w) = (k.min(h), k.min(w));
    let (top, left) = ((h - k_h) / 2, (w - k_w) / 2);
    x.slice([0..n, 0..c, top..top + k_h, left..left + k_w])
}

/// One row of a layer table.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    pub kind: LayerKind,
    /// Output shape without the batch dimension.
    pub shape: Vec<usize>,
    /// All parameters, BatchNorm running statistics included.
    pub params: usize,
    /// Parameters not trained by gradient (BatchNorm running mean and variance).
    pub non_trainable: usize,
    /// Wall time since the previous record (or since the tape was switched on), in ms.
    /// On an eager CPU backend this is the layer's forward time.
    pub elapsed_ms: f64,
}

/// Records layers during a forward pass when switched on; free when off.
#[derive(Debug, Default)]
pub struct Tape {
    rows: Option<Vec<LayerRow>>,
    last: Option<std::time::Instant>,
}

impl Tape {
    pub fn off() -> Tape {
        Tape { rows: None, last: None }
    }

    pub fn on() -> Tape {
        Tape {
            rows: Some(Vec::new()),
            last: Some(std::time::Instant::now()),
        }
    }

    /// Whether the tape records (layer parameters are counted only then).
    pub fn is_on(&self) -> bool {
        self.rows.is_some()
    }

    /// Record a layer whose output is `out`.
    pub fn record<const D: usize>(&mut self, kind: LayerKind, out: &Tensor<D>, params: usize, non_trainable: usize) {
        if let Some(rows) = &mut self.rows {
            let now = std::time::Instant::now();
            let elapsed_ms = self.last.map_or(0.0, |t| (now - t).as_secs_f64() * 1000.0);
            self.last = Some(now);
            rows.push(LayerRow {
                elapsed_ms,
                kind,
                shape: out.dims()[1..].to_vec(),
                params,
                non_trainable,
            });
        }
    }

    pub fn into_rows(self) -> Vec<LayerRow> {
        self.rows.unwrap_or_default()
    }
}
