//! Fuzz target `encrypted_cookie`: see `session_fuzz::checks::encrypted_cookie`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| session_fuzz::checks::encrypted_cookie(data));
