//! A new tenant's initial placement: the placement request in its
//! config.json (`placement.homeRegion`, `allowedRegions`, `drRegion`), or else
//! the region of the node that proposed the create. Later changes of
//! placement (pins, failover, moves) are operator commands, not config.

use proto::Region;
use serde_json::Value;

use super::{CommandError, Placement};

const FIELD: &str = "documents.config.placement";

fn region(field: &str, value: &Value) -> Result<Region, CommandError> {
    let text = value.as_str().ok_or_else(|| {
        CommandError::invalid(format!("{FIELD}.{field}"), "region-name", "must be a region name string")
    })?;
    Region::parse(text).map_err(|error| CommandError::invalid(format!("{FIELD}.{field}"), error.rule_id, error.rule))
}

/// The placement a tenant starts with (epoch 1).
pub fn initial_placement(config: &str, proposer_region: Option<&Region>) -> Result<Placement, CommandError> {
    let request = match serde_json::from_str::<Value>(config) {
        Ok(Value::Object(mut config)) => config.remove("placement"),
        _ => None,
    };
    let request = match request {
        None => serde_json::Map::new(),
        Some(Value::Object(request)) => request,
        Some(_) => return Err(CommandError::invalid(FIELD, "json-object", "must be a JSON object")),
    };
    let allowed_regions = match request.get("allowedRegions") {
        None => Vec::new(),
        Some(Value::Array(regions)) => {
            regions.iter().map(|value| region("allowedRegions", value)).collect::<Result<_, _>>()?
        }
        Some(_) => {
            return Err(CommandError::invalid(
                format!("{FIELD}.allowedRegions"),
                "array",
                "must be an array of region names",
            ))
        }
    };
    let home_region = match request.get("homeRegion") {
        Some(value) => Some(region("homeRegion", value)?),
        // Without a request: the proposer's region, if the pin allows it, else the first allowed region.
        None => match proposer_region {
            Some(proposer) if allowed_regions.is_empty() || allowed_regions.contains(proposer) => {
                Some(proposer.clone())
            }
            _ => allowed_regions.first().cloned(),
        },
    };
    let dr_region = request.get("drRegion").map(|value| region("drRegion", value)).transpose()?;
    if !allowed_regions.is_empty() {
        for (field, chosen) in [("homeRegion", &home_region), ("drRegion", &dr_region)] {
            if let Some(chosen) = chosen.as_ref().filter(|chosen| !allowed_regions.contains(chosen)) {
                return Err(CommandError::invalid(
                    format!("{FIELD}.{field}"),
                    "allowed-regions",
                    format!("{chosen} is outside allowedRegions (data residency)"),
                ));
            }
        }
    }
    Ok(Placement { home_region, allowed_regions, dr_region, epoch: 1 })
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
        let placement = initial_placement("{}", Some(&us)).expect("default");
        assert_eq!(placement.home_region, Some(us.clone()));
        assert!(placement.allowed_regions.is_empty());
        assert_eq!(placement.epoch, 1);

        let pinned = r#"{"placement":{"allowedRegions":["eu-west","eu-central"],"drRegion":"eu-central"}}"#;
        let placement = initial_placement(pinned, Some(&us)).expect("pinned");
        assert_eq!(placement.home_region, Some(region("eu-west")), "the proposer's region is outside the pin");
        assert_eq!(placement.dr_region, Some(region("eu-central")));

        let requested = r#"{"placement":{"homeRegion":"ap-south"}}"#;
        assert_eq!(initial_placement(requested, Some(&us)).expect("requested").home_region, Some(region("ap-south")));
    }

    #[test]
    fn bad_requests_name_field_and_rule() {
        let cases = [
            (r#"{"placement":3}"#, "documents.config.placement", "json-object"),
            (r#"{"placement":{"homeRegion":"EU"}}"#, "documents.config.placement.homeRegion", "region-name"),
            (r#"{"placement":{"allowedRegions":"eu-west"}}"#, "documents.config.placement.allowedRegions", "array"),
            (
                r#"{"placement":{"homeRegion":"us-east","allowedRegions":["eu-west"]}}"#,
                "documents.config.placement.homeRegion",
                "allowed-regions",
            ),
            (
                r#"{"placement":{"allowedRegions":["eu-west"],"drRegion":"us-east"}}"#,
                "documents.config.placement.drRegion",
                "allowed-regions",
            ),
        ];
        for (config, field, rule) in cases {
            match initial_placement(config, None) {
                Err(CommandError::Invalid { field: got, rule_id, .. }) => {
                    assert_eq!((got.as_str(), rule_id.as_str()), (field, rule), "{config}")
                }
                other => panic!("{config}: expected Invalid, got {other:?}"),
            }
        }
    }
}
