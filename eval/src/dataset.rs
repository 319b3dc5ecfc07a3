//! The eval set as PaddleOCR's `SimpleDataSet` (`ppocr/data/simple_dataset.py`) reads it in eval mode.
//!
//! - Every file of `label_file_list` is opened as given (relative to the working directory) and read as
//!   bytes split after each `\n` (`readlines`); each line is decoded as UTF-8 and its trailing `\n`
//!   stripped (a `\r` stays, as PaddleOCR leaves it). The line splits at `delimiter`: the first field is
//!   the image path, joined to `data_dir` (`os.path.join`: an absolute path stands alone), the second the
//!   label; further fields are ignored, as PaddleOCR ignores them.
//! - `ratio_list`: a file whose ratio is below 1 contributes `round(lines * ratio)` of its lines (Python's
//!   half-to-even `round`). PaddleOCR draws them with `random.sample` after `random.seed(None)` at eval,
//!   so its choice changes from run to run and no seed reproduces it; sensgrid draws them with its own
//!   seeded generator ([`OpenOptions::seed`]) and keeps them in file order, so the subset is the same on
//!   every worker and every run.
//! - `eval_samples` ([`OpenOptions::eval_samples`]) keeps N lines of the set (after `ratio_list`), chosen by
//!   a shuffle seeded with [`OpenOptions::subset_seed`] (`Sensitivity.seed`) and kept in file order; the
//!   lines left out are not parsed. A set of at most N lines is kept whole. The result is what PaddleOCR
//!   evaluates on a label file holding those lines, and the same seed chooses the same lines on every
//!   worker, every run and every platform: the generator is SplitMix64 (Steele, Lea and Flood, "Fast
//!   splittable pseudorandom number generators", 2014), a few lines of integer arithmetic written out in
//!   [`sample_indices`], never a library's generator whose algorithm could change under us.
//! - A line whose label transform returns `None` (a det label without boxes; for rec labels the
//!   dictionary decides, see [`Dataset::skip_where`]) is not dropped: PaddleOCR's `__getitem__` evaluates
//!   the next usable line in its place, so the set keeps its length ([`crate::substitute`]).
//! - Everything PaddleOCR would log and skip otherwise is an error here, naming the label file and line:
//!   a line without the delimiter (or not UTF-8, or empty), a label the label transform raises on, a cls
//!   label not in `label_list`, a missing image (all checked when the set is opened), an image that does
//!   not decode (when it is read). Evaluating a model on a set that silently differs from the configured
//!   one would make the sensitivity grid meaningless.
//! - A file name that is a JSON list (PaddleOCR picks one of the images at random) is refused.
//! - Image paths stay inside `data_dir`: a path that leaves it (`../../etc/passwd`, an absolute path elsewhere,
//!   a symbolic link to outside) is refused, since the set's images are packed and shipped to other machines
//!   ([`crate::bundle`]). An empty label file, one over [`MAX_LABEL_FILE_BYTES`] or [`MAX_LABEL_LINES`], and
//!   one that starts with a UTF-8 byte order mark are refused, naming the file.
//! - A bundle's label file comes with the origin of each line ([`EvalDataset::label_origins`]): errors name the
//!   label file, line and image path the submitter wrote, not the worker's copy.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::config::EvalDataset;
use crate::substitute::substitute_failed;
use crate::transforms::{Pipeline, Sample, Target, TransformError};

/// The largest label file sensgrid reads, 64 MiB: it is read whole, as PaddleOCR's `readlines` reads it.
/// ICDAR 2015's test labels take 0.2 MB and a rec set of a million lines about 40 MB; what is larger is not an
/// eval set's label file (or is a device such as `/dev/zero`, which never ends).
pub const MAX_LABEL_FILE_BYTES: u64 = 64 << 20;

/// The most lines of one label file, 4 million: a 64 MiB file of real lines holds fewer (rec lines run 30 to
/// 60 bytes), while 64 MiB of near-empty lines would cost gigabytes of line bookkeeping before any is parsed.
pub const MAX_LABEL_LINES: usize = 4_000_000;

/// The bytes a UTF-8 byte order mark adds at the start of a file.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// How to open an eval set beyond its config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenOptions {
    /// Keep N lines (after `ratio_list`), chosen by `subset_seed`, in file order; every line when the set has
    /// at most N.
    pub eval_samples: Option<usize>,
    /// Seeds the choice of lines for a ratio below 1.
    pub seed: u64,
    /// Seeds the choice of the `eval_samples` lines (`Sensitivity.seed`). Separate from `seed`, which keeps
    /// its fixed value, so that a `ratio_list` subset does not change with `Sensitivity.seed`.
    pub subset_seed: u64,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            eval_samples: None,
            seed: 0x5EED_F00D,
            subset_seed: 0,
        }
    }
}

