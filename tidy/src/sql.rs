//! SQL found in string literals: which tables (and columns) a statement writes, and which
//! status words it compares a status column with. Regular expressions over the text, not a SQL
//! parser: the orchestrator's SQL is plain enough, and the unit tests pin what is understood.

use std::sync::LazyLock;

use regex::Regex;

/// What a statement does to its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Insert,
    Update,
    Delete,
}

impl WriteKind {
    pub fn verb(self) -> &'static str {
        match self {
            WriteKind::Insert => "INSERT INTO",
            WriteKind::Update => "UPDATE",
            WriteKind::Delete => "DELETE FROM",
        }
    }
}

/// One table written by a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub kind: WriteKind,
    /// Lower case, without a schema.
    pub table: String,
    /// The columns written, lower case; `None` when every column is (a `DELETE`, or an `INSERT`
    /// without a column list).
    pub columns: Option<Vec<String>>,
    /// Where the statement's keyword starts in the text.
    pub offset: usize,
}

static INSERT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:insert(?:\s+or\s+[a-z]+)?|replace)\s+into\s+([a-z_][a-z0-9_]*)(?:\s*\(([^)]*)\))?",
    )
    .expect("valid regex")
});

/// `UPDATE t [[AS] alias] SET`; the optional first group is `FOR [NO KEY] UPDATE` (a row lock)
/// or `DO UPDATE` (an upsert's, which belongs to its `INSERT`), neither a statement of its own.
static UPDATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(do\s+|for\s+(?:no\s+key\s+)?)?update\s+(?:only\s+)?([a-z_][a-z0-9_]*)(?:\s+(?:as\s+)?[a-z_][a-z0-9_]*)?\s+set\b",
    )
    .expect("valid regex")
});

static DELETE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bdelete\s+from\s+(?:only\s+)?([a-z_][a-z0-9_]*)").expect("valid regex")
});

static UPSERT_SET: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\bdo\s+update\s+set\b").expect("valid regex"));

/// Every table write in `sql`, in text order.
pub fn writes(sql: &str) -> Vec<Write> {
    let mut found = Vec::new();
    for captures in INSERT.captures_iter(sql) {
        let whole = captures.get(0).expect("match");
        let columns = captures.get(2).map(|list| {
            list.as_str()
                .split(',')
                .map(|column| column.trim().trim_matches('"').to_lowercase())
                .collect()
        });
        found.push(Write {
            kind: WriteKind::Insert,
            table: captures[1].to_lowercase(),
            columns,
            offset: whole.start(),
        });
    }
    for captures in UPDATE.captures_iter(sql) {
        if captures.get(1).is_some() {
            continue;
        }
        let whole = captures.get(0).expect("match");
        found.push(Write {
            kind: WriteKind::Update,
            table: captures[2].to_lowercase(),
            columns: Some(set_columns(&sql[whole.end()..])),
            offset: whole.start(),
        });
    }
    for captures in DELETE.captures_iter(sql) {
        found.push(Write {
            kind: WriteKind::Delete,
            table: captures[1].to_lowercase(),
            columns: None,
            offset: captures.get(0).expect("match").start(),
        });
    }
    found.sort_by_key(|write| write.offset);
    add_upsert_columns(sql, &mut found);
    found
}

/// An `INSERT … ON CONFLICT … DO UPDATE SET c = …` also writes `c`, whether or not the
/// `INSERT`'s column list names it.
fn add_upsert_columns(sql: &str, found: &mut [Write]) {
    for index in 0..found.len() {
        if found[index].kind != WriteKind::Insert {
            continue;
        }
        let end = found.get(index + 1).map_or(sql.len(), |next| next.offset);
        let statement = &sql[found[index].offset..end];
        let Some(upsert) = UPSERT_SET.find(statement) else {
            continue;
        };
        let extra = set_columns(&statement[upsert.end()..]);
        if let Some(columns) = &mut found[index].columns {
            for column in extra {
                if !columns.contains(&column) {
                    columns.push(column);
                }
            }
        }
    }
}

