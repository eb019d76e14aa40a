//! Every validation rule with a failing example and its exact error. Each
//! case changes one thing in a valid tenant and expects exactly one problem.

// Tests may unwrap: a panic is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use compiler::{logo, validate_documents, Documents};
use serde_json::{json, Value};

fn valid() -> Documents {
    let config = json!({
        "public": { "apiBase": "https://api.acme.example", "features": { "sso": true }, "supportEmail": "help@acme.example" },
        "slaTier": "gold",
        "placement": { "homeRegion": "eu-west", "allowedRegions": ["eu-west", "eu-central"], "drRegion": "eu-central" },
        "limits": { "requestsPerMinute": 6000 },
        "demoUsers": { "demo": compiler::generate::password_hash("acme/demo", "demo-acme", 1000) },
        "allowedHosts": ["acme.example", "*.acme.example", "cdn.example.com"],
        "customDomains": ["portal.acme.example"],
        "secrets": { "stripe": "vault:kv/acme/stripe" },
    });
    let theme = json!({
        "colors": { "primary": "#0b5fff" },
        "logoUrl": "https://cdn.example.com/acme/logo.svg",
        "texts": { "welcome": "Welcome to Acme" },
    });
    let integrations = json!({
        "oauth": { "provider": "okta", "client_id": "0oa1acme9xyz", "issuer": "https://login.acme.example/oauth2", "token_url": "https://login.acme.example/token" },
        "webhooks": { "order_created": "https://hooks.acme.example/orders" },
    });
    let object = |value: Value| value.as_object().cloned().unwrap_or_default();
    Documents { config: object(config), theme: object(theme), integrations: object(integrations) }
}

/// Sets `pointer` (in the document named by its first segment) to `value`.
fn with(pointer: &str, value: Value) -> Documents {
    let mut documents = valid();
    let (document, rest) = pointer.trim_start_matches('/').split_once('/').unwrap_or((pointer, ""));
    let map = match document {
        "config" => &mut documents.config,
        "theme" => &mut documents.theme,
        "integrations" => &mut documents.integrations,
        other => panic!("no document {other}"),
    };
    let mut root = Value::Object(std::mem::take(map));
    let (parent, key) = rest.rsplit_once('/').unwrap_or(("", rest));
    let target =
        if parent.is_empty() { &mut root } else { root.pointer_mut(&format!("/{parent}")).expect("parent exists") };
    target.as_object_mut().expect("object").insert(key.to_owned(), value);
    *map = root.as_object().cloned().unwrap_or_default();
    documents
}

fn only_problem(documents: &Documents) -> String {
    let problems = validate_documents(documents);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    problems[0].clone().in_dir("tenants/acme").to_string()
}

#[test]
fn the_valid_tenant_is_valid() {
    assert_eq!(validate_documents(&valid()), vec![]);
}

#[test]
fn the_integration_count_is_limited() {
    let mut documents = valid();
    for index in 0..65 {
        documents.integrations.insert(format!("i{index}"), json!({}));
    }
    assert_eq!(only_problem(&documents), "tenants/acme/integrations: 67 integrations is over the limit of 64");
}

