//! `regctl gen-configs`: a valid config repo of any size, deterministic in
//! its size (no randomness), for tests (500 tenants) and benchmarks
//! (100,000). Tenants are spread over three regions; every fifth is pinned
//! to the EU for residency; every tenth has an SVG logo; every 25th (from the first) is
//! golden and has a demo user (`demo` / `demo-{tenant}`).

use std::fs;
use std::io;
use std::path::Path;

use pbkdf2::pbkdf2_hmac;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::repo::GOLDEN_FILE;

const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];
const TIERS: [&str; 4] = ["bronze", "silver", "gold", "platinum"];

/// Iterations of generated demo users' hashes: enough to be a real
/// PBKDF2 verifier, few enough to generate quickly.
const DEMO_HASH_ITERATIONS: u32 = 10_000;

/// The id of generated tenant `index`.
pub fn tenant_id(index: usize) -> String {
    format!("tenant-{index:06}")
}

/// A PBKDF2-SHA256 verifier of `password`, with a salt derived from `user`
/// (deterministic, so generated repos are reproducible).
pub fn password_hash(user: &str, password: &str, iterations: u32) -> String {
    let salt = &Sha256::digest(user.as_bytes())[..16];
    let mut hash = [0u8; 32];
    pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut hash);
    format!("pbkdf2-sha256${iterations}${}${}", hex::encode(salt), hex::encode(hash))
}

fn color(index: usize, salt: usize) -> String {
    let value = (index.wrapping_mul(2_654_435_761).wrapping_add(salt * 40_503)) & 0xff_ffff;
    format!("#{value:06x}")
}

fn write_json(path: &Path, value: &Value) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    text.push('\n');
    fs::write(path, text)
}

/// The documents of generated tenant `index` (config, theme, integrations).
fn tenant(index: usize) -> (Value, Value, Vec<(&'static str, Value)>) {
    let id = tenant_id(index);
    let pinned_to_eu = index.is_multiple_of(5);
    let home = if pinned_to_eu { "eu-west" } else { REGIONS[index % REGIONS.len()] };
    let dr = REGIONS.iter().find(|region| **region != home).copied().unwrap_or("us-east");
    let placement = if pinned_to_eu {
        json!({ "homeRegion": "eu-west", "allowedRegions": ["eu-west"] })
    } else {
        json!({ "homeRegion": home, "allowedRegions": REGIONS, "drRegion": dr })
    };
    let domain = format!("{id}.example.com");
    let mut config = json!({
        "public": {
            "apiBase": format!("https://api.{domain}"),
            "features": { "darkMode": index.is_multiple_of(2), "betaReports": index.is_multiple_of(3), "sso": index.is_multiple_of(4) },
            "supportEmail": format!("support@{domain}"),
        },
        "slaTier": TIERS[index % TIERS.len()],
        "placement": placement,
        "limits": { "requestsPerMinute": 600 * (1 + index % 10) },
        "allowedHosts": [domain, format!("*.{domain}"), "cdn.example.com"],
        "secrets": { "stripe": format!("vault:kv/{id}/stripe") },
    });
    if index % 25 == 1 {
        config["demoUsers"] =
            json!({ "demo": password_hash(&format!("{id}/demo"), &format!("demo-{id}"), DEMO_HASH_ITERATIONS) });
    }
    let theme = json!({
        "colors": { "primary": color(index, 1), "background": "#ffffff", "text": color(index, 2) },
        "texts": { "productName": format!("Tenant {index} Portal"), "welcome": format!("Welcome to tenant {index}") },
    });
    let integrations = vec![
        (
            "oauth",
            json!({ "provider": "oidc", "client_id": format!("client-{index}"), "issuer": format!("https://login.{domain}/oauth2") }),
        ),
        ("webhooks", json!({ "order_created": format!("https://hooks.{domain}/orders") })),
    ];
    (config, theme, integrations)
}

fn logo(index: usize) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"64\" height=\"64\" viewBox=\"0 0 64 64\">\
         <rect width=\"64\" height=\"64\" rx=\"12\" fill=\"{}\"/>\
         <text x=\"32\" y=\"40\" font-size=\"20\" text-anchor=\"middle\" fill=\"#ffffff\">{}</text></svg>\n",
        color(index, 1),
        index % 1000
    )
}

/// Writes a repo of `tenants` tenants under `out` (which must not hold one).
pub fn generate(out: &Path, tenants: usize) -> io::Result<()> {
    if out.join("tenants").exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already holds a config repo", out.display()),
        ));
    }
    let mut golden = String::from("# Tenants that get deep smoke tests after each publish cohort.\n");
    for index in 1..=tenants {
        let id = tenant_id(index);
        let dir = out.join("tenants").join(&id);
        fs::create_dir_all(dir.join("integrations"))?;
        let (config, theme, integrations) = tenant(index);
        write_json(&dir.join("config.json"), &config)?;
        write_json(&dir.join("theme.json"), &theme)?;
        for (name, integration) in integrations {
            write_json(&dir.join("integrations").join(format!("{name}.json")), &integration)?;
        }
        if index.is_multiple_of(10) {
            let branding = out.join("branding").join(&id);
            fs::create_dir_all(&branding)?;
            fs::write(branding.join("logo.svg"), logo(index))?;
        }
        if index % 25 == 1 {
            golden.push_str(&id);
            golden.push('\n');
        }
    }
    fs::write(out.join(GOLDEN_FILE), golden)
}
