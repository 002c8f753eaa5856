//! The Likeness window (eframe/egui): a thin shell over the worker.

mod settings;
mod thumbnails;
mod window;

pub use settings::{AppSettings, DataDirs, STORAGE_KEY, TrainForm};
pub use thumbnails::ThumbnailCache;
pub use window::{FrameStats, LibraryView, LikenessApp, Notice, SearchView, TrainingView};

/// Opens the Likeness window. Without a display it says so and points to the CLI.
pub fn run_window() -> anyhow::Result<()> {
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
        Box::new(|creation| {
            Ok(Box::new(LikenessApp::new(
                &creation.egui_ctx,
                creation.storage,
            )))
        }),
    )
    .map_err(|e| anyhow::anyhow!("could not open the window: {e}"))
}
