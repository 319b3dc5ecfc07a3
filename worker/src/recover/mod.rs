//! Recovery by distillation (issue 25): the pruned model (the student) is fine-tuned to reproduce the
//! original model (the teacher) on the same augmented images, then written as `recovered.onnx`. No labels are
//! needed: the teacher's outputs are the targets.
//!
//! - **Training runs on the executor's own graph**: [`crate::exec::Executor::trainable`] turns the student's
//!   weights into autograd leaves and [`crate::exec::Executor::run_differentiable`] runs the nodes one by one
//!   with autograd recording (the inference path, fused and under `no_grad`, is untouched). The teacher runs
//!   under `no_grad`.
//! - **What trains** ([`train::trainable_names`]): the float weights and biases of Conv, ConvTranspose, Gemm
//!   and MatMul, the constant operand of an Add right after a Conv (Paddle's exported conv bias), and the
//!   scale and shift of BatchNormalization.
//! - **BatchNormalization keeps its running statistics frozen**: it runs in inference mode, normalizing with
//!   the mean and variance the original training left, never with the batch's own. Recovery batches are small
//!   (2 to 8 det crops), too small to estimate statistics from, and a frozen normalization makes the student
//!   at every step exactly the function the exported graph computes. Training the scale and shift with frozen
//!   statistics is training the Conv with the BatchNormalization folded into it; the exported graph keeps the
//!   BatchNormalization nodes, with their new scale and shift.
//! - **Loss** ([`Distillation`]): det, the binary cross-entropy of the student's probability map against the
//!   teacher's plus a Dice loss against the teacher's text (its map above DB's threshold 0.3, what the hmean's
//!   box extraction sees; with the cross-entropy alone, bench/recover's hmean peaked early and fell while the
//!   loss kept falling); rec and cls, the KL divergence of the teacher's class distribution from the student's.
//! - **Options** ([`Options::of`]): the config's `Recover` section (`steps`, `batch_size`, `learning_rate`,
//!   `input_size`, `seed`, `checkpoint_every`, `eval_every`), with defaults by model kind.
//! - **Images** ([`images`]): the training set (`Recover.data_dir` and `Recover.label_file_list`, else
//!   `Train.dataset`'s) read through the config's *eval* transforms (decode, resize, normalize, as the models
//!   see images at inference). Labels are not read: a line needs only its image path, and a label file entry
//!   that is a directory stands for its PNG and JPEG files. The training config's own transforms
//!   (`IaaAugment`, `EastRandomCropData`, `MakeBorderMap`, `MakeShrinkMap`, `RecAug`, ...) are ignored, and
//!   det images are augmented here instead: a random scale, a random horizontal flip and a random
//!   `input_size` square crop (padded where the image is smaller). rec and cls images are used as the eval
//!   transforms make them. The eval set is only ever evaluated on.
//! - **Optimizer**: Adam ([`train::Trainer`]), the learning rate warmed up linearly over the first 5% of the
//!   steps, then decayed to zero on a cosine ([`learning_rate`]).
//! - **Determinism and resuming**: the images and augmentations of step `s` are drawn from a random stream
//!   seeded by `(seed, s)` alone, so the random state to resume is the step; a checkpoint
//!   ([`checkpoint`]) holds the weights, Adam's moments, the step, the best weights so far and every step's
//!   loss and metric, written atomically every `checkpoint_every` steps. A run that finds a checkpoint in its
//!   directory continues from it, losing at most `checkpoint_every` steps, and ends with the weights and the
//!   report an uninterrupted run ends with: its history holds every step from the first once, those of the
//!   attempts before it included (the steps redone after the checkpoint replace theirs).
//! - **A checkpoint that does not load** (corrupt, truncated, of another student or other options, out of
//!   range, not finite: see [`checkpoint`]) is the [`UnloadableCheckpoint`] choice of the caller. `worker
//!   recover` refuses it, naming the file and the problem: the checkpoint is the user's, maybe of a long
//!   run with options mistyped this time, and removing it to start over is theirs to decide. A recover job
//!   warns, discards it and starts over from step 0: the coordinator would hand the same checkpoint to every
//!   retry, so refusing would fail the job forever, and nothing but compute is lost.
//! - **Best weights**: every `eval_every` steps (and after the last) the student is scored on the eval set
//!   with the evaluation of `worker eval` ([`Session`]); the best-scoring weights, the pruned ones included,
//!   are the ones exported.

