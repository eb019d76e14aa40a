//! regctl.
