//! The model file: one safetensors file with the weights, the network's description
//! and how it was trained, written atomically and checked when read (format, sizes, a
//! checksum of the weights) before anything is built from it.

use super::*;
use crate::engine::run::TrainingSummary;

/// A model file's description, read without building the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub format_version: u32,
    /// Hash of the weights: indexes remember it to refuse a different model.
    pub model_id: String,
    pub config: ModelConfig,
    pub summary: TrainingSummary,
    /// The classifier's description, when the file holds class proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<classifier::ClassifierInfo>,
}

/// FNV-1a 64-bit over the tensors' names and bytes: a cheap, stable identity.
/// The [`weights_hash`] of a weights file's tensors, in name order (as float32).
pub fn weights_file_id(path: &Path) -> Result<String> {
    let bytes = read_regular(path, MAX_MODEL_FILE_BYTES, "a weights file")?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| EngineError::bad_file(path, format!("not a .safetensors file ({e})")))?;
    let mut tensors = file.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut floats = Vec::with_capacity(tensors.len());
    for (name, view) in &tensors {
        let values = view_to_f32(view)
            .map_err(|reason| EngineError::bad_file(path, format!("tensor '{name}': {reason}")))?;
        floats.push((
            name.as_str(),
            values
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>(),
        ));
    }
    Ok(weights_hash(
        floats.iter().map(|(name, bytes)| (*name, bytes.as_slice())),
    ))
}

pub(super) fn weights_hash<'a>(tensors: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut hash = Fnv1a::default();
    for (name, bytes) in tensors {
        hash.write(name.as_bytes());
        hash.write(bytes);
    }
    hash.hex()
}

/// Serialises `model` with its summary into model-file bytes. Returns the bytes and the
/// model id.
pub fn model_file_bytes(
    model: &EmbeddingModel,
    summary: &TrainingSummary,
) -> Result<(Vec<u8>, String)> {
    let mut buffers = f32_buffers(model.named_tensors())?;
    if let Some(classifier) = &model.classifier {
        buffers.push((
            classifier::PROXIES_TENSOR.to_string(),
            vec![classifier.info.classes.len(), classifier.dimension],
            classifier
                .proxies
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ));
        if let Some(opinion) = &classifier.second_opinion {
            let bytes = |values: &[f32]| values.iter().flat_map(|v| v.to_le_bytes()).collect();
            let (classes, features) = (opinion.bias.len(), opinion.info.features);
            buffers.extend([
                (
                    second_opinion::WEIGHT_TENSOR.to_string(),
                    vec![classes, features],
                    bytes(&opinion.weight),
                ),
                (
                    second_opinion::BIAS_TENSOR.to_string(),
                    vec![classes],
                    bytes(&opinion.bias),
                ),
                (
                    second_opinion::MEAN_TENSOR.to_string(),
                    vec![features],
                    bytes(&opinion.mean),
                ),
                (
                    second_opinion::SCALE_TENSOR.to_string(),
                    vec![features],
                    bytes(&opinion.scale),
                ),
            ]);
        }
        // The id hashes the tensors in name order, as the checksum check reads them.
        buffers.sort_by(|a, b| a.0.cmp(&b.0));
    }
    check_finite_weights(&buffers)?;
    let model_id = weights_hash(buffers.iter().map(|(n, _, b)| (n.as_str(), b.as_slice())));
    let info = ModelInfo {
        format_version: MODEL_FORMAT_VERSION,
        model_id: model_id.clone(),
        config: model.config.clone(),
        summary: summary.clone(),
        classifier: model.classifier.as_ref().map(|c| c.info.clone()),
    };
    let info_json = serde_json::to_string(&info).map_err(|e| EngineError::Config(e.to_string()))?;
    // JSON has no NaN or infinity: serde writes them as null, and every later reader then
    // refuses the model. A run whose figures are not finite numbers has diverged.
    if serde_json::from_str::<ModelInfo>(&info_json).is_err() {
        return Err(EngineError::Training(
            "training diverged: the run's figures (losses, spreads) are no longer finite \
             numbers; nothing was written. Lower the learning rate (--lr) and train again"
                .into(),
        ));
    }
    let mut metadata = HashMap::new();
    metadata.insert("likeness.format".to_string(), MODEL_FORMAT.to_string());
    metadata.insert("likeness.info".to_string(), info_json);
    let bytes = serialize_f32(&buffers, metadata)?;
    Ok((bytes, model_id))
}