pub mod checkpoint;
pub mod images;
pub mod train;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sensgrid_eval::Config;
use sensgrid_eval::config::MetricKind;
use sensgrid_model::onnx;
use serde_json::json;
use tch::{Device, Tensor};

use crate::evaluate::Session;
use crate::exec::device_name;
use checkpoint::Checkpoint;
use images::Images;
use train::Trainer;

/// The file name of the checkpoint in a recovery's directory.
pub const CHECKPOINT_FILE: &str = "recover.ckpt";
/// The file name of the exported model.
pub const RECOVERED_FILE: &str = "recovered.onnx";
/// The file name of the report.
pub const REPORT_FILE: &str = "recover_report.json";

/// What the student learns to reproduce of the teacher's first output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distillation {
    /// det: a probability map, compared per pixel by binary cross-entropy, plus a Dice loss against the
    /// teacher's text (its map above DB's threshold 0.3).
    ProbabilityMap,
    /// rec and cls: class probabilities along the last axis, compared by KL divergence.
    ClassDistribution,
}

impl Distillation {
    /// The distillation the config's metric calls for.
    pub fn of(config: &Config) -> Self {
        match config.metric().kind {
            MetricKind::DetMetric => Self::ProbabilityMap,
            MetricKind::RecMetric { .. } | MetricKind::ClsMetric => Self::ClassDistribution,
        }
    }
}

/// The knobs of a recovery (the issue's `Recover` keys).
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub steps: u64,
    pub batch_size: usize,
    /// The peak learning rate of the schedule.
    pub learning_rate: f64,
    /// The side of the square det crops.
    pub input_size: i64,
    pub seed: u64,
    pub checkpoint_every: u64,
    pub eval_every: u64,
}

impl Options {
    /// The config's `Recover` keys, with the defaults of its model kind for those it leaves out.
    pub fn of(config: &Config) -> Self {
        let defaults = Self::defaults(Distillation::of(config));
        let Some(set) = config.recover() else {
            return defaults;
        };
        Options {
            steps: set.steps.unwrap_or(defaults.steps),
            batch_size: set.batch_size.unwrap_or(defaults.batch_size),
            learning_rate: set.learning_rate.unwrap_or(defaults.learning_rate),
            input_size: set.input_size.map_or(defaults.input_size, |side| side as i64),
            seed: set.seed.unwrap_or(defaults.seed),
            checkpoint_every: set.checkpoint_every.unwrap_or(defaults.checkpoint_every),
            eval_every: set.eval_every.unwrap_or(defaults.eval_every),
        }
    }

    /// The defaults for a model kind: det trains on fewer, larger images than rec and cls. det's steps,
    /// learning rate and crop side are bench/recover's, where its README's tuning table shows the hmean rising
    /// and staying up with them (within 15 minutes on 2 CPU threads); rec's and cls's are not tuned yet.
    pub fn defaults(distillation: Distillation) -> Self {
        let (steps, batch_size, learning_rate) = match distillation {
            Distillation::ProbabilityMap => (300, 4, 3e-4),
            Distillation::ClassDistribution => (500, 32, 1e-4),
        };
        Options {
            steps,
            batch_size,
            learning_rate,
            input_size: 480,
            seed: 0,
            checkpoint_every: 50,
            eval_every: 50,
        }
    }
}

/// The learning rate at `step` (0-based) of `steps`: linear warmup over the first 5% of the steps, then a
/// cosine decay from `peak` to zero, which lets the last steps settle instead of jumping around the minimum.
pub fn learning_rate(peak: f64, step: u64, steps: u64) -> f64 {
    let warmup = steps / 20;
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let progress = (step - warmup) as f64 / (steps - warmup).max(1) as f64;
    peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Where the training images come from: the one reading of `Recover` and `Train.dataset` that submit bundles
/// from too.
pub use sensgrid_eval::bundle::TrainSet;

/// What a recovery does with a checkpoint in its directory that it cannot resume from (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnloadableCheckpoint {
    /// Fail with the reason, leaving the checkpoint for the user to remove.
    Refuse,
    /// Warn with the reason, remove the checkpoint and train from step 0.
    StartOver,
}

/// One step as the report's history keeps it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// Steps done (1 for the first).
    pub step: u64,
    /// The distillation loss of the step's batch, before the step's update.
    pub loss: f64,
    /// The student's main metric on the eval set, when this step was evaluated.
    pub metric: Option<f64>,
}

