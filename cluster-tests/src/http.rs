//! The suites' HTTP client is regctl's: see `registry::http_client`.

pub use registry::http_client::*;
