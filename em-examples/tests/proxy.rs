//! The forwarding proxies (`proxy`, `proxy --copy`, `tokio_proxy`) carry
//! bytes both ways to `echo_server`, byte for byte, and stop with exit
//! status 0 on SIGTERM.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::Running;

/// Sends 8 MiB through the proxy at `addr` to the echo server and checks
/// the echo, byte for byte.
fn echo_through(addr: &str) {
    let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut s = TcpStream::connect(addr).expect("connect to the proxy");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = s.try_clone().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || w.write_all(&sent).expect("write"));
    let mut back = vec![0; data.len()];
    s.read_exact(&mut back).expect("read the echo");
    writer.join().unwrap();
    assert!(back == data, "the echo differs");
}

#[test]
fn the_proxies_carry_bytes_both_ways_and_exit_0_on_sigterm() {
    let (echo, echo_addr) = Running::start(
        env!("CARGO_BIN_EXE_echo_server"),
        &["--listen", "127.0.0.1:0"],
    );
    let runs: [(&str, &[&str]); 3] = [
        (env!("CARGO_BIN_EXE_proxy"), &[]),
        (env!("CARGO_BIN_EXE_proxy"), &["--copy"]),
        (env!("CARGO_BIN_EXE_tokio_proxy"), &[]),
    ];
    for (bin, extra) in runs {
        let mut args = vec!["--listen", "127.0.0.1:0", "--to", &echo_addr];
        args.extend_from_slice(extra);
        let (proxy, addr) = Running::start(bin, &args);
        echo_through(&addr);
        echo_through(&addr);
        proxy.terminate();
    }
    echo.terminate();
}
