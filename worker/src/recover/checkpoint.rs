//! The recovery checkpoint: one libtorch archive holding the weights, Adam's moments and update count, the
//! step, the best weights with their step and metric, and the options it was made with. The random state is
//! the step (each step's images come from a stream seeded by the seed and the step), so nothing else needs
//! saving. Written whole or not at all (`atomic_file`), so a worker killed while writing leaves the previous
//! checkpoint.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;

use anyhow::{Context, Result, bail};
use tch::Tensor;

use super::train::Trainer;
use super::{Best, Options};

/// What a checkpoint saves beyond the trainer's state.
pub struct Checkpoint<'a> {
    /// Steps done.
    pub step: u64,
    pub best: &'a Best,
}

/// What a loaded checkpoint resumes.
pub struct Resumed {
    pub step: u64,
    pub best: Best,
}

/// The options a checkpoint must share with the recovery that resumes it: the ones that decide which
/// images each step sees and how far the schedule goes.
fn fingerprint(options: &Options) -> Tensor {
    Tensor::from_slice(&[
        options.steps as i64,
        options.batch_size as i64,
        options.seed as i64,
        options.input_size,
    ])
}

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
        named.push(("options".to_owned(), fingerprint(options)));
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

    /// Loads the checkpoint at `path` into `trainer`; None when there is none.
    ///
    /// # Errors
    /// An unreadable checkpoint, or one of another student or other options.
    pub fn load(path: &Path, trainer: &mut Trainer, options: &Options) -> Result<Option<Resumed>> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        };
        let device = trainer.device();
        let state: HashMap<String, Tensor> = Tensor::load_multi_from_stream_with_device(Cursor::new(bytes), device)
            .with_context(|| format!("{}: not a recovery checkpoint", path.display()))?
            .into_iter()
            .collect();
        let scalar = |name: &str| {
            state
                .get(name)
                .with_context(|| format!("{}: no {name}", path.display()))
        };
        if !scalar("options")?
            .to_device(tch::Device::Cpu)
            .equal(&fingerprint(options))
        {
            bail!(
                "{}: made with other steps, batch size, seed or input size; remove it to start over",
                path.display()
            );
        }
        trainer
            .load_state(&state)
            .with_context(|| format!("{}: a checkpoint of another student", path.display()))?;
        let best_weights = trainer
            .names()
            .iter()
            .map(|name| scalar(&format!("best/{name}")).map(Tensor::shallow_clone))
            .collect::<Result<_>>()?;
        Ok(Some(Resumed {
            step: scalar("step")?.int64_value(&[]) as u64,
            best: Best {
                step: scalar("best_step")?.int64_value(&[]) as u64,
                metric: scalar("best_metric")?.double_value(&[]),
                weights: best_weights,
            },
        }))
    }
}
