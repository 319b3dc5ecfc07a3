//! Typed views of the strict sections, one module each. Every key they do not know is an error; everything
//! else in a config (Train, Loss, Optimizer, Architecture, most of Global, Eval.loader) is kept in the tree
//! and left alone.

pub mod dataset;
pub mod metric;
pub mod post_process;
pub mod prune;
pub mod sensitivity;
pub mod transform;

use crate::config::error::Result;
use crate::config::read::Field;
use crate::config::tree::Value;

/// A cls `label_list`: non-empty, of strings, since the labels read from label files are strings and
/// PaddleOCR would silently match none of `[0, 180]`.
fn label_list(f: Field<'_>) -> Result<Vec<String>> {
    let labels = f.list(|item| match &item.node.value {
        Value::Str(s) => Ok(s.clone()),
        Value::Int(_) | Value::Float(_) => {
            let got = item.node.describe();
            Err(item.error(format!("expected a string, got {got} (quote it: '{got}')")))
        }
        _ => Err(item.expected("a string")),
    })?;
    if labels.is_empty() {
        return Err(f.error("expected at least one label, got an empty list"));
    }
    Ok(labels)
}
