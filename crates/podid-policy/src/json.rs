//! A small JSON parser for policy documents and case files.
//!
//! It keeps the position of every value (for error messages and for the statement positions that
//! IAM's simulator reports), rejects duplicate object keys, and bounds the input size and the
//! nesting depth, so that no input can exhaust memory, time or the stack. Numbers are kept as the
//! text that was written, because IAM treats numeric condition values as strings.

use std::fmt;

/// Bounds on what [`parse`] accepts.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest input, in bytes.
    pub max_bytes: usize,
    /// The deepest nesting of arrays and objects.
    pub max_depth: usize,
}

impl Limits {
    /// The limits for a policy document: IAM's API maximum of 131,072 characters (at most four
    /// bytes each), and a depth that no valid policy comes near.
    pub const POLICY: Self = Self {
        max_bytes: 131_072 * 4,
        max_depth: 32,
    };

    /// The limits for a file of test cases.
    pub const CASE_FILE: Self = Self {
        max_bytes: 64 * 1024 * 1024,
        max_depth: 64,
    };
}

/// Where a value sits in its source: byte offsets, end exclusive.
#[derive(Clone, Copy, Debug, Default)]
pub struct Span {
    /// The offset of the first byte.
    pub start: usize,
    /// The offset just past the last byte.
    pub end: usize,
}

/// A line and column, both counted from 1; the column counts characters, not bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1, in characters.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `source`.
    pub fn of(source: &str, offset: usize) -> Self {
        let mut line = 1;
        let mut column = 1;
        for (i, c) in source.char_indices() {
            if i >= offset {
                break;
            }
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        Self { line, column }
    }
}

/// The start of every line of a text, and character counts at regular byte offsets, to turn byte
/// offsets into positions in time independent of the length of the line.
#[derive(Clone, Debug)]
pub struct LineIndex {
    starts: Vec<usize>,
    // (byte offset on a character boundary, characters before it), every ~1 KiB.
    checkpoints: Vec<(usize, usize)>,
}

const CHECKPOINT_BYTES: usize = 1024;

impl LineIndex {
    /// Indexes `source`.
    pub fn new(source: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        let mut checkpoints = vec![(0, 0)];
        let mut next = CHECKPOINT_BYTES;
        for (chars, (offset, _)) in source.char_indices().enumerate() {
            if offset >= next {
                checkpoints.push((offset, chars));
                next = offset + CHECKPOINT_BYTES;
            }
        }
        Self {
            starts,
            checkpoints,
        }
    }

    /// The position of byte `offset` in `source`, which must be the text that was indexed.
    pub fn position(&self, source: &str, offset: usize) -> Position {
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = self.chars_before(source, offset) - self.chars_before(source, start) + 1;
        Position { line, column }
    }

    /// The number of characters before byte `offset`.
    fn chars_before(&self, source: &str, offset: usize) -> usize {
        let i = self
            .checkpoints
            .partition_point(|&(o, _)| o <= offset)
            .max(1);
        let (base, chars) = self.checkpoints.get(i - 1).copied().unwrap_or((0, 0));
        chars + source.get(base..offset).map_or(0, |s| s.chars().count())
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// A JSON value and where it was written.
#[derive(Clone, Debug)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where it was written.
    pub span: Span,
}

/// A JSON value.
#[derive(Clone, Debug)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Node>),
    /// An object, its members in the order written; keys are unique.
    Object(Vec<Member>),
}

impl Value {
    /// What kind of value this is, for messages: `an object`, `a string`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Number(_) => "a number",
            Self::String(_) => "a string",
            Self::Array(_) => "an array",
            Self::Object(_) => "an object",
        }
    }
}

/// A member of an object.
#[derive(Clone, Debug)]
pub struct Member {
    /// The key, unescaped.
    pub key: String,
    /// Where the key was written.
    pub key_span: Span,
    /// The value.
    pub value: Node,
}

impl Node {
    /// The member `key` of this object (keys compared exactly), if this is an object that has it.
    pub fn member(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Object(members) => members.iter().find(|m| m.key == key).map(|m| &m.value),
            _ => None,
        }
    }

    /// This value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Why a text is not acceptable JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// What is wrong.
    pub kind: JsonErrorKind,
    /// Where, as a byte offset.
    pub offset: usize,
    /// Where, as a line and column.
    pub position: Position,
}

