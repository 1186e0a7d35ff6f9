//! Replaces secrets a user pasted into a chat message with `SECRET_REDACTED` before the message
//! is stored or sent to any model. Detection is by shape (well-known token prefixes, PEM private
//! keys, `Authorization`-style bearer tokens, `password=`-style assignments), so it errs towards
//! leaving ordinary prose alone.

use std::sync::OnceLock;

use regex::Regex;

pub const REDACTED: &str = "SECRET_REDACTED";

/// What was found, by kind (for the audit log); never the secret itself.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    pub kinds: Vec<&'static str>,
}

impl Findings {
    pub fn any(&self) -> bool {
        !self.kinds.is_empty()
    }

    fn note(&mut self, kind: &'static str) {
        if !self.kinds.contains(&kind) {
            self.kinds.push(kind);
        }
    }
}

/// `(kind, pattern, group)`: the match of `group` (0: the whole match) is replaced.
fn patterns() -> &'static [(&'static str, Regex, usize)] {
    static PATTERNS: OnceLock<Vec<(&'static str, Regex, usize)>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let table: &[(&str, &str, usize)] = &[
            (
                "private_key",
                r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\z)",
                0,
            ),
            // CyNodeAI personal API keys.
            ("cynodeai_api_key", r"\bcyn_[0-9a-fA-F]{16,}\b", 0),
            // OpenAI (sk-..., sk-proj-...), Anthropic (sk-ant-...) and look-alikes.
            ("openai_key", r"\bsk-[A-Za-z0-9_-]{16,}", 0),
            ("github_token", r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})", 0),
            ("aws_access_key", r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", 0),
            ("slack_token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}", 0),
            ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", 0),
            ("bearer_token", r"(?i)\bbearer\s+([A-Za-z0-9._~+/=-]{12,})", 1),
            (
                "password",
                r#"(?i)\b(?:password|passwd|pwd|passphrase|secret|api[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret)\s*[:=]\s*["']?([^\s"'&;,]+)"#,
                1,
            ),
        ];
        table
            .iter()
            .map(|(kind, re, group)| (*kind, Regex::new(re).expect("static pattern"), *group))
            .collect()
    })
}

/// `text` with every detected secret replaced by [`REDACTED`], and what was found.
pub fn redact(text: &str, findings: &mut Findings) -> String {
    let mut out = text.to_owned();
    for (kind, re, group) in patterns() {
        if !re.is_match(&out) {
            continue;
        }
        let mut result = String::with_capacity(out.len());
        let mut last = 0;
        let mut hit = false;
        for caps in re.captures_iter(&out) {
            let Some(m) = caps.get(*group) else { continue };
            if m.as_str() == REDACTED {
                continue;
            }
            result.push_str(&out[last..m.start()]);
            result.push_str(REDACTED);
            last = m.end();
            hit = true;
        }
        if hit {
            result.push_str(&out[last..]);
            out = result;
            findings.note(kind);
        }
    }
    out
}

/// Redacts the text of an OpenAI message `content`: a string, or an array of parts whose
/// `text` fields are redacted. Other shapes are left as they are.
pub fn redact_content(content: &mut serde_json::Value, findings: &mut Findings) {
    match content {
        serde_json::Value::String(text) => *text = redact(text, findings),
        serde_json::Value::Array(parts) => {
            for part in parts {
                if let Some(serde_json::Value::String(text)) = part.get_mut("text") {
                    *text = redact(text, findings);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, kind: &str) -> String {
        let mut findings = Findings::default();
        let out = redact(input, &mut findings);
        assert!(out.contains(REDACTED), "{input} → {out}");
        assert!(findings.kinds.contains(&kind), "{input}: {findings:?}");
        out
    }

    #[test]
    fn well_known_tokens_are_replaced_and_the_rest_kept() {
        let out = check(
            "my key is sk-proj-abcdefghijklmnopqrstuvwx1234 ok?",
            "openai_key",
        );
        assert_eq!(out, "my key is SECRET_REDACTED ok?");
        let out = check(
            "token ghp_0123456789abcdefghijABCDEFGHIJ012345 here",
            "github_token",
        );
        assert_eq!(out, "token SECRET_REDACTED here");
        assert_eq!(
            check("AKIAIOSFODNN7EXAMPLE is my id", "aws_access_key"),
            "SECRET_REDACTED is my id"
        );
        let key = format!("cyn_{}", "ab".repeat(32));
        assert_eq!(
            check(&format!("use {key}."), "cynodeai_api_key"),
            "use SECRET_REDACTED."
        );
        check("xoxb-1234567890-abcdefghij", "slack_token");
        check(
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "jwt",
        );
    }

    #[test]
    fn bearer_tokens_keep_the_scheme() {
        let out = check(
            "curl -H 'Authorization: Bearer abc123def456ghi789' x",
            "bearer_token",
        );
        assert_eq!(out, "curl -H 'Authorization: Bearer SECRET_REDACTED' x");
    }

    #[test]
    fn password_assignments_keep_the_name() {
        assert_eq!(
            check("login with password=hunter2&user=bob", "password"),
            "login with password=SECRET_REDACTED&user=bob"
        );
        assert_eq!(
            check("PASSWORD: \"s3cr3t!\" then", "password"),
            "PASSWORD: \"SECRET_REDACTED\" then"
        );
        check("api_key = 12345", "password");
    }

    #[test]
    fn private_keys_are_removed_whole_even_when_cut_off() {
        let pem = "before\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----\nafter";
        assert_eq!(check(pem, "private_key"), "before\nSECRET_REDACTED\nafter");
        let cut = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXkt";
        assert_eq!(check(cut, "private_key"), "SECRET_REDACTED");
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "What is the capital of France?",
            "The task-manager uses sk- prefixes; ask me about passwords in general.",
            "a bearer of bad news",
            "AKIA is a prefix",
            "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----",
        ] {
            let mut findings = Findings::default();
            assert_eq!(redact(text, &mut findings), text);
            assert!(!findings.any(), "{text}: {findings:?}");
        }
    }

    #[test]
    fn content_parts_are_redacted_and_kinds_listed_once() {
        let mut findings = Findings::default();
        let mut content = serde_json::json!([
            {"type": "text", "text": "password=a1 and password=b2"},
            {"type": "image_url", "image_url": {"url": "http://x"}},
        ]);
        redact_content(&mut content, &mut findings);
        assert_eq!(
            content[0]["text"],
            "password=SECRET_REDACTED and password=SECRET_REDACTED"
        );
        assert_eq!(content[1]["image_url"]["url"], "http://x");
        assert_eq!(findings.kinds, ["password"]);
        // Idempotent: redacting again finds nothing new.
        let mut again = Findings::default();
        redact_content(&mut content, &mut again);
        assert!(!again.any(), "{again:?}");
    }
}
