//! The command line's names for the engine's choices. The engine knows nothing of clap;
//! these enums are what `--preset`, `--loss`, `--device`, … accept, each mapped onto the
//! engine's own type.

use crate::engine::data::Augment;
use crate::engine::device::DeviceChoice;
use crate::engine::train::{Backbone, Loss, Mining, Preset, Schedule};

/// Declares a clap value enum with the same variants as an engine enum, and the mapping.
macro_rules! cli_choice {
    ($(#[$doc:meta])* $name:ident => $engine:ty { $($(#[$variant_doc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
        pub enum $name {
            $($(#[$variant_doc])* $variant),+
        }

        impl From<$name> for $engine {
            fn from(choice: $name) -> Self {
                match choice {
                    $($name::$variant => <$engine>::$variant),+
                }
            }
        }
    };
}

cli_choice!(
    /// A named starting point for the training settings.
    PresetArg => Preset {
        /// The tutorial recipe exactly: 224 px, random triplets, margin 1, Adam 1e-3, batch 32.
        Seed,
        /// EfficientNet-Lite0 from the ImageNet weights that ship with Likeness, fine-tuned
        /// with normalised softmax at 128 px.
        Default,
        /// The best recipe from scratch: ResNet18, normalised softmax at 112 px.
        Scratch,
    }
);

cli_choice!(
    /// The network that is trained.
    BackboneArg => Backbone {
        /// ResNet18 (11.2 M weights; ImageNet weights by download: `likeness weights`).
        Resnet18,
        /// EfficientNet-Lite0 (3.4 M weights; its ImageNet weights ship with Likeness).
        EfficientnetLite0,
    }
);

cli_choice!(
    /// What training minimises.
    LossArg => Loss {
        /// Triplet loss with a margin on squared L2 distance (see --mining).
        Triplet,
        /// Cosine similarity to one learned proxy per class, with cross-entropy.
        NormalizedSoftmax,
    }
);

cli_choice!(
    /// How triplets are formed (triplet loss only).
    MiningArg => Mining {
        /// Independent random triplets, as the tutorial (batch size counts triplets).
        RandomTriplets,
        /// P classes × K images; the hardest positive and negative in the batch.
        BatchHard,
    }
);

cli_choice!(
    /// Random changes to training images.
    AugmentArg => Augment {
        None,
        /// Random horizontal flip (the tutorial's).
        Flip,
        /// Random resized crop (scale 0.5–1) and flip.
        CropFlip,
        /// Random resized crop, flip, and brightness/contrast/saturation jitter.
        CropFlipColor,
    }
);

cli_choice!(
    /// Learning-rate schedule.
    ScheduleArg => Schedule {
        Constant,
        /// Cosine decay over the run (over the time budget when there is one).
        Cosine,
    }
);

cli_choice!(
    /// Where the network runs.
    DeviceArg => DeviceChoice {
        /// The first CUDA GPU when libtorch sees one, otherwise the CPU.
        Auto,
        Cpu,
        Cuda,
    }
);

impl DeviceArg {
    /// The device this choice means here (asking for CUDA where there is none fails).
    pub fn resolve(self) -> crate::engine::Result<tch::Device> {
        DeviceChoice::from(self).resolve()
    }
}

/// `-k`: a number of results, at least 1 (0 would print nothing and succeed).
pub fn result_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(k) => Ok(k),
        Err(e) => Err(e.to_string()),
    }
}

/// A squared distance (`--max-distance`, `--threshold`): a number, zero or more. NaN and
/// negative values would silently match nothing.
pub fn distance(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(d) if d.is_finite() && d >= 0.0 => Ok(d),
        Ok(_) => Err("must be a number, zero or more (distances are never negative)".into()),
        Err(e) => Err(e.to_string()),
    }
}
