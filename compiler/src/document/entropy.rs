//! Whether a string looks like a key or a token, in integer arithmetic so
//! that every replica and every build gives the same verdict: Shannon
//! entropy in fixed point, and the shapes that are never secrets (URLs,
//! secret-store references, e-mail addresses, host names).

use super::{is_email, is_host_pattern};
use crate::limits::{ENTROPY_BITS_MAX, ENTROPY_CHECK_CHARS_MIN, HEX_CHECK_CHARS_MIN, HEX_ENTROPY_BITS_MAX};

/// Secret stores a reference may point into.
pub const REFERENCE_SCHEMES: &[&str] = &["vault:", "env:", "aws-sm:", "gcp-sm:", "azure-kv:"];

/// `vault:kv/acme/stripe` and the like: a scheme from [`REFERENCE_SCHEMES`]
/// and a path of `A-Za-z0-9 _ . / -`.
pub fn is_reference(text: &str) -> bool {
    REFERENCE_SCHEMES.iter().any(|scheme| {
        text.strip_prefix(scheme).is_some_and(|path| {
            (1..=256).contains(&path.len())
                && path.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"_./-".contains(&byte))
        })
    })
}

/// An http(s) URL (an endpoint, never a secret by itself).
pub fn is_url(text: &str) -> bool {
    text.starts_with("https://") || text.starts_with("http://")
}

/// Shannon entropy of `text` in bits per character, in fixed point
/// ([`ENTROPY_ONE_BIT`] is one bit). Integer arithmetic only, so every
/// replica and every build computes the same value: the verdict is part of
/// apply.
pub fn entropy_bits(text: &str) -> u64 {
    // Counts per character, in a sorted map (a fixed order; the sum is exact
    // anyway in integers). ASCII, the common case, without a map.
    let counts: Vec<u64> = if text.is_ascii() {
        let mut counts = [0u64; 128];
        for byte in text.bytes() {
            counts[usize::from(byte)] += 1;
        }
        counts.into_iter().filter(|count| *count > 0).collect()
    } else {
        let mut counts = std::collections::BTreeMap::<char, u64>::new();
        for c in text.chars() {
            *counts.entry(c).or_default() += 1;
        }
        counts.into_values().collect()
    };
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0;
    }
    // H = log2(N) - (1/N) * sum(c * log2(c))
    let weighted: u128 = counts.iter().map(|&count| u128::from(count) * u128::from(log2_fixed(count))).sum();
    log2_fixed(total).saturating_sub((weighted / u128::from(total)) as u64)
}

/// One bit in the fixed point of [`entropy_bits`].
pub const ENTROPY_ONE_BIT: u64 = 1 << 32;

/// log2(x) with 32 fractional bits, by repeated squaring of the mantissa.
fn log2_fixed(x: u64) -> u64 {
    if x <= 1 {
        return 0;
    }
    let integer = 63 - u64::from(x.leading_zeros());
    // The mantissa in [1, 2) with 62 fractional bits.
    let mut mantissa: u128 = (u128::from(x) << 62) >> integer;
    let one: u128 = 1 << 62;
    let mut fraction = 0u64;
    for bit in (0..32).rev() {
        mantissa = (mantissa * mantissa) >> 62;
        if mantissa >= 2 * one {
            mantissa >>= 1;
            fraction |= 1 << bit;
        }
    }
    (integer << 32) | fraction
}

/// Bits per character with one decimal, for messages.
pub fn entropy_shown(bits: u64) -> String {
    let tenths = (bits * 10 + ENTROPY_ONE_BIT / 2) / ENTROPY_ONE_BIT;
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// Whether `text` looks like a key or token: long, without whitespace, not
/// a URL, reference, e-mail address or host name, and as random as one.
pub fn looks_random(text: &str) -> bool {
    let chars = text.chars().count();
    if chars < ENTROPY_CHECK_CHARS_MIN
        || text.chars().any(char::is_whitespace)
        || is_url(text)
        || is_reference(text)
        || is_email(text)
        || is_host_pattern(text, true)
    {
        return false;
    }
    let entropy = entropy_bits(text);
    if text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return chars >= HEX_CHECK_CHARS_MIN && entropy >= HEX_ENTROPY_BITS_MAX * ENTROPY_ONE_BIT;
    }
    entropy >= ENTROPY_BITS_MAX * ENTROPY_ONE_BIT
}
