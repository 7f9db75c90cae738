//! em-http's client downloads 1 GiB from nginx, read piece by piece, in
//! bounded memory: the body is held back (em pauses reading) while the
//! reader is behind, never gathered. Alone in its file so that no other
//! test shares the process whose memory it measures.

mod support;

use std::time::Duration;

use em_http::Client;
use support::nginx::{self, Nginx};
use support::run_builder_with_watchdog_for;

/// This process's resident set size, from `/proc/self/status`.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line");
    kib * 1024
}

#[test]
fn a_one_gib_download_streams_in_bounded_memory() {
    const GROWTH: u64 = 64 << 20;
    let nginx = Nginx::start("huge");
    let url = format!("{}/huge.bin", nginx.base());
    run_builder_with_watchdog_for(
        em::Reactor::builder(),
        Duration::from_secs(300),
        move || -> em::Result<()> {
            em::spawn(async move {
                let client = Client::new();
                let before = rss_bytes();
                let mut response = client.get(&url).send().await.unwrap();
                assert_eq!(response.content_length(), Some(nginx::HUGE_LEN));
                let (mut total, mut pieces, mut peak) = (0u64, 0u64, before);
                while let Some(piece) = response.chunk().await.unwrap() {
                    assert!(
                        piece.iter().all(|&b| b == 0),
                        "the sparse file reads as zeros"
                    );
                    total += piece.len() as u64;
                    pieces += 1;
                    if pieces % 256 == 0 {
                        peak = peak.max(rss_bytes());
                    }
                }
                peak = peak.max(rss_bytes());
                assert_eq!(total, nginx::HUGE_LEN);
                let grew = peak.saturating_sub(before);
                assert!(
                    grew < GROWTH,
                    "RSS grew by {} MiB reading 1 GiB in {pieces} pieces",
                    grew >> 20
                );
                assert_eq!(
                    client.connections(),
                    (1, 1),
                    "and the connection is reusable"
                );
                em::stop();
            })?;
            Ok(())
        },
    )
    .unwrap();
}
