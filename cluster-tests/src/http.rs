//! The suites' HTTP client is regctl's: see `registry_client::http`.

pub use registry_client::http::*;
