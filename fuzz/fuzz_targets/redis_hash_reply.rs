//! Fuzz target `redis_hash_reply`: see `session_fuzz::checks::redis_hash_reply`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| session_fuzz::checks::redis_hash_reply(data));