/// The columns assigned by the `SET` list at the start of `rest`: up to a `WHERE`, `FROM`,
/// `RETURNING`, `;` or the `)` that closes an enclosing CTE.
fn set_columns(rest: &str) -> Vec<String> {
    let mut columns = Vec::new();
    let mut depth = 0usize;
    let mut in_quote = false;
    let mut at_item_start = true;
    let bytes = rest.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if in_quote {
            in_quote = byte != b'\'';
            index += 1;
            continue;
        }
        match byte {
            b'\'' => in_quote = true,
            b'(' if at_item_start => {
                // `(a, b) = (…)`: every name in the parentheses is assigned.
                let close = rest[index..].find(')').map_or(rest.len(), |at| index + at);
                columns.extend(
                    rest[index + 1..close]
                        .split(',')
                        .map(|name| unqualified(name.trim())),
                );
                index = close;
                at_item_start = false;
            }
            b'(' => depth += 1,
            b')' if depth == 0 => break,
            b')' => depth -= 1,
            b';' if depth == 0 => break,
            b',' if depth == 0 => at_item_start = true,
            _ if depth == 0
                && !at_item_start
                && (index == 0 || !is_word_char(char::from(bytes[index - 1])))
                && starts_keyword(rest.get(index..).unwrap_or("")) =>
            {
                break;
            }
            _ if at_item_start && (byte.is_ascii_alphabetic() || byte == b'_') => {
                let name: String = rest[index..]
                    .chars()
                    .take_while(|&c| is_word_char(c) || c == '.')
                    .collect();
                index += name.len();
                columns.push(unqualified(&name));
                at_item_start = false;
                continue;
            }
            _ => {}
        }
        index += 1;
    }
    columns
}

/// Whether `text` starts with a keyword that ends a `SET` list (the caller checks the word
/// boundary before it).
fn starts_keyword(text: &str) -> bool {
    ["where", "from", "returning"].iter().any(|keyword| {
        text.get(..keyword.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(keyword))
            && text[keyword.len()..]
                .chars()
                .next()
                .is_none_or(|next| !is_word_char(next))
    })
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn unqualified(name: &str) -> String {
    name.rsplit('.').next().unwrap_or(name).to_lowercase()
}

/// A word compared with a status column: `status = 'running'`, `j.status <> 'failed'`,
/// `config_ack_status IN ('applied', …)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusWord {
    pub column: String,
    pub word: String,
    /// Where the word's quote starts in the text.
    pub offset: usize,
}

static STATUS_COMPARED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b([a-z_]*status)\s*(?:=|<>|!=)\s*'([^']*)'").expect("valid regex")
});

static STATUS_IN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b([a-z_]*status)\s+(?:not\s+)?in\s*\(([^)]*)\)").expect("valid regex")
});

static QUOTED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"'([^']*)'").expect("valid regex"));

/// Every quoted word that `sql` compares a `…status` column with (or assigns to one in `SET`).
pub fn status_words(sql: &str) -> Vec<StatusWord> {
    let mut found = Vec::new();
    for captures in STATUS_COMPARED.captures_iter(sql) {
        let word = captures.get(2).expect("group");
        found.push(StatusWord {
            column: captures[1].to_lowercase(),
            word: word.as_str().to_owned(),
            offset: word.start() - 1,
        });
    }
    for captures in STATUS_IN.captures_iter(sql) {
        let list = captures.get(2).expect("group");
        for quoted in QUOTED.captures_iter(list.as_str()) {
            let word = quoted.get(1).expect("group");
            found.push(StatusWord {
                column: captures[1].to_lowercase(),
                word: word.as_str().to_owned(),
                offset: list.start() + word.start() - 1,
            });
        }
    }
    let constraints = check_constraints(sql);
    found.retain(|word| !constraints.iter().any(|range| range.contains(&word.offset)));
    found.sort_by_key(|word| word.offset);
    found
}