/// How far a recovery is, handed to the caller after every step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Steps done.
    pub step: u64,
    pub steps: u64,
    /// The distillation loss of the step's batch, before the step's update.
    pub loss: f64,
    /// The student's main metric on the eval set, when this step was evaluated.
    pub metric: Option<f64>,
    /// The metric of the latest evaluated step so far, this one included, across resumes (`None` before the
    /// first evaluation).
    pub last_metric: Option<f64>,
    /// The best metric so far, across resumes: the pruned model's before any evaluation beats it.
    pub best: f64,
    /// Whether this step wrote the checkpoint ([`CHECKPOINT_FILE`] in the output directory), for a caller
    /// that keeps it elsewhere too (a coordinator's artifact store).
    pub checkpointed: bool,
}

/// The best weights seen so far and their score.
#[derive(Debug)]
pub struct Best {
    /// Steps done when they were scored (0: the pruned weights).
    pub step: u64,
    pub metric: f64,
    pub weights: Vec<Tensor>,
}

/// What a recovery did: the `recover_report.json` it writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The main indicator of the config's metric (hmean, acc).
    pub metric: String,
    pub baseline: f64,
    pub pruned: f64,
    pub recovered: f64,
    /// The options it ran with.
    pub options: Options,
    /// The step whose weights were exported.
    pub best_step: u64,
    /// The step this process started at (above 0 when it resumed from a checkpoint).
    pub resumed_at: u64,
    pub wall_s: f64,
    pub device: String,
    /// Every step from the first, those of the attempts it resumed from included.
    pub history: Vec<Step>,
}

impl Report {
    /// The report as `recover_report.json` holds it.
    pub fn to_json(&self) -> serde_json::Value {
        let lost = self.baseline - self.pruned;
        let won_back = (lost > 0.0).then(|| (self.recovered - self.pruned) / lost);
        json!({
            "metric": self.metric,
            "baseline": self.baseline,
            "pruned": self.pruned,
            "recovered": self.recovered,
            "won_back": won_back,
            "steps": self.options.steps,
            "batch_size": self.options.batch_size,
            "learning_rate": self.options.learning_rate,
            "input_size": self.options.input_size,
            "seed": self.options.seed,
            "best_step": self.best_step,
            "resumed_at": self.resumed_at,
            "wall_s": self.wall_s,
            "device": self.device,
            "history": self.history.iter().map(|p| json!({
                "step": p.step,
                "loss": p.loss,
                "metric": p.metric,
            })).collect::<Vec<_>>(),
        })
    }
}

/// A recovery: the teacher and student configs (the same config with `Global.pretrained_model` naming the
/// original and the pruned model), where the training images are, and the knobs.
pub struct Recovery<'a> {
    pub teacher: Config,
    pub student: Config,
    pub train_set: &'a TrainSet,
    pub options: &'a Options,
    pub device: Device,
    /// Where the checkpoint, `recovered.onnx` and `recover_report.json` go.
    pub out_dir: &'a Path,
    pub unloadable_checkpoint: UnloadableCheckpoint,
}

