//! Reading a `sen.pickle`, PaddleSlim's sensitivity table `{group key: {ratio: loss}}`, from untrusted bytes.
//!
//! A general unpickler runs whatever the file asks for: it builds objects from named classes (GLOBAL, INST,
//! NEWOBJ, REDUCE, BUILD), and a generic decoder of the pickle language still recurses on nesting and grows
//! with every MARK. This reader is a pickle machine for the one shape a `sen.pickle` has. It runs only the
//! opcodes that Python's `pickle.dump` (protocols 0 to 5, Python 2's str included) and serde-pickle write for
//! a dict of str to dicts of float to float or int, and refuses every other opcode by name and byte offset.
//!
//! Every resource is bounded before it is spent: the input size ([`MAX_BYTES`]), the values on the stack
//! ([`MAX_STACK`]), the open MARKs ([`MAX_OPEN_MARKS`]: a dict of dicts needs two), the memo ([`MAX_MEMO`]),
//! the entries set into dicts and the cells of the table ([`MAX_ENTRIES`]), and every length read from the file
//! against the bytes that remain. Dicts live in an arena and the machine is a loop, so nesting costs no native
//! stack; a dict nested three deep is refused where it is set. [`read`] never panics, whatever the bytes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::rc::Rc;

use crate::prune::planner::{Ratio, Sensitivities};

/// The largest `sen.pickle` read: a table of a few hundred groups at a few dozen ratios takes well under 1 MiB.
pub const MAX_BYTES: u64 = 64 << 20;
/// The most values on the stack at once: Python and serde-pickle set items in batches of 1000 pairs, so a
/// table needs about 4000.
pub const MAX_STACK: usize = 1 << 16;
/// The most MARKs open at once: one for the batch of groups, one for the batch of a group's ratios.
pub const MAX_OPEN_MARKS: usize = 2;
/// The most memo entries: Python memoizes each group key and each dict, about two per group.
pub const MAX_MEMO: usize = 1 << 20;
/// The most entries set into dicts while reading, and the most cells in the table.
pub const MAX_ENTRIES: usize = 1 << 20;

/// Why a `sen.pickle` was not read. Each is one line; the caller adds the file's name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SenPickleError {
    #[error("{size} bytes, more than the {} bytes (64 MiB) a sen.pickle may have", MAX_BYTES)]
    TooLarge { size: u64 },
    #[error("byte {offset}: {opcode} is refused: a sen.pickle holds only a dict {{str: {{float: float}}}}")]
    Refused { offset: usize, opcode: Opcode },
    #[error("byte {offset}: {opcode} runs past the end of the file")]
    Truncated { offset: usize, opcode: Opcode },
    #[error("byte {offset}: {opcode}: {reason}")]
    Malformed {
        offset: usize,
        opcode: Opcode,
        reason: String,
    },
    #[error("the file ends at byte {size} before STOP")]
    Unterminated { size: usize },
    /// A well-formed pickle of something other than a sensitivity table.
    #[error("{0}")]
    Shape(String),
}

/// A pickle opcode, shown by its name in `pickletools` (`unknown opcode 0x..` for a byte that is none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opcode(pub u8);

impl Opcode {
    /// The opcode's name in Python's `pickletools`, for every opcode of protocols 0 to 5.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            b'(' => "MARK",
            b'.' => "STOP",
            b'0' => "POP",
            b'1' => "POP_MARK",
            b'2' => "DUP",
            b'F' => "FLOAT",
            b'I' => "INT",
            b'J' => "BININT",
            b'K' => "BININT1",
            b'L' => "LONG",
            b'M' => "BININT2",
            b'N' => "NONE",
            b'P' => "PERSID",
            b'Q' => "BINPERSID",
            b'R' => "REDUCE",
            b'S' => "STRING",
            b'T' => "BINSTRING",
            b'U' => "SHORT_BINSTRING",
            b'V' => "UNICODE",
            b'X' => "BINUNICODE",
            b'a' => "APPEND",
            b'b' => "BUILD",
            b'c' => "GLOBAL",
            b'd' => "DICT",
            b'}' => "EMPTY_DICT",
            b'e' => "APPENDS",
            b'g' => "GET",
            b'h' => "BINGET",
            b'i' => "INST",
            b'j' => "LONG_BINGET",
            b'l' => "LIST",
            b']' => "EMPTY_LIST",
            b'o' => "OBJ",
            b'p' => "PUT",
            b'q' => "BINPUT",
            b'r' => "LONG_BINPUT",
            b's' => "SETITEM",
            b't' => "TUPLE",
            b')' => "EMPTY_TUPLE",
            b'u' => "SETITEMS",
            b'G' => "BINFLOAT",
            0x80 => "PROTO",
            0x81 => "NEWOBJ",
            0x82 => "EXT1",
            0x83 => "EXT2",
            0x84 => "EXT4",
            0x85 => "TUPLE1",
            0x86 => "TUPLE2",
            0x87 => "TUPLE3",
            0x88 => "NEWTRUE",
            0x89 => "NEWFALSE",
            0x8a => "LONG1",
            0x8b => "LONG4",
            b'B' => "BINBYTES",
            b'C' => "SHORT_BINBYTES",
            0x8c => "SHORT_BINUNICODE",
            0x8d => "BINUNICODE8",
            0x8e => "BINBYTES8",
            0x8f => "EMPTY_SET",
            0x90 => "ADDITEMS",
            0x91 => "FROZENSET",
            0x92 => "NEWOBJ_EX",
            0x93 => "STACK_GLOBAL",
            0x94 => "MEMOIZE",
            0x95 => "FRAME",
            0x96 => "BYTEARRAY8",
            0x97 => "NEXT_BUFFER",
            0x98 => "READONLY_BUFFER",
            _ => return None,
        })
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "unknown opcode 0x{:02x}", self.0),
        }
    }
}

