//! Reading a configuration file's text. A TOML syntax or type mistake
//! becomes a [`ConfigError`] like every checked one: the field path
//! (`server.max_connections`, `group[1].allowed`), the line and column, and
//! a fix. A mistake found by the checks after parsing gains the line of its
//! field with [`locate`].

use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};

use super::ConfigError;

/// A place in a configuration file: line and column, from 1; columns count
/// characters, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// Where byte `offset` of `text` is (its end, for an offset past it).
    pub fn of(text: &str, offset: usize) -> Self {
        let head = text.as_bytes().get(..offset).unwrap_or(text.as_bytes());
        let line_start = head.iter().rposition(|&b| b == b'\n').map_or(0, |nl| nl + 1);
        let line = head.iter().filter(|&&b| b == b'\n').count() + 1;
        // A UTF-8 continuation byte (10xxxxxx) starts no character.
        let column = head.get(line_start..).unwrap_or_default().iter().filter(|&&b| b & 0xC0 != 0x80).count() + 1;
        Self { line, column }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// A configuration file's text, and the folder its relative paths start from.
pub fn read(path: &Path) -> Result<(String, &Path), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            "(file)",
            format!("cannot read {}: {e}", path.display()),
            "pass an existing file with --config",
        )
    })?;
    Ok((text, path.parent().unwrap_or(Path::new("."))))
}

/// Parses `text` as the TOML of `T`. `example`: the file that documents
/// every field, named in the fixes.
pub fn from_toml<T: DeserializeOwned>(text: &str, example: &str) -> Result<T, ConfigError> {
    let document = toml::Deserializer::parse(text).map_err(|e| {
        ConfigError::new(
            "(syntax)",
            placed(text, e.span(), e.message()),
            format!("correct the TOML there ({example} shows every field written out)"),
        )
    })?;
    serde_path_to_error::deserialize(document).map_err(|e| {
        let path = e.path().to_string();
        type_mistake(text, &path, e.inner(), example)
    })
}

/// A type mistake (a string for a number, a number out of range, an
/// unknown or missing field) at `path`, serde_path_to_error's rendering:
/// `.` for the root, `group[1].allowed` below it.
fn type_mistake(text: &str, path: &str, e: &toml::de::Error, example: &str) -> ConfigError {
    let message = e.message();
    let mut field = if path == "." { String::new() } else { path.to_owned() };
    // serde names a missing field in its message; the path stops at its table.
    if let Some(missing) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
        if !field.is_empty() {
            field.push('.');
        }
        field.push_str(missing);
    }
    if field.is_empty() {
        field.push_str("(file)");
    }
    let fix = format!("{}; {example} documents every field", fix_for(message, &field));
    ConfigError::new(&field, placed(text, e.span(), message), fix)
}

fn placed(text: &str, span: Option<Range<usize>>, message: &str) -> String {
    match span {
        Some(s) => format!("{}: {message}", Position::of(text, s.start)),
        None => message.to_owned(),
    }
}

/// How to mend a serde mistake, from what its message says was expected.
fn fix_for(message: &str, field: &str) -> String {
    let whole = |max: u64| format!("write a whole number from 0 to {max}, without quotes");
    if message.starts_with("unknown field") {
        return "remove it, or correct its name to one of those expected".to_owned();
    }
    if message.starts_with("missing field") {
        return format!("add {field}");
    }
    if message.starts_with("duplicate field") {
        return "give it once".to_owned();
    }
    let expected = message.rsplit_once(", expected ").map_or("", |(_, e)| e);
    match expected {
        "u8" => whole(u8::MAX.into()),
        "u16" => whole(u16::MAX.into()),
        "u32" => whole(u32::MAX.into()),
        // TOML's integers stop at i64's largest.
        "u64" | "usize" => whole(i64::MAX.unsigned_abs()),
        "a boolean" => "write true or false, without quotes".to_owned(),
        "a string" | "path string" => "write it in double quotes".to_owned(),
        "a sequence" => "write a list in brackets, e.g. [\"a\", \"b\"]".to_owned(),
        e if e.starts_with("struct ") || e == "a map" => format!("write it as a table, [{field}]"),
        _ => "write a value of the type the field takes".to_owned(),
    }
}

/// `e` with the line of its field in `text` before its problem, when the
/// file has that field; a field left to its default has no line of its
/// own, and the nearest table the file has (`[[relay]]`) is named instead.
pub fn locate(text: &str, mut e: ConfigError) -> ConfigError {
    if let Some(at) = field_position(text, &e.field) {
        e.problem = format!("line {}: {}", at.line, e.problem);
    }
    e
}

