//! Revisions: the Raft log index of the entry that made a change.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A registry revision. It is global and grows monotonically; a tenant's
/// `configVersion` is the revision of its last change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Revision(pub u64);

impl Revision {
    /// The revision as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