/// Reads a `sen.pickle`'s bytes as a sensitivity table.
///
/// # Errors
/// A refused opcode, a truncated or malformed pickle, a limit exceeded, or a pickle of anything but a dict of
/// str (or UTF-8 bytes) keys to dicts of float ratios in (0, 1) to finite float or int losses, each key once.
pub fn read(bytes: &[u8]) -> Result<Sensitivities, SenPickleError> {
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > MAX_BYTES {
        return Err(SenPickleError::TooLarge { size });
    }
    let mut machine = Machine::new(bytes);
    let root = machine.run()?;
    table(&machine.dicts, &root)
}

/// A string from a pickle as a message shows it: in single quotes, escaped as [`str::escape_debug`] does (a
/// newline in a key cannot break a one-line message), cut after 64 characters.
pub fn quote(text: &str) -> String {
    const SHOWN: usize = 64;
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(SHOWN).collect();
    let more = if chars.next().is_some() { "…" } else { "" };
    format!("'{}{more}'", head.escape_debug())
}

/// A value on the machine's stack or in its memo. Strings are shared, so a GET costs no copy.
#[derive(Debug, Clone)]
enum Value {
    Str(Rc<str>),
    Float(f64),
    Int(i64),
    /// An index into the machine's dicts: a GET of a dict refers to the same dict, as in Python.
    Dict(usize),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "str",
            Value::Float(_) => "float",
            Value::Int(_) => "int",
            Value::Dict(_) => "dict",
        }
    }

    fn shown(&self) -> String {
        match self {
            Value::Str(text) => quote(text),
            Value::Float(number) => number.to_string(),
            Value::Int(number) => number.to_string(),
            Value::Dict(_) => "a dict".to_owned(),
        }
    }
}

/// A dict under construction, its entries in the order they were set.
#[derive(Debug, Default)]
struct Dict {
    entries: Vec<(Value, Value)>,
    /// Some entry's value is a dict: this dict is an outer one.
    holds_dict: bool,
    /// This dict was set as a value: it is an inner one.
    is_value: bool,
}

struct Machine<'a> {
    bytes: &'a [u8],
    /// Where the next opcode or argument starts.
    pos: usize,
    /// The offset and code of the opcode being run, which every error names.
    offset: usize,
    opcode: Opcode,
    stack: Vec<Value>,
    /// The stack's length at each open MARK: values below the innermost one are out of reach until it closes.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    dicts: Vec<Dict>,
    /// Entries set into dicts so far.
    entries: usize,
}

