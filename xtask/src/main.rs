//! Project automation: `cargo xtask test | ci | bench`.
fn main() {}
