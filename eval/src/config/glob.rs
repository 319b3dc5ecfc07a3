//! The glob patterns of `Sensitivity.skip`, matched against whole channel-group keys.
//!
//! `*` matches any run of characters (a group key is a flat name, so `/` and `.` are ordinary characters), `?`
//! one character, `[abc]`, `[a-z]` and `[!a-z]` one character of (or not of) a set, and `\` makes the next
//! character literal. Small enough not to need a crate.

use std::fmt;

/// A checked glob pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    tokens: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Char(char),
    AnyChar,
    AnyRun,
    Class { negated: bool, ranges: Vec<(char, char)> },
}

impl Glob {
    /// Parses `pattern`.
    ///
    /// # Errors
    /// An empty pattern, an unclosed `[`, an empty set or a trailing `\`, as a message.
    pub fn new(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("expected a glob pattern, got an empty string".into());
        }
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let token = match chars[i] {
                '*' => Token::AnyRun,
                '?' => Token::AnyChar,
                '\\' => {
                    i += 1;
                    Token::Char(*chars.get(i).ok_or("the pattern ends in a lone '\\'")?)
                }
                '[' => {
                    let (class, end) = parse_class(&chars, i + 1)?;
                    i = end;
                    class
                }
                c => Token::Char(c),
            };
            tokens.push(token);
            i += 1;
        }
        Ok(Self {
            pattern: pattern.to_owned(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        // Greedy matching that, on a mismatch, lets the last `*` take one more character: enough for patterns
        // whose other tokens each match exactly one character.
        let (mut t, mut p) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.tokens.get(p) {
                Some(Token::AnyRun) => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(token) if token.matches(text[t]) => {
                    t += 1;
                    p += 1;
                }
                _ => match star {
                    Some((star_p, star_t)) => {
                        star = Some((star_p, star_t + 1));
                        p = star_p + 1;
                        t = star_t + 1;
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|token| *token == Token::AnyRun)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Char(want) => *want == c,
            Token::AnyChar => true,
            Token::AnyRun => false,
            Token::Class { negated, ranges } => ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) != *negated,
        }
    }
}

/// The set that starts at `chars[start]` (just after its `[`), and the index of its `]`. A `]` first in the
/// set (after `[` or `[!`) is a member, as in shell globs.
fn parse_class(chars: &[char], start: usize) -> Result<(Token, usize), String> {
    let unclosed = || "a '[' is not closed by ']'".to_owned();
    let at = |i: usize| chars.get(i).copied().ok_or_else(unclosed);
    let negated = chars.get(start) == Some(&'!');
    let first = if negated { start + 1 } else { start };
    let mut ranges = Vec::new();
    let mut i = first;
    loop {
        let mut lo = at(i)?;
        if lo == ']' && i > first {
            return Ok((Token::Class { negated, ranges }, i));
        }
        if lo == '\\' {
            i += 1;
            lo = at(i)?;
        }
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&c| c != ']') {
            let hi = at(i + 2)?;
            if hi < lo {
                return Err(format!("the range '{lo}-{hi}' is reversed"));
            }
            ranges.push((lo, hi));
            i += 3;
        } else {
            ranges.push((lo, lo));
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str) -> Glob {
        Glob::new(p).unwrap()
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(glob("*").matches("conv2d_12.w_0"));
        assert!(glob("conv2d_1*").matches("conv2d_12.w_0"));
        assert!(!glob("conv2d_1*").matches("conv2d_2.w_0"));
        assert!(glob("*.w_0").matches("conv2d_12.w_0"));
        assert!(glob("c*d*w_?").matches("conv2d_12.w_0"));
        assert!(!glob("c*d*w_?").matches("conv2d_12.w_01"));
        assert!(glob("a*b*c").matches("aXbYbZc"));
        assert!(!glob("a*b*c").matches("aXbYbZ"));
        assert!(glob("**").matches(""));
        assert!(!glob("?").matches(""));
    }

    #[test]
    fn sets_ranges_and_escapes() {
        assert!(glob("conv[0-9]").matches("conv7"));
        assert!(!glob("conv[0-9]").matches("convx"));
        assert!(glob("conv[!0-9]").matches("convx"));
        assert!(glob("[]a]").matches("]"));
        assert!(glob("a[-x]").matches("a-"));
        assert!(glob(r"a\*").matches("a*"));
        assert!(!glob(r"a\*").matches("ab"));
        assert!(glob("x[ab]y*").matches("xbyz"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(Glob::new("").is_err());
        assert!(Glob::new("conv[0-9").is_err());
        assert!(Glob::new("a\\").is_err());
        assert!(Glob::new("[z-a]").is_err());
    }
}
