//! The typed client of the node's model server, for model management only (ARCHITECTURE.md §4):
//! what it serves (`GET /v1/models`, which Ollama and llama.cpp both answer) and, when the
//! server is Ollama (`GET /api/version` answers), its local models (`/api/tags`), the loaded
//! ones (`/api/ps`) and pulling a missing one (`POST /api/pull`, streamed progress). The paths
//! are `cynode_contracts::routes::inference`'s.

use std::time::Duration;

use cynode_contracts::routes::inference::{ollama, openai};
use futures::StreamExt;
use serde::Deserialize;
use url::Url;

/// One look at the server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelSnapshot {
    /// Every model it can serve, sorted and without repeats.
    pub available: Vec<String>,
    /// Those in memory now: Ollama's `/api/ps`; a server that serves one preloaded model
    /// (llama.cpp) has everything it lists loaded.
    pub loaded: Vec<String>,
    /// Whether the server speaks Ollama's native API (and so can pull models).
    pub ollama: bool,
}

/// A line of Ollama's pull progress.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct PullProgress {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(default)]
    pub completed: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
}

impl PullProgress {
    /// "pulling manifest", "downloading 42%".
    pub fn describe(&self) -> String {
        match (self.total, self.completed) {
            (Some(total), Some(done)) if total > 0 => {
                format!("{} {}%", self.status, done.saturating_mul(100) / total)
            }
            _ => self.status.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("the pull request failed: {0}")]
    Request(String),
    #[error("Ollama refused the pull ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("Ollama reported: {0}")]
    Reported(String),
    #[error("the pull stream ended before Ollama reported success")]
    Unfinished,
}

#[derive(Debug, Clone)]
pub struct ModelServer {
    http: reqwest::Client,
    base: Url,
}

#[derive(Deserialize)]
struct OpenAiList {
    #[serde(default)]
    data: Vec<OpenAiModel>,
}

#[derive(Deserialize)]
struct OpenAiModel {
    id: String,
}

#[derive(Deserialize)]
struct OllamaList {
    #[serde(default)]
    models: Vec<OllamaModel>,
}

#[derive(Deserialize)]
struct OllamaModel {
    #[serde(alias = "model")]
    name: String,
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl ModelServer {
    pub fn new(http: reqwest::Client, base: Url) -> Self {
        Self { http, base }
    }

    pub fn url(&self) -> &Url {
        &self.base
    }

    /// `path` is one of the server's absolute paths, taken relative to the base URL.
    fn join(&self, path: &str) -> Result<Url, url::ParseError> {
        self.base.join(path.trim_start_matches('/'))
    }

    async fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Option<T> {
        let url = self.join(path).ok()?;
        let answer = self
            .http
            .get(url)
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())?;
        answer.json().await.ok()
    }

    /// `None` when nothing usable answers `GET /v1/models`.
    pub async fn snapshot(&self) -> Option<ModelSnapshot> {
        let listed: OpenAiList = self.get(openai::MODELS).await?;
        let mut available: Vec<String> = listed.data.into_iter().map(|m| m.id).collect();
        let ollama = self
            .get::<serde_json::Value>(ollama::VERSION)
            .await
            .is_some();
        let loaded = if ollama {
            if let Some(tags) = self.get::<OllamaList>(ollama::TAGS).await {
                available.extend(tags.models.into_iter().map(|m| m.name));
            }
            self.get::<OllamaList>(ollama::PS)
                .await
                .map(|ps| ps.models.into_iter().map(|m| m.name).collect())
                .unwrap_or_default()
        } else {
            available.clone()
        };
        available.sort();
        available.dedup();
        let mut loaded: Vec<String> = loaded;
        loaded.sort();
        loaded.dedup();
        Some(ModelSnapshot {
            available,
            loaded,
            ollama,
        })
    }

    /// Pulls `model` through Ollama, calling `progress` for every status line, and returns once
    /// Ollama reports success. Ollama's own errors come back as they are.
    pub async fn ollama_pull(
        &self,
        model: &str,
        mut progress: impl FnMut(&PullProgress),
    ) -> Result<(), PullError> {
        let url = self
            .join(ollama::PULL)
            .map_err(|e| PullError::Request(e.to_string()))?;
        let answer = self
            .http
            .post(url)
            .json(&serde_json::json!({"model": model, "stream": true}))
            // A model is gigabytes: the pull has no overall deadline, only the server's silence
            // would stop it (the connect timeout of the client still applies).
            .timeout(Duration::from_secs(24 * 3600))
            .send()
            .await
            .map_err(|e| PullError::Request(e.to_string()))?;
        let status = answer.status();
        if !status.is_success() {
            let text = answer.text().await.unwrap_or_default();
            let message = serde_json::from_str::<PullProgress>(&text)
                .ok()
                .and_then(|p| p.error)
                .unwrap_or(text);
            return Err(PullError::Refused {
                status: status.as_u16(),
                message,
            });
        }
        let mut stream = answer.bytes_stream();
        let mut line = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| PullError::Request(e.to_string()))?;
            for byte in chunk {
                if byte != b'\n' {
                    line.push(byte);
                    continue;
                }
                let text = std::mem::take(&mut line);
                if text.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let Ok(update) = serde_json::from_slice::<PullProgress>(&text) else {
                    continue;
                };
                if let Some(error) = update.error {
                    return Err(PullError::Reported(error));
                }
                progress(&update);
                if update.status == "success" {
                    return Ok(());
                }
            }
        }
        Err(PullError::Unfinished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_as_a_percentage_when_sizes_are_known() {
        let p: PullProgress = serde_json::from_str(
            r#"{"status":"pulling 6a0746a1ec1a","digest":"sha256:6a07","total":200,"completed":50}"#,
        )
        .unwrap();
        assert_eq!(p.describe(), "pulling 6a0746a1ec1a 25%");
        let p: PullProgress = serde_json::from_str(r#"{"status":"pulling manifest"}"#).unwrap();
        assert_eq!(p.describe(), "pulling manifest");
    }
}
