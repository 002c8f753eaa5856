//! The native stack really works: libtorch (through tch) embeds generated images with a
//! ResNet18 on the CPU, and faiss finds every vector as its own nearest neighbour.

use faiss::Index;
use likeness::engine::data::Preprocess;
use likeness::engine::model::{EmbeddingModel, ModelConfig};
use likeness::engine::synthetic::class_image;

#[test]
fn resnet18_embeddings_round_trip_through_faiss_flat_l2() {
    let preprocess = Preprocess {
        image_size_px: 64,
        mean: Preprocess::SEED_MEAN,
        std: Preprocess::SEED_STD,
    };
    let config = ModelConfig {
        architecture: "resnet18".into(),
        embedding_dim: 1000,
        l2_normalize: false,
        mirror_average: false,
        preprocess: preprocess.clone(),
    };
    let model = EmbeddingModel::new(config, tch::Device::Cpu).expect("resnet18");
    let mut rng = fastrand::Rng::with_seed(7);
    let count = 12;
    let mut pixels = vec![0.0f32; count * preprocess.floats_per_image()];
    for (i, chunk) in pixels.chunks_mut(preprocess.floats_per_image()).enumerate() {
        preprocess.write_plain(&class_image(i % 4, 4, 80, &mut rng), chunk);
    }
    let vectors = model.embed_pixels(&pixels, count).expect("embed");
    assert_eq!(vectors.len(), count * 1000);
    assert!(vectors.iter().all(|v| v.is_finite()));

    let mut index = faiss::index::flat::FlatIndex::new_l2(1000).expect("IndexFlatL2");
    index.add(&vectors).expect("add");
    assert_eq!(index.ntotal(), count as u64);
    let result = index.search(&vectors, 1).expect("search");
    for i in 0..count {
        assert_eq!(
            result.labels[i].get(),
            Some(i as u64),
            "vector {i} is its own nearest neighbour"
        );
        assert!(
            result.distances[i].abs() < 1e-3,
            "distance {}",
            result.distances[i]
        );
    }
}
