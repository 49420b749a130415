//! A node's outcome per request and whether it disclosed its own answers:
//! proto enums, their words in the command line's JSON, and the one mapping
//! between an outcome and the gRPC status code a node answers with.

use serde::{Serialize, Serializer};
use tonic::Code;

pub use crate::v1::{Disclosure, NodeOutcome};

impl NodeOutcome {
    /// The word the command line prints (`"status"` in its JSON).
    pub fn word(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Refused => "refused",
            Self::Invalid => "invalid",
            Self::Stale => "stale",
            Self::Error | Self::Unspecified => "error",
        }
    }

    /// The outcome a gRPC status code from a node means.
    pub fn from_code(code: Code) -> Self {
        match code {
            Code::Ok => Self::Ok,
            Code::DeadlineExceeded | Code::Cancelled => Self::Timeout,
            Code::Unavailable => Self::Unavailable,
            Code::PermissionDenied
            | Code::Unauthenticated
            | Code::ResourceExhausted
            | Code::FailedPrecondition => Self::Refused,
            Code::InvalidArgument | Code::OutOfRange => Self::Invalid,
            Code::Aborted => Self::Stale,
            _ => Self::Error,
        }
    }

    /// The status code a node answers a stale request with: the one code
    /// that [`Self::from_code`] reads as [`Self::Stale`].
    pub const STALE_CODE: Code = Code::Aborted;

    /// Whether a second try may succeed (a transport failure).
    pub fn retryable(self) -> bool {
        self == Self::Unavailable
    }
}

impl Serialize for NodeOutcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.word())
    }
}

impl Disclosure {
    /// The word printed and audited; empty when no disclosure was asked.
    pub fn word(self) -> &'static str {
        match self {
            Self::NotAsked => "",
            Self::Revealed => "revealed",
            Self::Withheld => "withheld",
        }
    }
}

impl Serialize for Disclosure {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.word())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_round_trips_through_its_code_and_every_word_is_distinct() {
        assert_eq!(
            NodeOutcome::from_code(NodeOutcome::STALE_CODE),
            NodeOutcome::Stale
        );
        let all = [
            NodeOutcome::Ok,
            NodeOutcome::Timeout,
            NodeOutcome::Unavailable,
            NodeOutcome::Refused,
            NodeOutcome::Invalid,
            NodeOutcome::Stale,
            NodeOutcome::Error,
        ];
        let words: std::collections::BTreeSet<_> = all.iter().map(|o| o.word()).collect();
        assert_eq!(words.len(), all.len());
    }
}
