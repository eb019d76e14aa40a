//! Region names such as `us-east` or `eu-west`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// The longest region name.
pub const REGION_LEN_MAX: usize = 32;

/// A validated region name: 1 to 32 characters of `a-z`, `0-9` and `-`,
/// starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    /// Validates `value` as a region name.
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let valid_chars = value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        let starts_with_letter = value.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        if value.is_empty() || value.len() > REGION_LEN_MAX || !valid_chars || !starts_with_letter {
            return Err(DomainError::new(
                "region",
                value,
                "region-name",
                "must be 1-32 characters of a-z, 0-9 and '-', starting with a letter",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Region {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Region> for String {
    fn from(region: Region) -> Self {
        region.0
    }
}

/// Whether a tenant with `placement` is served in `region`: everywhere,
/// unless it is pinned (data residency: `allowed_regions`) to regions that
/// do not include it. Api-nodes refuse it elsewhere (421), frontend agents
/// do not materialize it there, and a purge leaves that region out.
pub fn is_served_in(placement: Option<&crate::v1::Placement>, region: &str) -> bool {
    placement.is_none_or(|placement| {
        placement.allowed_regions.is_empty() || placement.allowed_regions.iter().any(|allowed| allowed == region)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names() {
        assert!(Region::parse("eu-west").is_ok());
        for bad in ["", "EU", "1eu", "eu_west", &"a".repeat(33)] {
            assert_eq!(Region::parse(bad).expect_err(bad).rule_id, "region-name");
        }
    }
}