static CHECK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\bcheck\s*\(").expect("valid regex"));

/// The spans of `CHECK (…)` constraints: schema, which states the words once (as the
/// migrations do, which are out of scope), not code that uses them.
fn check_constraints(sql: &str) -> Vec<std::ops::Range<usize>> {
    CHECK
        .find_iter(sql)
        .map(|open| {
            let mut depth = 0usize;
            let end = sql[open.end() - 1..]
                .char_indices()
                .find_map(|(at, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    (depth == 0).then_some(open.end() - 1 + at)
                })
                .unwrap_or(sql.len());
            open.start()..end
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(sql: &str) -> Vec<(WriteKind, String, Option<String>)> {
        writes(sql)
            .into_iter()
            .map(|write| (write.kind, write.table, write.columns.map(|c| c.join(","))))
            .collect()
    }

    #[test]
    fn inserts_updates_and_deletes_name_their_table() {
        assert_eq!(
            summary("INSERT INTO task_artifacts (id, task_id) VALUES ($1, $2)"),
            [(
                WriteKind::Insert,
                "task_artifacts".into(),
                Some("id,task_id".into())
            )]
        );
        assert_eq!(
            summary("update Jobs j set status = $1, setbacks = setbacks || $2 where id = $3"),
            [(
                WriteKind::Update,
                "jobs".into(),
                Some("status,setbacks".into())
            )]
        );
        assert_eq!(
            summary("DELETE FROM preference_entries WHERE id = $1"),
            [(WriteKind::Delete, "preference_entries".into(), None)]
        );
        assert_eq!(
            summary("INSERT OR REPLACE INTO node_config VALUES (?1)"),
            [(WriteKind::Insert, "node_config".into(), None)]
        );
    }

    #[test]
    fn row_locks_are_not_writes() {
        assert!(writes("SELECT id FROM jobs FOR UPDATE SKIP LOCKED").is_empty());
        assert!(writes("SELECT 1 FROM tasks t FOR NO KEY UPDATE OF t").is_empty());
        assert!(writes("failed to update the node").is_empty());
    }

    #[test]
    fn an_upsert_writes_its_inserts_table_and_its_set_columns() {
        let sql = "INSERT INTO tasks (id, name) VALUES ($1, $2)
                   ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, closed = true";
        assert_eq!(
            summary(sql),
            [(
                WriteKind::Insert,
                "tasks".into(),
                Some("id,name,status,closed".into())
            )]
        );
    }

    #[test]
    fn writes_inside_ctes_are_all_found_with_their_offsets() {
        let sql = "WITH done AS (UPDATE jobs SET status = 'completed' WHERE id = $1 RETURNING task_id)
                   UPDATE tasks SET (status, closed) = ('completed', true) FROM done WHERE id = done.task_id";
        let found = writes(sql);
        assert_eq!(
            summary(sql),
            [
                (WriteKind::Update, "jobs".into(), Some("status".into())),
                (
                    WriteKind::Update,
                    "tasks".into(),
                    Some("status,closed".into())
                ),
            ]
        );
        assert_eq!(&sql[found[1].offset..found[1].offset + 12], "UPDATE tasks");
    }

    #[test]
    fn a_set_list_ends_at_its_clause() {
        assert_eq!(
            set_columns(" name = lower($1), updated_at = now() WHERE id = $2"),
            ["name", "updated_at"]
        );
        assert_eq!(set_columns(" t.note = 'a, where' RETURNING id"), ["note"]);
        assert_eq!(set_columns(" fromage = 1) SELECT 1"), ["fromage"]);
        assert_eq!(set_columns(" a = nowhere, b = 2 WHERE c"), ["a", "b"]);
    }

    #[test]
    fn status_words_are_found_next_to_status_columns() {
        let sql = "UPDATE jobs SET status = 'failed' WHERE j.status IN ('queued', 'running')
                   AND config_ack_status <> 'applied' AND kind = 'failed'";
        let words: Vec<(String, String)> = status_words(sql)
            .into_iter()
            .map(|w| (w.column, w.word))
            .collect();
        assert_eq!(
            words,
            [
                ("status".into(), "failed".into()),
                ("status".into(), "queued".into()),
                ("status".into(), "running".into()),
                ("config_ack_status".into(), "applied".into()),
            ]
        );
        let first = &status_words(sql)[0];
        assert_eq!(&sql[first.offset..first.offset + 8], "'failed'");
        assert!(status_words("UPDATE jobs SET status = $1 WHERE status = ANY($2)").is_empty());
    }

    #[test]
    fn a_check_constraint_is_schema_not_use() {
        let ddl = "CREATE TABLE t (status TEXT CHECK (status IN ('running', 'exited')),
                   kind TEXT CHECK (length(kind) > 0));
                   SELECT 1 FROM t WHERE status = 'running'";
        let words: Vec<String> = status_words(ddl).into_iter().map(|w| w.word).collect();
        assert_eq!(words, ["running"]);
    }
}
