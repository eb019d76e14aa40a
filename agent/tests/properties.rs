//! Property tests of what an agent decodes and applies: any bytes on the
//! stream decode to a message or an error (never a panic), and any delta,
//! however its records are mangled, leaves a view whose every tenant passes
//! the same validation the registry's records do. `FUZZ_CASES=N` for a soak.

// Tests may unwrap: a panic is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use agent::view::{validate, Rules};
use agent::{Kind, View};
use proptest::prelude::*;
use prost::Message;
use proto::v1::{self, TenantRecord};

fn config() -> ProptestConfig {
    ProptestConfig { cases: proto::fuzz::cases(), failure_persistence: None, ..ProptestConfig::default() }
}

/// A bundle whose hash is right or wrong, over JSON that is or is not a
/// public bundle (some carry secret references, some are not JSON).
fn bundle() -> impl Strategy<Value = v1::Bundle> {
    let json = prop_oneof![
        Just(r#"{"config":{"n":1},"tenant":"acme"}"#.to_owned()),
        Just(r#"{"config":{"secret_ref":"vault:kv/x"},"tenant":"acme"}"#.to_owned()),
        Just(r#"{"tenant":"other"}"#.to_owned()),
        "[ -~]{0,40}",
    ];
    (json, any::<bool>()).prop_map(|(json, right)| v1::Bundle {
        sha256: if right { compiler::document::sha256_hex(json.as_bytes()) } else { "0".repeat(64) },
        json: json.into_bytes().into(),
    })
}

fn record() -> impl Strategy<Value = TenantRecord> {
    let id = prop_oneof![Just("acme".to_owned()), Just("globex".to_owned()), "[ -~]{0,12}"];
    (id, 0..4i32, 0..5u64, proptest::option::of(bundle()), proptest::option::of(bundle()), 0..5u64).prop_map(
        |(id, status, revision, public, private, config_revision)| TenantRecord {
            id,
            uid: "01".to_owned(),
            status,
            create_revision: revision,
            mod_revision: revision,
            public_bundle: public,
            private_bundle: private,
            config_revision,
            ..Default::default()
        },
    )
}

proptest! {
    #![proptest_config(config())]

    /// Bytes from the wire, random or a real message cut and flipped.
    #[test]
    fn stream_messages_decode_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..512), record in record(), cut in any::<usize>(), flip in any::<(usize, u8)>()) {
        let _ = v1::RegistryMessage::decode(&bytes[..]);
        let _ = v1::AgentMessage::decode(&bytes[..]);
        let message = v1::RegistryMessage {
            kind: Some(v1::registry_message::Kind::Delta(v1::Delta { revision: 1, tenants: vec![record], ..Default::default() })),
        };
        let mut encoded = message.encode_to_vec();
        if !encoded.is_empty() {
            let at = flip.0 % encoded.len();
            encoded[at] ^= flip.1;
            encoded.truncate(cut % (encoded.len() + 1));
        }
        let _ = v1::RegistryMessage::decode(&encoded[..]);
    }

    /// However a delta's records are mangled, the view that results holds
    /// only records that validate, and its revision is the delta's.
    #[test]
    fn a_view_holds_only_valid_records(records in prop::collection::vec(record(), 0..6), api in any::<bool>(), revision in 0..3u64) {
        let rules = Rules { kind: if api { Kind::Api } else { Kind::Frontend }, bundle_bytes_max: 1024, region: "eu-west".into() };
        match View::default().apply_delta(v1::Delta { revision, tenants: records.clone(), ..Default::default() }, &rules) {
            Err(_) => prop_assert_ne!(revision, 1),
            Ok((view, refusals)) => {
                prop_assert_eq!(view.revision, 1);
                prop_assert!(refusals.len() <= records.len());
                for entry in view.tenants() {
                    prop_assert!(validate(&entry.record, 1, &rules).is_ok(), "{:?}", entry.record);
                }
            }
        }
    }
}