/// What is wrong with a JSON text.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonErrorKind {
    /// A control character inside a string.
    ControlCharacter,
    /// The same key twice in one object.
    DuplicateKey(String),
    /// The input ended too early.
    Eof,
    /// An invalid escape sequence inside a string.
    InvalidEscape,
    /// A number that does not follow JSON's grammar.
    InvalidNumber,
    /// Bytes that are not UTF-8.
    InvalidUtf8,
    /// A `\u` escape for half of a surrogate pair without the other half.
    LoneSurrogate,
    /// Nesting deeper than allowed.
    TooDeep(usize),
    /// An input larger than allowed.
    TooLarge(usize),
    /// Text after the end of the value.
    TrailingCharacters,
    /// A character that cannot start or continue what was expected.
    Unexpected {
        /// The character found.
        found: char,
        /// What was expected, in words.
        expected: &'static str,
    },
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            JsonErrorKind::ControlCharacter => f.write_str("control character inside a string")?,
            JsonErrorKind::DuplicateKey(k) => write!(f, "duplicate key `{k}`")?,
            JsonErrorKind::Eof => f.write_str("unexpected end of input")?,
            JsonErrorKind::InvalidEscape => f.write_str("invalid escape sequence")?,
            JsonErrorKind::InvalidNumber => f.write_str("invalid number")?,
            JsonErrorKind::InvalidUtf8 => f.write_str("the text is not valid UTF-8")?,
            JsonErrorKind::LoneSurrogate => f.write_str("unpaired surrogate in a `\\u` escape")?,
            JsonErrorKind::TooDeep(max) => write!(f, "nested deeper than {max} levels")?,
            JsonErrorKind::TooLarge(max) => write!(f, "larger than {max} bytes")?,
            JsonErrorKind::TrailingCharacters => {
                f.write_str("unexpected text after the JSON value")?
            }
            JsonErrorKind::Unexpected { found, expected } => {
                write!(f, "expected {expected}, found `{}`", found.escape_debug())?;
            }
        }
        write!(f, " at {}", self.position)
    }
}

impl JsonError {
    /// What is wrong, without the position.
    pub fn kind_text(&self) -> String {
        let full = self.to_string();
        let suffix = format!(" at {}", self.position);
        full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
    }
}

impl std::error::Error for JsonError {}

/// Parses bytes that must be UTF-8 JSON.
pub fn parse_bytes(bytes: &[u8], limits: Limits) -> Result<(String, Node), JsonError> {
    if bytes.len() > limits.max_bytes {
        return Err(JsonError {
            kind: JsonErrorKind::TooLarge(limits.max_bytes),
            offset: 0,
            position: Position { line: 1, column: 1 },
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let valid =
            std::str::from_utf8(bytes.get(..offset).unwrap_or_default()).unwrap_or_default();
        JsonError {
            kind: JsonErrorKind::InvalidUtf8,
            offset,
            position: Position::of(valid, offset),
        }
    })?;
    let node = parse(text, limits)?;
    Ok((text.to_owned(), node))
}

/// Parses a JSON text.
pub fn parse(text: &str, limits: Limits) -> Result<Node, JsonError> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        limits,
    };
    if text.len() > limits.max_bytes {
        return Err(parser.error_at(0, JsonErrorKind::TooLarge(limits.max_bytes)));
    }
    // A byte-order mark is tolerated, as most JSON readers do.
    if text.starts_with('\u{feff}') {
        parser.pos = 3;
    }
    parser.skip_whitespace();
    let node = parser.value(0)?;
    parser.skip_whitespace();
    if parser.pos != parser.bytes.len() {
        return Err(parser.error(JsonErrorKind::TrailingCharacters));
    }
    Ok(node)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    limits: Limits,
}

