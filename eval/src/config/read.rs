//! Typed reading of the strict sections: every "unknown key", "required", "expected a number, got …" message
//! is built here, so the schema modules only say what they expect.

use std::path::PathBuf;

use super::error::{ConfigError, Result};
use super::tree::{Map, Node, Origin, Value};

/// One value being read, with its dotted key path (`Sensitivity.ratios[2]`).
#[derive(Clone, Copy)]
pub(crate) struct Field<'a> {
    pub path: &'a str,
    pub node: &'a Node,
}

/// A [`Field`] that owns its path, as the items of a list and the values found in `Global` need.
pub(crate) struct FieldBuf<'a> {
    pub path: String,
    pub node: &'a Node,
}

impl<'a> FieldBuf<'a> {
    pub fn field(&self) -> Field<'_> {
        Field {
            path: &self.path,
            node: self.node,
        }
    }
}

impl<'a> Field<'a> {
    /// An error about this value.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::key(&self.node.origin, self.path, message)
    }

    /// `expected {what}, got {the value}`.
    pub fn expected(&self, what: &str) -> ConfigError {
        self.error(format!("expected {what}, got {}", self.node.describe()))
    }

    /// An integer or a float.
    pub fn number(&self) -> Result<f64> {
        match self.node.value {
            Value::Int(i) => Ok(i as f64),
            Value::Float(x) => Ok(x),
            _ => Err(self.expected("a number")),
        }
    }

    /// A number within `(low, high)`, or `[low, high]` where `inclusive` says so.
    pub fn number_in(&self, low: f64, high: f64, inclusive: bool) -> Result<f64> {
        let x = self.number()?;
        let inside = if inclusive {
            (low..=high).contains(&x)
        } else {
            x > low && x < high
        };
        if inside {
            Ok(x)
        } else {
            let (open, close) = if inclusive { ('[', ']') } else { ('(', ')') };
            Err(self.error(format!("expected a number in {open}{low}, {high}{close}, got {x}")))
        }
    }

    /// A number greater than zero, and finite.
    pub fn positive_number(&self) -> Result<f64> {
        let x = self.number()?;
        if x > 0.0 && x.is_finite() {
            Ok(x)
        } else {
            Err(self.error(format!("expected a number > 0, got {}", self.node.describe())))
        }
    }

    /// A non-negative integer.
    pub fn count(&self) -> Result<usize> {
        match self.node.value {
            Value::Int(i) if i >= 0 => Ok(i as usize),
            Value::Int(i) => Err(self.error(format!("expected an integer >= 0, got {i}"))),
            _ => Err(self.expected("an integer")),
        }
    }

    /// An integer of at least 1.
    pub fn positive_count(&self) -> Result<usize> {
        match self.node.value {
            Value::Int(i) if i >= 1 => Ok(i as usize),
            Value::Int(i) => Err(self.error(format!("expected an integer >= 1, got {i}"))),
            _ => Err(self.expected("an integer")),
        }
    }

    pub fn bool(&self) -> Result<bool> {
        match self.node.value {
            Value::Bool(b) => Ok(b),
            _ => Err(self.expected("true or false")),
        }
    }

    pub fn str(&self) -> Result<&'a str> {
        match &self.node.value {
            Value::Str(s) => Ok(s),
            _ => Err(self.expected("a string")),
        }
    }

    /// A non-empty string, as a path (relative paths stay relative to the current directory, where
    /// PaddleOCR opens them).
    pub fn path_buf(&self) -> Result<PathBuf> {
        match self.str()? {
            "" => Err(self.error("expected a path, got an empty string")),
            s => Ok(PathBuf::from(s)),
        }
    }

    /// One of the named values, e.g. `fast` or `slow`.
    pub fn choice<T: Copy>(&self, choices: &[(&str, T)]) -> Result<T> {
        let names = || choices.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ");
        let Value::Str(s) = &self.node.value else {
            return Err(self.expected(&format!("one of {}", names())));
        };
        choices
            .iter()
            .find(|(name, _)| name == s)
            .map(|(_, value)| *value)
            .ok_or_else(|| self.error(format!("expected one of {}, got {s:?}", names())))
    }

    /// The items of a list, each with its path (`ratios[2]`).
    pub fn items(&self) -> Result<Vec<FieldBuf<'a>>> {
        match &self.node.value {
            Value::Seq(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, node)| FieldBuf {
                    path: format!("{}[{i}]", self.path),
                    node,
                })
                .collect()),
            _ => Err(self.expected("a list")),
        }
    }

    /// A list whose every item `read` accepts.
    pub fn list<T>(&self, read: impl Fn(Field<'_>) -> Result<T>) -> Result<Vec<T>> {
        self.items()?.iter().map(|item| read(item.field())).collect()
    }

    /// A list of exactly `N` items.
    pub fn array<T, const N: usize>(&self, read: impl Fn(Field<'_>) -> Result<T>) -> Result<[T; N]> {
        let items = self.list(read)?;
        let len = items.len();
        items
            .try_into()
            .map_err(|_| self.error(format!("expected a list of {N} items, got {len}")))
    }
}

/// A map whose keys are checked against the ones the schema knows. `Section::field` looks in `global` first:
/// PaddleOCR updates every transform's and the post-process's arguments with the whole `Global` section, so a
/// key set there wins over the same key set on the op.
pub(crate) struct Section<'a> {
    path: String,
    at: &'a Origin,
    map: Option<&'a Map>,
    global: Option<&'a Map>,
}

