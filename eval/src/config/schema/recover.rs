//! `Recover`: sensgrid's own section, how a pruned model is fine-tuned by distillation from the original
//! (issue 25; the worker's `recover` module). Optional, and every key too: the worker fills in the defaults of
//! the model kind (det trains on fewer, larger images than rec and cls), so they are not set here.

use std::path::PathBuf;

use crate::config::error::Result;
use crate::config::read::{Field, Section};
use crate::config::tree::{Entry, Value};

/// The `Recover` section: each key as the config sets it, None where it is left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recover {
    /// Training steps, at least 1.
    pub steps: Option<u64>,
    /// Images per step, at least 1.
    pub batch_size: Option<usize>,
    /// The peak learning rate of the schedule, positive.
    pub learning_rate: Option<f64>,
    /// The side of det's square training crops, at least 1.
    pub input_size: Option<usize>,
    /// Seeds which images each step draws and how they are augmented.
    pub seed: Option<u64>,
    /// The training images (instead of `Train.dataset`'s); set with `label_file_list`.
    pub data_dir: Option<PathBuf>,
    pub label_file_list: Option<Vec<PathBuf>>,
    /// A checkpoint every this many steps, at least 1.
    pub checkpoint_every: Option<u64>,
    /// The student scored on the eval set every this many steps, at least 1.
    pub eval_every: Option<u64>,
}

/// Reads `Recover`; `None` when the config has no such section.
pub(crate) fn read(entry: Option<&Entry>) -> Result<Option<Recover>> {
    let Some(entry) = entry else { return Ok(None) };
    let section = Section::new(
        "Recover",
        &entry.key_origin,
        Some(&entry.value),
        &[
            "steps",
            "batch_size",
            "learning_rate",
            "input_size",
            "seed",
            "data_dir",
            "label_file_list",
            "checkpoint_every",
            "eval_every",
        ],
    )?;
    let steps = |f: Field<'_>| f.positive_count().map(|n| n as u64);
    let recover = Recover {
        steps: section.get("steps", steps)?,
        batch_size: section.get("batch_size", |f| f.positive_count())?,
        learning_rate: section.get("learning_rate", |f| f.positive_number())?,
        input_size: section.get("input_size", |f| f.positive_count())?,
        seed: section.get("seed", |f| f.count())?.map(|seed| seed as u64),
        data_dir: section.get("data_dir", |f| f.path_buf())?,
        label_file_list: section.get("label_file_list", |f| match f.node.value {
            Value::Str(_) => Ok(vec![f.path_buf()?]),
            _ => f.list(|item| item.path_buf()),
        })?,
        checkpoint_every: section.get("checkpoint_every", steps)?,
        eval_every: section.get("eval_every", steps)?,
    };
    if recover.data_dir.is_some() != recover.label_file_list.is_some() {
        return Err(section.error("data_dir and label_file_list go together"));
    }
    Ok(Some(recover))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = include_str!("../../../../examples/configs/det_ppocrv3.yml");

    fn load(overrides: &[&str]) -> crate::config::Result<Config> {
        Config::from_yaml(BASE, "det.yml", overrides)
    }

    #[test]
    fn recover_keys_are_read_and_left_out_ones_stay_unset() {
        assert_eq!(load(&[]).unwrap().recover(), None);
        let config = load(&[
            "Recover.steps=20",
            "Recover.learning_rate=0.001",
            "Recover.data_dir=data/train",
            "Recover.label_file_list=data/train/label.txt",
        ])
        .unwrap();
        let recover = config.recover().unwrap();
        assert_eq!(recover.steps, Some(20));
        assert_eq!(recover.learning_rate, Some(0.001));
        assert_eq!(recover.batch_size, None);
        assert_eq!(
            recover.label_file_list.as_deref(),
            Some(&["data/train/label.txt".into()][..])
        );
    }

    #[test]
    fn bad_recover_keys_are_refused() {
        for (bad, expected) in [
            ("Recover.steps=0", "Recover.steps"),
            ("Recover.learning_rate=-1", "Recover.learning_rate"),
            ("Recover.stepz=3", "stepz"),
            ("Recover.data_dir=data/train", "go together"),
        ] {
            let error = load(&[bad]).unwrap_err().to_string();
            assert!(error.contains(expected), "{bad}: {error}");
        }
    }
}
