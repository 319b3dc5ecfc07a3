//! The training images of a recovery: the images the training set names, read through the config's eval
//! transforms, then, for det, a random scale, a random horizontal flip and a random square crop; every draw
//! comes from the stream of `(seed, step)`, so a step's batch is the same in a resumed run.
//!
//! Labels are never used, so they are not read: the images are those [`TrainSet::images`] lists, the one
//! listing `coordinator submit` packs too (a label file's line needs only its image path, so a plain list of
//! images, or labels the eval set's label transform would refuse, are fine; a `label_file_list` entry that is
//! a directory stands for the PNG and JPEG files directly inside it, an empty list for those in `data_dir`).
//! The eval set keeps its strict parsing.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use sensgrid_eval::Config;
use sensgrid_eval::synth::rng::Rng;
use sensgrid_eval::transforms::Pipeline;
use tch::{Device, Kind, Tensor};

use super::{Distillation, TrainSet};

/// The stream tag of recovery's draws, "RECOVER" in ASCII: any constant that no other user of
/// `Rng::for_sample` takes would do (the synthetic sets use small ones).
const STREAM: u64 = 0x0052_4543_4F56_4552;
/// The range of det's random scale: PaddleOCR's det training resizes by 0.5 to 3; the larger half of that
/// mostly makes crops of one magnified text, so recovery keeps to 0.5 to 2.
const SCALE_RANGE: (f64, f64) = (0.5, 2.0);

/// A training set, ready to draw batches from.
pub struct Images {
    pipeline: Pipeline,
    paths: Vec<PathBuf>,
    distillation: Distillation,
    input_size: i64,
}

impl Images {
    /// Opens `set` with the transforms of `config`'s eval set.
    ///
    /// # Errors
    /// Transforms that do not check, a label file or image path that does not (as for the eval set, the
    /// labels aside), a directory without images, or an input size below 1.
    pub fn open(config: &Config, set: &TrainSet, distillation: Distillation, input_size: i64) -> Result<Self> {
        if input_size < 1 {
            bail!("input_size {input_size}: must be at least 1");
        }
        let eval = config.eval_dataset();
        let pipeline = Pipeline::new(&eval.transforms).context("the eval transforms, which recovery reads with")?;
        let paths: Vec<PathBuf> = set
            .images(&eval.delimiter)
            .context("opening the training set")?
            .into_iter()
            .map(|image| image.path)
            .collect();
        tracing::info!(images = paths.len(), data_dir = %set.data_dir.display(), "opened the training set");
        Ok(Images {
            pipeline,
            paths,
            distillation,
            input_size,
        })
    }

    /// The batch of `step`: `batch_size` images drawn with replacement, on the CPU, `[N, C, H, W]`.
    ///
    /// # Errors
    /// An image that does not decode; rec or cls images of different sizes.
    pub fn batch(&self, seed: u64, step: u64, batch_size: usize) -> Result<Tensor> {
        let mut rng = Rng::for_sample(seed, STREAM, step);
        let images = (0..batch_size)
            .map(|_| {
                let path = &self.paths[rng.below(self.paths.len())];
                let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                let sample = self
                    .pipeline
                    .process(&bytes)
                    .with_context(|| format!("training image {}", path.display()))?;
                let [c, h, w] = sample.shape.map(|d| d as i64);
                let image = Tensor::from_slice(&sample.image).reshape([1, c, h, w]);
                Ok(match self.distillation {
                    Distillation::ProbabilityMap => self.augment(image, &mut rng),
                    Distillation::ClassDistribution => image,
                })
            })
            .collect::<Result<Vec<Tensor>>>()?;
        let shape = images[0].size();
        if let Some(other) = images.iter().find(|i| i.size() != shape) {
            bail!(
                "training images of shapes {shape:?} and {:?}: the eval transforms must resize them to one shape",
                other.size()
            );
        }
        Ok(Tensor::cat(&images, 0).to_device(Device::Cpu).to_kind(Kind::Float))
    }

