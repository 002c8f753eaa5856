//! The window's panels. Each `*_ui` function draws from [`AppState`](super::state::AppState)
//! and returns what the person asked for as [`Intent`]s, which the app carries out after
//! the frame: drawing code opens no dialogs and starts no jobs, so tests can drive every
//! action.

pub mod duplicates;
pub mod index;
pub mod library;
pub mod map;
pub mod marks;
pub mod preview;
pub mod results;
pub mod sort;
pub mod status;
pub mod toolbar;
pub mod training;
pub mod training_report;

use std::path::PathBuf;

use crate::worker::JobId;

/// Something the person asked for in a panel.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    /// Ask for a library folder in a dialog.
    PickLibrary,
    /// Use this folder as the library.
    ChooseLibrary(PathBuf),
    /// The Recent menu is open: name its files and see which are still there.
    LookAtRecentFiles,
    /// Ask for a model file in a dialog and open it.
    PickModelFile,
    /// Ask for an index file in a dialog and open it.
    PickIndexFile,
    /// Ask for a validation folder in a dialog.
    PickValidationFolder,
    /// Train on the library with the form's settings.
    StartTraining,
    /// Train from scratch (random weights), and stop offering the ImageNet weights.
    StartFromScratch,
    /// Go on training the current model for the form's time budget more; the result
    /// replaces it only when it retrieves the held-out photos better.
    KeepTraining,
    /// Stop this job.
    Cancel(JobId),
    /// Ask for a torchvision weights file in a dialog.
    PickWeightsFile,
    /// Start from the ImageNet weights (downloading them the first time).
    UseImagenetWeights,
    /// Ask for a folder to index in a dialog.
    PickIndexFolder,
    /// Index this folder with the current model.
    StartIndexing(PathBuf),
    /// Bring the current index up to date with its folder.
    UpdateIndex,
    /// Embed with ImageNet features (no training) and index the library.
    UseImagenetFeatures,
    /// Ask for a photo in a dialog and search with it.
    PickQueryFile,
    /// Ask for a folder in a dialog and export the selected results there.
    PickExportFolder,
    /// Open a file or folder with the desktop's default application.
    Open(PathBuf),
    /// Show a file selected in the desktop's file manager.
    ShowInFolder(PathBuf),
    /// Open this model file (from the Recent menu).
    OpenModel(PathBuf),
    /// Open this index file (from the Recent menu).
    OpenIndex(PathBuf),
    /// Make this model current and index the library with it (a cancelled run's model).
    UseModel(PathBuf),
    /// Search again with the query on screen (k changed).
    RerunSearch,
    /// Show the results on screen without their marks' refinement.
    ShowOriginal,
    /// Refine the results on screen by their marks again (after Show original).
    RefineWithMarks,
    /// Ask the platform for the clipboard's content (the Paste button).
    Paste,
    /// Find the near-duplicate groups of the current index.
    FindDuplicates,
    /// Ask for an inbox folder in a dialog (Sort tab).
    PickInbox,
    /// Suggest a folder for every photo of the inbox.
    PlanSort,
    /// File the photos into the folders chosen for them.
    FileSort,
    /// Reverse the last sort.
    UndoSort,
    /// Remove the training states of the models that are not current (they cannot go on
    /// training from the window).
    RemoveOldStates,
    /// Ask where to write the list of duplicates not kept (or copy them), then do it.
    PickDuplicatesExport(duplicates::ExportKind),
    /// Place the current index's photos on the map.
    DrawMap,
    /// Search with this photo (clicked on the map).
    SearchFile(PathBuf),
    /// Ask for a folder and copy the photos selected on the map into it.
    PickMapExportFolder,
    /// Mark `photo` as alike (or not) to the query on screen; `None` removes the mark.
    Mark { photo: PathBuf, alike: Option<bool> },
    /// Undo the last mark change.
    UndoMark,
    /// Remove the mark at this position of the list.
    RemoveMark(usize),
    /// Ask where to export the marks (JSON) and write them there.
    ExportMarks,
    /// Ask for a marks file and add its marks.
    ImportMarks,
    /// Fine-tune the current model from the marks and embed the index again.
    RetrainWithMarks,
}
