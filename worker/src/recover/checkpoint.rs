//! The recovery checkpoint: one libtorch archive holding the weights, Adam's moments and update count, the
//! step, the best weights with their step and metric, every step's loss and metric so far, and the options it
//! was made with. The random state is the step (each step's images come from a stream seeded by the seed and
//! the step), so nothing else needs saving. Written whole or not at all (`atomic_file`), so a worker killed
//! while writing leaves the previous checkpoint.
//!
//! A checkpoint is checked whole before anything of it is used: a file that is not a libtorch archive (garbage,
//! truncated), one of another student (other weight names or shapes) or of other options (the
//! [`fingerprint`]), a step outside `0..=steps`, a best step after the step, an Adam update count other than
//! the step, a history that is not steps 1 to the step, or a weight, moment, loss or metric that is not finite,
//! is refused with an error naming the file and what is wrong, and the trainer is left as it was. What the
//! caller then does is [`super::UnloadableCheckpoint`]'s choice.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use tch::{Kind, Tensor};

use super::train::Trainer;
use super::{Best, Options, Step};

/// What a checkpoint saves beyond the trainer's state.
pub struct Checkpoint<'a> {
    /// Steps done.
    pub step: u64,
    pub best: &'a Best,
    /// Every step done, from the first: a recovery resumed from the checkpoint reports them with its own.
    pub history: &'a [Step],
}

/// What a loaded checkpoint resumes.
#[derive(Debug)]
pub struct Resumed {
    pub step: u64,
    pub best: Best,
    /// Steps 1 to `step`.
    pub history: Vec<Step>,
}

/// The options a checkpoint must share with the recovery that resumes it: the ones that decide which
/// images each step sees and how far the schedule goes.
fn fingerprint(options: &Options) -> [i64; 4] {
    [
        options.steps as i64,
        options.batch_size as i64,
        options.seed as i64,
        options.input_size,
    ]
}

/// The archive's names of the history's columns; a step that was not evaluated has a NaN metric.
const HISTORY_STEP: &str = "history/step";
const HISTORY_LOSS: &str = "history/loss";
const HISTORY_METRIC: &str = "history/metric";

/// The prefixes of the per-weight tensors: the trainer's state, then the best weights.
const WEIGHT_PREFIXES: [&str; 4] = ["weight", "adam_m", "adam_v", "best"];

impl Checkpoint<'_> {
    /// Writes the checkpoint to `path`, replacing any earlier one atomically.
    ///
    /// # Errors
    /// An unwritable path.
    pub fn save(&self, path: &Path, trainer: &Trainer, options: &Options) -> Result<()> {
        let mut named = trainer.state();
        named.extend(
            trainer
                .names()
                .iter()
                .zip(&self.best.weights)
                .map(|(name, t)| (format!("best/{name}"), t.shallow_clone())),
        );
        named.push(("step".to_owned(), Tensor::from(self.step as i64)));
        named.push(("best_step".to_owned(), Tensor::from(self.best.step as i64)));
        named.push(("best_metric".to_owned(), Tensor::from(self.best.metric)));
        named.push(("options".to_owned(), Tensor::from_slice(&fingerprint(options))));
        let steps: Vec<i64> = self.history.iter().map(|s| s.step as i64).collect();
        let losses: Vec<f64> = self.history.iter().map(|s| s.loss).collect();
        let metrics: Vec<f64> = self.history.iter().map(|s| s.metric.unwrap_or(f64::NAN)).collect();
        named.push((HISTORY_STEP.to_owned(), Tensor::from_slice(&steps)));
        named.push((HISTORY_LOSS.to_owned(), Tensor::from_slice(&losses)));
        named.push((HISTORY_METRIC.to_owned(), Tensor::from_slice(&metrics)));
        // The archive's tensors must live on the CPU to be read back anywhere.
        let named: Vec<(String, Tensor)> = named
            .into_iter()
            .map(|(name, t)| (name, t.to_device(tch::Device::Cpu)))
            .collect();
        let mut bytes = Vec::new();
        Tensor::save_multi_to_stream(&named, &mut bytes).context("encoding the checkpoint")?;
        sensgrid_client::atomic_file::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        tracing::debug!(step = self.step, path = %path.display(), "wrote a recovery checkpoint");
        Ok(())
    }

    /// Loads the checkpoint at `path` into `trainer`; None when there is none. The trainer is changed only
    /// once the whole checkpoint has been checked (see the module doc).
    ///
    /// # Errors
    /// An unreadable file, or a checkpoint this recovery cannot resume: the message names the file and what
    /// is wrong with it.
    pub fn load(path: &Path, trainer: &mut Trainer, options: &Options) -> Result<Option<Resumed>> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        };
        let refused = || format!("{}: not a checkpoint this recovery can resume", path.display());
        // Read on the CPU, where checking costs no device round trips; the trainer copies what it takes onto
        // its device.
        let state: HashMap<String, Tensor> = Tensor::load_multi_from_stream(Cursor::new(bytes))
            .context("not a libtorch archive (corrupt or truncated)")
            .with_context(refused)?
            .into_iter()
            .collect();
        let resumed = check(&state, trainer, options).with_context(refused)?;
        trainer.load_state(&state).with_context(refused)?;
        Ok(Some(resumed))
    }
}