/// What is wrong with an eval set. Every message is one line naming the file, and the label file and line
/// where there is one: `data/det/test.txt:17: image 'img_3.jpg' not found (data/det/img_3.jpg)`.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The transform list does not check.
    #[error(transparent)]
    Transforms(TransformError),
    // The cause is part of the message and not a `source`, as in `ConfigError`.
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: std::io::Error },
    /// A line that cannot be read as PaddleOCR reads it.
    #[error("{file}:{line}: {message}")]
    Line {
        file: PathBuf,
        line: usize,
        message: String,
    },
    /// A line whose image file does not exist.
    #[error("{file}:{line}: image '{name}' not found ({})", path.display())]
    MissingImage {
        file: PathBuf,
        line: usize,
        name: String,
        path: PathBuf,
    },
    /// A line whose image cannot be read, does not decode or fails a transform, named as the line has it.
    /// The line is spelt out ("line 7") here: the message holds a second path, the image's.
    #[error("{file} line {line}: {name}: {reason}")]
    Image {
        file: PathBuf,
        line: usize,
        name: String,
        reason: String,
    },
    /// A label file that cannot be an eval set's: empty, too large, or with a byte order mark; or a training
    /// set's `label_file_list` directory without images ([`directory_images`]).
    #[error("{file}: {message}")]
    LabelFile { file: PathBuf, message: String },
    /// An image of a training set's `label_file_list` directory that cannot be read or does not decode.
    #[error("{dir}: {name}: {reason}")]
    DirectoryImage { dir: PathBuf, name: String, reason: String },
    /// No line is usable: PaddleOCR would search for one forever.
    #[error("{files}: no usable line (every label is empty or rejected by the label transform)")]
    NoUsableLine { files: String },
}

/// One line of a label file.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The label file, as configured; for a bundle's line, the submitter's label file.
    pub label_file: PathBuf,
    /// 1-based line number in the label file; for a bundle's line, in the submitter's.
    pub line: usize,
    /// The image path as the line has it; for a bundle's line, as the submitter's line had it.
    pub file_name: String,
    /// The image file: `data_dir` joined with the image path of the line read.
    pub image_path: PathBuf,
    /// The label field as the line has it (a rec label's text, a det label's JSON).
    pub label: String,
    /// The label transform's result; `None` where PaddleOCR's transform returns `None`.
    pub target: Option<Target>,
}

impl Entry {
    /// An error about this line's image: it cannot be read, does not decode or fails a transform.
    fn image_error(&self, reason: impl ToString) -> DatasetError {
        DatasetError::Image {
            file: self.label_file.clone(),
            line: self.line,
            name: self.file_name.clone(),
            reason: reason.to_string(),
        }
    }
}

/// One label line as [`parse_line`] reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedLine {
    /// The image path as the line has it.
    pub file_name: String,
    /// `data_dir` joined with `file_name`, as `os.path.join` joins them.
    pub image_path: PathBuf,
    /// The label field as the line has it.
    pub label: String,
    /// The label transform's result; `None` where PaddleOCR's transform returns `None`.
    pub target: Option<Target>,
}

/// Where a line of a bundle's label file came from: the submitter's label file, line and image path.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LineOrigin {
    label_file: PathBuf,
    line: usize,
    file_name: String,
}

/// An opened eval set: its lines, checked, and the line evaluated at each position.
#[derive(Clone, Debug)]
pub struct Dataset {
    pipeline: Pipeline,
    entries: Vec<Entry>,
    /// Lines rejected by [`Dataset::skip_where`].
    rejected: Vec<bool>,
    label_files: Vec<PathBuf>,
    /// For each position, the entry evaluated there.
    order: Vec<usize>,
    /// Lines the set had before `eval_samples` chose among them.
    available: usize,
}

