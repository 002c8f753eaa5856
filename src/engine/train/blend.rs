//! Mixup and CutMix: a batch blended with a shuffled copy of itself, each image's loss
//! shared between its own class and its partner's by how much of each it shows.

use tch::Tensor;

/// How a batch is blended with a shuffled copy of itself.
pub(super) enum Blend {
    /// The whole images, this much of each image's own.
    Mixup { weight: f64 },
    /// A box of the partner pasted into each image.
    Cutmix(CutBox),
}

/// CutMix's box, the same for the whole batch (as in the paper's reference code), in
/// pixels of a square image `size` on a side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct CutBox {
    top: i64,
    left: i64,
    height: i64,
    width: i64,
    size: i64,
}

impl CutBox {
    /// The share of each image that stays its own: what its own class's loss is weighed by.
    pub(super) fn kept_share(&self) -> f64 {
        1.0 - (self.height * self.width) as f64 / (self.size * self.size) as f64
    }

    /// `images` with the box replaced by the same box of `partners` (NCHW or channels-last:
    /// `narrow` works on the logical dimensions either way).
    pub(super) fn paste(&self, images: &Tensor, partners: &Tensor) -> Tensor {
        let mixed = images.copy();
        if self.height > 0 && self.width > 0 {
            let region = |t: &Tensor| {
                t.narrow(2, self.top, self.height)
                    .narrow(3, self.left, self.width)
            };
            region(&mixed).copy_(&region(partners));
        }
        mixed
    }
}

/// CutMix's box: its area is 1 − λ of the image for λ ~ Beta(α, α), its centre anywhere
/// in the image, clipped at the borders (so the kept share is measured after clipping).
pub(super) fn cutmix_box(rng: &mut fastrand::Rng, alpha: f64, size: i64) -> CutBox {
    let lambda = sample_beta(rng, alpha);
    let side = ((1.0 - lambda).sqrt() * size as f64).round() as i64;
    let centre_y = rng.i64(0..size);
    let centre_x = rng.i64(0..size);
    let span = |centre: i64| {
        let start = (centre - side / 2).clamp(0, size);
        let end = (centre + side - side / 2).clamp(0, size);
        (start, end - start)
    };
    let (top, height) = span(centre_y);
    let (left, width) = span(centre_x);
    CutBox {
        top,
        left,
        height,
        width,
        size,
    }
}

/// A draw from Beta(α, α) (Jöhnk's method: exact for any α, quick for the small α
/// mixup uses).
pub(super) fn sample_beta(rng: &mut fastrand::Rng, alpha: f64) -> f64 {
    for _ in 0..1000 {
        let x = rng.f64().powf(1.0 / alpha);
        let y = rng.f64().powf(1.0 / alpha);
        if x + y <= 1.0 && x + y > 0.0 {
            return x / (x + y);
        }
    }
    0.5
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn mixup_weights_follow_a_symmetric_beta() {
        let mut rng = fastrand::Rng::with_seed(3);
        let draws: Vec<f64> = (0..4000).map(|_| sample_beta(&mut rng, 0.2)).collect();
        assert!(draws.iter().all(|w| (0.0..=1.0).contains(w)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.03, "symmetric: mean {mean}");
        // Beta(0.2, 0.2) puts most of its weight near 0 and 1 (the variance is
        // 1/(4·1.4) ≈ 0.18), so most batches stay close to one image.
        let variance = draws.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!((variance - 0.1786).abs() < 0.02, "variance {variance}");
        let uniform: Vec<f64> = (0..4000).map(|_| sample_beta(&mut rng, 1.0)).collect();
        let variance = uniform.iter().map(|w| (w - 0.5).powi(2)).sum::<f64>() / 4000.0;
        assert!(
            (variance - 1.0 / 12.0).abs() < 0.01,
            "Beta(1,1) is uniform: {variance}"
        );
    }

    #[test]
    fn a_cutmix_box_stays_inside_the_image_and_its_kept_share_is_what_is_left() {
        let mut rng = fastrand::Rng::with_seed(5);
        let mut kept = Vec::new();
        for _ in 0..2000 {
            let cut = cutmix_box(&mut rng, 1.0, 32);
            assert!(cut.top >= 0 && cut.left >= 0, "{cut:?}");
            assert!(
                cut.top + cut.height <= 32 && cut.left + cut.width <= 32,
                "{cut:?}"
            );
            let share = cut.kept_share();
            assert!((0.0..=1.0).contains(&share), "{cut:?}");
            kept.push(share);
        }
        // λ ~ Beta(1, 1) has mean 0.5; clipping at the borders only shrinks boxes, so
        // the mean kept share is a little above it.
        let mean = kept.iter().sum::<f64>() / kept.len() as f64;
        assert!((0.5..0.75).contains(&mean), "mean kept share {mean}");

        // Pasting: the box holds the partner's pixels, the rest the image's own, in both
        // memory orders.
        let cut = CutBox {
            top: 1,
            left: 2,
            height: 2,
            width: 3,
            size: 6,
        };
        assert!((cut.kept_share() - (1.0 - 6.0 / 36.0)).abs() < 1e-12);
        let own = Tensor::zeros([2, 3, 6, 6], (Kind::Float, tch::Device::Cpu));
        let partners = Tensor::ones([2, 3, 6, 6], (Kind::Float, tch::Device::Cpu));
        for images in [
            own.shallow_clone(),
            crate::engine::model::channels_last(own.copy()),
        ] {
            let mixed = cut.paste(&images, &partners);
            assert_eq!(mixed.sum(Kind::Float).double_value(&[]), 2.0 * 3.0 * 6.0);
            assert_eq!(mixed.double_value(&[1, 2, 2, 4]), 1.0, "inside the box");
            assert_eq!(mixed.double_value(&[1, 2, 3, 4]), 0.0, "below the box");
            assert_eq!(mixed.double_value(&[0, 0, 1, 1]), 0.0, "left of the box");
            assert_eq!(
                images.sum(Kind::Float).double_value(&[]),
                0.0,
                "the batch is not changed"
            );
        }
    }
}
