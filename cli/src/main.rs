//! `paved`: the entry point.
fn main() {}