impl Dataset {
    /// Reads the label files, checks every line and image path, and checks the transforms.
    ///
    /// # Errors
    /// [`DatasetError`] for transforms that do not check, an unreadable, empty or oversized label file, a
    /// malformed line, an image path outside `data_dir`, a missing image, or a set with no usable line.
    pub fn open(config: &EvalDataset, options: &OpenOptions) -> Result<Dataset, DatasetError> {
        let pipeline = Pipeline::new(&config.transforms).map_err(DatasetError::Transforms)?;
        let origins = match &config.label_origins {
            Some(path) => Some(read_origins(path)?),
            None => None,
        };
        let mut files = Vec::with_capacity(config.label_file_list.len());
        for (index, file) in config.label_file_list.iter().enumerate() {
            let bytes = read_label_file(file)?;
            let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
            if lines.len() > MAX_LABEL_LINES {
                return Err(DatasetError::LabelFile {
                    file: file.clone(),
                    message: format!("more than {MAX_LABEL_LINES} lines, the limit for a label file"),
                });
            }
            if let Some(origins) = &origins
                && (config.label_file_list.len() != 1 || origins.len() != lines.len())
            {
                return Err(DatasetError::LabelFile {
                    file: config.label_origins.clone().unwrap_or_default(),
                    message: format!(
                        "{} line origins for {} label files, the first of {} lines (a bundle has one label file, \
                         one origin per line)",
                        origins.len(),
                        config.label_file_list.len(),
                        lines.len()
                    ),
                });
            }
            let count = lines.len();
            let ratio = config.ratio_list.get(index).copied().unwrap_or(1.0);
            let chosen = if ratio < 1.0 {
                let k = (count as f64 * ratio).round_ties_even() as usize;
                sample_indices(count, k, options.seed ^ index as u64)
            } else {
                (0..count).collect()
            };
            files.push((file, bytes, chosen));
        }
        let available: usize = files.iter().map(|(_, _, chosen)| chosen.len()).sum();
        // Positions (over every file's chosen lines, in order) that `eval_samples` keeps.
        let kept: Option<Vec<usize>> = options
            .eval_samples
            .filter(|&n| n < available)
            .map(|n| sample_indices(available, n, options.subset_seed));
        let mut kept = kept.map(|k| k.into_iter().peekable());
        let mut position = 0;
        let mut entries = Vec::new();
        for (file, bytes, chosen) in &files {
            let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
            for &i in chosen {
                let at_position = position;
                position += 1;
                if let Some(kept) = &mut kept {
                    if kept.peek() != Some(&at_position) {
                        continue;
                    }
                    kept.next();
                }
                let origin = origins.as_ref().map(|origins| &origins[i]);
                let (label_file, line) =
                    origin.map_or_else(|| ((*file).clone(), i + 1), |o| (o.label_file.clone(), o.line));
                let parsed =
                    parse_line(lines[i], &config.delimiter, &config.data_dir, &pipeline).map_err(|message| {
                        DatasetError::Line {
                            file: label_file.clone(),
                            line,
                            message,
                        }
                    })?;
                entries.push(Entry {
                    label_file,
                    line,
                    file_name: origin.map_or(parsed.file_name, |o| o.file_name.clone()),
                    image_path: parsed.image_path,
                    label: parsed.label,
                    target: parsed.target,
                });
            }
        }
        // Resolved once: every image's real path must lie under it.
        let real_data_dir = std::fs::canonicalize(&config.data_dir);
        for e in &entries {
            if !e.image_path.is_file() {
                return Err(DatasetError::MissingImage {
                    file: e.label_file.clone(),
                    line: e.line,
                    name: e.file_name.clone(),
                    path: e.image_path.clone(),
                });
            }
            let real = std::fs::canonicalize(&e.image_path).map_err(|reason| e.image_error(reason))?;
            if let Some(message) = link_leaves(&real_data_dir, &real, &e.file_name, &config.data_dir) {
                return Err(DatasetError::Line {
                    file: e.label_file.clone(),
                    line: e.line,
                    message,
                });
            }
        }
        let mut dataset = Dataset {
            pipeline,
            rejected: vec![false; entries.len()],
            entries,
            label_files: config.label_file_list.clone(),
            order: Vec::new(),
            available,
        };
        dataset.skip_where(|_| false)?;
        Ok(dataset)
    }