impl Parser<'_> {
    fn value(&mut self, depth: usize) -> Result<Node, JsonError> {
        let start = self.pos;
        let value = match self.peek() {
            None => return Err(self.error(JsonErrorKind::Eof)),
            Some(b'{') => self.object(depth + 1)?,
            Some(b'[') => self.array(depth + 1)?,
            Some(b'"') => Value::String(self.string()?),
            Some(b't') => self.literal("true", Value::Bool(true))?,
            Some(b'f') => self.literal("false", Value::Bool(false))?,
            Some(b'n') => self.literal("null", Value::Null)?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(_) => return Err(self.unexpected("a JSON value")),
        };
        Ok(Node {
            value,
            span: Span {
                start,
                end: self.pos,
            },
        })
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > self.limits.max_depth {
            return Err(self.error(JsonErrorKind::TooDeep(self.limits.max_depth)));
        }
        self.pos += 1; // '{'
        let mut members: Vec<Member> = Vec::new();
        // Small objects are checked for duplicate keys by scanning; large ones through a set, so
        // that no object costs more than linear time.
        let mut keys: Option<std::collections::HashSet<String>> = None;
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.unexpected_or_eof("a string key"));
            }
            let key_start = self.pos;
            let key = self.string()?;
            let key_span = Span {
                start: key_start,
                end: self.pos,
            };
            let duplicate = match &mut keys {
                Some(set) => !set.insert(key.clone()),
                None => {
                    let seen = members.iter().any(|m| m.key == key);
                    if members.len() >= 16 {
                        keys = Some(
                            members
                                .iter()
                                .map(|m| m.key.clone())
                                .chain([key.clone()])
                                .collect(),
                        );
                    }
                    seen
                }
            };
            if duplicate {
                return Err(self.error_at(key_start, JsonErrorKind::DuplicateKey(key)));
            }
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(self.unexpected_or_eof("`:`"));
            }
            self.pos += 1;
            self.skip_whitespace();
            let value = self.value(depth)?;
            members.push(Member {
                key,
                key_span,
                value,
            });
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.unexpected_or_eof("`,` or `}`")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > self.limits.max_depth {
            return Err(self.error(JsonErrorKind::TooDeep(self.limits.max_depth)));
        }
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.unexpected_or_eof("`,` or `]`")),
            }
        }
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(self.text.get(run_start..self.pos).unwrap_or_default());
            match self.peek() {
                None => return Err(self.error(JsonErrorKind::Eof)),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let escape_start = self.pos;
                    self.pos += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            let c = self.unicode_escape(escape_start)?;
                            out.push(c);
                            continue;
                        }
                        None => return Err(self.error(JsonErrorKind::Eof)),
                        Some(_) => {
                            return Err(self.error_at(escape_start, JsonErrorKind::InvalidEscape));
                        }
                    };
                    self.pos += 1;
                    out.push(c);
                }
                Some(_) => return Err(self.error(JsonErrorKind::ControlCharacter)),
            }
        }
    }

    /// Reads the four hex digits after `\u` (and a second escape for a surrogate pair).
    fn unicode_escape(&mut self, escape_start: usize) -> Result<char, JsonError> {
        let first = self.hex4(escape_start)?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                return Err(self.error_at(escape_start, JsonErrorKind::LoneSurrogate));
            }
            self.pos += 2;
            let second = self.hex4(escape_start)?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(self.error_at(escape_start, JsonErrorKind::LoneSurrogate));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else if (0xDC00..0xE000).contains(&first) {
            return Err(self.error_at(escape_start, JsonErrorKind::LoneSurrogate));
        } else {
            first
        };
        char::from_u32(code)
            .ok_or_else(|| self.error_at(escape_start, JsonErrorKind::InvalidEscape))
    }

    fn hex4(&mut self, escape_start: usize) -> Result<u32, JsonError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error_at(escape_start, JsonErrorKind::InvalidEscape))?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error_at(escape_start, JsonErrorKind::InvalidEscape));
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16)
            .map_err(|_| self.error_at(escape_start, JsonErrorKind::InvalidEscape))
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error_at(start, JsonErrorKind::InvalidNumber)),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error_at(start, JsonErrorKind::InvalidNumber));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error_at(start, JsonErrorKind::InvalidNumber));
            }
            self.digits();
        }
        Ok(Value::Number(
            self.text
                .get(start..self.pos)
                .unwrap_or_default()
                .to_owned(),
        ))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, JsonError> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.unexpected("a JSON value"))
        }
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn unexpected(&self, expected: &'static str) -> JsonError {
        let found = self
            .text
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
            .unwrap_or('\u{fffd}');
        self.error(JsonErrorKind::Unexpected { found, expected })
    }

    fn unexpected_or_eof(&self, expected: &'static str) -> JsonError {
        if self.pos >= self.bytes.len() {
            self.error(JsonErrorKind::Eof)
        } else {
            self.unexpected(expected)
        }
    }

    fn error(&self, kind: JsonErrorKind) -> JsonError {
        self.error_at(self.pos, kind)
    }

    fn error_at(&self, offset: usize, kind: JsonErrorKind) -> JsonError {
        JsonError {
            kind,
            offset,
            position: Position::of(self.text, offset),
        }
    }
}

