//! Internal errors: the cause goes to the operator's log under a random id,
//! and only the id goes to the caller (and to the audit log), so that a
//! caller learns nothing about the party's internals but can quote the id.

use std::fmt;

/// A random id that ties a caller's "internal error" to one log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorId(u64);

impl ErrorId {
    /// A fresh id, logged with `cause` at warning level.
    pub fn log(cause: &dyn fmt::Display) -> Self {
        let id = Self(rand::random());
        tracing::warn!(error_id = %id, error = %cause, "internal error");
        id
    }

    /// The status a caller receives.
    pub fn status(self) -> tonic::Status {
        tonic::Status::internal(format!("internal error {self}"))
    }
}

impl fmt::Display for ErrorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Logs `cause` under a fresh id and returns the caller's status.
pub fn internal_status(cause: &dyn fmt::Display) -> tonic::Status {
    ErrorId::log(cause).status()
}
