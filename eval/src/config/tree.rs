//! The whole YAML tree of a config, as PaddleOCR's reader builds it, with where every key and value came from
//! (a line of the file or an `-o` override), so any check made later can point at it.
//!
//! Parsing is saphyr's YAML 1.2 with one change: plain `yes`/`no`/`on`/`off` (any of PyYAML's spellings)
//! are booleans, as PyYAML's YAML 1.1 reads them for PaddleOCR. The other 1.1 differences (sexagesimal
//! numbers, `1e-4` without a dot read as a string, `0755` as octal) do not occur in PaddleOCR's configs, and
//! where they would the 1.2 reading is the one a person means. Typed reading lives in `read.rs`, not here.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, ScalarStyle, YamlDataOwned, YamlLoader};
use saphyr_parser::{Event, Span, SpannedEventReceiver};

/// Where a key or value came from; its `Display` is the start of every error message about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The config file; `line` (1-based) is `None` for the file as a whole, e.g. for a missing section.
    File { path: Arc<Path>, line: Option<usize> },
    /// An override, as typed after `-o` (`Global.pretrained_model=det.onnx`).
    Override(Arc<str>),
}

impl Origin {
    /// The override's key (the text before the first `=`), when this origin is an override.
    pub fn override_key(&self) -> Option<&str> {
        match self {
            Origin::Override(text) => Some(text.split_once('=').map_or(&**text, |(key, _)| key).trim()),
            Origin::File { .. } => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line: Some(line) } => write!(f, "{}:{line}", path.display()),
            Origin::File { path, line: None } => write!(f, "{}", path.display()),
            Origin::Override(text) => write!(f, "-o {text}"),
        }
    }
}

/// One value of the tree and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub origin: Origin,
}

/// A YAML value, resolved the way PaddleOCR's Python sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Map),
}

/// A YAML mapping in file order. Keys are strings, as in every PaddleOCR config; a scalar key of another
/// type is kept as its text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Map {
    entries: Vec<Entry>,
}

/// One key of a [`Map`], with the origin of the key itself: an unknown key is reported at its own line.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_origin: Origin,
    pub value: Node,
}

impl Map {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    /// The entry of `key`, with the key's own origin.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// The value under `key`, to change it in place.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.entries.iter_mut().find(|e| e.key == key).map(|e| &mut e.value)
    }

    /// Sets `key` to `value`: in place (keeping the key's position) when it exists, else at the end.
    pub fn insert(&mut self, key: &str, key_origin: Origin, value: Node) {
        match self.entries.iter_mut().find(|e| e.key == key) {
            Some(entry) => {
                entry.key_origin = key_origin;
                entry.value = value;
            }
            None => self.entries.push(Entry {
                key: key.to_owned(),
                key_origin,
                value,
            }),
        }
    }

    /// The entries in file order (overridden keys stay where they were; new ones come last).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// The keys in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.key.as_str())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Node {
    /// The map this node holds, if it is one.
    pub fn as_map(&self) -> Option<&Map> {
        match &self.value {
            Value::Map(map) => Some(map),
            _ => None,
        }
    }

    /// The value under `key` when this node is a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.get(key)
    }

    /// The value at a dotted path (`Eval.dataset.data_dir`), through maps only.
    pub fn lookup(&self, dotted: &str) -> Option<&Node> {
        dotted.split('.').try_fold(self, |node, key| node.get(key))
    }

    /// The value as error messages quote it after "got": `"high"`, `3`, `0.5`, `true`, `null`, `a list`.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(x) => format!("{x:?}"),
            Value::Str(s) => format!("{s:?}"),
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a map".into(),
        }
    }
}

/// A YAML text that did not parse: the 1-based line (when known) and saphyr's message.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub line: Option<usize>,
    pub message: String,
}

