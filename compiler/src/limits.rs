//! Every limit of the compiler, in one place, with units in the names.

/// The largest logo file, in bytes (it travels inside the public bundle).
pub const LOGO_BYTES_MAX: usize = 64 * 1024;

/// The smallest and largest logo side, in pixels.
pub const LOGO_SIDE_PX_MIN: u32 = 16;
pub const LOGO_SIDE_PX_MAX: u32 = 2048;

/// The deepest an SVG logo's elements may nest.
pub const SVG_DEPTH_MAX: usize = 64;

/// The longest theme text, in characters.
pub const TEXT_CHARS_MAX: usize = 500;

/// The most entries in `allowedHosts` and in `customDomains`.
pub const ALLOWED_HOSTS_MAX: usize = 32;
pub const CUSTOM_DOMAINS_MAX: usize = 16;

/// The most integrations of one tenant.
pub const INTEGRATIONS_PER_TENANT_MAX: usize = 64;

/// The most regional variants of one tenant (`tenants/{id}/regions/*.json`).
pub const REGIONAL_VARIANTS_MAX: usize = 16;

/// The most demo users of one tenant.
pub const DEMO_USERS_MAX: usize = 16;

/// The most PBKDF2 iterations a demo user's hash may ask for (a bound on
/// the work a login costs the api-node).
pub const PBKDF2_ITERATIONS_MAX: u32 = 1_000_000;

/// A string value at least this long, without whitespace, is checked for
/// entropy (shorter ones are ids and names).
pub const ENTROPY_CHECK_CHARS_MIN: usize = 24;

/// Shannon entropy, in bits per character, from which a string looks like a
/// key: mixed-alphabet strings (base64 and the like) and hex-only strings.
pub const ENTROPY_BITS_MAX: u64 = 4;
pub const HEX_ENTROPY_BITS_MAX: u64 = 3;

/// Hex-only strings shorter than this are not judged by entropy (ids, colors).
pub const HEX_CHECK_CHARS_MIN: usize = 32;

/// The largest document (config, theme with its embedded logo, or all
/// integrations together), in bytes: the registry's default limit.
pub const DOCUMENT_BYTES_MAX: usize = 256 * 1024;

/// The most tenants a config repo may hold (regctl reads it into memory).
pub const REPO_TENANTS_MAX: usize = 1_000_000;