/// Refuses weights that are not all finite numbers: such a network embeds every photo as
/// NaN, and a file of it would replace a working model with one that finds nothing.
pub(crate) fn check_finite_weights(buffers: &F32Buffers) -> Result<()> {
    let not_finite = buffers.iter().find(|(_, _, bytes)| {
        bytes
            .chunks_exact(4)
            .any(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite())
    });
    match not_finite {
        Some((name, _, _)) => Err(EngineError::Training(format!(
            "training diverged: the weights of '{name}' are no longer finite numbers; nothing \
             was written. Lower the learning rate (--lr) and train again"
        ))),
        None => Ok(()),
    }
}

/// Tensors as little-endian f32 bytes with their names and shapes, ready to serialise.
pub(crate) type F32Buffers = Vec<(String, Vec<usize>, Vec<u8>)>;

/// Copies `tensors` out as [`F32Buffers`].
pub(crate) fn f32_buffers(tensors: Vec<(String, Tensor)>) -> Result<F32Buffers> {
    tensors
        .into_iter()
        .map(|(name, tensor)| {
            let shape: Vec<usize> = tensor.size().iter().map(|&d| d as usize).collect();
            let bytes: Vec<u8> = tensor_to_f32(&tensor)?
                .into_iter()
                .flat_map(f32::to_le_bytes)
                .collect();
            Ok((name, shape, bytes))
        })
        .collect()
}

/// A `.safetensors` file of f32 `buffers` with `metadata` (models and training states).
pub(crate) fn serialize_f32(
    buffers: &F32Buffers,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EngineError::Config(format!("cannot serialise weights: {e}")))?;
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| EngineError::Config(format!("cannot serialise weights: {e}")))
}

/// About how many bytes a model file of `config` takes (ResNet18's 11.2 M weights plus
/// the embedding layer, as f32), for checking the disk has room before training.
pub fn model_file_bytes_estimate(config: &ModelConfig) -> u64 {
    // Weights and BatchNorm statistics of each backbone, without its classifier.
    let (backbone_weights, features) = if config.architecture == efficientnet::ARCHITECTURE {
        (3_500_000, efficientnet::FEATURES as u64)
    } else {
        (11_200_000, BACKBONE_FEATURES as u64)
    };
    let head = (features + 1) * config.embedding_dim as u64;
    (backbone_weights + head) * 4 + (64 << 10)
}

/// Writes the model file atomically (or, when that fails, into the rescue folder the
/// error names: see [`crate::engine::output::write_or_rescue`]). Returns its description, as
/// [`read_model_info`] would read it back.
pub fn save_model(
    path: &Path,
    model: &EmbeddingModel,
    summary: &TrainingSummary,
) -> Result<ModelInfo> {
    let (bytes, model_id) = model_file_bytes(model, summary)?;
    crate::engine::output::write_or_rescue(path, &bytes)?;
    Ok(ModelInfo {
        format_version: MODEL_FORMAT_VERSION,
        model_id,
        config: model.config.clone(),
        summary: summary.clone(),
        classifier: model.classifier.as_ref().map(|c| c.info.clone()),
    })
}

pub(super) fn parse_model_file<'a>(
    path: &Path,
    bytes: &'a [u8],
) -> Result<(ModelInfo, safetensors::SafeTensors<'a>)> {
    if sniff(bytes) == FileKind::Index {
        return Err(EngineError::bad_file(
            path,
            "this is a Likeness index, not a model (pass it with --index)",
        ));
    }
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(|_| {
        EngineError::bad_file(
            path,
            "not a Likeness model file (models are .safetensors files written by `likeness train`; \
             PyTorch pickle files are never loaded)",
        )
    })?;
    let (_, metadata) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| EngineError::bad_file(path, format!("unreadable header ({e})")))?;
    let metadata = metadata.metadata().clone().unwrap_or_default();
    if metadata.get("likeness.format").map(String::as_str) != Some(MODEL_FORMAT) {
        return Err(EngineError::bad_file(
            path,
            "a safetensors file, but not a Likeness model (to start from torchvision weights use --weights)",
        ));
    }
    let info_json = metadata
        .get("likeness.info")
        .ok_or_else(|| EngineError::bad_file(path, "model description missing"))?;
    let version: serde_json::Value = serde_json::from_str(info_json)
        .map_err(|e| EngineError::bad_file(path, format!("model description unreadable ({e})")))?;
    let format_version = version
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    if format_version > u64::from(MODEL_FORMAT_VERSION) {
        return Err(EngineError::bad_file(
            path,
            format!(
                "written by a newer Likeness (model format {format_version}, this build reads up to \
                 {MODEL_FORMAT_VERSION}); update Likeness"
            ),
        ));
    }
    let info: ModelInfo = serde_json::from_value(version)
        .map_err(|e| EngineError::bad_file(path, format!("model description unreadable ({e})")))?;
    check_description(&info.config, &file)
        .map_err(|reason| EngineError::bad_file(path, format!("{reason}; the file is damaged")))?;
    Ok((info, file))
}

