//! `-o KEY=VALUE` overrides, applied as PaddleOCR's `tools/program.py` applies them (`ArgsParser._parse_opt`,
//! `merge_config`):
//!
//! - the value is YAML (`[a.txt,b.txt]` is a list, `0.5` a float, `True` a bool, `null` or nothing is null);
//! - a key without a dot names a top-level section: a map value is merged into the section key by key, any
//!   other value replaces it;
//! - a dotted key walks maps that must exist (PaddleOCR asserts the section exists and indexes every key but
//!   the last) and sets its last key, creating it if needed. Whether a created key is allowed is up to the
//!   schema: in a strict section an unknown key is then an error that names the override.
//!
//! Where sensgrid differs: `Sensitivity` and `Prune` are sensgrid's own sections, absent from stock PaddleOCR
//! configs, so a dotted override into them creates the section; the text is split at the first `=` only
//! (old PaddleOCR refuses a value containing `=`); every `-o` flag counts (argparse keeps only the last one);
//! overrides apply in the order given.

use std::sync::Arc;

use super::error::{ConfigError, Result};
use super::schema::{OWN_SECTIONS, nearest};
use super::tree::{self, Map, Node, Origin, Value};

/// One parsed `KEY=VALUE`.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    text: Arc<str>,
    key: Vec<String>,
    value: Node,
}

impl Override {
    /// Parses one `KEY=VALUE` as typed after `-o` (surrounding blanks are ignored, as PaddleOCR strips them).
    ///
    /// # Errors
    /// No `=`, an empty key or key segment (`Global..x`), a value that is not YAML, or a text over
    /// [`super::MAX_CONFIG_BYTES`]; each names the text (the start of it, for the last).
    pub fn parse(text: &str) -> Result<Self> {
        if text.len() > super::MAX_CONFIG_BYTES {
            let start: String = text.chars().take(40).collect();
            return Err(ConfigError::Override {
                text: format!("{start}…"),
                message: format!(
                    "{} bytes, over the limit of {} MiB ({} bytes) for an override",
                    text.len(),
                    super::MAX_CONFIG_BYTES >> 20,
                    super::MAX_CONFIG_BYTES
                ),
            });
        }
        let text = text.trim();
        let bad = |message: &str| ConfigError::Override {
            text: text.to_owned(),
            message: message.to_owned(),
        };
        let (key, value) = text.split_once('=').ok_or_else(|| bad("expected KEY=VALUE"))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(bad("empty key (expected KEY=VALUE)"));
        }
        let key: Vec<String> = key.split('.').map(str::to_owned).collect();
        if key.iter().any(String::is_empty) {
            return Err(bad("empty key segment (expected KEY.SUBKEY=VALUE)"));
        }
        let origin = Origin::Override(Arc::from(text));
        let value = tree::parse(value, &|_| origin.clone()).map_err(|e| ConfigError::Yaml {
            origin: origin.clone(),
            message: e.message,
        })?;
        Ok(Self {
            text: Arc::from(text),
            key,
            value,
        })
    }

    /// The override as typed (trimmed).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The dotted key.
    pub fn key(&self) -> String {
        self.key.join(".")
    }

    /// The parsed value; every node of it has this override as its origin.
    pub fn value(&self) -> &Node {
        &self.value
    }

    fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Override {
            text: self.text.to_string(),
            message: message.into(),
        }
    }
}

/// Parses and applies each `KEY=VALUE` in order. Several pairs after one `-o` and repeated `-o` flags are the
/// same thing: pass the pairs of all flags in command-line order (`groups.concat()`).
///
/// # Errors
/// The first override that does not parse or cannot be applied, naming its text.
pub fn apply_all<S: AsRef<str>>(root: &mut Map, overrides: &[S]) -> Result<()> {
    for text in overrides {
        apply(root, &Override::parse(text.as_ref())?)?;
    }
    Ok(())
}

