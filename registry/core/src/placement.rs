//! A new tenant's initial placement: the placement request in its
//! config.json (`placement.homeRegion`, `allowedRegions`, `drRegion`, checked
//! by the config compiler), or else the region of the node that proposed the
//! create. Later changes of placement (pins, failover, moves) are operator
//! commands, not config.

use compiler::placement::{requested, PlacementRequest};
use proto::Region;
use serde_json::Value;

use super::Placement;

/// The placement a tenant starts with (epoch 1). `config` has passed the
/// compiler's rules; a request it would refuse counts as none.
pub fn initial_placement(config: &str, proposer_region: Option<&Region>) -> Placement {
    let request = match serde_json::from_str::<Value>(config) {
        Ok(Value::Object(config)) => config.get("placement").and_then(|request| requested(request).ok()),
        _ => None,
    };
    let PlacementRequest { home_region, allowed_regions, dr_region } = request.unwrap_or_default();
    // Without a request: the proposer's region, if the pin allows it, else the first allowed region.
    let home_region = home_region.or_else(|| match proposer_region {
        Some(proposer) if allowed_regions.is_empty() || allowed_regions.contains(proposer) => Some(proposer.clone()),
        _ => allowed_regions.first().cloned(),
    });
    Placement { home_region, allowed_regions, dr_region, epoch: 1, failing_over_to: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(name: &str) -> Region {
        Region::parse(name).expect("region")
    }

    #[test]
    fn requested_placement_or_the_proposers_region() {
        let us = region("us-east");
        let placement = initial_placement("{}", Some(&us));
        assert_eq!(placement.home_region, Some(us.clone()));
        assert!(placement.allowed_regions.is_empty());
        assert_eq!(placement.epoch, 1);

        let pinned = r#"{"placement":{"allowedRegions":["eu-west","eu-central"],"drRegion":"eu-central"}}"#;
        let placement = initial_placement(pinned, Some(&us));
        assert_eq!(placement.home_region, Some(region("eu-west")), "the proposer's region is outside the pin");
        assert_eq!(placement.dr_region, Some(region("eu-central")));

        let requested = r#"{"placement":{"homeRegion":"ap-south"}}"#;
        assert_eq!(initial_placement(requested, Some(&us)).home_region, Some(region("ap-south")));
    }
}
