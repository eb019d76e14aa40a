//! Guarantee 6: no response for tenant A ever carries tenant B's config or
//! data. Every answered request (items, runtime config) names its tenant
//! (`X-Tenant`), every item it returns carries that tenant's name in its
//! title, and a config's `tenant` is that tenant.

use crate::chaos::history::DataOp;

pub fn check(data: &[DataOp]) -> Vec<String> {
    let mut violations = Vec::new();
    for op in data.iter().filter(|op| (200..300).contains(&op.status)) {
        if op.answered_tenant.as_deref() != Some(op.tenant.as_str()) {
            violations.push(format!(
                "{} at {:?} in {}: answered as tenant {:?}",
                op.tenant, op.invoked, op.region, op.answered_tenant
            ));
        }
        if let Some(other) = op.body_tenants.iter().find(|tenant| **tenant != op.tenant) {
            violations
                .push(format!("{} at {:?} in {}: the answer holds {other}'s data", op.tenant, op.invoked, op.region));
        }
    }
    violations
}
