//! Fuzz target `redis_aiohttp_value`: see `session_fuzz::checks::redis_aiohttp_value`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| session_fuzz::checks::redis_aiohttp_value(data));