/// Parses one YAML document; `origin` maps a 1-based line to the origin recorded on each node.
/// An empty text (or one of comments only) is `null`, as PyYAML reads it.
pub(crate) fn parse(text: &str, origin: &dyn Fn(usize) -> Origin) -> Result<Node, SyntaxError> {
    let scan_error = |e: &saphyr::ScanError| SyntaxError {
        line: Some(e.marker().line()),
        message: e.info().to_owned(),
    };
    let mut loader: YamlLoader<MarkedYamlOwned> = YamlLoader::default();
    // Scalars stay raw so that their style (plain or quoted) is known when resolving YAML 1.1 booleans.
    loader.early_parse(false);
    let mut parser = saphyr_parser::Parser::new_from_str(text);
    let mut budget = AliasBudget {
        loader: &mut loader,
        anchor_bytes: HashMap::new(),
        open: Vec::new(),
        copied: 0,
        exceeded_at: None,
    };
    parser.load(&mut budget, true).map_err(|e| scan_error(&e))?;
    if let Some(line) = budget.exceeded_at {
        return Err(SyntaxError {
            line: Some(line),
            message: format!(
                "aliases here copy more than {} MiB ({MAX_ALIAS_BYTES} bytes) of the document (a config aliases a \
                 few small values)",
                MAX_ALIAS_BYTES >> 20
            ),
        });
    }
    if let Some(e) = loader.error() {
        return Err(scan_error(e));
    }
    let mut docs = loader.into_documents().into_iter();
    let Some(doc) = docs.next() else {
        return Ok(Node {
            value: Value::Null,
            origin: origin(1),
        });
    };
    if let Some(second) = docs.next() {
        return Err(SyntaxError {
            line: Some(second.span.start.line()),
            message: "a config is one YAML document, found a second one".into(),
        });
    }
    if doc.is_badvalue() {
        // An empty document (`---` alone).
        return Ok(Node {
            value: Value::Null,
            origin: origin(doc.span.start.line()),
        });
    }
    convert(doc, origin)
}

/// The most bytes of scalars that aliases may copy in one document, 1 MiB, as much as the largest config. saphyr
/// bounds the nodes an alias copies but not their bytes: 4 KB of YAML can alias a 1000-character string a
/// hundred thousand times, 100 MB of copies, and a larger file gigabytes.
const MAX_ALIAS_BYTES: usize = super::MAX_CONFIG_BYTES;

/// Passes the parser's events on to the loader while counting the scalar bytes each anchored node holds and
/// each alias copies; once the copies pass [`MAX_ALIAS_BYTES`] it records the line and passes nothing more on,
/// so the loader never makes them.
struct AliasBudget<'a, R> {
    loader: &'a mut R,
    /// The scalar bytes under each anchor, by anchor id.
    anchor_bytes: HashMap<usize, usize>,
    /// The sequences and maps being read, innermost last: their anchor id (0 for none) and bytes so far.
    open: Vec<(usize, usize)>,
    copied: usize,
    exceeded_at: Option<usize>,
}

impl<'input, R: SpannedEventReceiver<'input>> SpannedEventReceiver<'input> for AliasBudget<'_, R> {
    fn on_event(&mut self, event: Event<'input>, span: Span) {
        if self.exceeded_at.is_some() {
            return;
        }
        // A finished node: its anchor id and its bytes.
        let finished = match &event {
            Event::Scalar(text, _, anchor, _) => Some((*anchor, text.len())),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.open.push((*anchor, 0));
                None
            }
            Event::SequenceEnd | Event::MappingEnd => self.open.pop(),
            Event::Alias(anchor) => {
                let bytes = self.anchor_bytes.get(anchor).copied().unwrap_or(0);
                self.copied = self.copied.saturating_add(bytes);
                if self.copied > MAX_ALIAS_BYTES {
                    self.exceeded_at = Some(span.start.line());
                    return;
                }
                Some((0, bytes))
            }
            _ => None,
        };
        if let Some((anchor, bytes)) = finished {
            if anchor != 0 {
                self.anchor_bytes.insert(anchor, bytes);
            }
            if let Some((_, parent)) = self.open.last_mut() {
                *parent = parent.saturating_add(bytes);
            }
        }
        self.loader.on_event(event, span);
    }
}

