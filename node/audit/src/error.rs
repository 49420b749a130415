//! The audit log's error type.

use std::path::PathBuf;

/// Errors of the audit log.
///
/// A log that fails verification is not an error: [`super::AuditLog::verify`]
/// returns a report that names the first bad entry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The store failed, or cannot be opened.
    #[error("audit store: {0}")]
    Db(#[from] fedq_db::DbError),
    /// A key, checkpoint or directory cannot be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// File or directory that failed.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The key file does not hold a fedq audit key.
    #[error("{path} is not a fedq audit key file")]
    BadKey {
        /// Key file.
        path: PathBuf,
    },
    /// The record cannot be logged as given.
    #[error("invalid audit record: {0}")]
    InvalidRecord(&'static str),
    /// A stored entry cannot be read back (run `fedq-node audit verify`).
    #[error("audit entry {seq} is malformed: {problem}")]
    Malformed {
        /// Sequence number of the entry.
        seq: u64,
        /// What is wrong with it.
        problem: String,
    },
    /// The chain no longer extends the head this node last signed (history
    /// was rewritten, or the checkpoint removed): the node signs nothing
    /// more until an operator has run `audit verify` and investigated.
    #[error("refusing to sign the audit log: {0}; run `audit verify`")]
    Diverged(String),
    /// The export range ends before it starts.
    #[error("empty date range: since is after until")]
    InvalidRange,
    /// The export destination failed.
    #[error("cannot write the export: {0}")]
    Write(std::io::Error),
}

impl AuditError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}
