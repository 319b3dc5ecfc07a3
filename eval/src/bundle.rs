//! Eval bundles: a config's eval set packed into one tar, the dataset artifact a coordinator hands its
//! workers, and unpacked on a worker into a directory its copy of the config is pointed at. A recovery's
//! training set ([`TrainSet`]) travels the same way ([`pack_train_set`]), as training bundles.
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
//! A training bundle holds `labels.txt` and `images/` only: one image path per line, no label (recovery
//! reads none), the images [`TrainSet::images`] lists in its order, duplicates kept, so that the worker draws
//! the same batches from the unpacked bundle (a `TrainSet` of the bundle's folder and `labels.txt`) as from
//! the original list.
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
use crate::dataset::{self, Dataset, DatasetError, ListedImage};
use crate::evaluate::sensitivity_open_options;
use crate::transforms::Pipeline;

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
    let entries = dataset.entries();
    check_images(
        entries,
        |entry| &entry.image_path,
        |entry| {
            dataset
                .read_image(entry)
                .and_then(|bytes| dataset.check_decodes(entry, &bytes))
        },
    )?;
    let mut tar = tar::Builder::new(out);
    let (names, images) = append_images(
        &mut tar,
        entries,
        |entry| &entry.image_path,
        |entry| dataset.read_image(entry),
    )?;
    let mut labels = String::new();
    for (name, entry) in names.iter().zip(entries) {
        labels.push_str(name);
        labels.push_str(delimiter);
        labels.push_str(&entry.label);
        labels.push('\n');
    }
    append(&mut tar, LABELS, labels.as_bytes())?;
    append(&mut tar, ORIGINS, dataset::origins_json(entries).as_bytes())?;
    if let Some(dict) = config.character_dict_path() {
        append(&mut tar, DICT, &read(dict)?)?;
    }
    finish(tar)?;
    Ok(Packed {
        lines: entries.len(),
        available: dataset.available(),
        images,
    })
}

/// Appends each distinct image of `items` (by `path`, read with `read`) under `images/`, named by the position
/// where it first appears, its extension kept. Answers each item's name in the bundle, and how many images
/// were appended.
fn append_images<T, W: Write>(
    tar: &mut tar::Builder<W>,
    items: &[T],
    path: impl Fn(&T) -> &Path,
    read: impl Fn(&T) -> Result<Vec<u8>, DatasetError>,
) -> Result<(Vec<String>, usize), BundleError> {
    let mut names: HashMap<&Path, String> = HashMap::new();
    let mut item_names = Vec::with_capacity(items.len());
    for (position, item) in items.iter().enumerate() {
        let image = path(item);
        let name = match names.get(image) {
            Some(name) => name.clone(),
            None => {
                let extension = image
                    .extension()
                    .and_then(|e| e.to_str())
                    .map_or(String::new(), |e| format!(".{e}"));
                let name = format!("{IMAGES}/{position:06}{extension}");
                append(tar, &name, &read(item)?)?;
                names.insert(image, name.clone());
                name
            }
        };
        item_names.push(name);
    }
    Ok((item_names, names.len()))
}

