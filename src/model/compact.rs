//! ferrite's compact CNN: a VGG-style stack of 3x3 convolutions with global average pooling.
//!
//! Four stages at 48, 24, 12 and 6 pixels, each two Conv(3x3, same)-BN-ReLU layers and a 2x2
//! max-pool; the channel count doubles per stage from `width` (default 32: 32-64-128-256).
//! Global average pooling, dropout and one dense layer give the 7 logits. With width 32 it costs
//! ~117M multiply-adds per face (the reference CNN ~290M) and has ~1.17M parameters (reference
//! 4.48M).

use super::layers::Layer;
use crate::kernels::Matmul;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::Device;

/// Configuration of the compact CNN.
#[derive(Debug, Clone)]
pub struct CompactConfig {
    /// Channels of the first stage; stages 2-4 have 2x, 4x, 8x.
    pub width: usize,
    /// Dropout before the classifier.
    pub dropout: f64,
    /// Side of the centred crop of the input the stages see (`None`: the whole input).
    pub crop: Option<usize>,
    /// Convolutions in stage 1 (1 or 2); stages 2-4 always have two.
    pub stem_convs: usize,
}

/// Conv(3x3, same) - BN - ReLU.
#[derive(Module, Debug)]
pub struct ConvBnRelu {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBnRelu {
    fn new(c_in: usize, c_out: usize, device: &Device) -> Self {
        ConvBnRelu {
            conv: Conv2dConfig::new([c_in, c_out], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(c_out).init(device),
        }
    }
}

/// One or two ConvBnRelu layers and a 2x2 max-pool.
#[derive(Module, Debug)]
pub struct Stage {
    a: ConvBnRelu,
    b: Option<ConvBnRelu>,
    pool: MaxPool2d,
}

impl Stage {
    fn new(c_in: usize, c_out: usize, convs: usize, device: &Device) -> Self {
        Stage {
            a: ConvBnRelu::new(c_in, c_out, device),
            b: (convs >= 2).then(|| ConvBnRelu::new(c_out, c_out, device)),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        }
    }
}

/// The compact CNN.
#[derive(Module, Debug)]
pub struct CompactCnn {
    /// Side of the centred input crop (0: none).
    crop: usize,
    stage1: Stage,
    stage2: Stage,
    stage3: Stage,
    stage4: Stage,
    dropout: Dropout,
    pub(crate) head: Linear,
    /// The precision of the convolutions' matrix products (not saved with the weights).
    #[module(skip)]
    pub(crate) matmul: Matmul,
}

impl CompactConfig {
    pub fn init(&self, device: &Device) -> CompactCnn {
        let w = self.width.max(1);
        CompactCnn {
            crop: self.crop.unwrap_or(0),
            stage1: Stage::new(1, w, self.stem_convs, device),
            stage2: Stage::new(w, 2 * w, 2, device),
            stage3: Stage::new(2 * w, 4 * w, 2, device),
            stage4: Stage::new(4 * w, 8 * w, 2, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(8 * w, crate::Emotion::COUNT).init(device),
            matmul: Matmul::F32,
        }
    }
}

impl CompactCnn {
    /// The network, in order: (a crop,) then per stage (Conv(3x3, same)-BN-ReLU) x 1 or 2 and a 2x2
    /// max-pool, global average pooling, dropout, dense. Shapes without a crop (crop c: c, c/2, ...):
    /// (N, 1, 48, 48) -> (N, w, 24, 24) -> (N, 2w, 12, 12) -> (N, 4w, 6, 6) -> (N, 8w, 3, 3)
    /// -> (N, 8w) -> (N, 7) logits.
    pub fn layers(&self) -> Vec<Layer<'_>> {
        let mut out = Vec::new();
        if self.crop > 0 {
            out.push(Layer::CenterCrop(self.crop));
        }
        for stage in [&self.stage1, &self.stage2, &self.stage3, &self.stage4] {
            for c in std::iter::once(&stage.a).chain(stage.b.as_ref()) {
                out.extend([Layer::Conv(&c.conv), Layer::BatchNorm(&c.bn), Layer::Relu]);
            }
            out.push(Layer::MaxPool(&stage.pool));
        }
        out.extend([Layer::GlobalAvgPool, Layer::Dropout(&self.dropout), Layer::Linear(&self.head)]);
        out
    }
}
