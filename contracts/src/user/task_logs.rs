//! `GET /v1/tasks/{id}/logs`: its query (which stream, whether to follow) and the answer
//! without `follow` (with it, the events of [`crate::logs`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::worker::OutputStream;

/// `stream` of `GET /v1/tasks/{id}/logs`: which output to return (default `all`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskLogStream {
    Stdout,
    Stderr,
    #[default]
    All,
}

impl TaskLogStream {
    pub const ALL: [TaskLogStream; 3] = [Self::Stdout, Self::Stderr, Self::All];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::All => "all",
        }
    }
}

impl std::str::FromStr for TaskLogStream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|stream| stream.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not one of stdout, stderr, all"))
    }
}

impl TaskLogStream {
    /// Whether lines of `stream` pass this filter.
    pub fn admits(self, stream: OutputStream) -> bool {
        matches!(
            (self, stream),
            (Self::All, _)
                | (Self::Stdout, OutputStream::Stdout)
                | (Self::Stderr, OutputStream::Stderr)
        )
    }
}

/// The query of `GET /v1/tasks/{id}/logs`: `stream` (default `all`) and `follow` (`true` or
/// `false`, default `false`). Anything else is refused by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskLogsQuery {
    pub stream: TaskLogStream,
    pub follow: bool,
}

impl TaskLogsQuery {
    /// The parameter names, for messages.
    pub const PARAMS: [&str; 2] = ["stream", "follow"];

    /// Parses the query's pairs; the error names the parameter and what is wrong with it.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, (String, String)> {
        let mut query = Self::default();
        for (name, value) in pairs {
            match name {
                "stream" => query.stream = value.parse().map_err(|e| (name.to_owned(), e))?,
                "follow" => {
                    query.follow = match value {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err((
                                name.to_owned(),
                                format!("{other:?} is not true or false"),
                            ));
                        }
                    }
                }
                other => {
                    return Err((
                        other.to_owned(),
                        format!("unknown parameter ({})", Self::PARAMS.join(", ")),
                    ));
                }
            }
        }
        Ok(query)
    }

    /// The query string cynork sends.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![("stream", self.stream.as_str().to_owned())];
        if self.follow {
            pairs.push(("follow", "true".to_owned()));
        }
        pairs
    }
}

/// `GET /v1/tasks/{id}/logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskLogs {
    pub task_id: Uuid,
    pub stdout: String,
    pub stderr: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logs_query_is_typed_and_names_what_is_wrong() {
        assert_eq!(TaskLogsQuery::parse([]), Ok(TaskLogsQuery::default()));
        assert_eq!(
            TaskLogsQuery::parse([("follow", "true"), ("stream", "stderr")]),
            Ok(TaskLogsQuery {
                stream: TaskLogStream::Stderr,
                follow: true
            })
        );
        for (pair, name) in [
            (("follow", "maybe"), "follow"),
            (("follow", ""), "follow"),
            (("stream", "both"), "stream"),
            (("tail", "1"), "tail"),
        ] {
            assert_eq!(TaskLogsQuery::parse([pair]).unwrap_err().0, name);
        }
        let query = TaskLogsQuery {
            stream: TaskLogStream::Stdout,
            follow: true,
        };
        let pairs = query.pairs();
        let back = TaskLogsQuery::parse(pairs.iter().map(|(k, v)| (*k, v.as_str())));
        assert_eq!(back, Ok(query));
    }
}
