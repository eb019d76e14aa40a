//! Property tests of the compiler on generated hostile input: documents
//! (JSON of any shape, with the keys and strings the rules care about) and
//! logos (bytes behind every magic number; SVG built from XML fragments).
//! `FUZZ_CASES=N` for a soak.

// Tests may unwrap: a panic is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use compiler::logo::{self, Format};
use compiler::{bundle, compile_bundles, validate_documents, Documents};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn config() -> ProptestConfig {
    ProptestConfig { cases: proto::fuzz::cases(), failure_persistence: None, ..ProptestConfig::default() }
}

/// Keys the rules look at, and others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "public",
            "apiBase",
            "features",
            "supportEmail",
            "slaTier",
            "placement",
            "homeRegion",
            "allowedRegions",
            "drRegion",
            "limits",
            "demoUsers",
            "allowedHosts",
            "customDomains",
            "secrets",
            "colors",
            "primary",
            "logoUrl",
            "logo",
            "mediaType",
            "data",
            "sha256",
            "texts",
            "client_secret",
            "api_key",
            "token_url",
            "webhook",
            "password",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z_~/.-]{0,12}",
    ]
}

/// Strings the rules parse: URLs of every spelling, hosts, references,
/// colors, hashes, keys, and anything at all.
fn text() -> impl Strategy<Value = String> {
    let scheme =
        prop::sample::select(vec!["https://", "HTTPS://", "http://", "//", "\\\\", "javascript:", "vault:", ""]);
    let host = prop::sample::select(vec![
        "acme.example",
        "hooks.acme.example",
        "10.0.0.1",
        "0x7f000001",
        "127.1",
        "[::1]",
        "[::ffff:a00:1]",
        "localhost",
        "*.com",
        "a..b",
        "user:pw@acme.example",
        "acme.example:99999",
        "xn--nxasmq6b.example",
    ]);
    prop_oneof![
        (scheme, host, "[/?#=&a-z_%0-9]{0,16}").prop_map(|(scheme, host, tail)| format!("{scheme}{host}{tail}")),
        "#[0-9a-fA-F]{0,8}",
        "[0-9a-f]{20,70}",
        "[A-Za-z0-9+/=_-]{20,60}",
        "pbkdf2-sha256\\$[0-9]{1,8}\\$[0-9a-f]{0,40}\\$[0-9a-f]{0,70}",
        any::<String>(),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6).prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((key(), json()), 0..8).prop_map(|pairs| pairs.into_iter().collect())
}