fn convert(node: MarkedYamlOwned, origin: &dyn Fn(usize) -> Origin) -> Result<Node, SyntaxError> {
    let line = node.span.start.line();
    let bad = |message: String| SyntaxError {
        line: Some(line),
        message,
    };
    let value = match node.data {
        YamlDataOwned::Representation(text, style, tag) => {
            // Only a core tag (`!!int`) can refuse its value; other tags leave it to be resolved as usual.
            let tag_text = tag.as_ref().map(|t| format!("!!{}", t.suffix));
            let tag = tag.map(Cow::Owned);
            let scalar = ScalarOwned::parse_from_cow_and_metadata(Cow::Borrowed(&text), style, tag.as_ref())
                .ok_or_else(|| bad(format!("{text:?} is not a valid {}", tag_text.unwrap_or_default())))?;
            match yaml11_bool(&text) {
                Some(b) if style == ScalarStyle::Plain && tag.is_none() => Value::Bool(b),
                _ => scalar_value(scalar),
            }
        }
        YamlDataOwned::Value(scalar) => scalar_value(scalar),
        YamlDataOwned::Sequence(items) => Value::Seq(
            items
                .into_iter()
                .map(|item| convert(item, origin))
                .collect::<Result<_, _>>()?,
        ),
        YamlDataOwned::Mapping(pairs) => {
            let mut map = Map::default();
            for (key, value) in pairs {
                let key_line = key.span.start.line();
                let key_node = convert(key, origin)?;
                let name = match key_node.value {
                    Value::Str(s) => s,
                    Value::Null => "null".into(),
                    Value::Bool(b) => if b { "True" } else { "False" }.into(),
                    Value::Int(i) => i.to_string(),
                    Value::Float(x) => x.to_string(),
                    Value::Seq(_) | Value::Map(_) => {
                        return Err(SyntaxError {
                            line: Some(key_line),
                            message: "a list or map as a mapping key is not supported".into(),
                        });
                    }
                };
                map.insert(&name, origin(key_line), convert(value, origin)?);
            }
            Value::Map(map)
        }
        // A local tag (`!custom`) changes nothing PaddleOCR reads; the core tags were resolved by saphyr.
        YamlDataOwned::Tagged(_, inner) => return convert(*inner, origin),
        YamlDataOwned::Alias(_) | YamlDataOwned::BadValue => return Err(bad("unknown alias or invalid value".into())),
    };
    Ok(Node {
        value,
        origin: origin(line),
    })
}

fn scalar_value(scalar: ScalarOwned) -> Value {
    match scalar {
        ScalarOwned::Null => Value::Null,
        ScalarOwned::Boolean(b) => Value::Bool(b),
        ScalarOwned::Integer(i) => Value::Int(i),
        ScalarOwned::FloatingPoint(x) => Value::Float(x.into_inner()),
        ScalarOwned::String(s) => Value::Str(s),
    }
}