impl<'a> Machine<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Machine {
            bytes,
            pos: 0,
            offset: 0,
            opcode: Opcode(0),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            dicts: Vec::new(),
            entries: 0,
        }
    }

    /// Runs the opcodes up to STOP; answers the value STOP takes.
    fn run(&mut self) -> Result<Value, SenPickleError> {
        loop {
            self.offset = self.pos;
            let Some(&code) = self.bytes.get(self.pos) else {
                return Err(SenPickleError::Unterminated { size: self.bytes.len() });
            };
            self.pos += 1;
            self.opcode = Opcode(code);
            match code {
                b'.' => return self.stop(),
                0x80 => {
                    let version = self.take(1)?[0];
                    if version > 5 {
                        return Err(self.malformed(format!("protocol {version} is newer than 5")));
                    }
                }
                0x95 => {
                    // A frame only tells an unpickler how much to prefetch; its opcodes are read as any others.
                    let length = u64::from_le_bytes(self.array()?);
                    let remaining = self.bytes.len() - self.pos;
                    if !usize::try_from(length).is_ok_and(|length| length <= remaining) {
                        return Err(self.malformed(format!("a frame of {length} bytes, but {remaining} remain")));
                    }
                }
                b'(' => {
                    if self.marks.len() >= MAX_OPEN_MARKS {
                        return Err(self.malformed(format!(
                            "a MARK while {MAX_OPEN_MARKS} are open: a dict {{group: {{ratio: loss}}}} needs \
                             {MAX_OPEN_MARKS} at most"
                        )));
                    }
                    self.marks.push(self.stack.len());
                }
                b'}' => {
                    let dict = self.new_dict();
                    self.push(Value::Dict(dict))?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let dict = self.new_dict();
                    self.set_items(dict, items)?;
                    self.push(Value::Dict(dict))?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let dict = self.top_dict()?;
                    self.set_item(dict, key, value)?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let dict = self.top_dict()?;
                    self.set_items(dict, items)?;
                }
                b'V' => {
                    let line = self.line()?;
                    let text = raw_unicode_escape(line).map_err(|reason| self.malformed(reason))?;
                    self.push(Value::Str(text.into()))?;
                }
                b'S' => {
                    let line = self.line()?;
                    let bytes = python2_string(line).map_err(|reason| self.malformed(reason))?;
                    self.push_utf8(&bytes)?;
                }
                b'X' => {
                    let length = u32::from_le_bytes(self.array()?);
                    self.push_counted_string(u64::from(length))?;
                }
                0x8c | b'U' | b'C' => {
                    let length = self.take(1)?[0];
                    self.push_counted_string(u64::from(length))?;
                }
                0x8d | 0x8e => {
                    let length = u64::from_le_bytes(self.array()?);
                    self.push_counted_string(length)?;
                }
                b'B' => {
                    let length = u32::from_le_bytes(self.array()?);
                    self.push_counted_string(u64::from(length))?;
                }
                b'T' => {
                    let length = i32::from_le_bytes(self.array()?);
                    let Ok(length) = u64::try_from(length) else {
                        return Err(self.malformed(format!("a negative length {length}")));
                    };
                    self.push_counted_string(length)?;
                }
                b'F' => {
                    let line = self.line()?;
                    let Some(number) = parse::<f64>(line) else {
                        return Err(self.malformed(format!("{} is not a float", shown_bytes(line))));
                    };
                    self.push(Value::Float(number))?;
                }
                b'G' => {
                    let number = f64::from_be_bytes(self.array()?);
                    self.push(Value::Float(number))?;
                }
                b'I' => {
                    let line = self.line()?;
                    if line == b"00" || line == b"01" {
                        return Err(self.malformed("I00 and I01 are bools, not numbers"));
                    }
                    self.push_decimal_int(line)?;
                }
                b'L' => {
                    let line = self.line()?;
                    self.push_decimal_int(line.strip_suffix(b"L").unwrap_or(line))?;
                }
                b'J' => {
                    let number = i32::from_le_bytes(self.array()?);
                    self.push(Value::Int(number.into()))?;
                }
                b'K' => {
                    let number = self.take(1)?[0];
                    self.push(Value::Int(number.into()))?;
                }
                b'M' => {
                    let number = u16::from_le_bytes(self.array()?);
                    self.push(Value::Int(number.into()))?;
                }
                0x8a => {
                    let length = self.take(1)?[0];
                    let number = self.take(length.into())?;
                    let number = little_endian_int(number).ok_or_else(|| {
                        self.malformed(format!("an int of {length} bytes, beyond the 64 bits a loss may take"))
                    })?;
                    self.push(Value::Int(number))?;
                }
                b'p' => {
                    let line = self.line()?;
                    let index = self.decimal_index(line)?;
                    self.put(index)?;
                }
                b'q' => {
                    let index = self.take(1)?[0];
                    self.put(index.into())?;
                }
                b'r' => {
                    let index = u32::from_le_bytes(self.array()?);
                    self.put(index)?;
                }
                0x94 => {
                    // Python numbers a MEMOIZE by the memo's size; the memo never exceeds MAX_MEMO < u32::MAX.
                    let index = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                    self.put(index)?;
                }
                b'g' => {
                    let line = self.line()?;
                    let index = self.decimal_index(line)?;
                    self.get(index)?;
                }
                b'h' => {
                    let index = self.take(1)?[0];
                    self.get(index.into())?;
                }
                b'j' => {
                    let index = u32::from_le_bytes(self.array()?);
                    self.get(index)?;
                }
                _ => {
                    return Err(SenPickleError::Refused {
                        offset: self.offset,
                        opcode: self.opcode,
                    });
                }
            }
        }
    }

    fn malformed(&self, reason: impl Into<String>) -> SenPickleError {
        SenPickleError::Malformed {
            offset: self.offset,
            opcode: self.opcode,
            reason: reason.into(),
        }
    }

    /// The opcode's next `length` argument bytes, checked against what remains before anything is allocated.
    fn take(&mut self, length: u64) -> Result<&'a [u8], SenPickleError> {
        let remaining = self.bytes.len() - self.pos;
        match usize::try_from(length) {
            Ok(length) if length <= remaining => {
                let taken = &self.bytes[self.pos..self.pos + length];
                self.pos += length;
                Ok(taken)
            }
            _ => Err(SenPickleError::Truncated {
                offset: self.offset,
                opcode: self.opcode,
            }),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SenPickleError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N as u64)?);
        Ok(array)
    }

    /// A text opcode's argument: the bytes up to the next newline, which is consumed.
    fn line(&mut self) -> Result<&'a [u8], SenPickleError> {
        let rest = &self.bytes[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(SenPickleError::Truncated {
                offset: self.offset,
                opcode: self.opcode,
            });
        };
        self.pos += end + 1;
        Ok(&rest[..end])
    }

    fn push(&mut self, value: Value) -> Result<(), SenPickleError> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.malformed(format!(
                "more than {MAX_STACK} values on the stack: a dict {{group: {{ratio: loss}}}} needs a few thousand"
            )));
        }
        self.stack.push(value);
        Ok(())
    }

    fn push_utf8(&mut self, bytes: &[u8]) -> Result<(), SenPickleError> {
        let text = std::str::from_utf8(bytes).map_err(|_| self.malformed("the string is not UTF-8"))?;
        self.push(Value::Str(text.into()))
    }

    /// The string of a length-prefixed string or bytes opcode (group keys are names, so bytes are UTF-8 too).
    fn push_counted_string(&mut self, length: u64) -> Result<(), SenPickleError> {
        let bytes = self.take(length)?;
        self.push_utf8(bytes)
    }

    fn push_decimal_int(&mut self, text: &[u8]) -> Result<(), SenPickleError> {
        let Some(number) = parse::<i64>(text) else {
            return Err(self.malformed(format!("{} is not a decimal int within 64 bits", shown_bytes(text))));
        };
        self.push(Value::Int(number))
    }

    /// The lowest stack position the current opcode may reach: the innermost open MARK's.
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Value, SenPickleError> {
        if self.stack.len() <= self.fence() {
            return Err(self.nothing_to_take());
        }
        self.stack.pop().ok_or_else(|| self.nothing_to_take())
    }

    fn nothing_to_take(&self) -> SenPickleError {
        self.malformed(if self.marks.is_empty() {
            "the stack is empty"
        } else {
            "the stack is empty above the innermost MARK"
        })
    }

    /// The values above the innermost MARK, which closes.
    fn pop_mark(&mut self) -> Result<Vec<Value>, SenPickleError> {
        let Some(mark) = self.marks.pop() else {
            return Err(self.malformed("no MARK is open"));
        };
        Ok(self.stack.split_off(mark))
    }

    /// The dict on top of the stack, which SETITEM and SETITEMS set into.
    fn top_dict(&self) -> Result<usize, SenPickleError> {
        match self.stack.len().checked_sub(1).filter(|&top| top >= self.fence()) {
            Some(top) => match &self.stack[top] {
                Value::Dict(dict) => Ok(*dict),
                other => Err(self.malformed(format!("sets an item into a {}, not a dict", other.kind()))),
            },
            None => Err(self.malformed("no dict on the stack to set items into")),
        }
    }

    fn new_dict(&mut self) -> usize {
        // A value leaves the stack only as an entry, so the stack and entry limits bound the dicts too.
        self.dicts.push(Dict::default());
        self.dicts.len() - 1
    }

    fn set_items(&mut self, dict: usize, items: Vec<Value>) -> Result<(), SenPickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.malformed(format!("{} values after the MARK, not key-value pairs", items.len())));
        }
        let mut items = items.into_iter();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            self.set_item(dict, key, value)?;
        }
        Ok(())
    }

    fn set_item(&mut self, dict: usize, key: Value, value: Value) -> Result<(), SenPickleError> {
        if self.entries >= MAX_ENTRIES {
            return Err(self.malformed(format!("more than {MAX_ENTRIES} entries set into dicts")));
        }
        if let Value::Dict(_) = key {
            return Err(self.malformed("a dict as a key"));
        }
        if let Value::Dict(inner) = value {
            if self.dicts[inner].holds_dict || self.dicts[dict].is_value {
                return Err(
                    self.malformed("a dict nested three deep: a sen.pickle is a dict {group: {ratio: loss}}, two deep")
                );
            }
            self.dicts[inner].is_value = true;
            self.dicts[dict].holds_dict = true;
        }
        self.dicts[dict].entries.push((key, value));
        self.entries += 1;
        Ok(())
    }

    fn decimal_index(&self, text: &[u8]) -> Result<u32, SenPickleError> {
        parse::<u32>(text).ok_or_else(|| self.malformed(format!("{} is not a memo index", shown_bytes(text))))
    }

    fn put(&mut self, index: u32) -> Result<(), SenPickleError> {
        let top = match self.stack.last() {
            Some(top) if self.stack.len() > self.fence() => top.clone(),
            _ => return Err(self.nothing_to_take()),
        };
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&index) {
            return Err(self.malformed(format!("more than {MAX_MEMO} memo entries")));
        }
        self.memo.insert(index, top);
        Ok(())
    }

    fn get(&mut self, index: u32) -> Result<(), SenPickleError> {
        let Some(value) = self.memo.get(&index).cloned() else {
            return Err(self.malformed(format!("memo entry {index} was never stored")));
        };
        self.push(value)
    }

    fn stop(&mut self) -> Result<Value, SenPickleError> {
        if !self.marks.is_empty() {
            return Err(self.malformed(format!("{} MARKs still open", self.marks.len())));
        }
        if self.stack.len() != 1 {
            return Err(self.malformed(format!("{} values on the stack, not one", self.stack.len())));
        }
        let after = self.bytes.len() - self.pos;
        if after > 0 {
            return Err(self.malformed(format!("{after} bytes follow the end of the pickle")));
        }
        self.stack.pop().ok_or_else(|| self.nothing_to_take())
    }
}