/// The largest model or weights file read: ResNet18 with the largest embedding is about
/// 180 MB; a file much larger is not one.
pub(super) const MAX_MODEL_FILE_BYTES: u64 = 1 << 30;

pub use crate::engine::run::MAX_EMBEDDING_DIM;
/// The range of input sizes a model file may describe (ResNet18 needs at least 16 px to
/// keep a pixel after its five halvings; beyond 2048 px a batch no longer fits in memory).
pub(super) const IMAGE_SIZE_RANGE: std::ops::RangeInclusive<u32> = 16..=2048;

/// Checks a model file's description against sane ranges and against the shapes of the
/// tensors it holds, before anything is allocated from it: the description is data from
/// a file, not something to trust.
pub(super) fn check_description(
    config: &ModelConfig,
    file: &safetensors::SafeTensors<'_>,
) -> Result<(), String> {
    let Some(features) = backbone_features(&config.architecture) else {
        return Err(format!(
            "it describes an unknown architecture '{}' (Likeness reads {})",
            config.architecture,
            ARCHITECTURES.join(" and ")
        ));
    };
    if !(1..=MAX_EMBEDDING_DIM).contains(&config.embedding_dim) {
        return Err(format!(
            "it describes {}-d embeddings (1 to {MAX_EMBEDDING_DIM} are possible)",
            config.embedding_dim
        ));
    }
    let size = config.preprocess.image_size_px;
    if config.architecture == efficientnet::ARCHITECTURE
        && size < crate::engine::run::LITE0_MIN_IMAGE_PX
    {
        return Err(format!(
            "it describes {size}-px inputs (EfficientNet-Lite0 needs at least 32 px)"
        ));
    }
    if !IMAGE_SIZE_RANGE.contains(&size) {
        return Err(format!(
            "it describes {size}-px inputs ({} to {} px are possible)",
            IMAGE_SIZE_RANGE.start(),
            IMAGE_SIZE_RANGE.end()
        ));
    }
    let preprocess = &config.preprocess;
    if preprocess.mean.iter().any(|m| !m.is_finite())
        || preprocess.std.iter().any(|s| !s.is_finite() || *s < 1e-6)
    {
        return Err(format!(
            "its normalisation (mean {:?}, std {:?}) is not usable: every std must be a \
             positive number",
            preprocess.mean, preprocess.std
        ));
    }
    let fc = file
        .tensor("fc.weight")
        .map_err(|_| "the tensor 'fc.weight' is missing".to_string())?;
    let expected = [config.embedding_dim, features as usize];
    if fc.shape() != expected {
        return Err(format!(
            "its description says {}-d embeddings but 'fc.weight' has shape {:?}",
            config.embedding_dim,
            fc.shape()
        ));
    }
    Ok(())
}

/// Errors unless the weights in `file` hash to the model id its description records
/// (the id is a checksum over every tensor, so a flipped byte is caught here).
pub(super) fn check_weights_checksum(
    path: &Path,
    info: &ModelInfo,
    file: &safetensors::SafeTensors<'_>,
) -> Result<()> {
    let mut tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = file.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let hash = weights_hash(
        tensors
            .iter()
            .map(|(name, view)| (name.as_str(), view.data())),
    );
    if hash != info.model_id {
        return Err(EngineError::bad_file(
            path,
            "its weights do not match their checksum; the file is damaged (train the model \
             again, or restore it from a copy)",
        ));
    }
    Ok(())
}

/// A model file's description from its header alone (a few KB, not the 45 MB of
/// weights): for lists that name many models. The weights are not checked.
pub fn read_model_description(path: &Path) -> Result<ModelInfo> {
    use std::io::Read;
    const MAX_HEADER_BYTES: u64 = 16 << 20;
    let (mut file, _) = crate::engine::files::open_regular(path).map_err(|e| match e {
        crate::engine::files::OpenError::Io(e) => EngineError::io(path, e),
        other => EngineError::bad_file(path, other.to_string()),
    })?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length)
        .map_err(|e| EngineError::io(path, e))?;
    let length = u64::from_le_bytes(length);
    if length > MAX_HEADER_BYTES {
        return Err(EngineError::bad_file(path, "not a Likeness model file"));
    }
    let mut header = Vec::with_capacity(length as usize);
    file.take(length)
        .read_to_end(&mut header)
        .map_err(|e| EngineError::io(path, e))?;
    let header: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|_| EngineError::bad_file(path, "not a Likeness model file"))?;
    let info = header
        .get("__metadata__")
        .and_then(|m| m.get("likeness.info"))
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| EngineError::bad_file(path, "not a Likeness model file"))?;
    serde_json::from_str(info)
        .map_err(|e| EngineError::bad_file(path, format!("model description unreadable ({e})")))
}