impl<'a> Section<'a> {
    /// `node` as a section at `path` that allows only the `known` keys; `at` is where it is named, for
    /// "required" errors. An absent or null node is an empty section.
    ///
    /// # Errors
    /// A node that is neither a map nor null, or a key not in `known`.
    pub fn new(path: impl Into<String>, at: &'a Origin, node: Option<&'a Node>, known: &[&str]) -> Result<Self> {
        let section = Self::open(path, at, node)?;
        section.check_keys(known)?;
        Ok(section)
    }

    /// Like [`Section::new`] without checking keys yet: for sections whose keys depend on their `name`.
    pub fn open(path: impl Into<String>, at: &'a Origin, node: Option<&'a Node>) -> Result<Self> {
        let path = path.into();
        let map = match node.map(|n| (n, &n.value)) {
            None | Some((_, Value::Null)) => None,
            Some((_, Value::Map(map))) => Some(map),
            Some((node, _)) => {
                return Err(ConfigError::key(
                    &node.origin,
                    &path,
                    format!("expected a map, got {}", node.describe()),
                ));
            }
        };
        Ok(Self {
            path,
            at,
            map,
            global: None,
        })
    }

    /// Refuses the first key not in `known`, at its own line.
    pub fn check_keys(&self, known: &[&str]) -> Result<()> {
        for entry in self.map.iter().flat_map(|m| m.entries()) {
            if !known.contains(&entry.key.as_str()) {
                let expected = if known.is_empty() {
                    "takes no arguments".to_owned()
                } else {
                    format!("expected one of {}", known.join(", "))
                };
                return Err(ConfigError::key(
                    &entry.key_origin,
                    self.path_of(&entry.key),
                    format!("unknown key ({expected})"),
                ));
            }
        }
        Ok(())
    }

    /// Makes `Global`'s keys win over this section's own, as PaddleOCR merges them.
    pub fn with_global(mut self, global: Option<&'a Map>) -> Self {
        self.global = global;
        self
    }

    /// The dotted path of `key` in this section.
    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value of `key` with its path, from `Global` when `Global` has the key (even as null, as PaddleOCR's
    /// update does), else from the section.
    fn lookup(&self, key: &str) -> Option<FieldBuf<'a>> {
        let from_global = self.global.and_then(|g| g.get(key)).map(|node| FieldBuf {
            path: join("Global", key),
            node,
        });
        from_global.or_else(|| {
            self.map.and_then(|m| m.get(key)).map(|node| FieldBuf {
                path: self.path_of(key),
                node,
            })
        })
    }

    /// `read` applied to the value of `key`, or `None` when it is absent or null: a bare `key:` leaves the
    /// default in place.
    pub fn get<T>(&self, key: &str, read: impl FnOnce(Field<'_>) -> Result<T>) -> Result<Option<T>> {
        Ok(self.get_nullable(key, read)?.flatten())
    }

    /// `read` applied to the value of `key`, null included (`read` decides what a null means); `None` only
    /// when the key is absent.
    pub fn get_with_null<T>(&self, key: &str, read: impl FnOnce(Field<'_>) -> Result<T>) -> Result<Option<T>> {
        self.lookup(key).map(|found| read(found.field())).transpose()
    }

    /// Like [`Section::get`], but tells an explicit null (`Some(None)`) from an absent key (`None`), for
    /// arguments where PaddleOCR's `None` differs from the default.
    pub fn get_nullable<T>(&self, key: &str, read: impl FnOnce(Field<'_>) -> Result<T>) -> Result<Option<Option<T>>> {
        let Some(found) = self.lookup(key) else { return Ok(None) };
        if found.node.value == Value::Null {
            return Ok(Some(None));
        }
        read(found.field()).map(|value| Some(Some(value)))
    }

    /// `read` applied to the value of `key`, which must be set.
    pub fn require<T>(&self, key: &str, read: impl FnOnce(Field<'_>) -> Result<T>) -> Result<T> {
        self.get(key, read)?.ok_or_else(|| self.missing(key, ""))
    }

    /// The error for `key` not being set; `hint` (may be empty) says what would do.
    pub fn missing(&self, key: &str, hint: &str) -> ConfigError {
        let message = if hint.is_empty() {
            "required".to_owned()
        } else {
            format!("required ({hint})")
        };
        // At the key's own line when it is there as a bare `key:`, else where the section is named.
        let at = self.map.and_then(|m| m.entry(key)).map_or(self.at, |e| &e.key_origin);
        ConfigError::key(at, self.path_of(key), message)
    }

    /// An error about the section as a whole, at the line that names it.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::key(self.at, &self.path, message)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}