/// The table a finished machine built, checked to be `{str: {float in (0, 1): finite float or int}}`.
fn table(dicts: &[Dict], root: &Value) -> Result<Sensitivities, SenPickleError> {
    let shape = SenPickleError::Shape;
    let Value::Dict(root) = root else {
        return Err(shape(format!(
            "the pickle holds {} ({}), not a dict {{group key: {{ratio: loss}}}}",
            root.shown(),
            root.kind()
        )));
    };
    let mut table = Sensitivities::new();
    let mut cells = 0_usize;
    for (key, losses) in &dicts[*root].entries {
        let Value::Str(group) = key else {
            return Err(shape(format!(
                "the group key {} is a {}, not a str",
                key.shown(),
                key.kind()
            )));
        };
        let Value::Dict(losses) = losses else {
            return Err(shape(format!(
                "group {}: {} ({}) where a dict {{ratio: loss}} belongs",
                quote(group),
                losses.shown(),
                losses.kind()
            )));
        };
        let mut by_ratio = BTreeMap::new();
        for (ratio, loss) in &dicts[*losses].entries {
            let Value::Float(ratio) = ratio else {
                return Err(shape(format!(
                    "group {}: the ratio {} is a {}, not a float",
                    quote(group),
                    ratio.shown(),
                    ratio.kind()
                )));
            };
            let Ok(ratio) = Ratio::new(*ratio) else {
                return Err(shape(format!(
                    "group {}: the ratio {ratio} is outside (0, 1)",
                    quote(group)
                )));
            };
            let loss = match loss {
                Value::Float(loss) if loss.is_finite() => *loss,
                // An int loss is exact only up to 2^53; a loss that large means nothing anyway.
                Value::Int(loss) => *loss as f64,
                other => {
                    return Err(shape(format!(
                        "group {} at ratio {}: the loss {} is not a finite number",
                        quote(group),
                        ratio.get(),
                        other.shown()
                    )));
                }
            };
            cells += 1;
            if cells > MAX_ENTRIES {
                return Err(shape(format!("more than {MAX_ENTRIES} cells")));
            }
            if by_ratio.insert(ratio, loss).is_some() {
                return Err(shape(format!(
                    "group {}: the ratio {} appears twice",
                    quote(group),
                    ratio.get()
                )));
            }
        }
        if table.insert(group.to_string(), by_ratio).is_some() {
            return Err(shape(format!("the group {} appears twice", quote(group))));
        }
    }
    Ok(table)
}