/// Reads a model file's description without building the network.
pub fn read_model_info(path: &Path) -> Result<ModelInfo> {
    let bytes = read_regular(path, MAX_MODEL_FILE_BYTES, "a model file")?;
    Ok(parse_model_file(path, &bytes)?.0)
}

/// A model in memory with its description and the file it came from: what embedding,
/// indexing and searching need together (an index records the model's id and path).
pub struct LoadedModel {
    pub path: PathBuf,
    pub model: EmbeddingModel,
    pub info: ModelInfo,
}

impl LoadedModel {
    /// Loads the model file at `path` onto `device`.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        let (model, info) = load_model(path, device)?;
        Ok(Self {
            path: path.to_path_buf(),
            model,
            info,
        })
    }
}

/// Loads a model file onto `device`.
pub fn load_model(path: &Path, device: Device) -> Result<(EmbeddingModel, ModelInfo)> {
    let bytes = read_regular(path, MAX_MODEL_FILE_BYTES, "a model file")?;
    let (info, file) = parse_model_file(path, &bytes)?;
    check_weights_checksum(path, &info, &file)?;
    let model = EmbeddingModel::new(info.config.clone(), device)?;
    let variables = model.var_store.variables();
    for (name, target) in &variables {
        let view = file.tensor(name).map_err(|_| {
            EngineError::bad_file(
                path,
                format!("tensor '{name}' missing; the file is damaged"),
            )
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        if shape != target.size() {
            return Err(EngineError::bad_file(
                path,
                format!(
                    "tensor '{name}' has shape {shape:?}, expected {:?}; the file is damaged",
                    target.size()
                ),
            ));
        }
        copy_view_into(path, name, &view, target)?;
    }
    let mut model = model;
    model.classifier = read_classifier(path, &info, &file)?;
    Ok((model, info))
}

/// The class proxies of a model file whose description says it has them.
pub(super) fn read_classifier(
    path: &Path,
    info: &ModelInfo,
    file: &safetensors::SafeTensors<'_>,
) -> Result<Option<classifier::Classifier>> {
    let Some(description) = &info.classifier else {
        return Ok(None);
    };
    let damaged =
        |what: String| EngineError::bad_file(path, format!("{what}; the file is damaged"));
    let view = file
        .tensor(classifier::PROXIES_TENSOR)
        .map_err(|_| damaged("its class proxies are missing".into()))?;
    let dimension = info.config.embedding_dim;
    if view.shape() != [description.classes.len(), dimension] {
        return Err(damaged(format!(
            "its class proxies have shape {:?}, expected [{}, {dimension}]",
            view.shape(),
            description.classes.len()
        )));
    }
    let proxies = view_to_f32(&view).map_err(damaged)?;
    let second_opinion = match &description.second_opinion {
        None => None,
        Some(opinion) => {
            let classes = description.classes.len();
            let tensor = |name: &str, shape: Vec<usize>| -> Result<Vec<f32>> {
                let view = file
                    .tensor(name)
                    .map_err(|_| damaged(format!("its second opinion's '{name}' is missing")))?;
                if view.shape() != shape.as_slice() {
                    return Err(damaged(format!(
                        "its second opinion's '{name}' has shape {:?}, expected {shape:?}",
                        view.shape()
                    )));
                }
                view_to_f32(&view).map_err(damaged)
            };
            Some(second_opinion::SecondOpinion {
                weight: tensor(
                    second_opinion::WEIGHT_TENSOR,
                    vec![classes, opinion.features],
                )?,
                bias: tensor(second_opinion::BIAS_TENSOR, vec![classes])?,
                mean: tensor(second_opinion::MEAN_TENSOR, vec![opinion.features])?,
                scale: tensor(second_opinion::SCALE_TENSOR, vec![opinion.features])?,
                info: opinion.clone(),
            })
        }
    };
    Ok(Some(classifier::Classifier {
        info: description.clone(),
        proxies,
        dimension,
        second_opinion,
    }))
}