/// An SVG assembled from fragments: tags, attributes, references, entities,
/// declarations and raw characters, in any order.
fn svg() -> impl Strategy<Value = String> {
    let fragment = prop::sample::select(vec![
        "<svg width=\"64\" height=\"64\">",
        "<svg viewBox=\"0 0 64 64\">",
        "</svg>",
        "<g>",
        "</g>",
        "<rect x=\"1\"/>",
        "<script>",
        "</script>",
        "<SCRIPT>",
        "<foreignObject>",
        "<image href=\"x\"/>",
        "<use href=\"#a\"/>",
        "<use xlink:href=\"//e\"/>",
        " onload=\"x\"",
        " onclick",
        "=",
        "\"",
        "'",
        "url(#a)",
        "url(http://e)",
        "<style>",
        "</style>",
        "@import",
        "&amp;",
        "&xxe;",
        "&#60;",
        "<!DOCTYPE svg [<!ENTITY a \"b\">]>",
        "<?xml version=\"1.0\"?>",
        "<?xml-stylesheet href=\"x\"?>",
        "<![CDATA[",
        "]]>",
        "<!--",
        "-->",
        "on",
        "<",
        ">",
        "/",
        " ",
        "javascript:",
        "<text>",
        "</text>",
    ]);
    prop::collection::vec(prop_oneof![fragment.prop_map(str::to_owned), "[ -~]{0,4}"], 0..40)
        .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(config())]

    /// Any documents: a verdict (never a panic), the same one twice, and
    /// valid documents always compile to bundles that are JSON.
    #[test]
    fn documents_get_a_deterministic_verdict(config in object(), theme in object(), integrations in object()) {
        let documents = Documents { config, theme, integrations };
        let problems = validate_documents(&documents);
        prop_assert_eq!(&problems, &validate_documents(&documents));
        for problem in &problems {
            prop_assert!(!problem.message.is_empty() && !problem.rule.is_empty(), "{problem:?}");
        }
        if problems.is_empty() {
            let (public, private) = compile_bundles("acme", &documents);
            prop_assert!(serde_json::from_str::<Value>(&public.json).is_ok());
            prop_assert!(serde_json::from_str::<Value>(&private.json).is_ok());
        }
    }

    /// Any documents: the private bundle is the JSON object of the tenant
    /// and its documents, as serde_json writes it, and `private_json`
    /// rebuilds it from the documents' canonical texts.
    #[test]
    fn the_private_bundle_is_rebuilt_from_the_documents(
        config in object(), theme in object(), integrations in object(), tenant in "[a-z][a-z0-9-]{0,20}",
    ) {
        let text = |map: &Map<String, Value>| Value::Object(map.clone()).to_string();
        let texts = (text(&config), text(&integrations), text(&theme));
        let whole = serde_json::json!({ "tenant": tenant, "config": config, "theme": theme, "integrations": integrations });
        let (_, private) = compile_bundles(&tenant, &Documents { config, theme, integrations });
        prop_assert_eq!(&private.json, &whole.to_string());
        prop_assert_eq!(&private.json, &bundle::private_json(&tenant, &texts.0, &texts.1, &texts.2));
    }

    /// Any bytes behind any magic number: a verdict, never a panic.
    #[test]
    fn raster_logos_get_a_verdict(
        magic in prop::sample::select(vec![&b"\x89PNG\r\n\x1a\n"[..], &[0xff, 0xd8, 0xff][..], &b"RIFF\0\0\0\0WEBPVP8X"[..], &b""[..]]),
        rest in prop::collection::vec(any::<u8>(), 0..256),
        format in prop::sample::select(vec![Format::Png, Format::Jpeg, Format::Webp, Format::Svg]),
    ) {
        let bytes = [magic, &rest[..]].concat();
        if let Ok((width, height)) = logo::check(format, &bytes) {
            prop_assert!((16..=2048).contains(&width) && (16..=2048).contains(&height));
        }
    }

    /// An SVG the check accepts is, read again by a plain XML reader, made
    /// of allowlisted elements and attributes only, no `on…` handler, no
    /// DTD and no processing instruction.
    #[test]
    fn accepted_svgs_hold_nothing_active(text in svg()) {
        if logo::check(Format::Svg, text.as_bytes()).is_ok() {
            let mut reader = quick_xml::Reader::from_str(&text);
            loop {
                match reader.read_event() {
                    Ok(quick_xml::events::Event::Start(element) | quick_xml::events::Event::Empty(element)) => {
                        let name = element.name().0.to_owned();
                        prop_assert!(compiler::logo::svg::ELEMENTS.contains(&name.as_str()), "<{name}> in {text}");
                        for attribute in element.attributes() {
                            let key = attribute.unwrap().key.0.to_owned();
                            prop_assert!(compiler::logo::svg::ATTRIBUTES.contains(&key.as_str()), "{key} in {text}");
                            prop_assert!(!key.to_ascii_lowercase().starts_with("on"), "{key} in {text}");
                        }
                    }
                    Ok(quick_xml::events::Event::DocType(_) | quick_xml::events::Event::PI(_)) => {
                        prop_assert!(false, "a DTD or instruction in {text}");
                    }
                    Ok(quick_xml::events::Event::Eof) => break,
                    Ok(_) => {}
                    Err(error) => prop_assert!(false, "accepted but not well-formed: {error}: {text}"),
                }
            }
        }
    }
}
