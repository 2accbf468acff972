//! Fuzz target `aiohttp_cookies`: see `session_fuzz::checks::aiohttp_cookies`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| session_fuzz::checks::aiohttp_cookies(data));
