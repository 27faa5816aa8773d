//! Where each key of a configuration file is: its line and its value as
//! written. The TOML parser and serde report a mistake as a byte span and a
//! message in their own terms (`expected usize`, `unknown field`); this
//! turns each into `line N: key: value what is wrong`, so that an operator
//! never has to map a Rust type back to the file.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::ConfigError;

/// One key or list element of the file.
#[derive(Clone, Debug)]
struct Spot {
    path: Vec<String>,
    /// Position in its list, for list elements.
    index: Option<usize>,
    /// The key as written; list elements have none.
    key_span: Option<Range<usize>>,
    value_span: Range<usize>,
    line: usize,
    /// The value as written (a table's is its `[header]`).
    raw: String,
    is_table: bool,
}

/// Every key and list element of a parsed file, in file order.
#[derive(Clone, Debug, Default)]
pub(super) struct Source {
    spots: Vec<Spot>,
}

/// A dotted key as TOML writes it: segments that are not bare keys are
/// quoted, so `backend.routes."example.org"` keeps its dot.
pub(crate) fn key_path<S: AsRef<str>>(segments: &[S]) -> String {
    let mut path = String::new();
    for (i, segment) in segments.iter().enumerate() {
        let segment = segment.as_ref();
        if i > 0 {
            path.push('.');
        }
        let bare = !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if bare {
            path.push_str(segment);
        } else {
            path.push_str(&format!("{segment:?}"));
        }
    }
    path
}

impl Source {
    /// Parse `text` as TOML, keeping where every key is. Syntax errors and
    /// repeated keys are reported here, with the key they are on.
    pub fn parse(text: &str) -> Result<(Source, Spanned<DeTable<'_>>), ConfigError> {
        let tree = DeTable::parse(text).map_err(|e| syntax_error(text, &e))?;
        let mut source = Source::default();
        source.walk(text, tree.get_ref(), &mut Vec::new());
        Ok((source, tree))
    }

    fn walk(&mut self, text: &str, table: &DeTable<'_>, path: &mut Vec<String>) {
        for (key, value) in table.iter() {
            path.push(key.get_ref().to_string());
            let value_span = value.span();
            self.spots.push(Spot {
                path: path.clone(),
                index: None,
                key_span: Some(key.span()),
                line: line_of(text, key.span().start),
                raw: shown(text.get(value_span.clone()).unwrap_or_default()),
                value_span,
                is_table: value.get_ref().is_table(),
            });
            match value.get_ref() {
                DeValue::Table(table) => self.walk(text, table, path),
                DeValue::Array(elements) => {
                    for (index, element) in elements.iter().enumerate() {
                        let span = element.span();
                        self.spots.push(Spot {
                            path: path.clone(),
                            index: Some(index),
                            key_span: None,
                            line: line_of(text, span.start),
                            raw: shown(text.get(span.clone()).unwrap_or_default()),
                            value_span: span,
                            is_table: element.get_ref().is_table(),
                        });
                    }
                }
                _ => {}
            }
            path.pop();
        }
    }

    fn find(&self, key: &str, index: Option<usize>) -> Option<&Spot> {
        self.spots
            .iter()
            .find(|spot| spot.index == index && key_path(&spot.path) == key)
    }

    /// Whether the file sets `key` (the default applies otherwise).
    pub fn is_set(&self, key: &str) -> bool {
        self.find(key, None).is_some()
    }

    /// The line of `key` (of its element `index`, else of the key itself)
    /// and its value as written there.
    pub fn locate(&self, key: &str, index: Option<usize>) -> Option<(usize, &str)> {
        let element = index.and_then(|i| self.find(key, Some(i)));
        element
            .or_else(|| self.find(key, None))
            .map(|spot| (spot.line, spot.raw.as_str()))
    }

    /// A serde error from reading the parsed tree into the configuration
    /// types, with the key and value its span points at.
    pub fn explain(&self, error: &toml::de::Error) -> ConfigError {
        let message = error.message().trim();
        let spot = error.span().and_then(|span| {
            self.spots
                .iter()
                .find(|spot| spot.key_span.as_ref() == Some(&span) || (spot.value_span == span))
        });
        let Some(spot) = spot else {
            return ConfigError {
                line: None,
                key: None,
                message: message.to_string(),
            };
        };
        let key = key_path(&spot.path);
        let message = if let Some(rest) = message.strip_prefix("unknown field `") {
            let known: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
            unknown_key(spot, &known)
        } else if let Some((_, expected)) = message
            .strip_prefix("invalid type: ")
            .or_else(|| message.strip_prefix("invalid value: "))
            .and_then(|m| m.rsplit_once(", expected "))
        {
            format!("{} is not {}", spot.raw, in_words(expected, spot, &key))
        } else {
            format!("{} {message}", spot.raw)
        };
        ConfigError {
            line: Some(spot.line),
            key: Some(key),
            message,
        }
    }
}