#[test]
fn each_rule_fails_with_its_exact_error() {
    let cases: Vec<(&str, Value, &str)> = vec![
        // Schema.
        ("/theme/colors/primary", json!("#12345"), r##"tenants/acme/theme.json: /colors/primary: "#12345" is not a #rrggbb color"##),
        ("/theme/colour", json!({}), "tenants/acme/theme.json: /colour: unknown field; theme.json holds colors, logoUrl, logo, texts"),
        ("/theme/texts/welcome", json!("x".repeat(501)), "tenants/acme/theme.json: /texts/welcome: 501 characters is over the limit of 500"),
        ("/theme/texts", json!([]), "tenants/acme/theme.json: /texts: [] is not a JSON object"),
        ("/theme/logoUrl", json!(7), "tenants/acme/theme.json: /logoUrl: 7 is not a string"),
        ("/config/slaTier", json!("diamond"), r#"tenants/acme/config.json: /slaTier: "diamond" is not one of bronze, silver, gold, platinum"#),
        ("/config/public/features/sso", json!("yes"), r#"tenants/acme/config.json: /public/features/sso: "yes" is not true or false"#),
        ("/config/public/supportEmail", json!("help"), r#"tenants/acme/config.json: /public/supportEmail: "help" is not an e-mail address (local@domain)"#),
        ("/config/limits/requestsPerMinute", json!(-1), "tenants/acme/config.json: /limits/requestsPerMinute: -1 is not a whole number from 0 to 1000000000"),
        ("/config/placement/homeRegion", json!("us-east"), "tenants/acme/config.json: /placement/homeRegion: us-east is outside allowedRegions (data residency)"),
        ("/config/placement/drRegion", json!("EU"), "tenants/acme/config.json: /placement/drRegion: must be 1-32 characters of a-z, 0-9 and '-', starting with a letter"),
        ("/config/placement/home", json!("eu-west"), "tenants/acme/config.json: /placement/home: unknown field; placement holds homeRegion, allowedRegions, drRegion"),
        ("/config/demoUsers/demo", json!("hunter2"), r#"tenants/acme/config.json: /demoUsers/demo: a string of 7 characters is not a password hash (pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX, at most 1000000 iterations); documents never hold passwords"#),
        ("/config/allowedHosts", json!(["acme.example", "*.acme.example", "cdn.example.com", "Acme.example"]), r#"tenants/acme/config.json: /allowedHosts/3: "Acme.example" is not a host name or *.domain.tld (lowercase DNS labels)"#),
        ("/config/allowedHosts", json!(["acme.example", "*.acme.example", "cdn.example.com", "*.com"]), r#"tenants/acme/config.json: /allowedHosts/3: "*.com" is not a host name or *.domain.tld (lowercase DNS labels)"#),
        ("/config/secrets/stripe", json!("sk_live_abc"), r#"tenants/acme/config.json: /secrets/stripe: a string of 11 characters is not a secret reference (vault:…, env:…, aws-sm:…, gcp-sm:…, azure-kv:…); the registry holds references, never values"#),
        ("/integrations/Bad Name", json!({}), "tenants/acme/integrations/Bad Name.json: a name is 1 to 63 of a-z 0-9 _ -"),
        ("/integrations/slack", json!("https://hooks.acme.example/x"), r#"tenants/acme/integrations/slack.json: "https://hooks.acme.example/x" is not a JSON object"#),
        ("/config/public", json!(3), "tenants/acme/config.json: /public: 3 is not a JSON object"),
        ("/config/placement/allowedRegions", json!("eu-west"), r#"tenants/acme/config.json: /placement/allowedRegions: "eu-west" is not an array of region names"#),
        ("/config/customDomains", json!(["Portal.acme.example"]), r#"tenants/acme/config.json: /customDomains/0: "Portal.acme.example" is not a host name (lowercase DNS labels)"#),
        ("/config/demoUsers/Demo User", json!(compiler::generate::password_hash("u", "p", 1000)), "tenants/acme/config.json: /demoUsers/Demo User: a user name is 1 to 64 of a-z 0-9 . _ -"),
        ("/config/demoUsers", json!((0..17).map(|i| (format!("u{i}"), json!(compiler::generate::password_hash("u", "p", 1)))).collect::<serde_json::Map<_, _>>()), "tenants/acme/config.json: /demoUsers: 17 users is over the limit of 16"),
        ("/config/allowedHosts", json!((0..33).map(|i| format!("h{i}.acme.example")).chain(["acme.example".to_owned(), "*.acme.example".to_owned(), "cdn.example.com".to_owned()]).collect::<Vec<_>>()), "tenants/acme/config.json: /allowedHosts: 36 entries is over the limit of 32"),
        ("/theme/logo", json!("logo.svg"), r#"tenants/acme/theme.json: /logo: mediaType "" is not a logo format"#),
        // Secrets.
        ("/integrations/oauth/client_secret", json!("s3cr3t"), r#"tenants/acme/integrations/oauth.json: /client_secret: "client_secret" names a secret: documents hold no secrets; private config may hold a reference such as "vault:kv/acme/stripe""#),
        ("/config/public/apiToken", json!("abc"), r#"tenants/acme/config.json: /public/apiToken: "apiToken" names a secret: documents hold no secrets"#),
        ("/config/public/vault", json!("vault:kv/acme/stripe"), "tenants/acme/config.json: /public/vault: a public document holds no secret references: they are for private config"),
        ("/integrations/stripe", json!({ "publishable": "pk_live_51HxT9aKc3Zq8Rw2Lm7Yv0BnD4eFgJ6sUi" }), "tenants/acme/integrations/stripe.json: /publishable: looks like a key or token (5.2 bits of entropy per character): documents hold no secrets"),
        ("/config/signing", json!("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"), "tenants/acme/config.json: /signing: looks like a key or token (3.8 bits of entropy per character): documents hold no secrets"),
        // Endpoints.
        ("/config/public/apiBase", json!("http://api.acme.example"), r#"tenants/acme/config.json: /public/apiBase: "http://api.acme.example" must use https"#),
        ("/integrations/webhooks/order_created", json!("https://hooks.evil.example/x"), "tenants/acme/integrations/webhooks.json: /order_created: hooks.evil.example is not in the tenant's allowlist (config.allowedHosts is acme.example, *.acme.example, cdn.example.com)"),
        ("/integrations/webhooks/order_created", json!("https://169.254.169.254/latest/meta-data"), "tenants/acme/integrations/webhooks.json: /order_created: 169.254.169.254 is an internal address (loopback, private, link-local or reserved)"),
        ("/integrations/webhooks/order_created", json!("https://10.0.0.8/hook"), "tenants/acme/integrations/webhooks.json: /order_created: 10.0.0.8 is an internal address (loopback, private, link-local or reserved)"),
        ("/integrations/webhooks/order_created", json!("https://[::1]:8443/hook"), "tenants/acme/integrations/webhooks.json: /order_created: ::1 is an internal address (loopback, private, link-local or reserved)"),
        ("/integrations/webhooks/order_created", json!("https://127.1/hook"), "tenants/acme/integrations/webhooks.json: /order_created: 127.0.0.1 is an internal address (loopback, private, link-local or reserved)"),
        ("/integrations/webhooks/order_created", json!("https://0x7f000001/hook"), "tenants/acme/integrations/webhooks.json: /order_created: 127.0.0.1 is an internal address (loopback, private, link-local or reserved)"),
        ("/integrations/webhooks/order_created", json!("HTTPS://10.0.0.1/hook"), "tenants/acme/integrations/webhooks.json: /order_created: 10.0.0.1 is an internal address (loopback, private, link-local or reserved)"),
        ("/integrations/webhooks/order_created", json!("https://[::ffff:a00:1]/hook"), "tenants/acme/integrations/webhooks.json: /order_created: ::ffff:10.0.0.1 is an internal address (loopback, private, link-local or reserved)"),
        ("/integrations/webhooks/order_created", json!("//hooks.evil.example/x"), r#"tenants/acme/integrations/webhooks.json: /order_created: "//hooks.evil.example/x" must be an absolute https:// URL"#),
        ("/theme/logoUrl", json!("javascript:alert(1)"), r#"tenants/acme/theme.json: /logoUrl: "javascript:alert(1)" must use https"#),
        ("/integrations/webhooks/order_created", json!("https://hooks.acme.example/x?API_KEY=1"), r#"tenants/acme/integrations/webhooks.json: /order_created: query parameter "API_KEY" names a secret: documents hold no secrets"#),
        ("/integrations/oauth/client_secret", json!(12345678), r#"tenants/acme/integrations/oauth.json: /client_secret: "client_secret" names a secret: documents hold no secrets, not even as a number or flag"#),
        ("/integrations/webhooks/order_created", json!("https://localhost/hook"), "tenants/acme/integrations/webhooks.json: /order_created: localhost names this machine"),
        ("/integrations/webhooks/order_created", json!("https://bot:pw@hooks.acme.example/x"), "tenants/acme/integrations/webhooks.json: /order_created: a URL carries no user name or password; use a secret reference"),
        ("/integrations/webhooks/order_created", json!("https://hooks.acme.example/x?access_token=1"), r#"tenants/acme/integrations/webhooks.json: /order_created: query parameter "access_token" names a secret: documents hold no secrets"#),
        ("/integrations/webhooks/order_created", json!("https://hooks.acme.example:99999/x"), r#"tenants/acme/integrations/webhooks.json: /order_created: "https://hooks.acme.example:99999/x" is not a URL: invalid port number"#),
        ("/config/customDomains", json!(["portal.other.example"]), "tenants/acme/config.json: /customDomains/0: portal.other.example is not in the tenant's allowlist (config.allowedHosts is acme.example, *.acme.example, cdn.example.com)"),
        ("/theme/logoUrl", json!("https://acme.example.evil.example/logo.svg"), "tenants/acme/theme.json: /logoUrl: acme.example.evil.example is not in the tenant's allowlist (config.allowedHosts is acme.example, *.acme.example, cdn.example.com)"),
    ];
    for (pointer, value, expected) in cases {
        assert_eq!(only_problem(&with(pointer, value)), expected, "{pointer}");
    }
}

/// A 1x1-pixel-per-side header of each raster format, at `width`x`height`.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bytes.extend(width.to_be_bytes());
    bytes.extend(height.to_be_bytes());
    bytes.extend([8, 6, 0, 0, 0]);
    bytes
}

fn jpeg(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = vec![0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0xff, 0xc0, 0, 11, 8];
    bytes.extend(height.to_be_bytes());
    bytes.extend(width.to_be_bytes());
    bytes.extend([1, 1, 0x11, 0]);
    bytes
}

fn webp_vp8x(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
    bytes.extend(&(width - 1).to_le_bytes()[..3]);
    bytes.extend(&(height - 1).to_le_bytes()[..3]);
    bytes
}

const SVG: &str =
    r##"<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48"><rect fill="#fff"/><use href="#a"/></svg>"##;

#[test]
fn logos_by_magic_bytes_size_and_dimensions() {
    use logo::Format;
    assert_eq!(logo::check(Format::Png, &png(128, 64)), Ok((128, 64)));
    assert_eq!(logo::check(Format::Jpeg, &jpeg(300, 200)), Ok((300, 200)));
    assert_eq!(logo::check(Format::Webp, &webp_vp8x(512, 256)), Ok((512, 256)));
    assert_eq!(logo::check(Format::Svg, SVG.as_bytes()), Ok((64, 48)));
    let view_box = r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 120 30"></svg>"#;
    assert_eq!(logo::check(Format::Svg, view_box.as_bytes()), Ok((120, 30)));

    let refused = |extension: &str, bytes: &[u8]| logo::compile(extension, bytes).expect_err("refused");
    let cases: Vec<(&str, Vec<u8>, (&str, &str))> = vec![
        ("png", jpeg(64, 64), ("logo-format", "declared image/png but the content is image/jpeg")),
        ("gif", b"GIF89a".to_vec(), ("logo-format", "logo.gif: a logo is one of svg, png, jpg, webp")),
        (
            "png",
            b"not an image".to_vec(),
            ("logo-format", "declared image/png but the content is no known image format"),
        ),
        ("png", png(4096, 64), ("logo-dimensions", "4096x64 px: each side must be 16 to 2048 px")),
        ("jpg", jpeg(8, 8), ("logo-dimensions", "8x8 px: each side must be 16 to 2048 px")),
        (
            "png",
            {
                let mut big = png(64, 64);
                big.resize(70_000, 0);
                big
            },
            ("logo-size", "70000 bytes is over the limit of 65536 bytes"),
        ),
        (
            "svg",
            br#"<svg width="64" height="64"><script>alert(1)</script></svg>"#.to_vec(),
            ("svg-script", "an SVG logo must not contain a <script> element"),
        ),
        (
            "svg",
            br#"<svg width="64" height="64" onload="alert(1)"></svg>"#.to_vec(),
            ("svg-script", "an SVG logo must not carry event handlers (onload)"),
        ),
        (
            "svg",
            br#"<svg width="64" height="64"><image href="https://evil.example/x.png"/></svg>"#.to_vec(),
            ("svg-element", "<image> is not an element a logo may use (shapes, text, gradients, filters)"),
        ),
        (
            "svg",
            br#"<svg width="64" height="64"><use href="https://evil.example/x.svg#a"/></svg>"#.to_vec(),
            ("svg-external", "an SVG logo must not reference anything outside itself"),
        ),
        (
            "svg",
            br#"<svg width="64" height="64"><rect style="fill:url(https://evil.example/p)"/></svg>"#.to_vec(),
            ("svg-external", "an SVG logo must not reference anything outside itself"),
        ),
        (
            "svg",
            br#"<!DOCTYPE svg [<!ENTITY a "b">]><svg width="64" height="64"></svg>"#.to_vec(),
            ("svg-script", "an SVG logo must not contain a DOCTYPE (entity declarations)"),
        ),
        (
            "svg",
            br#"<svg xmlns="http://www.w3.org/2000/svg"></svg>"#.to_vec(),
            ("logo-dimensions", "the image's width and height cannot be read"),
        ),
    ];
    for (extension, bytes, (rule, message)) in cases {
        assert_eq!(refused(extension, &bytes), (rule, message.to_owned()), "{extension} {rule}");
    }
}

#[test]
fn an_embedded_logo_is_checked_again() {
    let embedded = logo::compile("svg", SVG.as_bytes()).expect("valid");
    let documents = with("/theme/logo", embedded.clone());
    assert_eq!(validate_documents(&documents), vec![]);

    let mut lying = embedded.clone();
    lying["width"] = json!(4000);
    assert_eq!(
        only_problem(&with("/theme/logo", lying)),
        "tenants/acme/theme.json: /logo: mediaType, width, height, bytes and sha256 must describe data"
    );
    let mut script = embedded;
    script["data"] = json!(base64_of(br#"<svg width="64" height="64"><script/></svg>"#));
    assert_eq!(
        only_problem(&with("/theme/logo", script)),
        "tenants/acme/theme.json: /logo: an SVG logo must not contain a <script> element"
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn public_bundles_are_checked_by_agents() {
    let (public, private) = compiler::compile_bundles("acme", &valid());
    assert!(compiler::check_public_bundle(public.json.as_bytes()).is_ok());
    let problem = compiler::check_public_bundle(private.json.as_bytes()).expect_err("private is not public");
    assert_eq!(
        problem.to_string(),
        "public_bundle: /integrations: a public bundle holds tenant, config, theme and regions only"
    );
    let leaked = br#"{"tenant":"acme","config":{"password":"hunter2"},"theme":{}}"#;
    assert_eq!(compiler::check_public_bundle(leaked).expect_err("secret").rule, "secret-key");
    // A region's variant is public too, as that region serves it.
    let leaked = br#"{"tenant":"acme","config":{},"theme":{},"regions":{"eu-west":{"public":{"password":"x"}}}}"#;
    assert_eq!(compiler::check_public_bundle(leaked).expect_err("secret").rule, "secret-key");
}

#[test]
fn bundles_are_content_addressed() {
    let (public, private) = compiler::compile_bundles("acme", &valid());
    let (again, _) = compiler::compile_bundles("acme", &valid());
    assert_eq!(public, again, "the same documents give the same bytes");
    assert!(!public.json.contains("slaTier") && !public.json.contains("vault:"), "{}", public.json);
    assert!(private.json.contains(r#""slaTier":"gold""#));
    assert_eq!(public.sha256, compiler::document::sha256_hex(public.json.as_bytes()));
}
