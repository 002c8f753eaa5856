//! Runs only where libtorch sees a CUDA GPU (prints why it skipped otherwise). Set
//! LIKENESS_REQUIRE_CUDA=1 to make a missing GPU a failure, as the GPU check does.

use likeness::engine::device::{DeviceChoice, describe};
use likeness::engine::model::{EmbeddingModel, ModelConfig};

#[test]
fn cuda_is_linked_and_embeds_on_the_gpu_when_present() {
    let available = tch::Cuda::is_available();
    if std::env::var_os("LIKENESS_REQUIRE_CUDA").is_some() {
        assert!(
            available,
            "LIKENESS_REQUIRE_CUDA is set but libtorch sees no CUDA device"
        );
    }
    if !available {
        eprintln!("skipped: no CUDA device visible to libtorch");
        return;
    }
    let device = DeviceChoice::Auto.resolve().expect("device");
    assert!(device.is_cuda());
    let label = describe(device);
    eprintln!("running on {label}");
    assert!(label.starts_with("CUDA GPU"));
    let config = ModelConfig {
        architecture: "resnet18".into(),
        embedding_dim: 1000,
        l2_normalize: false,
        mirror_average: false,
        preprocess: likeness::engine::data::Preprocess {
            image_size_px: 224,
            mean: likeness::engine::data::Preprocess::SEED_MEAN,
            std: likeness::engine::data::Preprocess::SEED_STD,
        },
    };
    let model = EmbeddingModel::new(config, device).expect("model");
    let pixels = vec![0.25f32; 8 * 3 * 224 * 224];
    let embeddings = model.embed_pixels(&pixels, 8).expect("embed");
    assert_eq!(embeddings.len(), 8 * 1000);
    assert!(embeddings.iter().all(|v| v.is_finite()));
}
