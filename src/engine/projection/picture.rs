//! The map drawn as a picture for reports made without the window.

use image::{Rgb, RgbImage};

use super::{EmbeddingMap, NO_CLASS_COLOUR};

impl EmbeddingMap {
    /// The map drawn as a picture: points coloured by class, likely-mislabelled photos
    /// ringed in red, and a legend of the classes (colour swatches with names).
    pub fn render(&self, width: u32, height: u32) -> RgbImage {
        let mut picture = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
        if self.points.is_empty() {
            return picture;
        }
        let legend_width = if self.class_names.is_empty() {
            0
        } else {
            (width / 4).min(260)
        };
        let margin = 20.0;
        let plot_w = (width - legend_width) as f32 - 2.0 * margin;
        let plot_h = height as f32 - 2.0 * margin;
        let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for &[x, y] in &self.points {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        let sx = plot_w / (x1 - x0).max(f32::EPSILON);
        let sy = plot_h / (y1 - y0).max(f32::EPSILON);
        let to_pixel = |[x, y]: [f32; 2]| {
            (
                (margin + (x - x0) * sx) as i64,
                (margin + plot_h - (y - y0) * sy) as i64,
            )
        };
        let dot = |picture: &mut RgbImage, cx: i64, cy: i64, radius: i64, colour: [u8; 3]| {
            for dy in -radius..=radius {
                for dx in -radius..=radius {
                    if dx * dx + dy * dy > radius * radius {
                        continue;
                    }
                    let (x, y) = (cx + dx, cy + dy);
                    if x >= 0 && y >= 0 && (x as u32) < width && (y as u32) < height {
                        picture.put_pixel(x as u32, y as u32, Rgb(colour));
                    }
                }
            }
        };
        for &i in &self.suspects {
            let (x, y) = to_pixel(self.points[i]);
            dot(&mut picture, x, y, 5, [220, 30, 30]);
        }
        for i in 0..self.points.len() {
            let (x, y) = to_pixel(self.points[i]);
            dot(&mut picture, x, y, 2, self.colour(self.classes[i]));
        }
        let left = (width - legend_width) as i64 + 10;
        let mut rows: Vec<(String, [u8; 3])> = self
            .class_names
            .iter()
            .enumerate()
            .map(|(c, name)| (name.clone(), self.colour(Some(c))))
            .collect();
        if self.classes.iter().any(Option::is_none) {
            rows.push(("no class".to_string(), NO_CLASS_COLOUR));
        }
        if !self.suspects.is_empty() {
            rows.push(("likely mislabelled".to_string(), [220, 30, 30]));
        }
        // The method heads the legend (in the corner without one), so a picture says how
        // it was drawn.
        let mut heading = vec![format!("Map: {}", self.method.label())];
        if let Some(laid_out) = self.sampled {
            heading.push(format!("{laid_out} of {} laid out,", self.len()));
            heading.push("the rest by their nearest".to_string());
        }
        let heading_left = if legend_width == 0 {
            margin as i64
        } else {
            left
        };
        for (row, line) in heading.iter().enumerate() {
            text::draw(&mut picture, line, heading_left, 2 + row as i64 * 20, 16.0);
        }
        let first_row = heading.len() as i64 * 20 + 14;
        for (row, (name, colour)) in rows.iter().enumerate() {
            let top = first_row + row as i64 * 24;
            dot(&mut picture, left + 6, top + 6, 6, *colour);
            text::draw(&mut picture, name, left + 20, top - 2, 16.0);
        }
        picture
    }
}

/// Text for the PNG legend, drawn with the font the window uses (Ubuntu Light, from the
/// font data crate egui ships; no GUI code).
mod text {
    use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
    use image::RgbImage;

    pub fn draw(picture: &mut RgbImage, text: &str, left: i64, top: i64, size: f32) {
        let Ok(font) = FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT) else {
            return;
        };
        let scaled = font.as_scaled(PxScale::from(size));
        let mut x = left as f32;
        let baseline = top as f32 + scaled.ascent();
        for ch in text.chars() {
            let glyph = scaled.scaled_glyph(ch);
            let advance = scaled.h_advance(glyph.id);
            let glyph = ab_glyph::Glyph {
                position: ab_glyph::point(x, baseline),
                ..glyph
            };
            if let Some(outlined) = font.outline_glyph(glyph) {
                let bounds = outlined.px_bounds();
                outlined.draw(|gx, gy, coverage| {
                    let px = bounds.min.x as i64 + gx as i64;
                    let py = bounds.min.y as i64 + gy as i64;
                    if px >= 0
                        && py >= 0
                        && (px as u32) < picture.width()
                        && (py as u32) < picture.height()
                    {
                        let pixel = picture.get_pixel_mut(px as u32, py as u32);
                        for c in &mut pixel.0 {
                            *c = (*c as f32 * (1.0 - coverage)) as u8;
                        }
                    }
                });
            }
            x += advance;
        }
    }
}