/// A text argument as a message shows it.
fn shown_bytes(bytes: &[u8]) -> String {
    quote(&String::from_utf8_lossy(bytes))
}

fn parse<T: std::str::FromStr>(text: &[u8]) -> Option<T> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// LONG1's argument: a little-endian two's complement int, if it fits 64 bits.
fn little_endian_int(bytes: &[u8]) -> Option<i64> {
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    let mut extended = if negative { [0xff; 8] } else { [0; 8] };
    extended.get_mut(..bytes.len())?.copy_from_slice(bytes);
    Some(i64::from_le_bytes(extended))
}

/// UNICODE's argument, decoded as Python's `raw-unicode-escape`: each byte is the code point of the same value,
/// except `\uXXXX` and `\UXXXXXXXX` after an odd run of backslashes.
fn raw_unicode_escape(line: &[u8]) -> Result<String, String> {
    let mut text = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line[i] != b'\\' {
            text.push(char::from(line[i]));
            i += 1;
            continue;
        }
        let run_start = i;
        while i < line.len() && line[i] == b'\\' {
            i += 1;
        }
        let run = i - run_start;
        let digits = match line.get(i) {
            Some(b'u') if run % 2 == 1 => 4,
            Some(b'U') if run % 2 == 1 => 8,
            _ => {
                text.extend(std::iter::repeat_n('\\', run));
                continue;
            }
        };
        text.extend(std::iter::repeat_n('\\', run - 1));
        let hex = line
            .get(i + 1..i + 1 + digits)
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit));
        let Some(code) = hex.and_then(parse_hex) else {
            return Err(format!(
                "a \\{} escape without {digits} hex digits",
                char::from(line[i])
            ));
        };
        let Some(character) = char::from_u32(code) else {
            return Err(format!("\\U{code:08x} is a surrogate or beyond U+10FFFF"));
        };
        text.push(character);
        i += 1 + digits;
    }
    Ok(text)
}

