//! Credentials: Argon2id password hashes, HS256 JWTs for users and nodes, opaque refresh tokens
//! stored as SHA-256, and who a request's caller is ([`CurrentUser`], [`CurrentNode`];
//! the extractors that establish them read users, API keys and nodes, and live with the servers
//! in `app::extract`).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use cynode_contracts::problem::Problem;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm as JwtAlgorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{Error, Result};

pub const ISSUER: &str = "cynodeai";

/// Argon2id with the spec's parameters: m=64 MiB, t=3, p=2, 32-byte output.
fn argon2() -> Argon2<'static> {
    let params = Params::new(65536, 3, 2, Some(32)).expect("static Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// PHC string `$argon2id$v=19$m=65536,t=3,p=2$<salt>$<hash>`.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(Error::internal)
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a random password, verified against when the handle does not exist so that an
/// unknown handle costs as much time as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_token()).unwrap_or_default())
}

/// 32 random bytes, URL-safe hex. Used for refresh tokens and worker API bearer tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn sha256(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    Access,
    Node,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub token_type: TokenType,
    pub sub: String,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// The refresh session an access token belongs to; revoking it revokes the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_slug: Option<String>,
}

/// Signs and checks JWTs with the one HS256 key, and makes the console's CSRF tokens with a
/// key derived from it.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    csrf: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

impl Keys {
    pub fn new(secret: &[u8]) -> Self {
        let mut csrf = Sha256::new();
        csrf.update(b"cynodeai console csrf key v1\0");
        csrf.update(secret);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            csrf: csrf.finalize().into(),
        }
    }

    fn csrf_mac(&self, session_id: Uuid) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.csrf)
            .expect("HMAC takes a key of any length");
        mac.update(session_id.as_bytes());
        mac
    }

    /// The CSRF token of a login session: an HMAC of its id, so it needs no storage, differs
    /// per session and cannot be made without the key.
    pub fn csrf_token(&self, session_id: Uuid) -> String {
        hex::encode(self.csrf_mac(session_id).finalize().into_bytes())
    }

    /// Whether `given` is the CSRF token of `session_id` (compared in constant time).
    pub fn csrf_matches(&self, session_id: Uuid, given: &str) -> bool {
        hex::decode(given)
            .map(|bytes| self.csrf_mac(session_id).verify_slice(&bytes).is_ok())
            .unwrap_or(false)
    }

    pub fn sign(&self, claims: &Claims) -> Result<String> {
        jsonwebtoken::encode(&Header::new(JwtAlgorithm::HS256), claims, &self.encoding)
            .map_err(Error::internal)
    }

    /// Checks signature, issuer and expiry (no leeway) and the token type.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims> {
        let mut validation = Validation::new(JwtAlgorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| {
                let why = match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "token has expired",
                    _ => "token is invalid",
                };
                Error::from(Problem::unauthorized(why))
            })?
            .claims;
        if claims.token_type != expected {
            return Err(Problem::unauthorized("token is of the wrong type").into());
        }
        Ok(claims)
    }

    pub fn claims(
        token_type: TokenType,
        sub: String,
        lifetime: std::time::Duration,
    ) -> (Claims, DateTime<Utc>) {
        let now = Utc::now();
        let exp = now + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::MAX);
        (
            Claims {
                token_type,
                sub,
                iss: ISSUER.to_owned(),
                iat: now.timestamp(),
                exp: exp.timestamp(),
                jti: Uuid::new_v4().to_string(),
                user_id: None,
                handle: None,
                sid: None,
                node_id: None,
                node_slug: None,
            },
            exp,
        )
    }
}

pub(crate) fn bearer(parts: &Parts) -> Result<&str> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| Problem::unauthorized("missing Authorization: Bearer token"))?;
    // Auth scheme names are case-insensitive (RFC 7235 section 2.1).
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Problem::unauthorized("Authorization header is not a Bearer token").into())
}

/// How a user proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// An access JWT of this refresh session.
    Session(Uuid),
    /// This personal API key (`cyn_...`).
    ApiKey(Uuid),
}

/// Whom work and usage are charged to: the user and, when they came with one, their API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub api_key_id: Option<Uuid>,
}

/// A user authenticated by an access token whose session is still active (logout and session
/// revocation take effect at once), or by a personal API key that is neither revoked nor
/// expired. Every user route takes this one extractor, so both work everywhere.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: Uuid,
    pub handle: String,
    pub credential: Credential,
    /// Their groups, roles and the rules that name them, loaded with the credential check:
    /// what [`crate::authz`] decides over.
    pub subject: std::sync::Arc<crate::authz::Subject>,
}

impl CurrentUser {
    /// The principal that model calls of this request are charged to (see [`crate::usage`]).
    pub fn principal(&self) -> Principal {
        Principal {
            user_id: self.id,
            api_key_id: match self.credential {
                Credential::ApiKey(id) => Some(id),
                Credential::Session(_) => None,
            },
        }
    }
}

/// A node authenticated by its node JWT; the node must still exist.
#[derive(Debug, Clone)]
pub struct CurrentNode {
    pub id: Uuid,
    pub slug: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_is_argon2id_with_spec_parameters() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=65536,t=3,p=2$"), "{phc}");
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("wrong", &phc));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn csrf_tokens_belong_to_one_session_and_one_key() {
        let keys = Keys::new(b"0123456789abcdef0123");
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let token = keys.csrf_token(a);
        assert_eq!(token.len(), 64);
        assert!(keys.csrf_matches(a, &token));
        assert!(!keys.csrf_matches(b, &token));
        assert!(!keys.csrf_matches(a, &token[..62]));
        assert!(!keys.csrf_matches(a, "not hex"));
        assert!(!keys.csrf_matches(a, ""));
        let other = Keys::new(b"another-secret-of-length");
        assert!(!other.csrf_matches(a, &token));
    }

    #[test]
    fn forged_expired_and_mistyped_tokens_are_refused() {
        let keys = Keys::new(b"0123456789abcdef0123");
        let (claims, _) = Keys::claims(
            TokenType::Node,
            "n".into(),
            std::time::Duration::from_secs(60),
        );
        let token = keys.sign(&claims).unwrap();
        assert!(keys.verify(&token, TokenType::Node).is_ok());
        assert!(keys.verify(&token, TokenType::Access).is_err());
        let other = Keys::new(b"another-secret-of-length");
        assert!(other.verify(&token, TokenType::Node).is_err());
        let (mut old, _) = Keys::claims(TokenType::Node, "n".into(), std::time::Duration::ZERO);
        old.exp -= 10;
        let expired = keys.sign(&old).unwrap();
        assert!(keys.verify(&expired, TokenType::Node).is_err());
    }
}