    /// A det image `[1, C, H, W]` scaled, maybe flipped, and cropped (or padded with zeros, the normalized
    /// mean colour) to `input_size` square.
    fn augment(&self, image: Tensor, rng: &mut Rng) -> Tensor {
        let scale = rng.uniform(SCALE_RANGE.0, SCALE_RANGE.1);
        let size = image.size();
        let scaled = |d: i64| ((d as f64 * scale).round() as i64).max(1);
        let mut image = image.upsample_bilinear2d([scaled(size[2]), scaled(size[3])], false, None, None);
        if rng.chance(0.5) {
            image = image.flip([3]);
        }
        for axis in [2, 3] {
            let length = image.size()[axis];
            let side = self.input_size;
            image = if length >= side {
                image.narrow(axis as i64, rng.below((length - side) as usize + 1) as i64, side)
            } else {
                let before = rng.below((side - length) as usize + 1) as i64;
                // constant_pad_nd's pads run from the last axis backwards.
                let pads = if axis == 3 {
                    [before, side - length - before, 0, 0]
                } else {
                    [0, 0, before, side - length - before]
                };
                image.constant_pad_nd(pads)
            };
        }
        image
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::{Path, PathBuf};

    use sensgrid_eval::synth::{self, ImageFormat, Kind as SynthKind, SynthOptions};

    use super::*;

    /// A synthetic det set of `count` images (`worker synth det`) in a scratch directory named by `name`.
    pub(crate) fn synthetic_det_set(name: &str, count: usize, seed: u64) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sensgrid-recover-{name}-{}", std::process::id()));
        synth::generate(
            SynthKind::Det,
            &SynthOptions {
                out: dir.clone(),
                count,
                seed,
                format: ImageFormat::Png,
                fonts: synth::repo_fonts_dir(),
            },
        )
        .unwrap();
        dir
    }

    /// The example det config with its eval set at `eval_dir`.
    pub(crate) fn det_config(eval_dir: &Path) -> Config {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        Config::load(
            root.join("examples/configs/det_ppocrv3.yml"),
            &[
                format!(
                    "Global.pretrained_model={}",
                    root.join("models/ch_PP-OCRv3_det_infer.onnx").display()
                ),
                format!("Eval.dataset.data_dir={}", eval_dir.display()),
                format!(
                    "Eval.dataset.label_file_list=[{}]",
                    eval_dir.join("label.txt").display()
                ),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_step_s_batch_is_the_same_every_time_and_crops_to_the_input_size() {
        let dir = synthetic_det_set("images", 2, 2);
        let set = TrainSet {
            data_dir: dir.clone(),
            label_file_list: vec![dir.join("label.txt")],
        };
        let images = Images::open(&det_config(&dir), &set, Distillation::ProbabilityMap, 64).unwrap();
        let first = images.batch(3, 5, 2).unwrap();
        assert_eq!(first.size(), [2, 3, 64, 64]);
        assert!(first.equal(&images.batch(3, 5, 2).unwrap()));
        assert!(!first.equal(&images.batch(3, 6, 2).unwrap()));
        assert!(!first.equal(&images.batch(4, 5, 2).unwrap()));
        std::fs::remove_dir_all(dir).unwrap();
    }
    /// A training set needs no labels: a list of image names, labels the eval set refuses, or a directory of
    /// images all give the same images, while the eval set still refuses the garbage labels.
    #[test]
    fn training_images_need_no_labels() {
        let dir = synthetic_det_set("unlabelled", 2, 4);
        let config = det_config(&dir);
        let names: Vec<String> = std::fs::read_to_string(dir.join("label.txt"))
            .unwrap()
            .lines()
            .map(|line| line.split('\t').next().unwrap().to_owned())
            .collect();
        std::fs::write(dir.join("names.txt"), names.join("\n")).unwrap();
        let garbage: Vec<String> = names.iter().map(|n| format!("{n}\tnot a det label")).collect();
        std::fs::write(dir.join("garbage.txt"), garbage.join("\n") + "\n").unwrap();
        let open = |label_file_list: Vec<PathBuf>| {
            let set = TrainSet {
                data_dir: dir.clone(),
                label_file_list,
            };
            let images = Images::open(&config, &set, Distillation::ProbabilityMap, 64).unwrap();
            images.batch(3, 5, 2).unwrap()
        };
        let labelled = open(vec![dir.join("label.txt")]);
        assert!(labelled.equal(&open(vec![dir.join("names.txt")])));
        assert!(labelled.equal(&open(vec![dir.join("garbage.txt")])));
        // The synthetic set's images directory holds the same images, in the label file's (name) order.
        assert!(labelled.equal(&open(vec![dir.join("images")])));

        let mut eval = config.eval_dataset().clone();
        eval.label_file_list = vec![dir.join("garbage.txt")];
        let refused = sensgrid_eval::dataset::Dataset::open(&eval, &Default::default()).unwrap_err();
        assert!(refused.to_string().contains("garbage.txt:1"), "{refused}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