/// What `state` resumes, after checking everything [`Trainer::load_state`] will read and everything else the
/// recovery does.
fn check(state: &HashMap<String, Tensor>, trainer: &Trainer, options: &Options) -> Result<Resumed> {
    let made_with = Vec::<i64>::try_from(vector(state, "options", Kind::Int64)?)?;
    let expected = fingerprint(options);
    if made_with != expected {
        bail!("made with (steps, batch size, seed, input size) {made_with:?}, this recovery has {expected:?}");
    }
    let step = integer(state, "step")?;
    ensure!(
        (0..=expected[0]).contains(&step),
        "step {step} is outside this recovery's 0 to {} steps",
        options.steps
    );
    let best_step = integer(state, "best_step")?;
    ensure!(
        (0..=step).contains(&best_step),
        "best_step {best_step} is outside 0 to the step, {step}"
    );
    let updates = integer(state, "adam_updates")?;
    ensure!(updates == step, "adam_updates {updates} differs from the step, {step}");
    let best_metric = scalar(state, "best_metric", Kind::Double)?.f_double_value(&[])?;
    ensure!(best_metric.is_finite(), "best_metric is {best_metric}");

    // The student's own weights, by name and shape: every per-weight tensor must match them, and no other
    // student's weight may be there.
    let shapes: HashMap<String, Vec<i64>> = trainer
        .state()
        .into_iter()
        .filter_map(|(name, t)| Some((name.strip_prefix("weight/")?.to_owned(), t.size())))
        .collect();
    for key in state.keys() {
        if let Some((prefix, name)) = key.split_once('/')
            && WEIGHT_PREFIXES.contains(&prefix)
            && !shapes.contains_key(name)
        {
            bail!("'{key}': the student has no weight '{name}' (a checkpoint of another student)");
        }
    }
    for name in trainer.names() {
        for prefix in WEIGHT_PREFIXES {
            let key = format!("{prefix}/{name}");
            let tensor = state
                .get(&key)
                .with_context(|| format!("no '{key}' (a checkpoint of another student)"))?;
            let (size, kind) = (tensor.size(), tensor.kind());
            if size != shapes[name] || kind != Kind::Float {
                bail!(
                    "'{key}' is {kind:?} {size:?}, the student's '{name}' Float {:?} (a checkpoint of another student)",
                    shapes[name]
                );
            }
            ensure!(all(&tensor.f_isfinite()?)?, "'{key}' holds values that are not finite");
        }
        let second_moment = &state[&format!("adam_v/{name}")];
        ensure!(
            !any(&second_moment.f_lt(0.0)?)?,
            "'adam_v/{name}' holds negative values (Adam's second moments are squares)"
        );
    }

    let history = history(state, step)?;
    let best_weights = trainer
        .names()
        .iter()
        .map(|name| state[&format!("best/{name}")].shallow_clone())
        .collect();
    Ok(Resumed {
        step: step as u64,
        best: Best {
            step: best_step as u64,
            metric: best_metric,
            weights: best_weights,
        },
        history,
    })
}

/// The history of a checkpoint at `step`: steps 1 to `step`, each once and in order, with finite losses and
/// metrics (NaN: not evaluated).
fn history(state: &HashMap<String, Tensor>, step: i64) -> Result<Vec<Step>> {
    let steps = Vec::<i64>::try_from(vector(state, HISTORY_STEP, Kind::Int64)?)?;
    let losses = Vec::<f64>::try_from(vector(state, HISTORY_LOSS, Kind::Double)?)?;
    let metrics = Vec::<f64>::try_from(vector(state, HISTORY_METRIC, Kind::Double)?)?;
    ensure!(
        steps.len() == losses.len() && steps.len() == metrics.len(),
        "its history has {} steps, {} losses and {} metrics",
        steps.len(),
        losses.len(),
        metrics.len()
    );
    ensure!(
        steps.iter().copied().eq(1..=step),
        "its history does not hold steps 1 to {step}, each once"
    );
    steps
        .into_iter()
        .zip(losses)
        .zip(metrics)
        .map(|((step, loss), metric)| {
            ensure!(loss.is_finite(), "the loss of step {step} is {loss}");
            ensure!(!metric.is_infinite(), "the metric of step {step} is {metric}");
            Ok(Step {
                step: step as u64,
                loss,
                metric: (!metric.is_nan()).then_some(metric),
            })
        })
        .collect()
}

/// The tensor `name` of `state`: a single value of `kind`.
fn scalar<'a>(state: &'a HashMap<String, Tensor>, name: &str, kind: Kind) -> Result<&'a Tensor> {
    let tensor = state.get(name).with_context(|| format!("no '{name}'"))?;
    if !tensor.size().is_empty() || tensor.kind() != kind {
        bail!(
            "'{name}' is {:?} {:?}, not a single {kind:?}",
            tensor.kind(),
            tensor.size()
        );
    }
    Ok(tensor)
}

/// The single Int64 `name` of `state`.
fn integer(state: &HashMap<String, Tensor>, name: &str) -> Result<i64> {
    Ok(scalar(state, name, Kind::Int64)?.f_int64_value(&[])?)
}

/// The tensor `name` of `state`: one row of `kind`.
fn vector<'a>(state: &'a HashMap<String, Tensor>, name: &str, kind: Kind) -> Result<&'a Tensor> {
    let tensor = state.get(name).with_context(|| format!("no '{name}'"))?;
    if tensor.size().len() != 1 || tensor.kind() != kind {
        bail!(
            "'{name}' is {:?} {:?}, not a row of {kind:?}",
            tensor.kind(),
            tensor.size()
        );
    }
    Ok(tensor)
}

/// Whether every element of a boolean tensor is true.
fn all(mask: &Tensor) -> Result<bool> {
    Ok(mask.f_all()?.f_int64_value(&[])? != 0)
}

/// Whether any element of a boolean tensor is true.
fn any(mask: &Tensor) -> Result<bool> {
    Ok(mask.f_any()?.f_int64_value(&[])? != 0)
}
