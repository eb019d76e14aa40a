//! Property tests of the Host parser on generated hostile hosts: it never
//! panics, and whatever tenant it names is exactly the first label of
//! `{tenant}.{base domain}[.][:port]`, a valid tenant id. `FUZZ_CASES=N`
//! for a soak.

// Tests may unwrap: a panic is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use agent::limits::HOST_BYTES_MAX;
use api_node::resolve::{tenant_id, HostRules};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig { cases: proto::fuzz::cases(), failure_persistence: None, ..ProptestConfig::default() }
}

fn rules() -> HostRules {
    HostRules {
        base_domains: vec!["example.com".to_owned(), "localhost".to_owned()],
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
    }
}

/// Hosts built from the pieces attacks use: labels, dots, base domains,
/// ports, brackets, case, control and non-ASCII characters.
fn host() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(vec![
            "acme",
            "ACME",
            "a-1",
            "-x",
            "x-",
            "www",
            "api",
            "example",
            "com",
            "example.com",
            "localhost",
            ".",
            "..",
            ":",
            ":443",
            ":0",
            ":99999",
            "[",
            "]",
            "::1",
            "*",
            "_",
            "@",
            "/",
            " ",
            "\r\n",
            "\0",
            "é",
            "а",
            "xn--",
            "127.0.0.1",
            "0x7f",
        ])
        .prop_map(str::to_owned),
        "[a-z0-9-]{0,70}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_host_names_a_tenant_only_when_it_is_one(host in host(), forwarded in proptest::option::of(host()), proxy in any::<bool>()) {
        let peer: IpAddr = if proxy { "10.1.2.3".parse().unwrap() } else { "203.0.113.9".parse().unwrap() };
        let mut buffer = [0u8; HOST_BYTES_MAX];
        let Ok(tenant) = tenant_id(Some(&host), forwarded.as_deref(), peer, &rules(), &mut buffer) else {
            return Ok(());
        };
        prop_assert!(proto::TenantId::parse(tenant).is_ok(), "{tenant:?} from {host:?}");
        let asked = match (&forwarded, proxy) { (Some(forwarded), true) => forwarded.split(',').next().unwrap().trim(), _ => host.as_str() };
        let lower = asked.to_ascii_lowercase();
        let name = lower.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(lower.as_str(), |(name, _)| name);
        let name = name.strip_suffix('.').unwrap_or(name);
        prop_assert!(
            name == format!("{tenant}.example.com") || name == format!("{tenant}.localhost"),
            "{tenant:?} from {asked:?}"
        );
    }
}
