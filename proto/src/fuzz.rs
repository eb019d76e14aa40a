//! How many cases each property test runs: [`FUZZ_CASES_DEFAULT`] in the
//! ordinary test run, `FUZZ_CASES=N` for a soak.

/// Cases per property in the default test run.
pub const FUZZ_CASES_DEFAULT: u32 = 10_000;

/// `FUZZ_CASES` from the environment, else [`FUZZ_CASES_DEFAULT`]. A value
/// that is not a positive number is a mistake worth stopping for.
pub fn cases() -> u32 {
    match std::env::var("FUZZ_CASES") {
        Err(_) => FUZZ_CASES_DEFAULT,
        Ok(text) => match text.parse::<u32>() {
            Ok(cases) if cases > 0 => cases,
            _ => panic!("FUZZ_CASES={text:?}: expected a positive number of cases"),
        },
    }
}