    /// Marks the lines `reject` returns true for as PaddleOCR's label transform returning `None` on them
    /// (for rec sets: empty, too long, or nothing in the dictionary), so that the next usable line is
    /// evaluated in their place.
    ///
    /// # Errors
    /// [`DatasetError::NoUsableLine`] when no line is left.
    pub fn skip_where(&mut self, mut reject: impl FnMut(&Entry) -> bool) -> Result<(), DatasetError> {
        let rejected: Vec<bool> = self
            .rejected
            .iter()
            .zip(&self.entries)
            .map(|(&r, e)| r || reject(e))
            .collect();
        let usable: Vec<bool> = self
            .entries
            .iter()
            .zip(&rejected)
            .map(|(e, &r)| e.target.is_some() && !r)
            .collect();
        self.order = match substitute_failed(&usable) {
            Some(order) => order,
            // An empty set evaluates nothing (PaddleOCR's loader yields no batch).
            None if self.entries.is_empty() => Vec::new(),
            None => {
                let files: Vec<String> = self.label_files.iter().map(|f| f.display().to_string()).collect();
                return Err(DatasetError::NoUsableLine {
                    files: files.join(", "),
                });
            }
        };
        self.rejected = rejected;
        Ok(())
    }

    /// The number of samples, which is the number of lines.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The lines `eval_samples` chose from: the set's lines after `ratio_list` (its entries when every line
    /// is kept).
    pub fn available(&self) -> usize {
        self.available
    }

    /// Every line, in set order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The checked transforms.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The entry evaluated at `index`: the line itself, or the usable line standing in for it.
    ///
    /// # Panics
    /// When `index` is not below [`Dataset::len`].
    pub fn entry_at(&self, index: usize) -> &Entry {
        &self.entries[self.order[index]]
    }

    /// The sample at `index`: its image read, decoded and transformed.
    ///
    /// # Errors
    /// [`DatasetError::Image`] naming the label line and the image when it cannot be read, does not decode
    /// or fails a transform.
    ///
    /// # Panics
    /// When `index` is not below [`Dataset::len`].
    pub fn get(&self, index: usize) -> Result<Sample, DatasetError> {
        let e = self.entry_at(index);
        let bytes = std::fs::read(&e.image_path).map_err(|err| e.image_error(err))?;
        let processed = self.pipeline.process(&bytes).map_err(|err| e.image_error(err))?;
        let target = e.target.clone().expect("the order only holds lines with a target");
        Ok(Sample {
            image: processed.image,
            shape: processed.shape,
            shape_list: processed.shape_list,
            target,
        })
    }

    /// Decodes `bytes`, the image file of `entry`, as the transforms' `DecodeImage` does: to check an image
    /// without running the rest of the transforms.
    ///
    /// # Errors
    /// [`DatasetError::Image`] naming the entry's label file, line and image path when it does not decode.
    pub fn check_decodes(&self, entry: &Entry, bytes: &[u8]) -> Result<(), DatasetError> {
        self.pipeline.check_decodes(bytes).map_err(|err| entry.image_error(err))
    }

    /// Reads the image file of `entry`.
    ///
    /// # Errors
    /// [`DatasetError::Image`] naming the entry's label file, line and image path when it cannot be read.
    pub fn read_image(&self, entry: &Entry) -> Result<Vec<u8>, DatasetError> {
        std::fs::read(&entry.image_path).map_err(|err| entry.image_error(err))
    }

    /// Every sample in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Result<Sample, DatasetError>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// Splits one `readlines` line into the image path and the label, as `SimpleDataSet.__getitem__` does.
fn split_line(raw: &[u8], delimiter: &str) -> Result<(String, String), String> {
    let text = std::str::from_utf8(raw).map_err(|e| format!("not valid UTF-8 ({e})"))?;
    let text = text.trim_matches('\n');
    if text.is_empty() {
        return Err("empty line (PaddleOCR would evaluate the next line in its place)".into());
    }
    let mut fields = text.split(delimiter);
    let file_name = fields.next().unwrap_or_default();
    let Some(label) = fields.next() else {
        return Err(format!(
            "no delimiter {delimiter:?} between the image path and the label in {text:?}"
        ));
    };
    if file_name.starts_with('[') && serde_json::from_str::<serde_json::Value>(file_name).is_ok_and(|v| v.is_array()) {
        return Err(format!(
            "the image path {file_name:?} is a list, of which PaddleOCR picks one image at random; sensgrid \
             needs one image per line"
        ));
    }
    Ok((file_name.to_owned(), label.to_owned()))
}

/// Parses one line of a label file as [`Dataset::open`] does (the line as `readlines` gives it, its `\n`
/// included): splits it at `delimiter`, joins the image path to `data_dir` and checks that the joined path
/// stays inside `data_dir` (by its components: symbolic links are followed when the set is opened), and runs
/// the label transform of `pipeline`. Touches no file.
///
/// # Errors
/// A one-line message (without the file and line) for a line that is not UTF-8, empty, without the delimiter,
/// with an image path outside `data_dir`, or with a label the label transform refuses.
pub fn parse_line(raw: &[u8], delimiter: &str, data_dir: &Path, pipeline: &Pipeline) -> Result<ParsedLine, String> {
    let (file_name, label) = split_line(raw, delimiter)?;
    if !stays_inside(data_dir, Path::new(&file_name)) {
        return Err(format!(
            "image path '{file_name}' leaves data_dir '{}' (image paths are relative to it and stay inside)",
            data_dir.display()
        ));
    }
    let target = pipeline.encode_label(&label).map_err(|e| e.to_string())?;
    Ok(ParsedLine {
        image_path: data_dir.join(&file_name),
        file_name,
        label,
        target,
    })
}

/// The file extensions of a directory's images ([`directory_images`]): the formats the transforms'
/// `DecodeImage` reads.
const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// One image of a set whose labels are never used (recovery's training images, issue 25), with where it is
/// listed, so that an error about it names the label file and line, or the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedImage {
    /// The label file whose line names the image, or the directory the image lies in.
    pub listed_in: PathBuf,
    /// The 1-based line of `listed_in` that names the image; `None` for an image found in a directory.
    pub line: Option<usize>,
    /// The image path as the line has it, or the file's name in the directory.
    pub file_name: String,
    /// The image file.
    pub path: PathBuf,
}

