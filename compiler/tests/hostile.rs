//! Hostile inputs: each is refused (or judged) in time linear in its size,
//! and the verdict is the same on every machine.

// Tests may unwrap: a panic is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use compiler::document::{entropy_bits, ENTROPY_ONE_BIT};
use compiler::limits::LOGO_BYTES_MAX;
use compiler::logo::{self, Format};

/// An SVG of `LOGO_BYTES_MAX` bytes whose body is `filler` repeated.
fn svg_of(open: &str, filler: &str, close: &str) -> Vec<u8> {
    let room = LOGO_BYTES_MAX - open.len() - close.len();
    let mut text = open.to_owned();
    text.push_str(&filler.repeat(room / filler.len()));
    text.push_str(close);
    text.into_bytes()
}

/// The worst case of the old substring scan: a 64 KiB `ononon…` (for every
/// `on` it scanned to the next non-letter, quadratic: over a second) and
/// its relatives. Each must be judged in a few milliseconds, even in a
/// debug build; the bound leaves room for a slow machine.
#[test]
fn svg_logos_are_judged_in_linear_time() {
    let bound = Duration::from_millis(250);
    let cases = [
        svg_of(r#"<svg width="64" height="64"><text>"#, "on", "</text></svg>"),
        svg_of(r#"<svg width="64" height="64" class=""#, "on", r#""></svg>"#),
        svg_of(r#"<svg width="64" height="64"><style>"#, "url(#a)", "</style></svg>"),
        svg_of(r#"<svg width="64" height="64">"#, "<g>", ""),
        svg_of(r#"<svg width="64" height="64">"#, r#"<rect x="1"/>"#, "</svg>"),
        svg_of(r#"<svg width="64" height="64"><text>"#, "&amp;", "</text></svg>"),
        svg_of(r#"<svg width="64" height="64" viewBox=""#, "1 ", r#""></svg>"#),
    ];
    for bytes in cases {
        let start = Instant::now();
        let verdict = logo::check(Format::Svg, &bytes);
        let took = start.elapsed();
        assert!(took < bound, "{took:?} for {}…: {verdict:?}", String::from_utf8_lossy(&bytes[..40]));
    }
}

#[test]
fn svg_structure_is_refused_by_rule() {
    let refused = |text: &str| logo::check(Format::Svg, text.as_bytes()).expect_err(text).0;
    // Unclosed, mismatched, two roots, a root that is not <svg>, too deep.
    assert_eq!(refused(r#"<svg width="64" height="64"><g></svg>"#), "svg-syntax");
    assert_eq!(refused(r#"<svg width="64" height="64"></svg><svg/>"#), "svg-syntax");
    assert_eq!(refused(r#"<g><svg width="64" height="64"></svg></g>"#), "svg-syntax");
    let deep = format!(r#"<svg width="64" height="64">{}{}</svg>"#, "<g>".repeat(70), "</g>".repeat(70));
    assert_eq!(refused(&deep), "svg-depth");
    // Elements and attributes outside the allowlists, in any case.
    assert_eq!(refused(r#"<svg width="64" height="64"><animate/></svg>"#), "svg-element");
    assert_eq!(refused(r#"<svg width="64" height="64"><SCRIPT/></svg>"#), "svg-element");
    assert_eq!(refused(r#"<svg width="64" height="64" onLoad="x()"></svg>"#), "svg-script");
    assert_eq!(refused(r#"<svg width="64" height="64" data-x="1"></svg>"#), "svg-attribute");
    assert_eq!(refused(r#"<svg width="64" height="64" x="1" x="2"></svg>"#), "svg-syntax");
    // References that leave the file, however they are spelled.
    assert_eq!(refused(r#"<svg width="64" height="64"><use xlink:href="//evil.example/a#b"/></svg>"#), "svg-external");
    assert_eq!(
        refused(r#"<svg width="64" height="64"><rect fill="URL( 'https://e.example/p')"/></svg>"#),
        "svg-external"
    );
    assert_eq!(refused(r#"<svg width="64" height="64"><style>@IMPORT "x.css";</style></svg>"#), "svg-external");
    assert_eq!(refused(r#"<?xml-stylesheet href="x.css"?><svg width="64" height="64"></svg>"#), "svg-script");
    assert_eq!(refused(r#"<svg width="64" height="64"><text>&xxe;</text></svg>"#), "svg-script");
    // What real logos use still passes.
    let fine = r##"<?xml version="1.0"?><!-- logo --><svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 64 32"><defs><linearGradient id="a"><stop offset="0" stop-color="#fff"/></linearGradient><style>.c{fill:url(#a)}</style></defs><rect class="c" width="64" height="32"/><use xlink:href="#a"/><text x="1" y="2">A &amp; B &#169;</text></svg>"##;
    assert_eq!(logo::check(Format::Svg, fine.as_bytes()), Ok((64, 32)));
}

/// The entropy rule is part of apply, so it must give the same number on
/// every replica: integers only, whatever the characters.
#[test]
fn entropy_is_exact_and_deterministic() {
    assert_eq!(entropy_bits(""), 0);
    assert_eq!(entropy_bits("aaaa"), 0);
    assert_eq!(entropy_bits("ab"), ENTROPY_ONE_BIT);
    assert_eq!(entropy_bits("abcd"), 2 * ENTROPY_ONE_BIT);
    assert_eq!(entropy_bits("ÅÄÖüéèñß"), 3 * ENTROPY_ONE_BIT);
    // Close to the real value for uneven counts, and the same on each call.
    let text = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08ÅÄ";
    let exact: f64 = {
        let mut counts = std::collections::BTreeMap::<char, f64>::new();
        for c in text.chars() {
            *counts.entry(c).or_default() += 1.0;
        }
        let total = text.chars().count() as f64;
        counts.values().map(|count| count / total).map(|p| -p * p.log2()).sum()
    };
    let fixed = entropy_bits(text) as f64 / ENTROPY_ONE_BIT as f64;
    assert!((fixed - exact).abs() < 1e-6, "{fixed} vs {exact}");
    assert_eq!(entropy_bits(text), entropy_bits(text));
}