/// What to say of a key serde does not know; `known` lists the keys its
/// table does have.
fn unknown_key(spot: &Spot, known: &[&str]) -> String {
    let list = |wrap: fn(&str) -> String| {
        known
            .iter()
            .map(|key| wrap(key))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &spot.path[..] {
        [_] if spot.is_table => format!(
            "is not a table switchboard knows; the tables are {}",
            list(|key| format!("[{key}]"))
        ),
        [_] => format!(
            "is not a key of its own; every key goes under a table: {}",
            list(|key| format!("[{key}]"))
        ),
        [table @ .., _] => format!(
            "is not a key of [{}]; its keys are {}",
            key_path(table),
            list(str::to_string)
        ),
        [] => String::new(),
    }
}

/// serde's name for an expected type, in the operator's words.
fn in_words(expected: &str, spot: &Spot, key: &str) -> String {
    match expected {
        "a boolean" => "true or false".into(),
        "a string" | "path string" => "a string in double quotes".into(),
        "a sequence" if spot.is_table => "a list such as [\"…\"]".into(),
        "a sequence" => format!("a list: write [{}]", spot.raw),
        "a map" => format!("a table: write [{key}] on a line of its own, its keys below it"),
        _ if expected.starts_with("struct ") => {
            format!("a table: write [{key}] on a line of its own, its keys below it")
        }
        _ => expected.into(),
    }
}

/// The parser's own errors: bad syntax, or a key given twice.
fn syntax_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let Some(span) = error.span() else {
        return ConfigError {
            line: None,
            key: None,
            message: error.message().trim().to_string(),
        };
    };
    let line = line_of(text, span.start);
    let key = key_on_line(text, line);
    let message = if error.message().trim() == "duplicate key" {
        let first = key.as_ref().and_then(|key| {
            (1..line).find(|&earlier| key_on_line(text, earlier).as_ref() == Some(key))
        });
        match first {
            Some(first) => format!(
                "is given a second time (first on line {first}); give each key and table once"
            ),
            None => "is given a second time; give each key and table once".to_string(),
        }
    } else {
        let at = text.get(span.clone()).unwrap_or_default().trim();
        let at = if at.is_empty() {
            text.lines().nth(line - 1).unwrap_or_default().trim()
        } else {
            at
        };
        format!(
            "{} is not valid TOML: {}",
            shown(at),
            error.message().trim()
        )
    };
    ConfigError {
        line: Some(line),
        key,
        message,
    }
}

/// The key that line `line` (from 1) sets, or the table it opens, read from
/// the text alone (for errors that leave no parsed tree).
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let mut table = Vec::new();
    for (n, content) in text.lines().enumerate().take(line) {
        let content = content.trim();
        let header = content.starts_with('[') && !content.starts_with("[[");
        if header {
            // A line that only looks like a header (inside a list) does not
            // change the table.
            let path = key_segments(content);
            if n + 1 == line {
                return path.map(|path| key_path(&path));
            }
            if let Some(path) = path {
                table = path;
            }
        } else if n + 1 == line {
            let (key, _) = content.split_once('=')?;
            let mut path = table;
            path.extend(key_segments(&format!("{key} = 0"))?);
            return Some(key_path(&path));
        }
    }
    None
}

/// The key segments of a one-line TOML text: `[a."b.c"]` or `a.b = 0`.
fn key_segments(line: &str) -> Option<Vec<String>> {
    let tree = DeTable::parse(line).ok()?;
    let mut path = Vec::new();
    let mut table = tree.get_ref();
    loop {
        let (key, value) = table.iter().next()?;
        path.push(key.get_ref().to_string());
        match value.get_ref() {
            DeValue::Table(inner) if !inner.is_empty() => table = inner,
            _ => return Some(path),
        }
    }
}

/// A value as written; one that spans lines (a list) is put on one.
fn shown(raw: &str) -> String {
    if raw.contains('\n') {
        raw.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        raw.to_string()
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}
