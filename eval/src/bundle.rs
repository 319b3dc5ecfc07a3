//! Eval bundles: a config's eval set packed into one tar, the dataset artifact a coordinator hands its
//! workers, and unpacked on a worker into a directory its copy of the config is pointed at. A recovery's
//! training set ([`TrainSet`]) travels the same way ([`pack_train_set`]).
//!
//! A bundle holds exactly what the config evaluates and nothing the worker's machine would have to share
//! with the submitter's:
//!
//! | entry | what |
//! | --- | --- |
//! | `labels.txt` | the lines the config evaluates (after `ratio_list` and `Sensitivity.eval_samples`), in order, each image path rewritten |
//! | `images/000000.png`, … | each line's image, named by its first line's position, its extension kept |
//! | `dict.txt` | `Global.character_dict_path`, when the config has one |
//! | `origins.json` | for each line of `labels.txt`, the submitter's label file, line and image path ([`dataset::origins_json`]) |
//!
//! Lines are read with [`Dataset::open`], so a bundle never holds a line the set would refuse, and a rejected
//! rec line (an empty label) stays in place for the worker to substitute as PaddleOCR does. Every image is
//! decoded once when packing, so an empty, truncated, oversized or non-image file is refused then, naming the
//! submitter's label file, line and image path, instead of failing every worker it reaches. On a worker,
//! `origins.json` makes the set's errors name those same three ([`rebase`]). The tar is
//! deterministic (entries in line order, no timestamps, owners or modes of the submitter's files), so the same
//! set packs to the same bytes and the same digest, and workers reuse their unpacked copy.
//!
//! ```no_run
//! # use sensgrid_eval::{bundle, Config};
//! let config = Config::load("det.yml", &["Global.pretrained_model=det.onnx"])?;
//! let mut tar = Vec::new();
//! bundle::pack(&config, &mut tar)?;
//! // … on the worker, after downloading the artifact:
//! bundle::unpack(tar.as_slice(), "cache/bundle".as_ref())?;
//! let overrides = bundle::rebase("cache/bundle".as_ref(), "cache/model.onnx".as_ref())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::Config;
use crate::dataset::{self, Dataset, DatasetError, Entry};
use crate::evaluate::sensitivity_open_options;

/// The label file of a bundle.
pub const LABELS: &str = "labels.txt";
/// The folder of a bundle's images.
pub const IMAGES: &str = "images";
/// A bundle's character dictionary, when its config names one.
pub const DICT: &str = "dict.txt";
/// Where each line of a bundle's label file came from.
pub const ORIGINS: &str = "origins.json";

/// What is wrong with packing or unpacking a bundle. Each message is one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The eval set does not open.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    // The cause is part of the message, as in `DatasetError`.
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: std::io::Error },
    /// The archive is not a bundle: not a tar, an entry outside the bundle's layout, a missing `labels.txt`.
    #[error("eval bundle: {0}")]
    Layout(String),
    /// A path that cannot travel as an override (overrides are UTF-8 text).
    #[error("{}: not valid UTF-8", .0.display())]
    NotUtf8(PathBuf),
    /// `Train.dataset` without its keys, or with values that are not paths.
    #[error("{0}")]
    TrainSet(String),
}

/// What a packed bundle holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packed {
    /// Lines in `labels.txt`.
    pub lines: usize,
    /// Lines of the configured set they were chosen from (after `ratio_list`, before `eval_samples`).
    pub available: usize,
    /// Distinct image files.
    pub images: usize,
}

/// Writes the eval set of `config` to `out` as a bundle.
///
/// # Errors
/// A set that does not open (a malformed line, a missing image), an image that cannot be read or does not
/// decode, an unreadable dictionary, or a failing write.
pub fn pack(config: &Config, out: impl Write) -> Result<Packed, BundleError> {
    let dataset_config = config.eval_dataset();
    let dataset = Dataset::open(dataset_config, &sensitivity_open_options(config))?;
    pack_dataset(config, &dataset, &dataset_config.delimiter, out)
}

/// Writes `dataset`'s lines (`delimiter` between a line's image and label) and images, and `config`'s
/// dictionary, to `out` as a bundle.
fn pack_dataset(config: &Config, dataset: &Dataset, delimiter: &str, out: impl Write) -> Result<Packed, BundleError> {
    check_images(dataset)?;
    let mut tar = tar::Builder::new(out);
    let mut names: HashMap<&Path, String> = HashMap::new();
    let mut labels = String::new();
    for (position, entry) in dataset.entries().iter().enumerate() {
        let name = match names.get(entry.image_path.as_path()) {
            Some(name) => name.clone(),
            None => {
                let extension = entry
                    .image_path
                    .extension()
                    .and_then(|e| e.to_str())
                    .map_or(String::new(), |e| format!(".{e}"));
                let name = format!("{IMAGES}/{position:06}{extension}");
                append(&mut tar, &name, &dataset.read_image(entry)?)?;
                names.insert(&entry.image_path, name.clone());
                name
            }
        };
        labels.push_str(&name);
        labels.push_str(delimiter);
        labels.push_str(&entry.label);
        labels.push('\n');
    }
    append(&mut tar, LABELS, labels.as_bytes())?;
    append(&mut tar, ORIGINS, dataset::origins_json(dataset.entries()).as_bytes())?;
    if let Some(dict) = config.character_dict_path() {
        append(&mut tar, DICT, &read(dict)?)?;
    }
    tar.into_inner()
        .and_then(|mut out| out.flush())
        .map_err(|reason| BundleError::Io {
            path: PathBuf::from("<bundle>"),
            reason,
        })?;
    Ok(Packed {
        lines: dataset.entries().len(),
        available: dataset.available(),
        images: names.len(),
    })
}

