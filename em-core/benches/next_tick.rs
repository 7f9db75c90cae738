//! next_tick benchmarks: a self-rescheduling chain and a fan of ticks
//! scheduled at once.
fn main() {}