/// PyYAML's YAML 1.1 booleans beyond YAML 1.2's `true`/`false`.
fn yaml11_bool(text: &str) -> Option<bool> {
    match text {
        "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Node {
        let path: Arc<Path> = Arc::from(Path::new("t.yml"));
        parse(text, &|line| Origin::File {
            path: path.clone(),
            line: Some(line),
        })
        .unwrap()
    }

    fn line(node: &Node) -> usize {
        match node.origin {
            Origin::File { line: Some(line), .. } => line,
            _ => panic!("no line"),
        }
    }

    #[test]
    fn scalars_resolve_as_pyyaml_reads_paddleocr_configs() {
        let tree = load(
            "a: True\nb: no\nc: 'no'\nd: 1./255.\ne: 0.5\nf: 3\ng:\nh: ~\ni: 3.0e-05\nj: [1, x]\nk: \"on\"\nl: Off\n",
        );
        let get = |k: &str| tree.get(k).unwrap().value.clone();
        assert_eq!(get("a"), Value::Bool(true));
        assert_eq!(get("b"), Value::Bool(false));
        assert_eq!(get("c"), Value::Str("no".into()));
        assert_eq!(get("d"), Value::Str("1./255.".into()));
        assert_eq!(get("e"), Value::Float(0.5));
        assert_eq!(get("f"), Value::Int(3));
        assert_eq!(get("g"), Value::Null);
        assert_eq!(get("h"), Value::Null);
        assert_eq!(get("i"), Value::Float(3.0e-05));
        assert_eq!(get("k"), Value::Str("on".into()));
        assert_eq!(get("l"), Value::Bool(false));
        let Value::Seq(items) = get("j") else { panic!() };
        assert_eq!(items[1].value, Value::Str("x".into()));
    }

    #[test]
    fn keys_and_values_keep_their_lines() {
        let tree = load("Global:\n  use_gpu: true\n\nPostProcess:\n  name: DBPostProcess\n  thresh: 0.3\n");
        let post = tree.as_map().unwrap().entry("PostProcess").unwrap();
        assert_eq!(post.key_origin.to_string(), "t.yml:4");
        let thresh = post.value.as_map().unwrap().entry("thresh").unwrap();
        assert_eq!(line(&thresh.value), 6);
        assert_eq!(thresh.key_origin.to_string(), "t.yml:6");
        assert_eq!(tree.lookup("Global.use_gpu").unwrap().value, Value::Bool(true));
    }

    #[test]
    fn anchors_and_aliases_resolve() {
        let tree = load("Global:\n  max_text_length: &len 25\nHead:\n  max: *len\n");
        let max = tree.lookup("Head.max").unwrap();
        assert_eq!(max.value, Value::Int(25));
        assert_eq!(line(max), 4);
    }

    #[test]
    fn syntax_errors_and_duplicate_keys_carry_their_line() {
        let path: Arc<Path> = Arc::from(Path::new("t.yml"));
        let origin = |line| Origin::File {
            path: path.clone(),
            line: Some(line),
        };
        let e = parse("a: 1\nb: [1, 2\nc: 3\n", &origin).unwrap_err();
        assert!(e.line.is_some(), "{e:?}");
        let e = parse("a: 1\nb: 2\na: 3\n", &origin).unwrap_err();
        assert_eq!(e.line, Some(3), "{e:?}");
        assert!(e.message.contains("duplicate"), "{e:?}");
        let e = parse("a: 1\nb: !!int abc\n", &origin).unwrap_err();
        assert_eq!(
            (e.line, e.message.as_str()),
            (Some(2), "\"abc\" is not a valid !!int"),
            "{e:?}"
        );
        let e = parse("a: 1\n---\nb: 2\n", &origin).unwrap_err();
        assert_eq!(e.line, Some(3), "{e:?}");
    }

    #[test]
    fn aliases_copying_more_than_a_mebibyte_are_refused_at_their_line() {
        let path: Arc<Path> = Arc::from(Path::new("t.yml"));
        let origin = |line| Origin::File {
            path: path.clone(),
            line: Some(line),
        };
        // 2 KB of YAML: a 1000-byte string aliased 30 times in a list, that list aliased 40 times: 1.2 MB.
        let long = "x".repeat(1000);
        let thirty = vec!["*s"; 30].join(", ");
        let forty = vec!["*l"; 40].join(", ");
        let text = format!("s: &s {long}\nl: &l [{thirty}]\nm: [{forty}]\n");
        let e = parse(&text, &origin).unwrap_err();
        assert_eq!(e.line, Some(3), "{e:?}");
        assert_eq!(
            e.message,
            "aliases here copy more than 1 MiB (1048576 bytes) of the document (a config aliases a few small values)"
        );
        // Under the budget, aliases resolve as before.
        let text = format!("s: &s {long}\nl: &l [{thirty}]\nm: [*l, *l]\n");
        let tree = parse(&text, &origin).unwrap();
        let Value::Seq(m) = &tree.get("m").unwrap().value else {
            panic!()
        };
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn empty_text_is_null() {
        assert_eq!(load("").value, Value::Null);
        assert_eq!(load("# only a comment\n").value, Value::Null);
    }
}