/// Where a recovery's training images come from (issue 25): `Recover.data_dir` and `Recover.label_file_list`,
/// else PaddleOCR's `Train.dataset`. The eval set is never a training set.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSet {
    pub data_dir: PathBuf,
    pub label_file_list: Vec<PathBuf>,
}

impl TrainSet {
    /// `Recover.data_dir` and `Recover.label_file_list`, else `Train.dataset.data_dir` and
    /// `Train.dataset.label_file_list`; `None` when the config has neither.
    ///
    /// # Errors
    /// A `Train.dataset` without both keys, or with values that are not paths.
    pub fn from_config(config: &Config) -> Result<Option<TrainSet>, BundleError> {
        if let Some(recover) = config.recover()
            && let (Some(data_dir), Some(label_file_list)) = (&recover.data_dir, &recover.label_file_list)
        {
            return Ok(Some(TrainSet {
                data_dir: data_dir.clone(),
                label_file_list: label_file_list.clone(),
            }));
        }
        let tree = config.tree();
        if tree.lookup("Train.dataset").is_none() {
            return Ok(None);
        }
        let path = |node: &crate::config::Node| match &node.value {
            crate::config::Value::Str(text) => Ok(PathBuf::from(text)),
            _ => Err(BundleError::TrainSet(format!(
                "Train.dataset: expected a path, got {}",
                node.describe()
            ))),
        };
        let key = |name: &str| {
            tree.lookup(&format!("Train.dataset.{name}"))
                .ok_or_else(|| BundleError::TrainSet(format!("Train.dataset has no {name}")))
        };
        let data_dir = key("data_dir")?;
        let files = key("label_file_list")?;
        let label_file_list = match &files.value {
            crate::config::Value::Seq(items) => items.iter().map(path).collect::<Result<_, _>>()?,
            _ => vec![path(files)?],
        };
        Ok(Some(TrainSet {
            data_dir: path(data_dir)?,
            label_file_list,
        }))
    }
}

/// Writes the training set `set` of `config` to `out` as a bundle, as [`pack`] writes the eval set: its lines
/// read with the eval set's label format (every line, no `ratio_list` or `eval_samples`), each image once.
///
/// # Errors
/// As [`pack`], naming the training set's label file and line.
pub fn pack_train_set(config: &Config, set: &TrainSet, out: impl Write) -> Result<Packed, BundleError> {
    let mut described = config.eval_dataset().clone();
    described.data_dir = set.data_dir.clone();
    described.label_file_list = set.label_file_list.clone();
    described.ratio_list = vec![1.0; set.label_file_list.len()];
    described.label_origins = None;
    let dataset = Dataset::open(&described, &dataset::OpenOptions::default())?;
    pack_dataset(config, &dataset, &described.delimiter, out)
}

/// Reads and decodes every distinct image of `dataset`, on every core (a 1280x720 JPEG takes about 10 ms to
/// decode, a 12 Mpx photo 200 ms), so that a file that would fail on the workers is refused now.
///
/// # Errors
/// The error of the first image in set order that cannot be read or does not decode, whichever thread met it:
/// each index is taken in order and always finished, so every image before the first failure was checked.
fn check_images(dataset: &Dataset) -> Result<(), DatasetError> {
    let mut seen = HashSet::new();
    let images: Vec<&Entry> = dataset
        .entries()
        .iter()
        .filter(|entry| seen.insert(entry.image_path.as_path()))
        .collect();
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(images.len());
    let failures: Vec<(usize, DatasetError)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let &entry = images.get(index)?;
                        if let Err(error) = dataset
                            .read_image(entry)
                            .and_then(|bytes| dataset.check_decodes(entry, &bytes))
                        {
                            return Some((index, error));
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|worker| worker.join().expect("an image check panicked"))
            .collect()
    });
    failures
        .into_iter()
        .min_by_key(|(index, _)| *index)
        .map_or(Ok(()), |(_, error)| Err(error))
}