/// Ends the archive and flushes its writer.
fn finish<W: Write>(tar: tar::Builder<W>) -> Result<(), BundleError> {
    tar.into_inner()
        .and_then(|mut out| out.flush())
        .map_err(|reason| BundleError::Io {
            path: PathBuf::from("<bundle>"),
            reason,
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
    /// The training images, in order: with an empty `label_file_list`, the PNG and JPEG files directly in
    /// `data_dir`; else, entry by entry, the images a label file names (its lines' first fields, labels never
    /// parsed, paths inside `data_dir`: [`dataset::label_file_images`]) or, for an entry that is a
    /// directory, the PNG and JPEG files directly in it ([`dataset::directory_images`]), each directory's by
    /// name. An image listed twice is there twice. `delimiter` ends a line's image path.
    ///
    /// # Errors
    /// [`DatasetError`] naming the label file and line, or the directory: an unreadable or empty label file,
    /// an image path that leaves `data_dir`, a missing image, a directory without images.
    pub fn images(&self, delimiter: &str) -> Result<Vec<ListedImage>, DatasetError> {
        let mut images = if self.label_file_list.is_empty() {
            dataset::directory_images(&self.data_dir)?
        } else {
            Vec::new()
        };
        for entry in &self.label_file_list {
            if entry.is_dir() {
                images.extend(dataset::directory_images(entry)?);
            } else {
                images.extend(dataset::label_file_images(entry, delimiter, &self.data_dir)?);
            }
        }
        Ok(images)
    }

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

/// Writes the training set `set` of `config` to `out` as a training bundle: the images
/// [`TrainSet::images`] lists (`Eval.dataset.delimiter` ends a line's image path), each distinct image decoded
/// once with the eval transforms' `DecodeImage` (recovery reads its images with the eval transforms), so that
/// one that would fail on the workers is refused now.
///
/// # Errors
/// Eval transforms that do not check, [`TrainSet::images`]' errors, an image that cannot be read or does not
/// decode (naming the label file and line, or the directory, and the image), or a failing write.
pub fn pack_train_set(config: &Config, set: &TrainSet, out: impl Write) -> Result<Packed, BundleError> {
    let eval = config.eval_dataset();
    let pipeline = Pipeline::new(&eval.transforms).map_err(DatasetError::Transforms)?;
    let listed = set.images(&eval.delimiter)?;
    check_images(
        &listed,
        |image| &image.path,
        |image| {
            let bytes = image.read()?;
            pipeline.check_decodes(&bytes).map_err(|err| image.error(err))
        },
    )?;
    let mut tar = tar::Builder::new(out);
    let (names, images) = append_images(&mut tar, &listed, |image| &image.path, ListedImage::read)?;
    let labels: String = names.iter().map(|name| format!("{name}\n")).collect();
    append(&mut tar, LABELS, labels.as_bytes())?;
    finish(tar)?;
    Ok(Packed {
        lines: listed.len(),
        available: listed.len(),
        images,
    })
}

/// Checks every distinct image of `items` (by `path`) with `check`, on every core (a 1280x720 JPEG takes
/// about 10 ms to decode, a 12 Mpx photo 200 ms), so that a file that would fail on the workers is refused
/// now.
///
/// # Errors
/// The error of the first image in item order that fails, whichever thread met it: each index is taken in
/// order and always finished, so every image before the first failure was checked.
fn check_images<T: Sync>(
    items: &[T],
    path: impl Fn(&T) -> &Path,
    check: impl Fn(&T) -> Result<(), DatasetError> + Sync,
) -> Result<(), DatasetError> {
    let mut seen = HashSet::new();
    let images: Vec<&T> = items.iter().filter(|item| seen.insert(path(item))).collect();
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
                        let &item = images.get(index)?;
                        if let Err(error) = check(item) {
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

    /// The example det config: packing a training set reads its eval transforms and delimiter only.
    fn det_config() -> Config {
        Config::from_yaml(
            include_str!("../../examples/configs/det_ppocrv3.yml"),
            "det.yml",
            &[] as &[&str],
        )
        .unwrap()
    }

    /// A 4x4 grey PNG of `shade` at `path`, so that each image's bytes differ.
    fn write_png(path: &Path, shade: u8) {
        let mut encoder = png::Encoder::new(std::fs::File::create(path).unwrap(), 4, 4);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&[shade; 4 * 4 * 3]).unwrap();
        writer.finish().unwrap();
    }

    /// A scratch folder for one test, `data/` in it holding a.png, b.png and c.png, and `data/more/` d.png
    /// and e.png.
    fn scratch(test: &str) -> (PathBuf, PathBuf) {
        let root = std::env::temp_dir().join(format!("sensgrid-train-set-{test}-{}", std::process::id()));
        let data = root.join("data");
        std::fs::create_dir_all(data.join("more")).unwrap();
        for (shade, name) in ["a.png", "b.png", "c.png", "more/d.png", "more/e.png"]
            .iter()
            .enumerate()
        {
            write_png(&data.join(name), shade as u8 * 40);
        }
        (root, data)
    }

    fn read_all(images: &[ListedImage]) -> Vec<Vec<u8>> {
        images.iter().map(|image| image.read().unwrap()).collect()
    }

    /// A label-less list, labels the eval set refuses and a directory entry all list their images, in list
    /// order with a repeat kept; the packed bundle, unpacked and listed as the worker lists it, gives the
    /// same images in the same order, and the same set packs to the same bytes.
    #[test]
    fn a_training_set_needs_no_labels_and_unpacks_to_the_same_images_in_order() {
        let (root, data) = scratch("unlabelled");
        std::fs::write(data.join("names.txt"), "b.png\na.png\n\nb.png").unwrap();
        std::fs::write(data.join("garbage.txt"), "c.png\tnot a det label\n").unwrap();
        let set = TrainSet {
            data_dir: data.clone(),
            label_file_list: vec![data.join("names.txt"), data.join("garbage.txt"), data.join("more")],
        };
        let listed = set.images("\t").unwrap();
        let names: Vec<&str> = listed.iter().map(|image| image.file_name.as_str()).collect();
        assert_eq!(names, ["b.png", "a.png", "b.png", "c.png", "d.png", "e.png"]);
        let lines: Vec<Option<usize>> = listed.iter().map(|image| image.line).collect();
        assert_eq!(lines, [Some(1), Some(2), Some(4), Some(1), None, None]);
        // The eval set's own parsing refuses that label.
        let mut eval = det_config().eval_dataset().clone();
        eval.data_dir = data.clone();
        eval.label_file_list = vec![data.join("garbage.txt")];
        let refused = Dataset::open(&eval, &dataset::OpenOptions::default()).unwrap_err();
        assert!(refused.to_string().contains("garbage.txt:1"), "{refused}");

        let config = det_config();
        let mut tar = Vec::new();
        let packed = pack_train_set(&config, &set, &mut tar).unwrap();
        assert_eq!(
            packed,
            Packed {
                lines: 6,
                available: 6,
                images: 5
            }
        );
        let mut again = Vec::new();
        pack_train_set(&config, &set, &mut again).unwrap();
        assert!(tar == again, "the same training set packed to different bytes");

        let unpacked = root.join("unpacked");
        unpack(tar.as_slice(), &unpacked).unwrap();
        let bundled = TrainSet {
            data_dir: unpacked.clone(),
            label_file_list: vec![unpacked.join(LABELS)],
        };
        assert_eq!(read_all(&bundled.images("\t").unwrap()), read_all(&listed));
        std::fs::remove_dir_all(root).unwrap();
    }

    /// An empty `label_file_list` stands for the images directly in `data_dir`, by name.
    #[test]
    fn an_empty_training_list_is_the_images_in_data_dir() {
        let (root, data) = scratch("empty-list");
        std::fs::write(data.join("notes.txt"), "not an image").unwrap();
        let set = TrainSet {
            data_dir: data.clone(),
            label_file_list: Vec::new(),
        };
        let paths: Vec<PathBuf> = set.images("\t").unwrap().into_iter().map(|image| image.path).collect();
        assert_eq!(paths, ["a.png", "b.png", "c.png"].map(|name| data.join(name)));
        let mut tar = Vec::new();
        assert_eq!(pack_train_set(&det_config(), &set, &mut tar).unwrap().images, 3);
        std::fs::remove_dir_all(root).unwrap();
    }

    /// A line that leaves `data_dir` (`../`, an absolute path elsewhere) is refused naming the label file and
    /// line, a directory entry without images naming the directory, and an image that does not decode naming
    /// the line or the directory, and the image.
    #[test]
    fn a_training_set_that_cannot_pack_is_refused_naming_where() {
        let (root, data) = scratch("refused");
        write_png(&root.join("outside.png"), 7);
        let names = data.join("names.txt");
        let config = det_config();
        let refusal = |label_file_list: Vec<PathBuf>| {
            let set = TrainSet {
                data_dir: data.clone(),
                label_file_list,
            };
            pack_train_set(&config, &set, &mut Vec::new()).unwrap_err().to_string()
        };
        let names_at = |line: &str| format!("{}{line}", names.display());

        std::fs::write(&names, "a.png\n../outside.png\n").unwrap();
        let error = refusal(vec![names.clone()]);
        assert!(
            error.contains(&names_at(":2: image path '../outside.png' leaves data_dir")),
            "{error}"
        );
        let outside = root.join("outside.png").display().to_string();
        std::fs::write(&names, format!("{outside}\n")).unwrap();
        let error = refusal(vec![names.clone()]);
        assert!(
            error.contains(&names_at(&format!(":1: image path '{outside}' leaves data_dir"))),
            "{error}"
        );

        let empty = data.join("empty");
        std::fs::create_dir(&empty).unwrap();
        let error = refusal(vec![empty.clone()]);
        assert_eq!(
            error,
            format!("{}: no PNG or JPEG image in the directory", empty.display())
        );

        std::fs::write(data.join("more/bad.png"), b"not a png").unwrap();
        std::fs::write(&names, "a.png\nmore/bad.png\tx\n").unwrap();
        let error = refusal(vec![names.clone()]);
        assert!(error.starts_with(&names_at(" line 2: more/bad.png: ")), "{error}");
        let more = data.join("more");
        let error = refusal(vec![more.clone()]);
        assert!(error.starts_with(&format!("{}: bad.png: ", more.display())), "{error}");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn garbage_is_not_a_bundle() {
        let dir = std::env::temp_dir().join(format!("sensgrid-bundle-garbage-{}", std::process::id()));
        let error = unpack(&b"not a tar at all, just some text"[..], &dir).unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(error, BundleError::Layout(_)), "{error}");
    }
}