impl Recovery<'_> {
    /// Scores the teacher and the student, trains the student, keeps the best weights, writes
    /// `recovered.onnx` and `recover_report.json` to the output directory and returns the report. A
    /// checkpoint in the directory is resumed from. `progress` sees every step; an error from it stops the
    /// recovery (after the checkpoint already written).
    ///
    /// # Errors
    /// Unreadable models or data, a failing node, an unwritable directory, a checkpoint that does not load
    /// when [`UnloadableCheckpoint::Refuse`].
    pub fn run(self, progress: &mut dyn FnMut(&Progress) -> Result<()>) -> Result<Report> {
        let started = Instant::now();
        let options = self.options;
        if options.steps == 0 || options.batch_size == 0 {
            bail!("a recovery needs at least one step and one image per batch");
        }
        std::fs::create_dir_all(self.out_dir).with_context(|| format!("creating {}", self.out_dir.display()))?;
        let distillation = Distillation::of(&self.student);
        let indicator = self.student.metric().main_indicator.clone();
        let images = Images::open(&self.student, self.train_set, distillation, options.input_size)?;

        let mut teacher = Session::open(self.teacher, self.device).context("loading the teacher")?;
        let baseline = score(&mut teacher, &indicator)?;
        let mut student = Session::open(self.student, self.device).context("loading the student")?;
        let pruned = score(&mut student, &indicator)?;
        tracing::info!(baseline, pruned, metric = %indicator, "scored the teacher and the pruned student");

        let mut trainer = Trainer::new(student.executor(), student.graph())?;
        let checkpoint_path = self.out_dir.join(CHECKPOINT_FILE);
        let resumed = match Checkpoint::load(&checkpoint_path, &mut trainer, options) {
            Ok(resumed) => resumed,
            Err(error) => match self.unloadable_checkpoint {
                UnloadableCheckpoint::Refuse => bail!("{error:#}; remove it to start over"),
                UnloadableCheckpoint::StartOver => {
                    tracing::warn!(
                        path = %checkpoint_path.display(),
                        error = %format!("{error:#}"),
                        "discarding a checkpoint that does not load; starting over from step 0"
                    );
                    std::fs::remove_file(&checkpoint_path)
                        .with_context(|| format!("removing {}", checkpoint_path.display()))?;
                    None
                }
            },
        };
        let (mut step, mut best, mut history) = match resumed {
            Some(resumed) => {
                tracing::info!(step = resumed.step, path = %checkpoint_path.display(), "resuming from a checkpoint");
                (resumed.step, resumed.best, resumed.history)
            }
            None => (
                0,
                Best {
                    step: 0,
                    metric: pruned,
                    weights: trainer.snapshot(),
                },
                Vec::new(),
            ),
        };
        let resumed_at = step;
        let mut last_metric = history.iter().rev().find_map(|done| done.metric);
        while step < options.steps {
            let batch = images.batch(options.seed, step, options.batch_size)?;
            let rate = learning_rate(options.learning_rate, step, options.steps);
            let loss = trainer.step(teacher.executor(), student.executor(), distillation, &batch, rate)?;
            step += 1;
            let metric = if step % options.eval_every == 0 || step == options.steps {
                let metric = score(&mut student, &indicator)?;
                if metric > best.metric {
                    best = Best {
                        step,
                        metric,
                        weights: trainer.snapshot(),
                    };
                }
                tracing::info!(step, loss, metric, best = best.metric, "evaluated the student");
                Some(metric)
            } else {
                tracing::debug!(step, loss, learning_rate = rate, "recovery step");
                None
            };
            last_metric = metric.or(last_metric);
            history.push(Step { step, loss, metric });
            let checkpointed = step % options.checkpoint_every == 0 || step == options.steps;
            if checkpointed {
                Checkpoint {
                    step,
                    best: &best,
                    history: &history,
                }
                .save(&checkpoint_path, &trainer, options)?;
            }
            progress(&Progress {
                step,
                steps: options.steps,
                loss,
                metric,
                last_metric,
                best: best.metric,
                checkpointed,
            })?;
        }

        trainer.restore(&best.weights)?;
        let recovered = trainer.export(student.graph())?;
        let model_path = self.out_dir.join(RECOVERED_FILE);
        sensgrid_client::atomic_file::write(&model_path, &onnx::encode(&recovered))
            .with_context(|| format!("writing {}", model_path.display()))?;
        let report = Report {
            metric: indicator,
            baseline,
            pruned,
            recovered: best.metric,
            options: options.clone(),
            best_step: best.step,
            resumed_at,
            wall_s: started.elapsed().as_secs_f64(),
            device: device_name(self.device),
            history,
        };
        let report_path = self.out_dir.join(REPORT_FILE);
        let text = serde_json::to_string_pretty(&report.to_json())? + "\n";
        sensgrid_client::atomic_file::write(&report_path, text.as_bytes())
            .with_context(|| format!("writing {}", report_path.display()))?;
        Ok(report)
    }
}

/// The session's model scored on its eval set: the metric's main indicator.
fn score(session: &mut Session, indicator: &str) -> Result<f64> {
    let metrics = session.evaluate(&mut |_| Ok(()))?;
    metrics
        .get(indicator)
        .with_context(|| format!("the metric has no '{indicator}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_learning_rate_warms_up_peaks_and_decays_to_zero() {
        let rates: Vec<f64> = (0..100).map(|s| learning_rate(1.0, s, 100)).collect();
        assert!((rates[0] - 0.2).abs() < 1e-12, "{}", rates[0]);
        assert_eq!(rates[4], 1.0);
        assert!(rates[5..].windows(2).all(|w| w[1] <= w[0]));
        assert!(rates[99] < 1e-3);
        // Too few steps for a warmup: the first step runs at the peak.
        assert_eq!(learning_rate(0.5, 0, 3), 0.5);
    }
}
