//! Output formats. `table` prints one line of `key=value` pairs per record (values with spaces,
//! quotes or control characters are JSON-quoted so a line always splits cleanly); `json` prints
//! exactly one pretty-printed JSON value on stdout, so scripts can parse it. Everything else
//! (prompts, progress, warnings) goes to stderr.

use std::io::Write;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// One `key=value` line from pairs; pairs with an empty key are skipped.
pub fn kv_line<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    pairs
        .iter()
        .filter(|(k, _)| !k.as_ref().is_empty())
        .map(|(k, v)| format!("{}={}", k.as_ref(), quote(v.as_ref())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Leaves plain tokens bare and JSON-quotes anything that would break a `key=value` line.
pub fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '\'' && c != '\\');
    if plain {
        value.to_owned()
    } else {
        serde_json::to_string(value).expect("strings serialise")
    }
}

/// One TSV field: as it is, unless a tab, newline or other control character would break the
/// row; then JSON-quoted. An empty value is `-`, so that every column shows something.
pub fn tsv_field(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else if text.chars().any(char::is_control) {
        serde_json::to_string(text).expect("strings serialise")
    } else {
        text.to_owned()
    }
}

/// A header line of tab-separated column names, then one line per row (each field through
/// [`tsv_field`]).
pub fn tsv_table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut lines = vec![header.join("\t")];
    lines.extend(rows.into_iter().map(|row| {
        row.iter()
            .map(|field| tsv_field(field))
            .collect::<Vec<_>>()
            .join("\t")
    }));
    lines.join("\n")
}

/// Pretty JSON of `value`, newline-terminated.
pub fn json_text<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("output types serialise");
    text.push('\n');
    text
}

/// Writes to stdout. A closed pipe (`cynork task list | head -1`) is not an error worth a panic.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Prints `value` as JSON, or the table text, depending on `format`.
pub fn emit<T: Serialize>(format: Format, value: &T, table: impl FnOnce() -> String) {
    match format {
        Format::Json => print(&json_text(value)),
        Format::Table => {
            let mut text = table();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            print(&text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_lines_quote_only_when_needed() {
        assert_eq!(
            kv_line(&[("task_id", "abc"), ("status", "completed")]),
            "task_id=abc status=completed"
        );
        assert_eq!(
            kv_line(&[("stdout", "hello\n"), ("stderr", "")]),
            r#"stdout="hello\n" stderr="""#
        );
        assert_eq!(
            kv_line(&[("prompt", "say \"hi\"")]),
            r#"prompt="say \"hi\"""#
        );
        assert_eq!(kv_line(&[("", "dropped"), ("k", "v")]), "k=v");
    }

    #[test]
    fn tsv_rows_never_break() {
        assert_eq!(
            tsv_table(
                &["a", "b"],
                [
                    vec!["x y".to_owned(), String::new()],
                    vec!["tab\there".to_owned(), "line\nbreak".to_owned()]
                ]
            ),
            "a\tb\nx y\t-\n\"tab\\there\"\t\"line\\nbreak\""
        );
        assert_eq!(tsv_table(&["only"], Vec::<Vec<String>>::new()), "only");
    }

    #[test]
    fn json_is_pretty_and_stable() {
        #[derive(Serialize)]
        struct Out {
            b: u8,
            a: &'static str,
        }
        assert_eq!(
            json_text(&Out { b: 1, a: "x" }),
            "{\n  \"b\": 1,\n  \"a\": \"x\"\n}\n"
        );
    }
}
