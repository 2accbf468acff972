//! Fuzz target `cookie_header`: see `session_fuzz::checks::cookie_header`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| session_fuzz::checks::cookie_header(data));