/// Where `field` (`server.listen`, `relay[0].token_file`) is in `text`, or
/// the nearest table above it that is; `None` when not even its first key is.
pub fn field_position(text: &str, field: &str) -> Option<Position> {
    let root = DeValue::Table(DeTable::parse(text).ok()?.into_inner());
    let mut here = &root;
    let mut found = None;
    for step in steps(field) {
        let next = match step {
            Step::Key(k) => here.get(k),
            Step::Index(i) => here.get(i),
        };
        let Some(next) = next else { break };
        found = Some(next.span().start);
        here = next.get_ref();
    }
    found.map(|offset| Position::of(text, offset))
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `group[1].allowed` as `group`, `1`, `allowed`; a malformed index ends
/// the steps there.
fn steps(field: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in field.split('.') {
        let mut indices = part.split('[');
        out.push(Step::Key(indices.next().unwrap_or(part)));
        for index in indices {
            match index.strip_suffix(']').and_then(|i| i.parse().ok()) {
                Some(i) => out.push(Step::Index(i)),
                None => return out,
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        server: Server,
        #[serde(default, rename = "group")]
        groups: Vec<Group>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Server {
        listen: String,
        #[serde(default)]
        max_connections: usize,
        #[serde(default)]
        dtls_port: u16,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Group {
        name: String,
        #[serde(default)]
        allowed: Vec<String>,
    }

    const GOOD: &str =
        "[server]\nlisten = \"0.0.0.0:443\"\n\n[[group]]\nname = \"a\"\n\n[[group]]\nname = \"b\"\nallowed = []\n";

    fn mistake(text: &str) -> ConfigError {
        from_toml::<Doc>(text, "example.toml").expect_err("a mistake")
    }

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        let text = "a = 1\nü = \"x\"\n";
        assert_eq!(Position::of(text, 0), Position { line: 1, column: 1 });
        assert_eq!(Position::of(text, 6), Position { line: 2, column: 1 });
        assert_eq!(Position::of(text, 10), Position { line: 2, column: 4 }, "ü is one character of two bytes");
        assert_eq!(Position::of(text, 999), Position { line: 3, column: 1 }, "past the end: the end");
    }

    #[test]
    fn a_type_mistake_names_the_field_path_its_line_and_column() {
        let e = mistake(&GOOD.replace("listen = \"0.0.0.0:443\"", "listen = \"x\"\nmax_connections = \"many\""));
        assert_eq!(e.field, "server.max_connections");
        assert!(e.problem.starts_with("line 3, column 19: invalid type: string \"many\""), "{e}");
        assert!(e.fix.starts_with("write a whole number from 0 to ") && e.fix.contains("example.toml"), "{e}");

        let e = mistake(&GOOD.replace("listen = \"0.0.0.0:443\"", "listen = \"x\"\ndtls_port = 70000"));
        assert_eq!(e.field, "server.dtls_port");
        assert!(e.problem.starts_with("line 3, column 13: "), "{e}");
        assert!(e.fix.starts_with("write a whole number from 0 to 65535"), "{e}");

        let e = mistake(&GOOD.replace("allowed = []", "allowed = \"10.0.0.0/8\""));
        assert_eq!(e.field, "group[1].allowed");
        assert!(e.problem.starts_with("line 9, column 11: "), "{e}");
        assert!(e.fix.starts_with("write a list"), "{e}");
    }

    #[test]
    fn unknown_and_missing_fields_are_named_with_their_table() {
        let e = mistake(&GOOD.replace("name = \"b\"", "name = \"b\"\nbogus = 1"));
        assert_eq!(e.field, "group[1].bogus");
        assert!(e.problem.starts_with("line 9, column 1: unknown field `bogus`"), "{e}");
        assert!(e.fix.starts_with("remove it"), "{e}");

        let e = mistake(&GOOD.replace("listen = \"0.0.0.0:443\"\n", ""));
        assert_eq!(e.field, "server.listen");
        assert!(e.problem.contains("missing field `listen`"), "{e}");
        assert!(e.fix.starts_with("add server.listen"), "{e}");

        let e = mistake("");
        assert_eq!(e.field, "server", "{e}");
    }

    #[test]
    fn a_syntax_mistake_has_its_line() {
        let e = mistake(&GOOD.replace("[[group]]\nname = \"b\"", "[[group]\nname = \"b\""));
        assert_eq!(e.field, "(syntax)");
        assert!(e.problem.starts_with("line 7, column "), "{e}");
    }

    #[test]
    fn locate_finds_a_fields_line_or_its_tables() {
        let at = |field: &str| field_position(GOOD, field).map(|p| p.line);
        assert_eq!(at("server.listen"), Some(2));
        assert_eq!(at("group[1].allowed"), Some(9));
        assert_eq!(at("group[1].split_include"), Some(7), "a field the file leaves out: its table's header");
        assert_eq!(at("group[0]"), Some(4));
        assert_eq!(at("network.pool"), None);
        assert_eq!(at("(file)"), None);
        let e = locate(GOOD, ConfigError::new("group[1].allowed", "empty", "list networks"));
        assert_eq!(e.problem, "line 9: empty");
        let e = locate("not = [toml", ConfigError::new("group", "none", "add one"));
        assert_eq!(e.problem, "none", "text that is not TOML locates nothing");
    }
}
