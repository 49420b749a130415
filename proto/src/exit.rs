//! The exit codes of fedq's command lines: one table, printed in every
//! `--help` and in the README, so that scripts can tell an answer from a
//! partial one and a refusal from a failure.

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; every node that was asked answered.
    Ok,
    /// Failed (unreachable coordinator, bad file, internal error).
    Error,
    /// The command line itself is wrong (clap's own code).
    Usage,
    /// Answered in part: some node did not answer, so some results are
    /// unknown (`--allow-partial` turns this into `Ok`).
    Partial,
    /// Refused by every node's policy or budget: nothing was answered.
    Refused,
    /// An integrity check failed: an audit log does not verify.
    Tampered,
}

impl Exit {
    /// The process exit code.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Error => 1,
            Exit::Usage => 2,
            Exit::Partial => 3,
            Exit::Refused => 4,
            Exit::Tampered => 5,
        }
    }

    /// The end of a command that asked every node, given each node's
    /// outcome: `Refused` when none answered because every one refused,
    /// `Error` when none answered otherwise, `Partial` when `partial` (some
    /// result lacks a node's answer) unless `allow_partial`, else `Ok`.
    pub fn of_answers(
        outcomes: &[crate::outcome::NodeOutcome],
        partial: bool,
        allow_partial: bool,
    ) -> Self {
        use crate::outcome::NodeOutcome;
        if !outcomes.contains(&NodeOutcome::Ok) {
            if !outcomes.is_empty() && outcomes.iter().all(|o| *o == NodeOutcome::Refused) {
                Exit::Refused
            } else {
                Exit::Error
            }
        } else if partial && !allow_partial {
            Exit::Partial
        } else {
            Exit::Ok
        }
    }

    /// Ends the process with this code.
    pub fn process(self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

/// The table, for `--help` (clap's `after_help`) and the README.
pub const TABLE: &str = "Exit codes: 0 ok; 1 error; 2 usage (bad arguments or configuration); \
3 partial (some node did not answer; --allow-partial for 0); 4 refused by policy or budget \
(nothing answered); 5 tampered (an audit log does not verify)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::NodeOutcome::{Ok as Answered, Refused, Unavailable};

    #[test]
    fn answers_end_as_the_table_says() {
        let cases = [
            (&[Answered, Answered][..], false, false, Exit::Ok),
            (&[Answered, Unavailable], true, false, Exit::Partial),
            (&[Answered, Unavailable], true, true, Exit::Ok),
            (&[Refused, Refused], true, true, Exit::Refused),
            (&[Refused, Unavailable], true, true, Exit::Error),
            (&[], true, true, Exit::Error),
        ];
        for (outcomes, partial, allow, exit) in cases {
            assert_eq!(
                Exit::of_answers(outcomes, partial, allow),
                exit,
                "{outcomes:?}"
            );
        }
    }

    #[test]
    fn the_table_states_every_code() {
        for exit in [
            Exit::Ok,
            Exit::Error,
            Exit::Usage,
            Exit::Partial,
            Exit::Refused,
        ] {
            assert!(TABLE.contains(&format!("{} ", exit.code())), "{exit:?}");
        }
    }
}
