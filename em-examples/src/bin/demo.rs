//! The em demo.
fn main() {}
