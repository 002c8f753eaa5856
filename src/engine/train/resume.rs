//! Training that goes on where it stopped: the state a run leaves beside its model (the
//! live weights, the weight average, the optimiser's moments, the class proxies and the
//! schedule's position), and reading it back for `likeness train --resume`.
//!
//! The state is a `.safetensors` file named after the model
//! (`flowers.safetensors` → `flowers.train-state.safetensors`), marked with its own
//! `likeness.format` and version, and tied to the model file by the model's id: a state
//! beside another model is refused, never silently used. Its tensors carry a checksum
//! (format 2), so a damaged state is refused instead of training on garbage.
//!
//! A model and its state are saved as one step ([`save_model_and_state`]): the new state
//! is written under a pending name first, then the model, then the state renamed into
//! place. A kill at any point leaves either the old pair, or the new model with its state
//! still pending, which the next `--resume` takes ([`load_train_state`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::TrainSettings;
use crate::engine::files::read_regular;
use crate::engine::model::{f32_buffers, serialize_f32, view_to_f32};
use crate::engine::{EngineError, Result};

pub use crate::engine::files::{TRAIN_STATE_FORMAT, TRAIN_STATE_FORMAT_VERSION};
/// The metadata key of the tensors' checksum (from format 2).
const CHECKSUM_KEY: &str = "likeness.checksum";
/// A state holds about four copies of the network (live weights, average, two moments).
const MAX_STATE_FILE_BYTES: u64 = 4 << 30;

/// Where a run is in its learning-rate schedule: the seconds and steps it has trained.
/// A resumed run plans its schedule as one run of these plus its own budget, so the
/// learning rate goes on from where it was instead of warming up again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulePosition {
    pub secs: f64,
    pub steps: usize,
}

/// What a training state says about itself (the file's JSON metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainStateInfo {
    pub format_version: u32,
    /// The model file this state continues.
    pub model_id: String,
    pub settings: TrainSettings,
    /// The class folders, in the order the proxies follow.
    pub classes: Vec<String>,
    pub position: SchedulePosition,
    pub epochs: usize,
    pub optimizer_steps: u64,
    pub proxy_optimizer_steps: u64,
    /// The learning-rate factor left by a collapse that was undone (1 otherwise).
    pub lr_scale: f64,
    /// The share of the library the run held out (a resumed run holds out the same).
    #[serde(default)]
    pub holdout_share: Option<f64>,
}

/// A trainer's state in memory: its description and named tensors (copies).
pub struct TrainState {
    pub info: TrainStateInfo,
    pub tensors: Vec<(String, Tensor)>,
}

/// A state read back from disk.
pub struct SavedTrainState {
    pub info: TrainStateInfo,
    pub tensors: HashMap<String, Tensor>,
}

impl SavedTrainState {
    /// A copy of the tensor saved under `name`.
    pub fn tensor(&self, name: &str) -> Option<Tensor> {
        self.tensors.get(name).map(Tensor::shallow_clone)
    }
}

/// The training state's path for the model at `model`.
pub fn state_path(model: &Path) -> PathBuf {
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".safetensors").unwrap_or(&name);
    model.with_file_name(format!("{stem}.train-state.safetensors"))
}

/// Where a new state waits while its model is written ([`save_model_and_state`]).
pub fn pending_state_path(model: &Path) -> PathBuf {
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".safetensors").unwrap_or(&name);
    model.with_file_name(format!("{stem}.train-state.pending.safetensors"))
}