/// Applies one override to the top-level map of a config.
///
/// # Errors
/// A dotted key whose section is not in the config, or whose path goes through a missing key or a non-map.
pub fn apply(root: &mut Map, o: &Override) -> Result<()> {
    let origin = Origin::Override(o.text.clone());
    let (section, rest) = o.key.split_first().expect("a parsed key has a segment");
    if rest.is_empty() {
        match (root.get_mut(section), &o.value.value) {
            (
                Some(Node {
                    value: Value::Map(existing),
                    ..
                }),
                Value::Map(new),
            ) => {
                for entry in new.entries() {
                    existing.insert(&entry.key, entry.key_origin.clone(), entry.value.clone());
                }
            }
            _ => root.insert(section, origin, o.value.clone()),
        }
        return Ok(());
    }
    if OWN_SECTIONS.contains(&section.as_str()) && root.get(section).is_none_or(|n| n.value == Value::Null) {
        let key_origin = root
            .entry(section)
            .map_or_else(|| origin.clone(), |e| e.key_origin.clone());
        let empty = Node {
            value: Value::Map(Map::default()),
            origin: key_origin.clone(),
        };
        root.insert(section, key_origin, empty);
    }
    if root.get(section).is_none() {
        let hint = nearest(section, root.keys().chain(OWN_SECTIONS))
            .map_or_else(String::new, |name| format!(" (did you mean {name}?)"));
        return Err(o.error(format!("{section}: no such section in the config{hint}")));
    }
    let mut node = root.get_mut(section).expect("checked above");
    let mut path = section.clone();
    for (i, key) in rest.iter().enumerate() {
        let got = node.describe();
        let Value::Map(map) = &mut node.value else {
            return Err(o.error(format!("{path}: expected a map to set '{key}' in, got {got}")));
        };
        if i + 1 == rest.len() {
            map.insert(key, origin, o.value.clone());
            return Ok(());
        }
        path = format!("{path}.{key}");
        node = map
            .get_mut(key)
            .ok_or_else(|| o.error(format!("{path}: no such key")))?;
    }
    unreachable!("the loop returns at the last key")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(text: &str) -> Map {
        let path: Arc<Path> = Arc::from(Path::new("t.yml"));
        let node = tree::parse(text, &|line| Origin::File {
            path: path.clone(),
            line: Some(line),
        })
        .unwrap();
        node.as_map().unwrap().clone()
    }

    fn err(root: &mut Map, text: &str) -> String {
        let result = Override::parse(text).and_then(|o| apply(root, &o));
        result.unwrap_err().to_string()
    }

    #[test]
    fn values_are_yaml() {
        let o = Override::parse(" Eval.dataset.label_file_list=[a.txt, b.txt] ").unwrap();
        assert_eq!(o.key(), "Eval.dataset.label_file_list");
        assert_eq!(o.text(), "Eval.dataset.label_file_list=[a.txt, b.txt]");
        let Value::Seq(items) = &o.value().value else { panic!() };
        assert_eq!(items[1].value, Value::Str("b.txt".into()));
        assert_eq!(
            items[1].origin.to_string(),
            "-o Eval.dataset.label_file_list=[a.txt, b.txt]"
        );
        assert_eq!(Override::parse("A.b=0.25").unwrap().value().value, Value::Float(0.25));
        assert_eq!(Override::parse("A.b=False").unwrap().value().value, Value::Bool(false));
        assert_eq!(Override::parse("A.b=null").unwrap().value().value, Value::Null);
        assert_eq!(Override::parse("A.b=").unwrap().value().value, Value::Null);
        assert_eq!(
            Override::parse("A.b=x=y").unwrap().value().value,
            Value::Str("x=y".into())
        );
        assert_eq!(
            Override::parse("A.b=1./255.").unwrap().value().value,
            Value::Str("1./255.".into())
        );
    }

    #[test]
    fn malformed_overrides_name_their_text() {
        let e = |text: &str| Override::parse(text).unwrap_err().to_string();
        assert_eq!(
            e("Global.pretrained_model"),
            "-o Global.pretrained_model: expected KEY=VALUE"
        );
        assert_eq!(e("=x"), "-o =x: empty key (expected KEY=VALUE)");
        assert_eq!(
            e("Global..x=1"),
            "-o Global..x=1: empty key segment (expected KEY.SUBKEY=VALUE)"
        );
        assert_eq!(
            e("Global.x.=1"),
            "-o Global.x.=1: empty key segment (expected KEY.SUBKEY=VALUE)"
        );
        assert!(
            e("A.b=[1, 2").starts_with("-o A.b=[1, 2: not valid YAML: "),
            "{}",
            e("A.b=[1, 2")
        );
    }

    #[test]
    fn dotted_keys_follow_merge_config() {
        let mut root = config("Global:\n  use_gpu: true\nEval:\n  dataset:\n    data_dir: d\n");
        apply_all(&mut root, &["Eval.dataset.data_dir=/data", "Global.new_key=3"]).unwrap();
        assert_eq!(
            root.get("Eval").unwrap().lookup("dataset.data_dir").unwrap().value,
            Value::Str("/data".into())
        );
        assert_eq!(root.get("Global").unwrap().get("new_key").unwrap().value, Value::Int(3));
        assert_eq!(
            err(&mut root, "Nope.x=1"),
            "-o Nope.x=1: Nope: no such section in the config"
        );
        assert_eq!(
            err(&mut root, "Eval.datset.data_dir=1"),
            "-o Eval.datset.data_dir=1: Eval.datset: no such key"
        );
        assert_eq!(
            err(&mut root, "Global.use_gpu.x=1"),
            "-o Global.use_gpu.x=1: Global.use_gpu: expected a map to set 'x' in, got true"
        );
    }

    #[test]
    fn plain_keys_merge_maps_and_replace_the_rest() {
        let mut root = config("Global:\n  use_gpu: true\n  epoch_num: 3\n");
        apply_all(&mut root, &["Global={use_gpu: false}", "Extra=[1]"]).unwrap();
        let global = root.get("Global").unwrap();
        assert_eq!(global.get("use_gpu").unwrap().value, Value::Bool(false));
        assert_eq!(global.get("epoch_num").unwrap().value, Value::Int(3));
        assert!(matches!(root.get("Extra").unwrap().value, Value::Seq(_)));
        apply_all(&mut root, &["Global=7"]).unwrap();
        assert_eq!(root.get("Global").unwrap().value, Value::Int(7));
    }

    #[test]
    fn sensgrid_sections_are_created() {
        let mut root = config("Global:\n  use_gpu: true\nPrune:\n");
        apply_all(&mut root, &["Sensitivity.criterion=fpgm", "Prune.max_loss=0.1"]).unwrap();
        assert_eq!(
            root.get("Sensitivity").unwrap().get("criterion").unwrap().value,
            Value::Str("fpgm".into())
        );
        let prune = root.entry("Prune").unwrap();
        assert_eq!(prune.key_origin.to_string(), "t.yml:3");
        assert_eq!(prune.value.get("max_loss").unwrap().value, Value::Float(0.1));
    }
}