impl ListedImage {
    /// An error about this image: it cannot be read or does not decode.
    pub fn error(&self, reason: impl ToString) -> DatasetError {
        match self.line {
            Some(line) => DatasetError::Image {
                file: self.listed_in.clone(),
                line,
                name: self.file_name.clone(),
                reason: reason.to_string(),
            },
            None => DatasetError::DirectoryImage {
                dir: self.listed_in.clone(),
                name: self.file_name.clone(),
                reason: reason.to_string(),
            },
        }
    }

    /// Reads the image file.
    ///
    /// # Errors
    /// [`ListedImage::error`] when it cannot be read.
    pub fn read(&self) -> Result<Vec<u8>, DatasetError> {
        std::fs::read(&self.path).map_err(|err| self.error(err))
    }
}

/// The images a label file names, for a set whose labels are never used (recovery's training images, issue
/// 25): a line's image path is its first field, up to `delimiter` or the line's end (a trailing `\r`
/// stripped), and the rest is not parsed, so a plain list of image paths, or lines with labels the label
/// transform would refuse, are read. Blank lines are skipped. The rest is checked as [`Dataset::open`] checks
/// an eval set: the file's size and byte order mark, UTF-8, image paths inside `data_dir` (symbolic links
/// followed), images that exist.
///
/// # Errors
/// [`DatasetError`] naming the file (and line) for an unreadable, empty or oversized file, a line not in
/// UTF-8, an image path that leaves `data_dir`, a missing image, or a file that names no image.
pub fn label_file_images(
    label_file: &Path,
    delimiter: &str,
    data_dir: &Path,
) -> Result<Vec<ListedImage>, DatasetError> {
    let bytes = read_label_file(label_file)?;
    // Resolved once: every image's real path must lie under it.
    let real_data_dir = std::fs::canonicalize(data_dir);
    let mut images = Vec::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let error = |message: String| DatasetError::Line {
            file: label_file.to_owned(),
            line,
            message,
        };
        let text = std::str::from_utf8(raw).map_err(|e| error(format!("not valid UTF-8 ({e})")))?;
        let file_name = text.split(delimiter).next().unwrap_or_default().trim_end_matches('\r');
        if file_name.trim().is_empty() {
            continue;
        }
        if !stays_inside(data_dir, Path::new(file_name)) {
            return Err(error(format!(
                "image path '{file_name}' leaves data_dir '{}' (image paths are relative to it and stay inside)",
                data_dir.display()
            )));
        }
        let image = ListedImage {
            listed_in: label_file.to_owned(),
            line: Some(line),
            file_name: file_name.to_owned(),
            path: data_dir.join(file_name),
        };
        if !image.path.is_file() {
            return Err(DatasetError::MissingImage {
                file: image.listed_in,
                line,
                name: image.file_name,
                path: image.path,
            });
        }
        let real = std::fs::canonicalize(&image.path).map_err(|reason| image.error(reason))?;
        if let Some(message) = link_leaves(&real_data_dir, &real, file_name, data_dir) {
            return Err(error(message));
        }
        images.push(image);
    }
    if images.is_empty() {
        return Err(DatasetError::LabelFile {
            file: label_file.to_owned(),
            message: "no line names an image".into(),
        });
    }
    Ok(images)
}

