//! A small CPU rasteriser for egui_kittest: egui's own tessellated triangles, textures
//! and premultiplied-alpha blending, so a window renders on any machine (kittest's wgpu
//! renderer needs a GPU or a Vulkan software driver). Used by the snapshot test and by
//! the window-pace benchmark, where it stands in for software OpenGL.

use std::collections::HashMap;

use egui::epaint::{ClippedPrimitive, Primitive};
use egui::{Color32, TextureId, TexturesDelta};
use egui_kittest::TestRenderer;

/// Rasterises egui meshes on the CPU.
#[derive(Default)]
pub struct SoftwareRenderer {
    textures: HashMap<TextureId, (usize, usize, Vec<Color32>)>,
}

impl TestRenderer for SoftwareRenderer {
    fn handle_delta(&mut self, delta: &mut TexturesDelta) {
        for (id, image_delta) in std::mem::take(&mut delta.set)
            .into_iter()
            .flat_map(|(id, deltas)| deltas.into_iter().map(move |d| (id, d)))
        {
            let egui::ImageData::Color(image) = &image_delta.image;
            let [width, height] = image.size;
            match image_delta.pos {
                None => {
                    self.textures
                        .insert(id, (width, height, image.pixels.clone()));
                }
                Some([x0, y0]) => {
                    if let Some((texture_width, _, pixels)) = self.textures.get_mut(&id) {
                        for y in 0..height {
                            for x in 0..width {
                                pixels[(y0 + y) * *texture_width + x0 + x] =
                                    image.pixels[y * width + x];
                            }
                        }
                    }
                }
            }
        }
        for id in std::mem::take(&mut delta.free) {
            self.textures.remove(&id);
        }
    }

    fn render(
        &mut self,
        ctx: &egui::Context,
        output: &egui::FullOutput,
    ) -> Result<image::RgbaImage, String> {
        let scale = output.pixels_per_point;
        let screen = ctx.content_rect();
        let (width, height) = (
            (screen.width() * scale).round() as usize,
            (screen.height() * scale).round() as usize,
        );
        let mut frame = vec![[0.0f32, 0.0, 0.0, 1.0]; width * height];
        for ClippedPrimitive {
            clip_rect,
            primitive,
        } in ctx.tessellate(output.shapes.clone(), scale)
        {
            let Primitive::Mesh(mesh) = primitive else {
                continue;
            };
            let texture = self.textures.get(&mesh.texture_id);
            let clip_x0 = (clip_rect.min.x * scale).max(0.0) as usize;
            let clip_y0 = (clip_rect.min.y * scale).max(0.0) as usize;
            let clip_x1 = ((clip_rect.max.x * scale).ceil() as usize).min(width);
            let clip_y1 = ((clip_rect.max.y * scale).ceil() as usize).min(height);
            for triangle in mesh.indices.chunks_exact(3) {
                let [a, b, c] = [0, 1, 2].map(|i| &mesh.vertices[triangle[i] as usize]);
                let [pa, pb, pc] = [a, b, c].map(|v| (v.pos.x * scale, v.pos.y * scale));
                let area = (pb.0 - pa.0) * (pc.1 - pa.1) - (pb.1 - pa.1) * (pc.0 - pa.0);
                if area.abs() < 1e-6 {
                    continue;
                }
                let x0 = (pa.0.min(pb.0).min(pc.0).floor().max(clip_x0 as f32)) as usize;
                let y0 = (pa.1.min(pb.1).min(pc.1).floor().max(clip_y0 as f32)) as usize;
                let x1 = (pa.0.max(pb.0).max(pc.0).ceil() as usize).min(clip_x1);
                let y1 = (pa.1.max(pb.1).max(pc.1).ceil() as usize).min(clip_y1);
                for y in y0..y1 {
                    for x in x0..x1 {
                        let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                        let w0 = ((pb.0 - px) * (pc.1 - py) - (pb.1 - py) * (pc.0 - px)) / area;
                        let w1 = ((pc.0 - px) * (pa.1 - py) - (pc.1 - py) * (pa.0 - px)) / area;
                        let w2 = 1.0 - w0 - w1;
                        if w0 < 0.0 || w1 < 0.0 || w2 < 0.0 {
                            continue;
                        }
                        let mut source = [0.0f32; 4];
                        for (channel, value) in source.iter_mut().enumerate() {
                            let [ca, cb, cc] =
                                [a, b, c].map(|v| f32::from(v.color.to_array()[channel]));
                            *value = (w0 * ca + w1 * cb + w2 * cc) / 255.0;
                        }
                        if let Some((texture_width, texture_height, pixels)) = texture {
                            let u = w0 * a.uv.x + w1 * b.uv.x + w2 * c.uv.x;
                            let v = w0 * a.uv.y + w1 * b.uv.y + w2 * c.uv.y;
                            let tx = ((u * *texture_width as f32) as usize).min(texture_width - 1);
                            let ty =
                                ((v * *texture_height as f32) as usize).min(texture_height - 1);
                            let texel = pixels[ty * texture_width + tx].to_array();
                            for (channel, value) in source.iter_mut().enumerate() {
                                *value *= f32::from(texel[channel]) / 255.0;
                            }
                        }
                        // Both are premultiplied: out = src + dst × (1 − src.alpha).
                        let destination = &mut frame[y * width + x];
                        for channel in 0..4 {
                            destination[channel] =
                                source[channel] + destination[channel] * (1.0 - source[3]);
                        }
                    }
                }
            }
        }
        let bytes = frame
            .iter()
            .flat_map(|p| {
                [p[0], p[1], p[2], 1.0].map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            })
            .collect();
        image::RgbaImage::from_raw(width as u32, height as u32, bytes)
            .ok_or_else(|| "bad frame size".to_string())
    }
}
