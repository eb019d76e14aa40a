//! Region safety (DESIGN.md guarantee 5) and tenant status, as one pure
//! decision per request: may this node, in this region, with a view this
//! fresh, serve this access to this tenant?
//!
//! * A suspended tenant is served nothing (403).
//! * A pinned tenant (non-empty `allowed_regions`) is served nowhere else:
//!   421 with its home region, for reads and writes alike.
//! * Reads are served from the last view, however stale (degraded mode).
//! * Writes need, in this order: the tenant not locked for a move nor
//!   fenced for a failover (503, retry later), a fresh view (503 read-only: a stale node cannot know it
//!   is still the home region), and this region being the home region (421
//!   with the home region; a tenant without one accepts writes nowhere).

use proto::v1::{TenantRecord, TenantStatus};

/// What a request does to the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// 403.
    Suspended,
    /// 421: ask the home region (if the tenant has one).
    Misdirected { home_region: Option<String> },
    /// 503 with `Retry-After`: the view is stale, the node is read-only.
    ReadOnly,
    /// 503 with `Retry-After`: the tenant is being moved between shards.
    Locked,
    /// 503 with `Retry-After`: the tenant is failing over to this region.
    FailingOver { to: String },
}

/// Decides `access` to `tenant` on a node of `region` whose view is `fresh`.
pub fn decide(tenant: &TenantRecord, region: &str, access: Access, fresh: bool) -> Result<(), Denial> {
    let placement = tenant.placement.clone().unwrap_or_default();
    let home_region = Some(placement.home_region.clone()).filter(|home| !home.is_empty());
    if tenant.status == TenantStatus::Suspended as i32 {
        return Err(Denial::Suspended);
    }
    if !proto::is_served_in(Some(&placement), region) {
        return Err(Denial::Misdirected { home_region });
    }
    if access == Access::Read {
        return Ok(());
    }
    if tenant.status == TenantStatus::LockedForMove as i32 {
        return Err(Denial::Locked);
    }
    if !placement.failing_over_to.is_empty() {
        return Err(Denial::FailingOver { to: placement.failing_over_to });
    }
    if !fresh {
        return Err(Denial::ReadOnly);
    }
    match home_region {
        Some(home) if home == region => Ok(()),
        home_region => Err(Denial::Misdirected { home_region }),
    }
}

#[cfg(test)]
mod tests {
    use proto::v1::Placement;

    use super::*;

    fn tenant(status: TenantStatus, home: &str, allowed: &[&str]) -> TenantRecord {
        TenantRecord {
            id: "acme".to_owned(),
            status: status as i32,
            placement: Some(Placement {
                home_region: home.to_owned(),
                allowed_regions: allowed.iter().map(|region| (*region).to_owned()).collect(),
                dr_region: String::new(),
                epoch: 1,
                failing_over_to: String::new(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn every_rule_in_order() {
        use Access::{Read, Write};
        use TenantStatus::{Active, LockedForMove, Suspended};
        let misdirected = |home: &str| Err(Denial::Misdirected { home_region: Some(home.to_owned()) });
        let cases = [
            // (status, home, allowed, node region, access, fresh) -> decision
            ((Active, "us-east", &[][..], "us-east", Write, true), Ok(())),
            ((Active, "us-east", &[], "us-east", Read, true), Ok(())),
            ((Active, "us-east", &[], "eu-west", Read, true), Ok(())),
            ((Active, "us-east", &[], "eu-west", Read, false), Ok(())),
            ((Active, "us-east", &[], "eu-west", Write, true), misdirected("us-east")),
            ((Active, "us-east", &[], "eu-west", Write, false), Err(Denial::ReadOnly)),
            ((Active, "us-east", &[], "us-east", Write, false), Err(Denial::ReadOnly)),
            ((Active, "eu-west", &["eu-west"], "us-east", Read, true), misdirected("eu-west")),
            ((Active, "eu-west", &["eu-west"], "us-east", Read, false), misdirected("eu-west")),
            ((Active, "eu-west", &["eu-west", "eu-central"], "eu-central", Read, true), Ok(())),
            ((Active, "eu-west", &["eu-west", "eu-central"], "eu-central", Write, true), misdirected("eu-west")),
            ((Suspended, "us-east", &[], "us-east", Read, true), Err(Denial::Suspended)),
            ((Suspended, "us-east", &[], "us-east", Write, true), Err(Denial::Suspended)),
            ((LockedForMove, "us-east", &[], "us-east", Read, true), Ok(())),
            ((LockedForMove, "us-east", &[], "us-east", Write, true), Err(Denial::Locked)),
            ((Active, "", &[], "us-east", Read, true), Ok(())),
            ((Active, "", &[], "us-east", Write, true), Err(Denial::Misdirected { home_region: None })),
        ];
        let mut fenced = tenant(Active, "us-east", &[]);
        if let Some(placement) = fenced.placement.as_mut() {
            placement.failing_over_to = "eu-west".to_owned();
        }
        let failing_over = Err(Denial::FailingOver { to: "eu-west".to_owned() });
        assert_eq!(decide(&fenced, "us-east", Access::Write, true), failing_over, "no writes in the old home");
        assert_eq!(decide(&fenced, "eu-west", Access::Write, true), failing_over, "nor yet in the new one");
        assert_eq!(decide(&fenced, "us-east", Access::Read, true), Ok(()), "reads go on");
        for ((status, home, allowed, region, access, fresh), expected) in cases {
            let decision = decide(&tenant(status, home, allowed), region, access, fresh);
            assert_eq!(
                decision, expected,
                "{status:?} home={home} allowed={allowed:?} at {region} {access:?} fresh={fresh}"
            );
        }
    }
}