/// The PNG and JPEG files directly inside `dir` (by extension, in any case), sorted by name so that a seed
/// draws the same images on any machine: what a training set's `label_file_list` entry that is a directory
/// stands for.
///
/// # Errors
/// [`DatasetError`] naming the directory when it cannot be read or holds no such file.
pub fn directory_images(dir: &Path) -> Result<Vec<ListedImage>, DatasetError> {
    let io = |reason| DatasetError::Io {
        path: dir.to_owned(),
        reason,
    };
    let mut images = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        if path.is_file() && extension.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str())) {
            images.push(ListedImage {
                listed_in: dir.to_owned(),
                line: None,
                file_name: path.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                path,
            });
        }
    }
    if images.is_empty() {
        return Err(DatasetError::LabelFile {
            file: dir.to_owned(),
            message: "no PNG or JPEG image in the directory".into(),
        });
    }
    images.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(images)
}

/// The refusal of an image whose real path `real` (symbolic links followed) lies outside `real_data_dir`,
/// the canonical `data_dir`; `None` when it lies inside. `file_name` is the path as its line has it.
fn link_leaves(
    real_data_dir: &std::io::Result<PathBuf>,
    real: &Path,
    file_name: &str,
    data_dir: &Path,
) -> Option<String> {
    if real_data_dir.as_ref().is_ok_and(|dir| real.starts_with(dir)) {
        return None;
    }
    Some(format!(
        "image path '{file_name}' leads outside data_dir '{}' through a symbolic link (to {}); point data_dir at \
         the folder the images are in",
        data_dir.display(),
        real.display()
    ))
}

