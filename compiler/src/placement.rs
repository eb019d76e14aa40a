//! The placement a tenant's `config.json` may request at creation
//! (`placement.homeRegion`, `allowedRegions`, `drRegion`). Later changes of
//! placement (pins, failover, moves) are operator commands, not config.

use proto::Region;
use serde_json::Value;

use crate::document::{pointer_push, region, shown, Problem, CONFIG_FILE};

/// A checked placement request; every field may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementRequest {
    pub home_region: Option<Region>,
    /// Data residency: empty means "no restriction".
    pub allowed_regions: Vec<Region>,
    pub dr_region: Option<Region>,
}

/// Reads `config.placement`: region names, and a home and DR region inside
/// `allowedRegions` when that is set.
pub fn requested(request: &Value) -> Result<PlacementRequest, Problem> {
    let Value::Object(request) = request else {
        return Err(Problem::new(
            CONFIG_FILE,
            "/placement",
            "json-object",
            format!("{} is not a JSON object", shown(request)),
        ));
    };
    if let Some(key) = request.keys().find(|key| !["homeRegion", "allowedRegions", "drRegion"].contains(&key.as_str()))
    {
        let message = "unknown field; placement holds homeRegion, allowedRegions, drRegion";
        return Err(Problem::new(CONFIG_FILE, pointer_push("/placement", key), "unknown-field", message));
    }
    let allowed_regions = match request.get("allowedRegions") {
        None => Vec::new(),
        Some(Value::Array(regions)) => regions
            .iter()
            .enumerate()
            .map(|(index, value)| region(value, &format!("/placement/allowedRegions/{index}")))
            .collect::<Result<_, _>>()?,
        Some(other) => {
            let message = format!("{} is not an array of region names", shown(other));
            return Err(Problem::new(CONFIG_FILE, "/placement/allowedRegions", "array", message));
        }
    };
    let home_region = request.get("homeRegion").map(|value| region(value, "/placement/homeRegion")).transpose()?;
    let dr_region = request.get("drRegion").map(|value| region(value, "/placement/drRegion")).transpose()?;
    if !allowed_regions.is_empty() {
        for (field, chosen) in [("homeRegion", &home_region), ("drRegion", &dr_region)] {
            if let Some(chosen) = chosen.as_ref().filter(|chosen| !allowed_regions.contains(chosen)) {
                let message = format!("{chosen} is outside allowedRegions (data residency)");
                return Err(Problem::new(CONFIG_FILE, format!("/placement/{field}"), "allowed-regions", message));
            }
        }
    }
    Ok(PlacementRequest { home_region, allowed_regions, dr_region })
}
