//! Signing in and out: login, refresh, logout, and who the caller is.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /v1/auth/login`.
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Not blank; at most 256 bytes of UTF-8.
    #[schema(min_length = 1, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub handle: String,
    /// At most 1024 bytes of UTF-8.
    #[schema(min_length = 1)]
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("handle", &self.handle)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Answer to login and refresh.
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/auth/refresh`.
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(min_length = 1)]
    pub refresh_token: String,
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshRequest { .. }")
    }
}

/// `POST /v1/auth/logout`; the refresh token, when given, is revoked too.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for LogoutRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogoutRequest { .. }")
    }
}

/// `GET /v1/users/me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserInfo {
    pub id: Uuid,
    pub handle: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub is_active: bool,
}

/// The web console's cookie session (`/v1/auth/session`): who is logged in, the token that
/// must accompany their state-changing requests, and what they may do system-wide (so the
/// console shows only the pages they can use; the gateway decides every request anyway).
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsoleSession {
    pub user: UserInfo,
    /// Send it as `X-CSRF-Token` on every POST, PUT, PATCH and DELETE; keep it in memory only.
    pub csrf_token: String,
    /// Seconds until the access cookie expires; refresh before then.
    pub expires_in: u64,
    /// The system-scope actions the user holds (`node.read`, `user.manage`, ...).
    pub system_actions: Vec<String>,
}

impl std::fmt::Debug for ConsoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("user", &self.user)
            .field("expires_in", &self.expires_in)
            .field("system_actions", &self.system_actions)
            .finish_non_exhaustive()
    }
}
