//! The FER2013 tutorials' reference CNN (4,478,727 parameters with BatchNorm statistics).

use super::layers::Layer;
use crate::kernels::Matmul;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::Device;

/// Configuration of the reference CNN.
#[derive(Debug, Clone)]
pub struct ReferenceConfig {
    pub dropout: f64,
}

/// Conv(k x k, same) - BN - ReLU - MaxPool 2 - Dropout.
#[derive(Module, Debug)]
pub struct ConvBlock {
    conv: Conv2d,
    bn: BatchNorm,
    pool: MaxPool2d,
    dropout: Dropout,
}

impl ConvBlock {
    fn new(c_in: usize, c_out: usize, k: usize, dropout: f64, device: &Device) -> Self {
        ConvBlock {
            conv: Conv2dConfig::new([c_in, c_out], [k, k])
                .with_padding(PaddingConfig2d::Same)
                .init(device),
            bn: BatchNormConfig::new(c_out).init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            dropout: DropoutConfig::new(dropout).init(),
        }
    }
}

/// Dense - BN - ReLU - Dropout.
#[derive(Module, Debug)]
pub struct DenseBlock {
    linear: Linear,
    bn: BatchNorm,
    dropout: Dropout,
}

impl DenseBlock {
    fn new(d_in: usize, d_out: usize, dropout: f64, device: &Device) -> Self {
        DenseBlock {
            linear: LinearConfig::new(d_in, d_out).init(device),
            bn: BatchNormConfig::new(d_out).init(device),
            dropout: DropoutConfig::new(dropout).init(),
        }
    }
}

/// The reference CNN.
#[derive(Module, Debug)]
pub struct ReferenceCnn {
    conv1: ConvBlock,
    conv2: ConvBlock,
    conv3: ConvBlock,
    conv4: ConvBlock,
    dense1: DenseBlock,
    dense2: DenseBlock,
    pub(crate) head: Linear,
    /// The precision of the convolutions' matrix products (not saved with the weights).
    #[module(skip)]
    pub(crate) matmul: Matmul,
}

impl ReferenceConfig {
    pub fn init(&self, device: &Device) -> ReferenceCnn {
        let p = self.dropout;
        ReferenceCnn {
            conv1: ConvBlock::new(1, 64, 3, p, device),
            conv2: ConvBlock::new(64, 128, 5, p, device),
            conv3: ConvBlock::new(128, 512, 3, p, device),
            conv4: ConvBlock::new(512, 512, 3, p, device),
            dense1: DenseBlock::new(512 * 3 * 3, 256, p, device),
            dense2: DenseBlock::new(256, 512, p, device),
            head: LinearConfig::new(512, crate::Emotion::COUNT).init(device),
            matmul: Matmul::F32,
        }
    }
}

impl ReferenceCnn {
    /// The network, in order: four blocks Conv(k x k, same)-BN-ReLU-MaxPool 2-Dropout (k = 3, 5,
    /// 3, 3), flatten, two blocks Dense-BN-ReLU-Dropout, dense:
    /// (N, 1, 48, 48) -> (N, 64, 24, 24) -> (N, 128, 12, 12) -> (N, 512, 6, 6) -> (N, 512, 3, 3)
    /// -> (N, 4608) -> (N, 256) -> (N, 512) -> (N, 7) logits.
    pub fn layers(&self) -> Vec<Layer<'_>> {
        let mut out = Vec::new();
        for b in [&self.conv1, &self.conv2, &self.conv3, &self.conv4] {
            out.extend([Layer::Conv(&b.conv), Layer::BatchNorm(&b.bn), Layer::Relu, Layer::MaxPool(&b.pool), Layer::Dropout(&b.dropout)]);
        }
        out.push(Layer::Flatten);
        for d in [&self.dense1, &self.dense2] {
            out.extend([Layer::Linear(&d.linear), Layer::BatchNorm(&d.bn), Layer::Relu, Layer::Dropout(&d.dropout)]);
        }
        out.push(Layer::Linear(&self.head));
        out
    }
}
