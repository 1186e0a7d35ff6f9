//! Worker API bearer tokens at rest: `nodes.worker_api_bearer_token` holds
//! `enc:v1:<hex(nonce ‖ ChaCha20-Poly1305 ciphertext)>`, with the node's id as associated data so
//! that a ciphertext copied to another row does not decrypt. The orchestrator needs the
//! plaintext to call the worker, so the token is encrypted, not hashed.
//!
//! The key is `WORKER_TOKEN_KEY` (credential `worker-token-key`); without it, a key derived from
//! the JWT secret is used, so a database dump alone never holds the tokens. Rotation: the old key
//! goes to `WORKER_TOKEN_KEY_PREVIOUS` (credential `worker-token-key-previous`; once an explicit
//! key is set, the JWT-derived key is tried too) and at start-up
//! `nodes::reencrypt_worker_tokens` rewrites every row with the current key; plaintext rows from
//! before this change are encrypted by the same pass. A row neither key opens gets a fresh token and a new
//! `config_version`, so its node restarts and picks it up.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use cynode_service_kit::secrets::Secret;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth;
use crate::config::Secrets;
use crate::error::{Error, Result};

const PREFIX: &str = "enc:v1:";

/// The current key and, during a rotation, the previous one.
#[derive(Clone)]
pub struct TokenKeys {
    current: ChaCha20Poly1305,
    /// Keys that only decrypt: `WORKER_TOKEN_KEY_PREVIOUS`, and the JWT-derived key when an
    /// explicit key is set (so that adopting `WORKER_TOKEN_KEY` needs no previous key).
    previous: Vec<ChaCha20Poly1305>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(<redacted>)")
    }
}

fn cipher(label: &str, secret: &str) -> ChaCha20Poly1305 {
    let mut hash = Sha256::new();
    hash.update(label.as_bytes());
    hash.update([0]);
    hash.update(secret.as_bytes());
    ChaCha20Poly1305::new(Key::from_slice(&hash.finalize()))
}

/// What a stored value turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// Encrypted with the current key.
    Current(String),
    /// Readable, but not (yet) encrypted with the current key: plaintext or the previous key.
    Stale(String),
    /// Encrypted with a key this process does not have, or damaged.
    Unreadable,
}

impl TokenKeys {
    /// The keys a process's secrets give.
    pub fn from_secrets(secrets: &Secrets) -> Self {
        Self::new(
            secrets.worker_token_key.as_ref(),
            secrets.worker_token_key_previous.as_ref(),
            &secrets.jwt_secret,
        )
    }

    /// `key` is `WORKER_TOKEN_KEY` when set; else the key is derived from `jwt_secret`.
    pub fn new(key: Option<&Secret>, previous: Option<&Secret>, jwt_secret: &Secret) -> Self {
        let derived = || {
            cipher(
                "cynode worker-token-key from jwt-secret",
                jwt_secret.expose(),
            )
        };
        let mut old: Vec<_> = previous
            .map(|p| cipher("cynode worker-token-key", p.expose()))
            .into_iter()
            .collect();
        let current = match key {
            Some(key) => {
                old.push(derived());
                cipher("cynode worker-token-key", key.expose())
            }
            None => derived(),
        };
        Self {
            current,
            previous: old,
        }
    }

    pub fn seal(&self, node_id: Uuid, token: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .current
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: token.as_bytes(),
                    aad: node_id.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 encryption of a short token cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", hex::encode(out))
    }

    pub fn open_any(&self, node_id: Uuid, stored: &str) -> Opened {
        let Some(body) = stored.strip_prefix(PREFIX) else {
            return Opened::Stale(stored.to_owned());
        };
        let Ok(bytes) = hex::decode(body) else {
            return Opened::Unreadable;
        };
        if bytes.len() < 12 {
            return Opened::Unreadable;
        }
        let (nonce, sealed) = bytes.split_at(12);
        let try_with = |c: &ChaCha20Poly1305| {
            c.decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: node_id.as_bytes(),
                },
            )
            .ok()
            .and_then(|plain| String::from_utf8(plain).ok())
        };
        if let Some(plain) = try_with(&self.current) {
            return Opened::Current(plain);
        }
        match self.previous.iter().find_map(try_with) {
            Some(plain) => Opened::Stale(plain),
            None => Opened::Unreadable,
        }
    }

    /// The plaintext of a stored token, for a call to the worker.
    pub fn open(&self, node_id: Uuid, stored: &str) -> Result<Secret> {
        match self.open_any(node_id, stored) {
            Opened::Current(t) | Opened::Stale(t) => Ok(Secret::new(t)),
            Opened::Unreadable => Err(Error::internal(format!(
                "node {node_id}: the worker API token does not decrypt with WORKER_TOKEN_KEY \
                 (or WORKER_TOKEN_KEY_PREVIOUS)"
            ))),
        }
    }

    /// A fresh token for `node_id`: its plaintext and the stored form.
    pub fn issue(&self, node_id: Uuid) -> (Secret, String) {
        let token = auth::random_token();
        let sealed = self.seal(node_id, &token);
        (Secret::new(token), sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &str, prev: Option<&str>) -> TokenKeys {
        TokenKeys::new(
            Some(&Secret::new(k)),
            prev.map(Secret::new).as_ref(),
            &Secret::new("jwt-secret-jwt-secret"),
        )
    }

    #[test]
    fn tokens_round_trip_and_are_bound_to_the_node() {
        let k = keys("key-one", None);
        let node = Uuid::new_v4();
        let sealed = k.seal(node, "tok");
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("tok"));
        assert_eq!(k.open_any(node, &sealed), Opened::Current("tok".into()));
        assert_eq!(k.open_any(Uuid::new_v4(), &sealed), Opened::Unreadable);
        assert_eq!(k.open_any(node, "plain"), Opened::Stale("plain".into()));
        assert_eq!(k.open_any(node, "enc:v1:zz"), Opened::Unreadable);
    }

    #[test]
    fn adopting_an_explicit_key_reads_rows_of_the_derived_one() {
        let jwt = Secret::new("jwt-secret-jwt-secret");
        let node = Uuid::new_v4();
        let old = TokenKeys::new(None, None, &jwt).seal(node, "tok");
        let new = TokenKeys::new(Some(&Secret::new("explicit")), None, &jwt);
        assert_eq!(new.open_any(node, &old), Opened::Stale("tok".into()));
    }

    #[test]
    fn the_previous_key_opens_old_rows_and_an_unknown_key_does_not() {
        let node = Uuid::new_v4();
        let old = keys("key-one", None).seal(node, "tok");
        assert_eq!(
            keys("key-two", Some("key-one")).open_any(node, &old),
            Opened::Stale("tok".into())
        );
        assert_eq!(
            keys("key-two", None).open_any(node, &old),
            Opened::Unreadable
        );
    }
}
