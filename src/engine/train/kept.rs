//! What Likeness keeps in its models folder, and removing the training states no one can
//! go on from any more.
//!
//! Every run writes its model and, beside it, the state a later run goes on from (the live
//! weights, their average and the optimiser's moments: about four times the model). A trial
//! left 656 MB after three runs with no word of it (issue #41). The window can go on only
//! from its current model, so the other states are offered for removal; the models stay.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::resume::{pending_state_path, state_path};
use crate::engine::files::{OutputKind, is_own};
use crate::engine::{EngineError, Result};

/// A model in the folder and, when it has one, its training state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptModel {
    pub model: PathBuf,
    pub model_bytes: u64,
    /// The state beside it (or one left waiting by a run that stopped), and its size.
    pub state: Option<(PathBuf, u64)>,
}

/// The models folder's models and training states.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptFiles {
    pub folder: PathBuf,
    /// In name order.
    pub models: Vec<KeptModel>,
}

impl KeptFiles {
    pub fn total_bytes(&self) -> u64 {
        self.models
            .iter()
            .map(|m| m.model_bytes + m.state.as_ref().map_or(0, |(_, b)| *b))
            .sum()
    }

    pub fn state_bytes(&self) -> u64 {
        self.models
            .iter()
            .filter_map(|m| m.state.as_ref().map(|(_, b)| *b))
            .sum()
    }

    /// The states of models other than `keep` (those that can still go on training), and
    /// their bytes. Paths are compared as given (no file is looked at: the window calls
    /// this while it draws); [`remove_old_states`] compares them on disk.
    pub fn old_states(&self, keep: &[PathBuf]) -> (Vec<PathBuf>, u64) {
        let old: Vec<&(PathBuf, u64)> = self
            .models
            .iter()
            .filter(|m| !keep.contains(&m.model))
            .filter_map(|m| m.state.as_ref())
            .collect();
        (
            old.iter().map(|(p, _)| p.clone()).collect(),
            old.iter().map(|(_, b)| *b).sum(),
        )
    }
}

/// The models Likeness wrote in `folder` (not the folders below it) with their training
/// states. A file is counted only when it is Likeness' own kind, whatever its name. A
/// folder that does not exist holds nothing.
pub fn kept_files(folder: &Path) -> Result<KeptFiles> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(KeptFiles {
                folder: folder.to_path_buf(),
                models: Vec::new(),
            });
        }
        Err(e) => return Err(EngineError::io(folder, e)),
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    let size = |p: &Path| std::fs::symlink_metadata(p).map_or(0, |m| m.len());
    let models = paths
        .iter()
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| n.ends_with(".safetensors") && !n.contains(".train-state."))
                && is_own(p, OutputKind::Model)
        })
        .map(|model| {
            let state = [state_path(model), pending_state_path(model)]
                .into_iter()
                .find(|s| is_own(s, OutputKind::TrainState))
                .map(|s| {
                    let bytes = size(&s);
                    (s, bytes)
                });
            KeptModel {
                model: model.clone(),
                model_bytes: size(model),
                state,
            }
        })
        .collect();
    Ok(KeptFiles {
        folder: folder.to_path_buf(),
        models,
    })
}

/// Removes the training states of `folder`'s models other than `keep`, each only when it
/// is still a training state Likeness wrote. Returns how many went and their bytes.
pub fn remove_old_states(folder: &Path, keep: &[PathBuf]) -> Result<(usize, u64)> {
    let kept = kept_files(folder)?;
    // The same model under another name (a link, `..`) is still kept.
    let on_disk = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let keep: Vec<PathBuf> = kept
        .models
        .iter()
        .map(|m| &m.model)
        .filter(|model| keep.iter().any(|k| on_disk(k) == on_disk(model)))
        .cloned()
        .collect();
    let (old, _) = kept.old_states(&keep);
    let (mut removed, mut bytes) = (0, 0);
    for state in old {
        if !is_own(&state, OutputKind::TrainState) {
            continue;
        }
        let size = std::fs::symlink_metadata(&state).map_or(0, |m| m.len());
        std::fs::remove_file(&state).map_err(|e| EngineError::io(&state, e))?;
        removed += 1;
        bytes += size;
    }
    Ok((removed, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::{EmbeddingModel, save_model};
    use crate::engine::run::TrainingSummary;
    use crate::engine::train::Preset;
    use crate::engine::train::resume::save_model_and_state;

    #[test]
    fn old_training_states_are_listed_and_removed_and_nothing_else_is() {
        let dir = tempfile::tempdir().expect("temp dir");
        let folder = dir.path();
        let mut settings = Preset::Scratch.settings();
        settings.image_size_px = 32;
        settings.embedding_dim = 8;
        let job_dir = folder.join("photos");
        crate::engine::synthetic::write_dataset(&job_dir, 2, 6, 32, 5).expect("photos");
        settings.epochs = Some(1);
        settings.batch_size = 4;
        settings.device = crate::engine::device::DeviceChoice::Cpu;
        let job = crate::engine::train::TrainJob::new(job_dir, settings);
        let outcome =
            crate::engine::train::train(&job, &std::sync::atomic::AtomicBool::new(false), &|_| {})
                .expect("train");
        let (old, current) = (
            folder.join("old.safetensors"),
            folder.join("new.safetensors"),
        );
        for model in [&old, &current] {
            save_model_and_state(model, &outcome.model, &outcome.summary, &outcome.state)
                .expect("save");
        }
        // A model without a state, and files that only look like states.
        let plain = folder.join("plain.safetensors");
        let untrained =
            EmbeddingModel::new(job.settings.model_config(), tch::Device::Cpu).expect("model");
        save_model(&plain, &untrained, &TrainingSummary::default()).expect("save");
        std::fs::write(folder.join("notes.train-state.safetensors"), b"mine").expect("write");
        std::fs::write(folder.join("photo.safetensors"), b"not a model").expect("write");

        let kept = kept_files(folder).expect("list");
        let names: Vec<String> = kept
            .models
            .iter()
            .map(|m| {
                m.model
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(
            names,
            ["new.safetensors", "old.safetensors", "plain.safetensors"]
        );
        assert!(kept.models[0].state.is_some() && kept.models[2].state.is_none());
        assert!(kept.state_bytes() > 0 && kept.total_bytes() > kept.state_bytes());
        let (old_states, old_bytes) = kept.old_states(std::slice::from_ref(&current));
        assert_eq!(old_states, [state_path(&old)]);

        let (removed, bytes) =
            remove_old_states(folder, std::slice::from_ref(&current)).expect("remove");
        assert_eq!((removed, bytes), (1, old_bytes));
        assert!(!state_path(&old).exists(), "the old state went");
        for stays in [
            old.clone(),
            current.clone(),
            state_path(&current),
            plain,
            folder.join("notes.train-state.safetensors"),
            folder.join("photo.safetensors"),
        ] {
            assert!(stays.exists(), "{} stays", stays.display());
        }
        assert_eq!(
            kept_files(&folder.join("missing")).expect("empty").models,
            []
        );
    }
}
