//! `hetier`: the command-line tool.
fn main() {}