/// XXH3 over the tensors in name order: each name, shape and bytes.
fn tensors_checksum<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a [usize], &'a [u8])>,
) -> String {
    let mut sorted: Vec<_> = tensors.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for (name, shape, bytes) in sorted {
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        for &dimension in shape {
            hasher.update(&(dimension as u64).to_le_bytes());
        }
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    format!("{:016x}", hasher.digest())
}

/// Writes the model file and its training state as one step (see the module's notes).
/// Returns the model's description, and a warning when the state could not be written
/// (the model is saved; it just cannot be resumed). A model whose weights or figures are
/// not finite is refused before anything is written.
pub fn save_model_and_state(
    path: &Path,
    model: &crate::engine::model::EmbeddingModel,
    summary: &crate::engine::run::TrainingSummary,
    state: &TrainState,
) -> Result<(crate::engine::model::ModelInfo, Option<String>)> {
    let (bytes, model_id) = crate::engine::model::model_file_bytes(model, summary)?;
    let pending = pending_state_path(path);
    let state_written = write_train_state(&pending, state, &model_id, false);
    if let Err(error) = crate::engine::output::write_or_rescue(path, &bytes) {
        if state_written.is_ok() {
            std::fs::remove_file(&pending).ok();
        }
        return Err(error);
    }
    let warning = state_written
        .and_then(|()| {
            let final_path = state_path(path);
            std::fs::rename(&pending, &final_path).map_err(|e| EngineError::io(&final_path, e))
        })
        .err()
        .map(|error| {
            format!(
                "the training state could not be written ({error}); this model cannot be \
                 trained further, only replaced by a new run"
            )
        });
    let info = crate::engine::model::ModelInfo {
        format_version: crate::engine::model::MODEL_FORMAT_VERSION,
        model_id,
        config: model.config.clone(),
        summary: summary.clone(),
        classifier: model.classifier.as_ref().map(|c| c.info.clone()),
    };
    Ok((info, warning))
}

/// About how many bytes the state of a model of `model_bytes` takes on disk.
pub fn state_file_bytes_estimate(model_bytes: u64) -> u64 {
    4 * model_bytes
}

/// Writes `state` for the model `model_id` atomically to `path` (or, failing that, into
/// the rescue folder).
pub fn save_train_state(path: &Path, state: &TrainState, model_id: &str) -> Result<()> {
    write_train_state(path, state, model_id, true)
}

fn write_train_state(path: &Path, state: &TrainState, model_id: &str, rescue: bool) -> Result<()> {
    let mut info = state.info.clone();
    info.model_id = model_id.to_string();
    info.format_version = TRAIN_STATE_FORMAT_VERSION;
    let tensors = state
        .tensors
        .iter()
        .map(|(name, tensor)| (name.clone(), tensor.shallow_clone()))
        .collect();
    let buffers = f32_buffers(tensors)?;
    crate::engine::model::check_finite_weights(&buffers)?;
    let mut metadata = HashMap::new();
    metadata.insert(
        CHECKSUM_KEY.to_string(),
        tensors_checksum(
            buffers
                .iter()
                .map(|(name, shape, bytes)| (name.as_str(), shape.as_slice(), bytes.as_slice())),
        ),
    );
    metadata.insert(
        "likeness.format".to_string(),
        TRAIN_STATE_FORMAT.to_string(),
    );
    metadata.insert(
        "likeness.train_state".to_string(),
        serde_json::to_string(&info).map_err(|e| EngineError::Config(e.to_string()))?,
    );
    let bytes = serialize_f32(&buffers, metadata)?;
    if rescue {
        crate::engine::output::write_or_rescue(path, &bytes)
    } else {
        crate::engine::atomic::write_atomic(path, &bytes)
    }
}

/// Reads the training state of the model `model_id` (whose file is `model_path`).
/// Errors with what to do when the state is missing, not a state, from a newer
/// Likeness, or belongs to another model.
pub fn load_train_state(model_path: &Path, model_id: &str) -> Result<SavedTrainState> {
    let path = state_path(model_path);
    // A save killed after the model was written and before its state was renamed into
    // place: the pending state is this model's, and finishing the rename completes the pair.
    let pending = pending_state_path(model_path);
    if std::fs::symlink_metadata(&pending).is_ok()
        && let Ok(saved) = read_train_state(&pending)
        && saved.info.model_id == model_id
    {
        std::fs::rename(&pending, &path).map_err(|e| EngineError::io(&path, e))?;
        return Ok(saved);
    }
    if !path.exists() {
        return Err(EngineError::bad_file(
            &path,
            format!(
                "no training state beside {} (it is written next to each model `likeness \
                 train` saves; a model copied without it, or one made before this version, \
                 can only start a new run: use --init-model)",
                model_path.display()
            ),
        ));
    }
    let saved = read_train_state(&path)?;
    let info = &saved.info;
    if info.model_id != model_id {
        return Err(EngineError::bad_file(
            &path,
            format!(
                "belongs to another model (it continues model {}, {} is model {}); the model \
                 was replaced after that run. Resume the model it belongs to, or start a new \
                 run with --init-model",
                info.model_id,
                model_path.display(),
                model_id
            ),
        ));
    }
    Ok(saved)
}

/// Reads a training-state file and checks it: its format, its version and the checksum
/// of its tensors.
fn read_train_state(path: &Path) -> Result<SavedTrainState> {
    let path = path.to_path_buf();
    let bytes = read_regular(&path, MAX_STATE_FILE_BYTES, "a training state")?;
    let not_state = || {
        EngineError::bad_file(
            &path,
            "not a Likeness training state (it should be the file `likeness train` wrote \
             beside the model)",
        )
    };
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|_| not_state())?;
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|_| not_state())?;
    let metadata = metadata.metadata().clone().unwrap_or_default();
    if metadata.get("likeness.format").map(String::as_str) != Some(TRAIN_STATE_FORMAT) {
        return Err(not_state());
    }
    let json = metadata.get("likeness.train_state").ok_or_else(not_state)?;
    let version: serde_json::Value = serde_json::from_str(json).map_err(|_| not_state())?;
    let format_version = version
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    if format_version > u64::from(TRAIN_STATE_FORMAT_VERSION) {
        return Err(EngineError::bad_file(
            &path,
            format!(
                "written by a newer Likeness (training state format {format_version}, this \
                 build reads up to {TRAIN_STATE_FORMAT_VERSION}); update Likeness"
            ),
        ));
    }
    let info: TrainStateInfo = serde_json::from_value(version)
        .map_err(|e| EngineError::bad_file(&path, format!("training state unreadable ({e})")))?;
    if format_version >= 2 {
        let views = file.tensors();
        let checksum = tensors_checksum(
            views
                .iter()
                .map(|(name, view)| (name.as_str(), view.shape(), view.data())),
        );
        if metadata.get(CHECKSUM_KEY) != Some(&checksum) {
            return Err(EngineError::bad_file(
                &path,
                "the training state is damaged (its checksum does not match its tensors); \
                 the model beside it is fine, but cannot be resumed: start a new run from it \
                 with --init-model",
            ));
        }
    }
    let mut tensors = HashMap::new();
    for (name, view) in file.tensors() {
        let floats = view_to_f32(&view).map_err(|reason| {
            EngineError::bad_file(
                &path,
                format!("tensor '{name}': {reason}; the file is damaged"),
            )
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let tensor = Tensor::f_from_slice(&floats)?.f_view(shape.as_slice())?;
        tensors.insert(name, tensor);
    }
    Ok(SavedTrainState { info, tensors })
}
