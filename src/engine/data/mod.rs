//! Images on disk → pixels ready for the network.
//!
//! [`scan`] finds images (and says which files it skipped and why), [`decode`] turns one
//! file into 8-bit RGB with EXIF orientation applied, [`preprocess`] resizes, normalises
//! and augments, [`dataset`] keeps a labelled set with its decoded images and samples
//! batches, and [`loader`] loads batches on worker threads while the network computes.

pub mod dataset;
pub mod decode;
pub mod decoded_cache;
pub mod fingerprint;
pub mod loader;
pub mod preprocess;
pub mod preview;
pub mod scan;
mod turbo;

pub use dataset::{
    LabeledDataset, NOT_IN_A_CLASS, PreparedImages, pk_epoch, seed_triplet_epoch, shuffled_epoch,
};
pub use decode::{TargetSize, decode_rgb, decode_rgb_bytes, decode_rgb_sized};
pub use loader::{BatchStream, LoadFn, LoadedBatch, default_loader_threads};
pub use preprocess::{Augment, Preprocess, resize, shrink_to_fit};
pub use scan::{
    DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageFile, ImageFolder, SkippedFile, glob_match,
    is_image_extension, scan_folder, scan_folder_excluding,
};

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use image::RgbImage;

    use super::*;

    fn write_png(path: &Path, width: u32, height: u32) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        RgbImage::from_pixel(width, height, image::Rgb([200, 100, 50]))
            .save(path)
            .expect("save png");
    }

    #[test]
    fn glob_patterns_match_names_and_paths() {
        assert!(glob_match("*.png", "photo.png"));
        assert!(!glob_match("*.png", "photo.jpg"));
        assert!(glob_match("Screenshots", "Screenshots"));
        assert!(glob_match("IMG_????.jpg", "IMG_0042.jpg"));
        assert!(!glob_match("IMG_????.jpg", "IMG_42.jpg"));
        assert!(glob_match("2019/**", "2019/summer/beach.jpg"));
        assert!(!glob_match("2019/*", "2019/summer/beach.jpg"));
        assert!(glob_match("**/drafts", "a/b/drafts"));
        assert!(glob_match("**/drafts", "drafts"));
        assert!(!glob_match("*/drafts", "a/b/drafts"));
        // Character classes and alternatives (globset's syntax).
        assert!(glob_match("IMG_[0-9]*.jpg", "IMG_0042.jpg"));
        assert!(!glob_match("IMG_[0-9]*.jpg", "IMG_x042.jpg"));
        assert!(glob_match("*.{png,gif}", "shot.gif"));
        assert!(!glob_match("*.{png,gif}", "shot.jpg"));
    }

    #[test]
    fn excluded_files_and_folders_are_left_out_of_a_scan() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        let mut rng = fastrand::Rng::with_seed(1);
        for path in [
            "keep/a.jpg",
            "keep/b.png",
            "Screenshots/c.jpg",
            "2019/x/d.jpg",
            "2020/e.jpg",
        ] {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            crate::engine::synthetic::class_image(0, 2, 16, &mut rng)
                .save(&path)
                .expect("save");
        }
        let exclude = ["Screenshots".to_string(), "*.png".into(), "2019/**".into()];
        let folder = scan_folder_excluding(root, DEFAULT_MAX_PIXELS, &exclude).expect("scan");
        let names: Vec<String> = folder
            .images
            .iter()
            .map(|i| {
                i.path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(names, vec!["e.jpg", "a.jpg"]);
        assert_eq!(folder.exclude, exclude.to_vec());
    }

    #[test]
    fn a_large_jpeg_is_decoded_only_as_large_as_needed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("large.jpg");
        let mut rng = fastrand::Rng::with_seed(3);
        let photo = image::imageops::resize(
            &crate::engine::synthetic::class_image(1, 3, 64, &mut rng),
            1600,
            1200,
            image::imageops::FilterType::Triangle,
        );
        photo.save(&path).expect("save");
        let whole = decode_rgb(&path, DEFAULT_MAX_PIXELS).expect("whole");
        assert_eq!(whole.dimensions(), (1600, 1200));
        // 1/8 in the DCT still leaves the shorter side at least 112 px.
        let input = decode_rgb_sized(&path, DEFAULT_MAX_PIXELS, TargetSize::ShortSide(112))
            .expect("scaled");
        assert_eq!(input.dimensions(), (200, 150));
        // A 400-px thumbnail: 1/4 (the longer side 400).
        let thumbnail =
            decode_rgb_sized(&path, DEFAULT_MAX_PIXELS, TargetSize::LongSide(400)).expect("scaled");
        assert_eq!(thumbnail.dimensions(), (400, 300));
        // The scaled decode shows the same picture (mean colour within a few levels).
        let mean = |image: &image::RgbImage| {
            image.pixels().map(|p| f64::from(p.0[1])).sum::<f64>()
                / f64::from(image.width() * image.height())
        };
        assert!((mean(&whole) - mean(&input)).abs() < 3.0);
    }

    #[test]
    fn a_scaled_jpeg_keeps_its_exif_orientation_and_grey_jpegs_come_out_rgb() {
        let dir = tempfile::tempdir().expect("temp dir");
        // 1600×800, left half dark, right half light; EXIF orientation 6 (turn 90°
        // clockwise to view), written as a minimal big-endian APP1 segment after SOI.
        let photo = image::RgbImage::from_fn(1600, 800, |x, _| {
            if x < 800 {
                image::Rgb([20, 20, 20])
            } else {
                image::Rgb([230, 230, 230])
            }
        });
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&photo)
            .expect("encode");
        let tiff: &[u8] = &[
            b'M', b'M', 0, 42, 0, 0, 0, 8, // header, first IFD at 8
            0, 1, // one entry
            0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, // Orientation, SHORT, 1, value 6
            0, 0, 0, 0, // no next IFD
        ];
        let mut app1 = vec![0xFF, 0xE1];
        app1.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
        app1.extend_from_slice(b"Exif\0\0");
        app1.extend_from_slice(tiff);
        jpeg.splice(2..2, app1);
        let path = dir.path().join("turned.jpg");
        std::fs::write(&path, &jpeg).expect("write");
        let input = decode_rgb_sized(&path, DEFAULT_MAX_PIXELS, TargetSize::ShortSide(112))
            .expect("scaled");
        // 1/4 of 1600×800 (1/8 would leave the short side under 112) is 400×200, turned
        // upright: 200×400 with the dark half on top.
        assert_eq!(input.dimensions(), (200, 400));
        assert!(input.get_pixel(100, 40).0[0] < 60, "dark on top");
        assert!(input.get_pixel(100, 360).0[0] > 190, "light below");
        let whole = decode_rgb(&path, DEFAULT_MAX_PIXELS).expect("whole");
        assert_eq!(whole.dimensions(), (800, 1600));

        let grey = image::GrayImage::from_fn(1200, 1200, |x, _| image::Luma([(x / 5) as u8]));
        let grey_path = dir.path().join("grey.jpg");
        grey.save(&grey_path).expect("save");
        let input = decode_rgb_sized(&grey_path, DEFAULT_MAX_PIXELS, TargetSize::ShortSide(112))
            .expect("scaled");
        assert_eq!(input.dimensions(), (150, 150));
        assert!(input.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
    }

    #[test]
    fn shuffled_epoch_uses_every_image_once_and_never_a_batch_of_one() {
        let mut rng = fastrand::Rng::with_seed(4);
        let batches = shuffled_epoch(65, 32, &mut rng);
        assert_eq!(batches.len(), 2, "the lone 65th image joins the last batch");
        let mut all: Vec<usize> = batches.concat();
        all.sort_unstable();
        assert_eq!(all, (0..65).collect::<Vec<_>>());
        assert!(batches.iter().all(|b| b.len() >= 2));
    }

    #[test]
    fn scan_lists_images_by_class_and_explains_every_skip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        write_png(&root.join("daisy/a.png"), 8, 8);
        write_png(&root.join("daisy/nested/b.png"), 8, 8);
        write_png(&root.join("rose/c.png"), 8, 8);
        std::fs::write(root.join("rose/empty.jpg"), b"").expect("write");
        std::fs::write(root.join("rose/notes.txt"), b"hello").expect("write");
        std::fs::write(root.join("rose/fake.png"), b"this is not a png").expect("write");
        std::fs::write(root.join("rose/.DS_Store"), b"junk").expect("write");
        write_png(&root.join("loose.png"), 8, 8);

        let folder = scan_folder(root, DEFAULT_MAX_PIXELS).expect("scan");
        let classes: Vec<_> = folder.images.iter().map(|i| i.class.clone()).collect();
        assert_eq!(
            classes,
            vec![
                Some("daisy".into()),
                Some("daisy".into()),
                None,
                Some("rose".into())
            ]
        );
        let reasons: Vec<(String, String)> = folder
            .skipped
            .iter()
            .map(|s| {
                (
                    s.path
                        .file_name()
                        .expect("name")
                        .to_string_lossy()
                        .into_owned(),
                    s.reason.clone(),
                )
            })
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(
            reasons
                .iter()
                .any(|(n, r)| n == "empty.jpg" && r.contains("empty file"))
        );
        assert!(
            reasons
                .iter()
                .any(|(n, r)| n == "notes.txt" && r.contains("not an image file"))
        );
        assert!(
            reasons
                .iter()
                .any(|(n, r)| n == "fake.png" && r.contains("not a readable image")),
            "{reasons:?}"
        );

        let dataset = LabeledDataset::from_folder(folder);
        assert_eq!(
            dataset.classes,
            vec!["daisy".to_string(), "rose".to_string()]
        );
        assert!(
            dataset
                .skipped
                .iter()
                .any(|s| s.reason.contains("not inside a class folder"))
        );
        assert_eq!(
            dataset.notes,
            vec!["class 'rose' has only one image; it is used only for negatives".to_string()]
        );
        dataset
            .check_trainable()
            .expect("two classes, one with two images");
    }

    #[test]
    fn oversized_and_truncated_images_are_refused_with_reasons() {
        let dir = tempfile::tempdir().expect("temp dir");
        let big = dir.path().join("c/big.png");
        write_png(&big, 40, 30);
        let folder = scan_folder(dir.path(), 1000).expect("scan");
        assert!(folder.images.is_empty());
        assert!(
            folder.skipped[0].reason.contains("40×30"),
            "{}",
            folder.skipped[0].reason
        );
        assert!(
            decode_rgb(&big, 1000)
                .expect_err("bomb")
                .contains("above the limit")
        );

        let truncated = dir.path().join("c/truncated.png");
        let noisy = RgbImage::from_fn(64, 64, |x, y| {
            image::Rgb([(x * 7 + y * 3) as u8, (x * y) as u8, (x ^ y) as u8])
        });
        noisy.save(&truncated).expect("save");
        let bytes = std::fs::read(&truncated).expect("read");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("truncate");
        let reason = decode_rgb(&truncated, DEFAULT_MAX_PIXELS).expect_err("truncated");
        assert!(reason.contains("not a readable image"), "{reason}");
    }

    #[test]
    fn missing_folder_and_single_class_are_clear_errors() {
        let error =
            scan_folder(Path::new("/no/such/folder"), DEFAULT_MAX_PIXELS).expect_err("missing");
        assert!(error.to_string().contains("no such folder"));
        let dir = tempfile::tempdir().expect("temp dir");
        write_png(&dir.path().join("only/a.png"), 8, 8);
        write_png(&dir.path().join("only/b.png"), 8, 8);
        let dataset = LabeledDataset::scan(dir.path(), DEFAULT_MAX_PIXELS).expect("scan");
        let error = dataset
            .check_trainable()
            .expect_err("one class")
            .to_string();
        assert!(error.contains("at least two"), "{error}");
    }

    #[test]
    fn grayscale_16_bit_alpha_and_gif_decode_to_rgb8() {
        let dir = tempfile::tempdir().expect("temp dir");
        let gray16 = dir.path().join("g16.png");
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_pixel(4, 3, image::Luma([65535]))
            .save(&gray16)
            .expect("save");
        let rgb = decode_rgb(&gray16, DEFAULT_MAX_PIXELS).expect("decode");
        assert_eq!((rgb.width(), rgb.height()), (4, 3));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);

        let rgba = dir.path().join("a.png");
        image::RgbaImage::from_pixel(2, 2, image::Rgba([10, 20, 30, 0]))
            .save(&rgba)
            .expect("save");
        assert_eq!(
            decode_rgb(&rgba, DEFAULT_MAX_PIXELS)
                .expect("decode")
                .get_pixel(1, 1)
                .0,
            [10, 20, 30]
        );

        let gif = dir.path().join("anim.gif");
        image::RgbImage::from_pixel(5, 5, image::Rgb([255, 0, 0]))
            .save(&gif)
            .expect("save");
        assert_eq!(
            decode_rgb(&gif, DEFAULT_MAX_PIXELS)
                .expect("decode")
                .dimensions(),
            (5, 5)
        );
    }

    #[test]
    fn preprocessing_normalises_with_the_seed_constants() {
        let preprocess = Preprocess {
            image_size_px: 2,
            mean: Preprocess::SEED_MEAN,
            std: Preprocess::SEED_STD,
        };
        let white = RgbImage::from_pixel(4, 4, image::Rgb([255, 255, 255]));
        let mut out = vec![0.0; preprocess.floats_per_image()];
        preprocess.write_plain(&white, &mut out);
        for channel in 0..3 {
            let expected = (1.0 - Preprocess::SEED_MEAN[channel]) / Preprocess::SEED_STD[channel];
            assert!(
                out[channel * 4..channel * 4 + 4]
                    .iter()
                    .all(|v| (v - expected).abs() < 1e-5)
            );
        }
    }

    #[test]
    fn seed_triplets_follow_the_tutorial_semantics() {
        // Class 1 has one image: never an anchor, still a negative.
        let by_class = vec![vec![0, 1, 2], vec![3], vec![4, 5, 6, 7]];
        let class_of = |i: usize| by_class.iter().position(|c| c.contains(&i)).expect("class");
        let mut rng = fastrand::Rng::with_seed(3);
        let mut negatives_from_singleton = 0;
        for _ in 0..20 {
            let batches = seed_triplet_epoch(&by_class, 5, &mut rng);
            assert_eq!(
                batches.iter().map(|b| b.len() / 3).collect::<Vec<_>>(),
                vec![5, 5, 5, 1]
            );
            let mut anchor_classes = vec![0; 3];
            for batch in &batches {
                let n = batch.len() / 3;
                for t in 0..n {
                    let (a, p, neg) = (batch[t], batch[n + t], batch[2 * n + t]);
                    assert_ne!(a, p, "anchor and positive are two different images");
                    assert_eq!(class_of(a), class_of(p));
                    assert_ne!(class_of(a), class_of(neg));
                    anchor_classes[class_of(a)] += 1;
                    negatives_from_singleton += usize::from(class_of(neg) == 1);
                }
            }
            assert_eq!(
                anchor_classes,
                vec![8, 0, 8],
                "each anchor class 8 times per epoch"
            );
        }
        assert!(negatives_from_singleton > 0);
    }

    #[test]
    fn pk_batches_hold_k_images_of_p_classes() {
        let by_class: Vec<Vec<usize>> = (0..6).map(|c| (c * 10..c * 10 + 5).collect()).collect();
        let mut rng = fastrand::Rng::with_seed(1);
        let batches = pk_epoch(&by_class, 3, 4, &mut rng);
        assert_eq!(batches.len(), 3); // 30 images / 12 per batch, rounded up
        for batch in &batches {
            assert_eq!(batch.len(), 12);
            let mut classes: Vec<usize> = batch.iter().map(|i| i / 10).collect();
            classes.dedup();
            assert_eq!(classes.len(), 3);
        }
    }

    #[test]
    fn batch_stream_yields_in_order_and_reports_failures() {
        let load: Arc<LoadFn> = Arc::new(|item, _rng, out: &mut [f32]| {
            if item == 3 {
                return Err("broken".into());
            }
            out.fill(item as f32);
            Ok(())
        });
        let jobs = vec![vec![0, 1], vec![2, 3], vec![4, 5], vec![6]];
        let batches: Vec<LoadedBatch> = BatchStream::spawn(jobs, 2, 0, 3, 1, load).collect();
        assert_eq!(
            batches.iter().map(|b| b.batch_index).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(batches[1].loaded, vec![2]);
        assert_eq!(batches[1].pixels, vec![2.0, 2.0]);
        assert_eq!(batches[1].failed, vec![(3, "broken".to_string())]);
    }
}
