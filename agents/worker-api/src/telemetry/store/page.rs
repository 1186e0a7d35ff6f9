//! Paging: how many rows a page holds, and page tokens (which endpoint issued one, and the sort
//! key of the page's last row).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::DateTime;

use super::db::QueryError;

pub(super) const CONTAINERS_TOKEN: &str = "c1";
pub(super) const LOGS_TOKEN: &str = "l1";
pub(super) const BAD_TOKEN: &str = "page_token is not one this endpoint issued";

/// An opaque page token: base64url of `<kind>\n<timestamp>\n<id>`, the sort key of a page's
/// last row.
pub(super) struct PageKey;

impl PageKey {
    pub(super) fn encode(kind: &str, at: &str, id: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{kind}\n{at}\n{id}"))
    }

    pub(super) fn decode(token: &str, kind: &str) -> Result<(String, String), QueryError> {
        let bad = || QueryError::Invalid(BAD_TOKEN.into());
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = text.splitn(3, '\n');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(k), Some(at), Some(id))
                if k == kind && !id.is_empty() && DateTime::parse_from_rfc3339(at).is_ok() =>
            {
                Ok((at.to_owned(), id.to_owned()))
            }
            _ => Err(bad()),
        }
    }
}

/// The page size: `asked`, else `default`; 0 is refused, more than `max` is clamped to it.
pub(super) fn page_limit(asked: Option<u32>, default: u32, max: u32) -> Result<u32, QueryError> {
    match asked {
        None => Ok(default),
        Some(0) => Err(QueryError::Invalid("limit must be at least 1".into())),
        Some(n) => Ok(n.min(max)),
    }
}
