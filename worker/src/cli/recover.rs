//! `worker recover`: a pruned model fine-tuned by distillation from the original (`crate::recover`), written
//! as DIR/recovered.onnx with DIR/recover_report.json; a checkpoint in DIR (DIR/recover.ckpt) is resumed, and one
//! that does not load is refused with the reason (remove it to start over).
//!
//! stdout gets one JSON line, the report without its per-step history; stderr a line per evaluation.

use std::path::PathBuf;

use anyhow::{Context, Result};
use sensgrid_eval::Config;

use super::write_stdout;
use crate::exec::parse_device;
use crate::recover::{Options, Recovery, TrainSet, UnloadableCheckpoint};

#[derive(clap::Args)]
pub struct Args {
    /// The original model, whose outputs the student learns.
    #[arg(long)]
    teacher: PathBuf,
    /// The pruned model to recover.
    #[arg(long)]
    student: PathBuf,
    /// A PaddleOCR-style YAML config: its eval set scores the models, its `Recover` section sets the options
    /// below, and `Recover.data_dir` or else its `Train.dataset` (unless --data-dir is given) holds the
    /// training images. `Global.pretrained_model` is ignored.
    #[arg(long, short = 'c')]
    config: PathBuf,
    /// Overrides, as for `worker eval`.
    #[arg(short = 'o', long = "opt", num_args = 1.., action = clap::ArgAction::Append)]
    overrides: Vec<String>,
    /// Where recovered.onnx, recover_report.json and the checkpoint go.
    #[arg(long)]
    out: PathBuf,
    /// The training images' directory (instead of `Recover.data_dir` or `Train.dataset.data_dir`); needs
    /// --label-file-list.
    #[arg(long, requires = "label_file_list")]
    data_dir: Option<PathBuf>,
    /// The training set's label files (instead of `Train.dataset.label_file_list`).
    #[arg(long, num_args = 1.., requires = "data_dir")]
    label_file_list: Vec<PathBuf>,
    /// Training steps (default: Recover.steps, else det 300, rec and cls 500).
    #[arg(long)]
    steps: Option<u64>,
    /// Images per step (default: Recover.batch_size, else det 4, rec and cls 32).
    #[arg(long)]
    batch_size: Option<usize>,
    /// The peak learning rate (default: Recover.learning_rate, else det 3e-4, rec and cls 1e-4).
    #[arg(long)]
    learning_rate: Option<f64>,
    /// The side of det's square training crops (default: Recover.input_size, else 480).
    #[arg(long)]
    input_size: Option<i64>,
    /// Write a checkpoint every N steps (default: Recover.checkpoint_every, else 50).
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Score the student on the eval set every K steps (default: Recover.eval_every, else 50).
    #[arg(long)]
    eval_every: Option<u64>,
    /// Seeds which images each step draws and how they are augmented (default: Recover.seed, else 0).
    #[arg(long)]
    seed: Option<u64>,
    /// auto (the first GPU when there is one), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
}

impl Args {
    /// The config with `Global.pretrained_model` set to `model`.
    fn config_for(&self, model: &std::path::Path) -> Result<Config> {
        let mut overrides = self.overrides.clone();
        overrides.push(format!("Global.pretrained_model={}", model.display()));
        Ok(Config::load(&self.config, &overrides)?)
    }

    /// The config's `Recover` options (with the defaults of its model kind), with the flags given.
    fn options(&self, config: &Config) -> Options {
        let defaults = Options::of(config);
        Options {
            steps: self.steps.unwrap_or(defaults.steps),
            batch_size: self.batch_size.unwrap_or(defaults.batch_size),
            learning_rate: self.learning_rate.unwrap_or(defaults.learning_rate),
            input_size: self.input_size.unwrap_or(defaults.input_size),
            seed: self.seed.unwrap_or(defaults.seed),
            checkpoint_every: self.checkpoint_every.unwrap_or(defaults.checkpoint_every).max(1),
            eval_every: self.eval_every.unwrap_or(defaults.eval_every).max(1),
        }
    }
}

pub fn run(args: &Args) -> Result<()> {
    let teacher = args.config_for(&args.teacher)?;
    let student = args.config_for(&args.student)?;
    let train_set = match &args.data_dir {
        Some(data_dir) => TrainSet {
            data_dir: data_dir.clone(),
            label_file_list: args.label_file_list.clone(),
        },
        None => TrainSet::from_config(&student)?.context(
            "the config has no Train.dataset: give the training images with --data-dir and --label-file-list",
        )?,
    };
    let options = args.options(&student);
    let recovery = Recovery {
        teacher,
        student,
        train_set: &train_set,
        options: &options,
        device: parse_device(&args.device)?,
        out_dir: &args.out,
        // The checkpoint is the user's to remove (see `crate::recover`'s module doc).
        unloadable_checkpoint: UnloadableCheckpoint::Refuse,
    };
    let report = recovery.run(&mut |progress| {
        if let Some(metric) = progress.metric {
            eprintln!(
                "step {}/{}: loss {:.5}, metric {metric:.4}",
                progress.step, progress.steps, progress.loss
            );
        }
        Ok(())
    })?;
    let mut summary = report.to_json();
    if let Some(object) = summary.as_object_mut() {
        object.remove("history");
    }
    eprintln!(
        "{}: baseline {:.4}, pruned {:.4}, recovered {:.4} (step {}) in {:.1}s on {}; wrote {}",
        report.metric,
        report.baseline,
        report.pruned,
        report.recovered,
        report.best_step,
        report.wall_s,
        report.device,
        args.out.display()
    );
    write_stdout(&format!("{summary}\n"))
}
