//! Requests and tokens a job used, read from the answers as they pass: OpenAI's `usage`
//! (`prompt_tokens`, `completion_tokens`; in a stream, the chunk that carries it) and Ollama's
//! `prompt_eval_count` / `eval_count` (its final object).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

/// Counters of one job (or one route); shared by every request it makes.
#[derive(Debug, Default)]
pub struct Usage {
    requests: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
}

/// Tokens found in one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
}

impl Usage {
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, tokens: Tokens) {
        self.prompt_tokens
            .fetch_add(tokens.prompt, Ordering::Relaxed);
        self.completion_tokens
            .fetch_add(tokens.completion, Ordering::Relaxed);
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `run_diagnostics.inference` of the job result.
    pub fn to_json(&self) -> Value {
        let prompt = self.prompt_tokens.load(Ordering::Relaxed);
        let completion = self.completion_tokens.load(Ordering::Relaxed);
        json!({
            "requests": self.requests(),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        })
    }
}

/// Finds token counts in an answer, whole or fed in arbitrary pieces (a stream is scanned line
/// by line; SSE `data:` prefixes are dropped). A line longer than the cap is skipped, so a
/// hostile answer cannot make the scanner hold it.
#[derive(Debug, Default)]
pub struct UsageScanner {
    line: Vec<u8>,
    skipping: bool,
    found: Tokens,
}

const MAX_LINE: usize = 1024 * 1024;

impl UsageScanner {
    /// A non-streamed answer: one JSON document.
    pub fn whole(&mut self, body: &[u8]) {
        if let Ok(value) = serde_json::from_slice::<Value>(body) {
            self.take(&value);
        }
    }

    /// The next piece of a stream.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|b| *b == b'\n') {
            if !self.skipping {
                self.line.extend_from_slice(&bytes[..end]);
                let line = std::mem::take(&mut self.line);
                self.scan_line(&line);
            }
            self.skipping = false;
            self.line.clear();
            bytes = &bytes[end + 1..];
        }
        if !self.skipping {
            self.line.extend_from_slice(bytes);
            if self.line.len() > MAX_LINE {
                self.line.clear();
                self.skipping = true;
            }
        }
    }

    pub fn found(&self) -> Tokens {
        self.found
    }

    fn scan_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let json = line.strip_prefix(b"data:").unwrap_or(line);
        if let Ok(value) = serde_json::from_slice::<Value>(json.trim_ascii()) {
            self.take(&value);
        }
    }

    fn take(&mut self, value: &Value) {
        let count = |v: &Value| v.as_u64().unwrap_or(0);
        if let Some(usage) = value.get("usage").filter(|u| u.is_object()) {
            self.found.prompt += count(&usage["prompt_tokens"]);
            self.found.completion += count(&usage["completion_tokens"]);
        } else if value.get("eval_count").is_some() || value.get("prompt_eval_count").is_some() {
            self.found.prompt += count(&value["prompt_eval_count"]);
            self.found.completion += count(&value["eval_count"]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_usage_is_found_whole_and_in_an_event_stream_cut_anywhere() {
        let mut whole = UsageScanner::default();
        whole.whole(br#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#);
        assert_eq!(
            whole.found(),
            Tokens {
                prompt: 7,
                completion: 3
            }
        );

        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n\
            data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\r\n\r\n\
            data: [DONE]\n\n";
        for cut in [1, 7, 40, stream.len() - 3] {
            let mut scanner = UsageScanner::default();
            scanner.feed(&stream[..cut]);
            scanner.feed(&stream[cut..]);
            assert_eq!(
                scanner.found(),
                Tokens {
                    prompt: 5,
                    completion: 2
                },
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn ollama_counts_are_found_in_ndjson() {
        let mut scanner = UsageScanner::default();
        scanner.feed(b"{\"message\":{\"content\":\"a\"},\"done\":false}\n");
        scanner.feed(b"{\"done\":true,\"prompt_eval_count\":11,\"eval_count\":4}\n");
        assert_eq!(
            scanner.found(),
            Tokens {
                prompt: 11,
                completion: 4
            }
        );
    }

    #[test]
    fn an_overlong_line_is_skipped_and_scanning_goes_on() {
        let mut scanner = UsageScanner::default();
        scanner.feed(&vec![b'x'; MAX_LINE + 10]);
        scanner.feed(b"yyy\n{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n");
        assert_eq!(
            scanner.found(),
            Tokens {
                prompt: 1,
                completion: 1
            }
        );
        assert!(scanner.line.is_empty());
    }

    #[test]
    fn counters_add_up() {
        let usage = Usage::default();
        usage.count_request();
        usage.count_request();
        usage.add(Tokens {
            prompt: 3,
            completion: 4,
        });
        assert_eq!(
            usage.to_json(),
            json!({"requests": 2, "prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})
        );
    }
}