/// Appends `s` to `out` as a JSON string literal.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Node {
        parse(text, Limits::POLICY).unwrap()
    }

    fn parse_err(text: &str) -> JsonError {
        parse(text, Limits::POLICY).unwrap_err()
    }

    #[test]
    fn parses_every_kind_of_value() {
        let node = parse_ok(r#" {"a": [1, -2.5e3, true, false, null, "x\u00e9\ud83d\ude00\n"]} "#);
        let Value::Array(items) = &node.member("a").unwrap().value else {
            panic!("not an array")
        };
        assert!(matches!(&items[0].value, Value::Number(n) if n == "1"));
        assert!(matches!(&items[1].value, Value::Number(n) if n == "-2.5e3"));
        assert!(matches!(items[2].value, Value::Bool(true)));
        assert!(matches!(items[4].value, Value::Null));
        assert_eq!(items[5].as_str(), Some("xé😀\n"));
        assert_eq!(items[0].span.start, 8);
    }

    #[test]
    fn rejects_duplicate_keys_at_the_second_key() {
        let err = parse_err("{\n  \"a\": 1,\n  \"a\": 2\n}");
        assert_eq!(err.kind, JsonErrorKind::DuplicateKey("a".into()));
        assert_eq!(err.position, Position { line: 3, column: 3 });
        assert_eq!(err.to_string(), "duplicate key `a` at line 3, column 3");
    }

    #[test]
    fn bounds_depth_and_size() {
        let deep = "[".repeat(40) + &"]".repeat(40);
        assert_eq!(parse_err(&deep).kind, JsonErrorKind::TooDeep(32));
        let huge = " ".repeat(Limits::POLICY.max_bytes + 1);
        assert!(matches!(parse_err(&huge).kind, JsonErrorKind::TooLarge(_)));
    }

    #[test]
    fn reports_bad_text_with_its_position() {
        assert_eq!(parse_err("").kind, JsonErrorKind::Eof);
        assert_eq!(
            parse_err("{\"a\" 1}").position,
            Position { line: 1, column: 6 }
        );
        assert_eq!(
            parse_err("[01]").kind,
            JsonErrorKind::Unexpected {
                found: '1',
                expected: "`,` or `]`"
            }
        );
        assert_eq!(parse_err("[1.]").kind, JsonErrorKind::InvalidNumber);
        assert_eq!(
            parse_err("\"a\u{1}\"").kind,
            JsonErrorKind::ControlCharacter
        );
        assert_eq!(parse_err(r#""\x""#).kind, JsonErrorKind::InvalidEscape);
        assert_eq!(parse_err(r#""\ud800""#).kind, JsonErrorKind::LoneSurrogate);
        assert_eq!(parse_err(r#""\udc00""#).kind, JsonErrorKind::LoneSurrogate);
        assert_eq!(parse_err("{} x").kind, JsonErrorKind::TrailingCharacters);
        assert_eq!(
            parse_err("tru").kind,
            JsonErrorKind::Unexpected {
                found: 't',
                expected: "a JSON value"
            }
        );
        assert_eq!(
            parse_err("{\"a\":1,}").kind,
            JsonErrorKind::Unexpected {
                found: '}',
                expected: "a string key"
            }
        );
    }

    #[test]
    fn rejects_invalid_utf8_with_its_offset() {
        let err = parse_bytes(b"{\"a\": \"\xff\"}", Limits::POLICY).unwrap_err();
        assert_eq!(err.kind, JsonErrorKind::InvalidUtf8);
        assert_eq!(err.offset, 7);
    }

    #[test]
    fn line_index_agrees_with_scanning() {
        let text = "ab\ncdé\n\nx";
        let index = LineIndex::new(text);
        for (offset, _) in text.char_indices() {
            assert_eq!(
                index.position(text, offset),
                Position::of(text, offset),
                "{offset}"
            );
        }
    }

    #[test]
    fn writes_strings_that_parse_back() {
        let original = "a\"b\\c\n\u{1}é";
        let mut out = String::new();
        write_string(&mut out, original);
        assert_eq!(parse_ok(&out).as_str(), Some(original));
    }
}