/// Whether `file_name` joined to `data_dir` (as `os.path.join` joins them: an absolute path stands alone)
/// names a path inside `data_dir`, judged on the components alone.
fn stays_inside(data_dir: &Path, file_name: &Path) -> bool {
    if file_name.has_root() {
        let data_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
        return normalize(file_name).starts_with(normalize(&data_dir));
    }
    let mut depth = 0usize;
    for component in file_name.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// An absolute path with `.` and `..` resolved by its components (`..` at the root stays at the root).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Reads a label file whole, refusing one that is empty, over [`MAX_LABEL_FILE_BYTES`], or that starts with
/// a UTF-8 byte order mark.
fn read_label_file(file: &Path) -> Result<Vec<u8>, DatasetError> {
    let bytes = read_bounded(file)?;
    let refuse = |message: &str| {
        Err(DatasetError::LabelFile {
            file: file.to_owned(),
            message: message.to_owned(),
        })
    };
    if bytes.is_empty() {
        return refuse("empty label file (an eval set needs at least one line)");
    }
    // Refused rather than stripped: PaddleOCR decodes each line as plain UTF-8, so the mark becomes part of
    // the first image path, that image is not found and PaddleOCR evaluates another line in its place.
    if bytes.starts_with(UTF8_BOM) {
        return Err(DatasetError::Line {
            file: file.to_owned(),
            line: 1,
            message: "the file starts with a UTF-8 byte order mark (bytes EF BB BF), which PaddleOCR reads as part \
                      of the first image path; save the file as UTF-8 without it"
                .into(),
        });
    }
    Ok(bytes)
}

/// Reads a file whole, up to [`MAX_LABEL_FILE_BYTES`]: the size is checked before reading, and the reading
/// stops past the limit for a file that grows or never ends.
fn read_bounded(file: &Path) -> Result<Vec<u8>, DatasetError> {
    let io = |reason| DatasetError::Io {
        path: file.to_owned(),
        reason,
    };
    let too_large = |size: String| DatasetError::LabelFile {
        file: file.to_owned(),
        message: format!(
            "{size}, over the limit of {} MiB ({MAX_LABEL_FILE_BYTES} bytes) for a label file",
            MAX_LABEL_FILE_BYTES >> 20
        ),
    };
    let opened = std::fs::File::open(file).map_err(io)?;
    let size = opened.metadata().map_err(io)?.len();
    if size > MAX_LABEL_FILE_BYTES {
        return Err(too_large(format!("{size} bytes")));
    }
    let mut bytes = Vec::new();
    opened
        .take(MAX_LABEL_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_LABEL_FILE_BYTES {
        return Err(too_large(format!("more than {MAX_LABEL_FILE_BYTES} bytes")));
    }
    Ok(bytes)
}

/// The line origins of a bundle's label file as [`read_origins`] reads them: a JSON list with one
/// `[label file, line, image path]` per line of the label file, in order.
pub fn origins_json(entries: &[Entry]) -> String {
    let origins: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| serde_json::json!([e.label_file.to_string_lossy(), e.line, e.file_name]))
        .collect();
    serde_json::Value::Array(origins).to_string()
}

/// Reads the line origins written by [`origins_json`].
fn read_origins(path: &Path) -> Result<Vec<LineOrigin>, DatasetError> {
    let bytes = read_bounded(path)?;
    let refuse = |message: String| DatasetError::LabelFile {
        file: path.to_owned(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| refuse(format!("line origins: not valid JSON ({e})")))?;
    let items = value
        .as_array()
        .ok_or_else(|| refuse("line origins: expected a JSON list".into()))?;
    let origin = |item: &serde_json::Value| -> Option<LineOrigin> {
        let [file, line, name] = item.as_array()?.as_slice() else {
            return None;
        };
        Some(LineOrigin {
            label_file: PathBuf::from(file.as_str()?),
            line: usize::try_from(line.as_u64()?).ok()?,
            file_name: name.as_str()?.to_owned(),
        })
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            origin(item).ok_or_else(|| {
                refuse(format!(
                    "line origin {index}: expected [label file, line, image path], got {item}"
                ))
            })
        })
        .collect()
}

/// `k` distinct indices below `n`, drawn with a seeded SplitMix64 (a partial Fisher-Yates shuffle), in
/// increasing order.
fn sample_indices(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut idx: Vec<usize> = (0..n).collect();
    let k = k.min(n);
    for i in 0..k {
        // Lemire's multiply-shift: uniform enough below 2^32 choices, and deterministic.
        let j = i + ((u128::from(next()) * (n - i) as u128) >> 64) as usize;
        idx.swap(i, j);
    }
    let mut chosen = idx[..k].to_vec();
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The subset is a pure function of (n, k, seed): pinned here, so a change of the generator (which would
    /// change every run's samples) fails loudly; another seed draws other lines; k >= n keeps every line.
    #[test]
    fn sample_indices_are_seeded_sorted_and_pinned() {
        let drawn = sample_indices(100, 5, 0);
        assert_eq!(drawn, [4, 14, 43, 88, 97]);
        assert_eq!(sample_indices(100, 5, 0), drawn);
        assert_ne!(sample_indices(100, 5, 1), drawn);
        assert!(drawn.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample_indices(4, 4, 3), [0, 1, 2, 3]);
        assert_eq!(sample_indices(4, 9, 3), [0, 1, 2, 3]);
        assert!(sample_indices(4, 0, 3).is_empty());
    }

    #[test]
    fn lines_split_like_paddleocr() {
        assert_eq!(
            split_line(b"a.jpg\thello\n", "\t"),
            Ok(("a.jpg".into(), "hello".into()))
        );
        // A second delimiter ends the label; a \r stays.
        assert_eq!(
            split_line(b"a.jpg\thel\tlo\r\n", "\t"),
            Ok(("a.jpg".into(), "hel".into()))
        );
        assert_eq!(split_line(b"a.jpg\thi\r\n", "\t"), Ok(("a.jpg".into(), "hi\r".into())));
        assert_eq!(split_line(b"a.jpg  x", "  "), Ok(("a.jpg".into(), "x".into())));
        assert_eq!(split_line(b"a.jpg\t", "\t"), Ok(("a.jpg".into(), "".into())));
        assert_eq!(
            split_line(b"a.jpg hello\n", "\t"),
            Err(r#"no delimiter "\t" between the image path and the label in "a.jpg hello""#.into())
        );
        assert!(split_line(b"\n", "\t").unwrap_err().starts_with("empty line"));
        assert!(split_line(b"\xff\tx", "\t").unwrap_err().starts_with("not valid UTF-8"));
        assert!(
            split_line(b"[\"a.jpg\", \"b.jpg\"]\tx", "\t")
                .unwrap_err()
                .contains("is a list")
        );
        // Not JSON: a plain name that starts with a bracket.
        assert_eq!(split_line(b"[a.jpg\tx", "\t"), Ok(("[a.jpg".into(), "x".into())));
    }

    /// Training lines need only an image: a bare path, a `\r\n` ending, an empty or unparsable label and
    /// blank lines all read, where the eval set's parsing refuses the garbage label; each image keeps its line
    /// for errors, and paths are still checked: `../`, an absolute path elsewhere and a symbolic link out of
    /// `data_dir` are refused naming the file and line.
    #[test]
    fn label_file_images_read_lines_without_usable_labels() {
        let root = std::env::temp_dir().join(format!("sensgrid-label-file-images-{}", std::process::id()));
        let dir = root.join("data");
        std::fs::create_dir_all(dir.join("images")).unwrap();
        for name in ["a.png", "b.png", "c.png", "d.png"] {
            std::fs::write(dir.join("images").join(name), b"not decoded here").unwrap();
        }
        std::fs::write(root.join("outside.png"), b"not decoded here").unwrap();
        let labels = dir.join("train.txt");
        std::fs::write(
            &labels,
            "images/a.png\nimages/b.png\r\n\nimages/c.png\t\nimages/d.png\tnot json\n",
        )
        .unwrap();
        let listed: Vec<(PathBuf, Option<usize>)> = label_file_images(&labels, "\t", &dir)
            .unwrap()
            .iter()
            .map(|image| (image.path.strip_prefix(&dir).unwrap().to_owned(), image.line))
            .collect();
        let expected: Vec<(PathBuf, Option<usize>)> = [("a", 1), ("b", 2), ("c", 4), ("d", 5)]
            .map(|(n, line)| (Path::new("images").join(format!("{n}.png")), Some(line)))
            .into();
        assert_eq!(listed, expected);
        // The eval set's det label transform refuses that last label.
        assert!(crate::transforms::det_label_encode("not json").is_err());

        let refusal = |lines: String| {
            std::fs::write(&labels, lines).unwrap();
            label_file_images(&labels, "\t", &dir).unwrap_err().to_string()
        };
        let error = refusal("images/a.png\n../outside.png\n".into());
        assert!(
            error.contains("train.txt:2: image path '../outside.png' leaves data_dir"),
            "{error}"
        );
        let outside = root.join("outside.png").display().to_string();
        let error = refusal(format!("images/a.png\t\n\n{outside}\tx\n"));
        assert!(
            error.contains(&format!("train.txt:3: image path '{outside}' leaves data_dir")),
            "{error}"
        );
        std::os::unix::fs::symlink(root.join("outside.png"), dir.join("images/link.png")).unwrap();
        let error = refusal("images/link.png\n".into());
        assert!(
            error.contains("train.txt:1: image path 'images/link.png' leads outside data_dir"),
            "{error}"
        );
        let error = refusal("images/e.png\tx\n".into());
        assert!(error.contains("train.txt:1: image 'images/e.png' not found"), "{error}");
        let error = refusal("\n\n".into());
        assert!(error.contains("no line names an image"), "{error}");
        std::fs::remove_dir_all(root).unwrap();
    }

    /// A directory stands for its PNG and JPEG files (any case of the extension), by name; other files and
    /// subdirectories are not images, and a directory without images is refused, named.
    #[test]
    fn directory_images_are_its_png_and_jpeg_files_by_name() {
        let dir = std::env::temp_dir().join(format!("sensgrid-directory-images-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub.png")).unwrap();
        for name in ["b.JPG", "a.png", "c.jpeg", "notes.txt", "d.gif"] {
            std::fs::write(dir.join(name), b"not decoded here").unwrap();
        }
        let names: Vec<String> = directory_images(&dir)
            .unwrap()
            .into_iter()
            .map(|image| {
                assert_eq!((image.listed_in.as_path(), image.line), (dir.as_path(), None));
                image.file_name
            })
            .collect();
        assert_eq!(names, ["a.png", "b.JPG", "c.jpeg"]);
        for name in ["b.JPG", "a.png", "c.jpeg"] {
            std::fs::remove_file(dir.join(name)).unwrap();
        }
        let error = directory_images(&dir).unwrap_err().to_string();
        assert_eq!(
            error,
            format!("{}: no PNG or JPEG image in the directory", dir.display())
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn sampled_indices_are_distinct_sorted_and_seeded() {
        let a = sample_indices(100, 30, 7);
        assert_eq!(a.len(), 30);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(a, sample_indices(100, 30, 7));
        assert_ne!(a, sample_indices(100, 30, 8));
        assert_eq!(sample_indices(5, 5, 1), vec![0, 1, 2, 3, 4]);
        assert_eq!(sample_indices(5, 0, 1), Vec::<usize>::new());
    }
}
