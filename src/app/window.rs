//! Opening the native window, and what it paints over everything while files hover.

use super::LikenessApp;

/// Opens the Likeness window, searching with `open` when it is a photo or using it as the
/// library when it is a folder. Without a display it says so and points to the CLI.
pub fn run_window(open: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    if let Some(path) = &open
        && !path.exists()
    {
        anyhow::bail!("{}: no such photo or folder", path.display());
    }
    if cfg!(target_os = "linux")
        && std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
    {
        anyhow::bail!(
            "Likeness needs a graphical display to open its window, and none is set (DISPLAY / WAYLAND_DISPLAY).\n\
             Everything the window does also works from the command line: run `likeness --help`."
        );
    }
    let icon = eframe::icon_data::from_png_bytes(include_bytes!("../../assets/icon.png")).ok();
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("Likeness")
        .with_app_id("likeness")
        .with_inner_size([1280.0, 820.0])
        .with_min_inner_size([800.0, 500.0])
        .with_drag_and_drop(true);
    if let Some(icon) = icon {
        viewport = viewport.with_icon(icon);
    }
    let options = eframe::NativeOptions {
        viewport,
        ..Default::default()
    };
    eframe::run_native(
        "Likeness",
        options,
        Box::new(move |creation| {
            let mut app = LikenessApp::new(&creation.egui_ctx, creation.storage);
            if let Some(path) = open {
                app.open_path(path);
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("could not open the window: {e}"))
}

/// The hint painted over the window while files are dragged over it.
pub fn drop_hint(ctx: &egui::Context) {
    let screen = ctx.content_rect();
    let painter = ctx.layer_painter(egui::LayerId::new(
        egui::Order::Foreground,
        egui::Id::unique("drop_hint"),
    ));
    painter.rect_filled(screen, 0.0, egui::Color32::from_black_alpha(160));
    painter.text(
        screen.center(),
        egui::Align2::CENTER_CENTER,
        "Drop a photo to find its look-alikes, or a folder to use as the library",
        egui::FontId::proportional(22.0),
        egui::Color32::WHITE,
    );
}
