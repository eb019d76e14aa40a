//! Guarantee 5: no two regions accept writes for the same tenant in
//! overlapping intervals; a pinned tenant is never served or written
//! outside its allowed regions; a region cut off from the registry stops
//! accepting writes within the staleness bound S.
//!
//! A data write the api-node accepted (201) happened somewhere in its
//! request's interval, so two accepted writes of one tenant from two
//! regions with overlapping intervals could have been accepted at the same
//! instant: that is what the design forbids (one home region at a time,
//! fenced by epochs and leases).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::chaos::history::DataOp;

/// A time window in which a region could reach no registry node.
#[derive(Debug, Clone)]
pub struct CutOff {
    pub region: &'static str,
    pub from: Duration,
    pub to: Duration,
}

/// `allowed`: the pinned tenants' regions. `grace`: S plus a margin for the
/// api-node to notice.
pub fn check(
    data: &[DataOp],
    allowed: &BTreeMap<String, Vec<&'static str>>,
    cut_offs: &[CutOff],
    grace: Duration,
) -> Vec<String> {
    let mut violations = Vec::new();
    let accepted: Vec<&DataOp> = data.iter().filter(|op| op.write && op.status == 201).collect();
    for (index, a) in accepted.iter().enumerate() {
        for b in &accepted[index + 1..] {
            let overlap = a.invoked < b.completed && b.invoked < a.completed;
            if a.tenant == b.tenant && a.region != b.region && overlap {
                violations.push(format!(
                    "split brain: {} accepted writes in {} ({:?}..{:?}) and {} ({:?}..{:?}) at once",
                    a.tenant, a.region, a.invoked, a.completed, b.region, b.invoked, b.completed
                ));
            }
        }
    }
    for op in data.iter().filter(|op| (200..300).contains(&op.status)) {
        if let Some(regions) = allowed.get(&op.tenant).filter(|regions| !regions.contains(&op.region)) {
            violations.push(format!(
                "residency: {} (pinned to {regions:?}) was served in {} at {:?}",
                op.tenant, op.region, op.invoked
            ));
        }
    }
    for cut in cut_offs {
        let read_only_from = cut.from + grace;
        for op in accepted.iter().filter(|op| op.region == cut.region) {
            if op.invoked > read_only_from && op.completed < cut.to {
                violations.push(format!(
                    "{} accepted a write of {} at {:?}, cut off since {:?} (read-only by {read_only_from:?})",
                    cut.region, op.tenant, op.invoked, cut.from
                ));
            }
        }
    }
    violations
}
