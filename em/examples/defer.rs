//! defer: `cargo run --example defer` runs blocking work on the thread pool
//! and gets its result back on the reactor thread. The EventMachine
//! original is bench/baselines/first_programs/defer.rb.
fn main() -> em::Result<()> {
    em::run(|| {
        em::defer(
            || {
                std::thread::sleep(em::Duration::from_millis(200)); // blocking, so not on the reactor thread
                6 * 7
            },
            |answer| {
                println!("the answer is {answer}");
                em::stop();
            },
        )
    })
}
