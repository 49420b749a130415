//! Requester roles: who does what with the data.

use std::fmt;
use std::str::FromStr;

/// A requester's role, as carried by its credentials.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Works cases: identifier lookups, disclosures.
    Investigator,
    /// Aggregate statistics only, under a privacy budget.
    Researcher,
    /// Reads the audit log and transparency report; never queries data.
    Auditor,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Investigator, Role::Researcher, Role::Auditor];

    /// The lowercase name used in config and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Investigator => "investigator",
            Role::Researcher => "researcher",
            Role::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is none of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}{hint}", hint = crate::suggest::hint(.0, Role::ALL.map(Role::as_str)))]
pub struct UnknownRoleError(String);

impl FromStr for Role {
    type Err = UnknownRoleError;

    /// Accepts the [`Role::as_str`] names, trimmed, case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == wanted)
            .ok_or_else(|| UnknownRoleError(s.chars().take(32).collect()))
    }
}