fn parse_hex(hex: &[u8]) -> Option<u32> {
    u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// STRING's argument, a Python 2 str as `repr` writes it: quoted, with Python's backslash escapes.
fn python2_string(line: &[u8]) -> Result<Vec<u8>, String> {
    let quoted = match line {
        [first, inner @ .., last] if first == last && matches!(first, b'\'' | b'"') => inner,
        _ => return Err("the argument is not a quoted string".to_owned()),
    };
    let mut bytes = Vec::with_capacity(quoted.len());
    let mut rest = quoted;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        if byte != b'\\' {
            bytes.push(byte);
            continue;
        }
        let Some((&escaped, tail)) = rest.split_first() else {
            return Err("a trailing backslash".to_owned());
        };
        rest = tail;
        match escaped {
            b'\\' | b'\'' | b'"' => bytes.push(escaped),
            b'a' => bytes.push(0x07),
            b'b' => bytes.push(0x08),
            b'f' => bytes.push(0x0c),
            b'n' => bytes.push(b'\n'),
            b'r' => bytes.push(b'\r'),
            b't' => bytes.push(b'\t'),
            b'v' => bytes.push(0x0b),
            b'0'..=b'7' => {
                let mut code = u32::from(escaped - b'0');
                for _ in 0..2 {
                    match rest.split_first() {
                        Some((&digit @ b'0'..=b'7', tail)) => {
                            code = code * 8 + u32::from(digit - b'0');
                            rest = tail;
                        }
                        _ => break,
                    }
                }
                let Ok(byte) = u8::try_from(code) else {
                    return Err(format!("the octal escape \\{code:o} is above \\377"));
                };
                bytes.push(byte);
            }
            b'x' => {
                let Some(byte) = rest
                    .get(..2)
                    .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                    .and_then(parse_hex)
                    .and_then(|code| u8::try_from(code).ok())
                else {
                    return Err("a \\x escape without two hex digits".to_owned());
                };
                bytes.push(byte);
                rest = &rest[2..];
            }
            // Python keeps an unknown escape as it is, backslash included.
            other => bytes.extend([b'\\', other]),
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    //! The fixtures under `model/tests/fixtures/sen_pickle/` are Python 3.11's `pickle.dumps(TABLE, protocol=p)`
    //! for p in 0..=5, TABLE as [`python_table`] states it (`shared` one dict object under two keys):
    //! `{'conv2d_0.w_0': {0.1: 0.01, 0.5: -0.25}, 'conv2d_1.w_0': {0.2: 0, 0.3: 300, 0.4: 70000, 0.6: -1,
    //! 0.8: 2**40}, 'back\\slash\nnewline ü€😀': {0.9: 1e-05}, 'shared_a': shared, 'shared_b': shared}` with
    //! `shared = {0.7: 0.125}`. Hand-made pickles here were checked once with Python's `pickle.loads`.

    use super::*;

    const FIXTURES: [&[u8]; 6] = [
        include_bytes!("../../tests/fixtures/sen_pickle/protocol_0.pickle"),
        include_bytes!("../../tests/fixtures/sen_pickle/protocol_1.pickle"),
        include_bytes!("../../tests/fixtures/sen_pickle/protocol_2.pickle"),
        include_bytes!("../../tests/fixtures/sen_pickle/protocol_3.pickle"),
        include_bytes!("../../tests/fixtures/sen_pickle/protocol_4.pickle"),
        include_bytes!("../../tests/fixtures/sen_pickle/protocol_5.pickle"),
    ];

    fn table(rows: &[(&str, &[(f64, f64)])]) -> Sensitivities {
        rows.iter()
            .map(|(group, cells)| {
                let losses = cells.iter().map(|&(r, l)| (Ratio::new(r).unwrap(), l)).collect();
                ((*group).to_owned(), losses)
            })
            .collect()
    }

    fn python_table() -> Sensitivities {
        table(&[
            ("conv2d_0.w_0", &[(0.1, 0.01), (0.5, -0.25)]),
            (
                "conv2d_1.w_0",
                &[
                    (0.2, 0.0),
                    (0.3, 300.0),
                    (0.4, 70000.0),
                    (0.6, -1.0),
                    (0.8, 1_099_511_627_776.0),
                ],
            ),
            ("back\\slash\nnewline ü€😀", &[(0.9, 1e-05)]),
            ("shared_a", &[(0.7, 0.125)]),
            ("shared_b", &[(0.7, 0.125)]),
        ])
    }

    fn binfloat(value: f64) -> Vec<u8> {
        [&[b'G'][..], &value.to_be_bytes()].concat()
    }

    fn malformed(offset: usize, opcode: u8, reason: &str) -> SenPickleError {
        SenPickleError::Malformed {
            offset,
            opcode: Opcode(opcode),
            reason: reason.to_owned(),
        }
    }

    #[test]
    fn python_protocols_0_to_5_read_as_the_table_they_pickled() {
        for (protocol, bytes) in FIXTURES.iter().enumerate() {
            assert_eq!(read(bytes), Ok(python_table()), "protocol {protocol}");
        }
    }

    #[test]
    fn python_2_str_keys_and_ints_read_in_protocols_0_and_2() {
        // Python 2's pickle.dumps(..., 0): STRING with its escapes, INT, LONG with its trailing L.
        let protocol_0 = b"(dp0\nS'conv1'\np1\n(dp2\nF0.10000000000000001\nI1\nsF0.5\nL5L\nssS'it\\'s \\x41\\101\\n'\n\
                           p3\n(dp4\nF0.2\nI-3\nss.";
        let expected = table(&[("conv1", &[(0.1, 1.0), (0.5, 5.0)]), ("it's AA\n", &[(0.2, -3.0)])]);
        assert_eq!(read(protocol_0), Ok(expected));

        // Python 2's pickle.dumps(..., 2): SHORT_BINSTRING and BINSTRING keys, BININT1 and BININT losses.
        let protocol_2 = [
            &b"\x80\x02}q\x00(U\x05conv1q\x01}q\x02("[..],
            &binfloat(0.1),
            b"K\x01",
            &binfloat(0.5),
            &binfloat(0.25),
            b"uT\x05\x00\x00\x00conv2q\x03}q\x04",
            &binfloat(0.2),
            b"J\xfd\xff\xff\xffsu.",
        ]
        .concat();
        let expected = table(&[("conv1", &[(0.1, 1.0), (0.5, 0.25)]), ("conv2", &[(0.2, -3.0)])]);
        assert_eq!(read(&protocol_2), Ok(expected));
    }

    #[test]
    fn every_other_opcode_is_refused_by_name_at_its_offset() {
        let accepted = b".\x80\x95(}dsuVSX\x8cUC\x8d\x8eBTFGILJKM\x8apqr\x94ghj";
        for code in (0..=u8::MAX).filter(|code| !accepted.contains(code)) {
            assert_eq!(
                read(&[0x80, 0x02, code, b'.']),
                Err(SenPickleError::Refused {
                    offset: 2,
                    opcode: Opcode(code)
                }),
                "opcode 0x{code:02x}"
            );
        }
        assert_eq!(Opcode(0x52).to_string(), "REDUCE");
        assert_eq!(Opcode(0xff).to_string(), "unknown opcode 0xff");
    }

    #[test]
    fn the_inst_form_is_refused_at_inst() {
        // Protocol 0's way to call os.system('echo pwned'): MARK, the argument, INST module\nname\n.
        let error = read(b"(S'echo pwned'\nios\nsystem\n.").unwrap_err();
        assert_eq!(
            error.to_string(),
            "byte 15: INST is refused: a sen.pickle holds only a dict {str: {float: float}}"
        );
        // A table built as an OrderedDict instance: MARK, the dict as the argument, INST collections OrderedDict.
        let as_instance = read(b"(}(S'conv1'\n}F0.5\nF0.1\nsuicollections\nOrderedDict\n.");
        assert_eq!(
            as_instance,
            Err(SenPickleError::Refused {
                offset: 25,
                opcode: Opcode(b'i')
            })
        );
    }

    #[test]
    fn newobj_and_build_are_refused() {
        // PaddleSlim's dygraph Status as results.rs writes sen_status.pickle: GLOBAL, NEWOBJ, then BUILD with
        // the attribute dict; the class is named first.
        let status = [
            &b"\x80\x02cpaddleslim.dygraph.prune.filter_pruner\nStatus\nq\x00)\x81q\x01}q\x02X\x0b\x00\x00\x00sensitiviesq\x03}sb."[..],
        ]
        .concat();
        assert_eq!(
            read(&status),
            Err(SenPickleError::Refused {
                offset: 2,
                opcode: Opcode(b'c')
            })
        );
        // With the class made of allowed values, NEWOBJ and BUILD are refused themselves.
        assert_eq!(
            read(b"\x80\x02}}\x81."),
            Err(SenPickleError::Refused {
                offset: 4,
                opcode: Opcode(0x81)
            })
        );
        assert_eq!(
            read(b"\x80\x02}}b."),
            Err(SenPickleError::Refused {
                offset: 4,
                opcode: Opcode(b'b')
            })
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        // 1.4 MB of {'a': {'a': ...}} as Python pickles one-item dicts (SETITEM, no MARK): the stack limit.
        let levels = 200_000;
        let mut nested = b"\x80\x02".to_vec();
        for _ in 0..levels {
            nested.extend_from_slice(b"}X\x01\x00\x00\x00a");
        }
        nested.extend(std::iter::repeat_n(b's', levels));
        nested.push(b'.');
        assert!(nested.len() > 1_400_000);
        let reason = "more than 65536 values on the stack: a dict {group: {ratio: loss}} needs a few thousand";
        // The 65537th push is the dict of level 32768, 7 bytes a level after PROTO.
        assert_eq!(read(&nested), Err(malformed(2 + 7 * 32_768, b'}', reason)));

        // The same with a MARK per dict, as batches of items: the third MARK.
        let mut marked = b"\x80\x02".to_vec();
        for _ in 0..levels {
            marked.extend_from_slice(b"}(X\x01\x00\x00\x00a");
        }
        let reason = "a MARK while 2 are open: a dict {group: {ratio: loss}} needs 2 at most";
        assert_eq!(read(&marked), Err(malformed(19, b'(', reason)));

        // Three deep, as Python pickles {'a': {'b': {0.5: 1.0}}}: refused where the middle dict is set.
        let three_deep = [
            &b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01}q\x02X\x01\x00\x00\x00bq\x03}q\x04"[..],
            &binfloat(0.5),
            &binfloat(1.0),
            b"sss.",
        ]
        .concat();
        let reason = "a dict nested three deep: a sen.pickle is a dict {group: {ratio: loss}}, two deep";
        assert_eq!(read(&three_deep), Err(malformed(47, b's', reason)));

        // A dict set into itself, then given a dict: refused the same way, and the table is never walked.
        assert_eq!(
            read(b"}q\x00X\x01\x00\x00\x00ah\x00sX\x01\x00\x00\x00b}s."),
            Err(malformed(19, b's', reason))
        );
    }

    #[test]
    fn a_million_marks_stop_at_the_third() {
        let mut marks = b"\x80\x02".to_vec();
        marks.extend(std::iter::repeat_n(b'(', 1_000_000));
        marks.push(b'.');
        let reason = "a MARK while 2 are open: a dict {group: {ratio: loss}} needs 2 at most";
        assert_eq!(read(&marks), Err(malformed(4, b'(', reason)));
    }

    #[test]
    fn truncated_input_names_the_opcode_cut_off() {
        let protocol_3 = FIXTURES[3];
        // BINUNICODE 'conv2d_0.w_0' starts at byte 6; its string ends at byte 23.
        assert_eq!(
            read(&protocol_3[..15]),
            Err(SenPickleError::Truncated {
                offset: 6,
                opcode: Opcode(b'X')
            })
        );
        let before_stop = protocol_3.len() - 1;
        assert_eq!(
            read(&protocol_3[..before_stop]),
            Err(SenPickleError::Unterminated { size: before_stop })
        );
        assert_eq!(read(b""), Err(SenPickleError::Unterminated { size: 0 }));
        // A frame longer than the rest of the file.
        let protocol_4 = FIXTURES[4];
        let frame = u64::from_le_bytes(protocol_4[3..11].try_into().unwrap());
        assert_eq!(
            read(&protocol_4[..40]),
            Err(malformed(2, 0x95, &format!("a frame of {frame} bytes, but 29 remain")))
        );
        for fixture in FIXTURES {
            for end in 0..fixture.len() {
                assert!(read(&fixture[..end]).is_err(), "a prefix of {end} bytes was read");
            }
        }
        // A length that claims more than the file holds is refused before anything is allocated.
        assert_eq!(
            read(b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xff."),
            Err(SenPickleError::Truncated {
                offset: 2,
                opcode: Opcode(0x8d)
            })
        );
    }

    #[test]
    fn limits_and_malformed_pickles_are_named() {
        let too_large = vec![0; usize::try_from(MAX_BYTES).unwrap() + 1];
        let error = read(&too_large).unwrap_err();
        assert_eq!(
            error.to_string(),
            "67108865 bytes, more than the 67108864 bytes (64 MiB) a sen.pickle may have"
        );
        assert_eq!(
            read(b"\x80\x06}."),
            Err(malformed(0, 0x80, "protocol 6 is newer than 5"))
        );
        assert_eq!(
            read(b"}h\x07s."),
            Err(malformed(1, b'h', "memo entry 7 was never stored"))
        );
        assert_eq!(
            read(b"}.."),
            Err(malformed(1, b'.', "1 bytes follow the end of the pickle"))
        );
        assert_eq!(read(b"}}."), Err(malformed(2, b'.', "2 values on the stack, not one")));
        assert_eq!(read(b"}(."), Err(malformed(2, b'.', "1 MARKs still open")));
        assert_eq!(read(b"}s."), Err(malformed(1, b's', "the stack is empty")));
        assert_eq!(
            read(b"}(K\x01u."),
            Err(malformed(4, b'u', "1 values after the MARK, not key-value pairs"))
        );
        assert_eq!(
            read(b"K\x01K\x01K\x01s."),
            Err(malformed(6, b's', "sets an item into a int, not a dict"))
        );
        assert_eq!(read(b"}}K\x01s."), Err(malformed(4, b's', "a dict as a key")));
        assert_eq!(
            read(b"}(I01\n."),
            Err(malformed(2, b'I', "I00 and I01 are bools, not numbers"))
        );
        assert_eq!(
            read(b"L99999999999999999999L\n."),
            Err(malformed(
                0,
                b'L',
                "'99999999999999999999' is not a decimal int within 64 bits"
            ))
        );
        assert_eq!(
            read(b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01."),
            Err(malformed(
                0,
                0x8a,
                "an int of 9 bytes, beyond the 64 bits a loss may take"
            ))
        );
        assert_eq!(read(b"Fone\n."), Err(malformed(0, b'F', "'one' is not a float")));
        assert_eq!(
            read(b"Vbad \\u12\n."),
            Err(malformed(0, b'V', "a \\u escape without 4 hex digits"))
        );
        assert_eq!(
            read(b"V\\ud800\n."),
            Err(malformed(0, b'V', "\\U0000d800 is a surrogate or beyond U+10FFFF"))
        );
        assert_eq!(
            read(b"Sconv1\n."),
            Err(malformed(0, b'S', "the argument is not a quoted string"))
        );
        assert_eq!(
            read(b"C\x02\xc3\x28."),
            Err(malformed(0, b'C', "the string is not UTF-8"))
        );
        assert_eq!(
            read(b"T\xff\xff\xff\xff."),
            Err(malformed(0, b'T', "a negative length -1"))
        );
    }

    #[test]
    fn raw_unicode_escape_decodes_as_python_does() {
        assert_eq!(
            raw_unicode_escape(b"a\\u00e9\\\\u0041\\\\\\u0041\\x\xe9"),
            Ok("aé\\\\u0041\\\\A\\x\u{e9}".to_owned())
        );
        assert_eq!(raw_unicode_escape(b"\\U0001f600"), Ok("😀".to_owned()));
        assert_eq!(python2_string(b"\"a\\tb\\'\\q\\0\""), Ok(b"a\tb'\\q\0".to_vec()));
    }

    #[test]
    fn tables_of_another_shape_are_named() {
        let shape = |message: &str| Err(SenPickleError::Shape(message.to_owned()));
        assert_eq!(
            read(&[&binfloat(0.5)[..], b"."].concat()),
            shape("the pickle holds 0.5 (float), not a dict {group key: {ratio: loss}}")
        );
        assert_eq!(read(b"}K\x01}s."), shape("the group key 1 is a int, not a str"));
        assert_eq!(
            read(b"}X\x01\x00\x00\x00aK\x01s."),
            shape("group 'a': 1 (int) where a dict {ratio: loss} belongs")
        );
        assert_eq!(
            read(b"}X\x01\x00\x00\x00a}K\x01K\x01ss."),
            shape("group 'a': the ratio 1 is a int, not a float")
        );
        let ratio_one = [&b"}X\x01\x00\x00\x00a}"[..], &binfloat(1.0), b"K\x01ss."].concat();
        assert_eq!(read(&ratio_one), shape("group 'a': the ratio 1 is outside (0, 1)"));
        let nan_loss = [
            &b"}X\x01\x00\x00\x00a}"[..],
            &binfloat(0.5),
            &binfloat(f64::NAN),
            b"ss.",
        ]
        .concat();
        assert_eq!(
            read(&nan_loss),
            shape("group 'a' at ratio 0.5: the loss NaN is not a finite number")
        );
        let twice = [
            &b"}X\x01\x00\x00\x00a}"[..],
            &binfloat(0.5),
            b"K\x01s",
            &binfloat(0.5),
            b"K\x02ss.",
        ]
        .concat();
        assert_eq!(read(&twice), shape("group 'a': the ratio 0.5 appears twice"));
        // A str key and a bytes key of the same name, as serde-pickle can write them.
        assert_eq!(
            read(b"}(X\x01\x00\x00\x00a}C\x01a}u."),
            shape("the group 'a' appears twice")
        );
        assert_eq!(read(b"}."), Ok(Sensitivities::new()));
    }

    #[test]
    fn quote_escapes_and_cuts_long_strings() {
        assert_eq!(quote("a'b\nc"), "'a\\'b\\nc'");
        assert_eq!(quote(&"x".repeat(100)), format!("'{}…'", "x".repeat(64)));
    }

    #[test]
    fn no_single_byte_change_of_a_fixture_panics() {
        for fixture in FIXTURES {
            let mut bytes = fixture.to_vec();
            for position in 0..bytes.len() {
                let original = bytes[position];
                for value in 0..=u8::MAX {
                    bytes[position] = value;
                    let _ = read(&bytes);
                }
                bytes[position] = original;
            }
        }
    }
}
