//! Fuzz target `simple_cookie`: see `session_fuzz::checks::simple_cookie`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| session_fuzz::checks::simple_cookie(data));
