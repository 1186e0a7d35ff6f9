//! The payload version, apart from the crate root so that the modules that name it (the
//! problem of an unsupported version) import downward.

/// The only payload version this build speaks.
pub const PAYLOAD_VERSION: u32 = 1;