/// Unpacks the bundle read from `archive` into `dir`, which is created.
///
/// # Errors
/// An archive that is not a tar, an entry outside the bundle's layout (an absolute path, `..`, a link), a
/// bundle without `labels.txt`, or a failing write.
pub fn unpack(archive: impl Read, dir: &Path) -> Result<(), BundleError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |reason| BundleError::Io { path, reason }
    };
    std::fs::create_dir_all(dir.join(IMAGES)).map_err(io(dir))?;
    let mut archive = tar::Archive::new(archive);
    let entries = archive
        .entries()
        .map_err(|e| BundleError::Layout(format!("not a tar archive ({e})")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| BundleError::Layout(format!("unreadable entry ({e})")))?;
        let name = entry
            .path()
            .map_err(|e| BundleError::Layout(format!("entry with an unreadable path ({e})")))?
            .into_owned();
        if !entry.header().entry_type().is_file() || !in_layout(&name) {
            return Err(BundleError::Layout(format!(
                "unexpected entry '{}' (a bundle holds {LABELS}, {DICT}, {ORIGINS} and files under {IMAGES}/)",
                name.display()
            )));
        }
        let path = dir.join(&name);
        let mut file = std::fs::File::create(&path).map_err(io(&path))?;
        std::io::copy(&mut entry, &mut file).map_err(io(&path))?;
    }
    if !dir.join(LABELS).is_file() {
        return Err(BundleError::Layout(format!("no {LABELS}")));
    }
    Ok(())
}

/// The overrides that point a bundle's config at the bundle unpacked in `dir` and at the model in `model`:
/// the data folder, the one label file (all of it: `ratio_list` was applied when packing), the dictionary
/// when the bundle has one (it has one when its config had), and the line origins when the bundle has them
/// (bundles packed before they were added do not). Values are quoted, so any UTF-8 path is read back as
/// itself.
///
/// # Errors
/// [`BundleError::NotUtf8`] for a path that is not UTF-8.
pub fn rebase(dir: &Path, model: &Path) -> Result<Vec<String>, BundleError> {
    let quoted = |path: &Path| {
        path.to_str()
            .map(|text| serde_json::Value::from(text).to_string())
            .ok_or_else(|| BundleError::NotUtf8(path.to_owned()))
    };
    let mut overrides = vec![
        format!("Global.pretrained_model={}", quoted(model)?),
        format!("Eval.dataset.data_dir={}", quoted(dir)?),
        format!("Eval.dataset.label_file_list=[{}]", quoted(&dir.join(LABELS))?),
        "Eval.dataset.ratio_list=[1.0]".to_owned(),
    ];
    if dir.join(DICT).is_file() {
        overrides.push(format!("Global.character_dict_path={}", quoted(&dir.join(DICT))?));
    }
    if dir.join(ORIGINS).is_file() {
        overrides.push(format!("Eval.dataset.label_origins={}", quoted(&dir.join(ORIGINS))?));
    }
    Ok(overrides)
}

/// Whether `name` is `labels.txt`, `dict.txt`, `origins.json` or a plain name under `images/`.
fn in_layout(name: &Path) -> bool {
    let parts: Vec<Component> = name.components().collect();
    match parts.as_slice() {
        [Component::Normal(file)] => *file == LABELS || *file == DICT || *file == ORIGINS,
        [Component::Normal(folder), Component::Normal(_)] => *folder == IMAGES,
        _ => false,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, BundleError> {
    std::fs::read(path).map_err(|reason| BundleError::Io {
        path: path.to_owned(),
        reason,
    })
}

/// Appends a file with fixed metadata, so the archive depends on the bytes alone.
fn append<W: Write>(tar: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> Result<(), BundleError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, bytes)
        .map_err(|reason| BundleError::Io {
            path: PathBuf::from(name),
            reason,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bundle_layout_is_unpacked() {
        assert!(in_layout(Path::new("labels.txt")));
        assert!(in_layout(Path::new("dict.txt")));
        assert!(in_layout(Path::new("origins.json")));
        assert!(in_layout(Path::new("images/000003.jpg")));
        assert!(!in_layout(Path::new("images/a/b.png")));
        assert!(!in_layout(Path::new("../labels.txt")));
        assert!(!in_layout(Path::new("/etc/passwd")));
        assert!(!in_layout(Path::new("other.txt")));
        assert!(!in_layout(Path::new("images")));
    }

    #[test]
    fn an_archive_with_an_entry_outside_the_layout_is_refused() {
        let mut tar = tar::Builder::new(Vec::new());
        append(&mut tar, LABELS, b"images/000000.png\t[]\n").unwrap();
        append(&mut tar, "notes.txt", b"hello").unwrap();
        let bytes = tar.into_inner().unwrap();
        let dir = std::env::temp_dir().join(format!("sensgrid-bundle-{}", std::process::id()));
        let error = unpack(bytes.as_slice(), &dir).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(error.contains("unexpected entry 'notes.txt'"), "{error}");
    }

    #[test]
    fn garbage_is_not_a_bundle() {
        let dir = std::env::temp_dir().join(format!("sensgrid-bundle-garbage-{}", std::process::id()));
        let error = unpack(&b"not a tar at all, just some text"[..], &dir).unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(error, BundleError::Layout(_)), "{error}");
    }
}
