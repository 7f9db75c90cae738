//! Every program answers `--help`, its first line saying what that program
//! does (not the package's description, the same for all).

use std::collections::HashMap;
use std::process::Command;

#[test]
fn each_program_says_what_it_does() {
    let programs = [
        env!("CARGO_BIN_EXE_amqp_bench"),
        env!("CARGO_BIN_EXE_crawl"),
        env!("CARGO_BIN_EXE_demo"),
        env!("CARGO_BIN_EXE_echo_client"),
        env!("CARGO_BIN_EXE_echo_server"),
        env!("CARGO_BIN_EXE_em-proxy"),
        env!("CARGO_BIN_EXE_fault_proxy"),
        env!("CARGO_BIN_EXE_firehose"),
        env!("CARGO_BIN_EXE_http_api"),
        env!("CARGO_BIN_EXE_http_get"),
        env!("CARGO_BIN_EXE_http_hello"),
        env!("CARGO_BIN_EXE_hyper_get"),
        env!("CARGO_BIN_EXE_hyper_hello"),
        env!("CARGO_BIN_EXE_keyboard"),
        env!("CARGO_BIN_EXE_loadgen"),
        env!("CARGO_BIN_EXE_micro"),
        env!("CARGO_BIN_EXE_objects"),
        env!("CARGO_BIN_EXE_popen"),
        env!("CARGO_BIN_EXE_proxy"),
        env!("CARGO_BIN_EXE_pubsub"),
        env!("CARGO_BIN_EXE_redis_bridge_bench"),
        env!("CARGO_BIN_EXE_route_by_line"),
        env!("CARGO_BIN_EXE_smtp_sink"),
        env!("CARGO_BIN_EXE_socks4_proxy"),
        env!("CARGO_BIN_EXE_starttls_server"),
        env!("CARGO_BIN_EXE_tail"),
        env!("CARGO_BIN_EXE_tokio_echo"),
        env!("CARGO_BIN_EXE_tokio_echo_mt"),
        env!("CARGO_BIN_EXE_tokio_echo_reuseport"),
        env!("CARGO_BIN_EXE_tokio_proxy"),
        env!("CARGO_BIN_EXE_tokio_tls_echo"),
        env!("CARGO_BIN_EXE_tokio_udp_echo"),
        env!("CARGO_BIN_EXE_udp_echo"),
        env!("CARGO_BIN_EXE_work_queue"),
        env!("CARGO_BIN_EXE_ws_chat"),
    ];
    let mut seen: HashMap<String, &str> = HashMap::new();
    for bin in programs {
        let out = Command::new(bin)
            .arg("--help")
            .output()
            .expect("run --help");
        assert!(out.status.success(), "{bin} --help");
        let help = String::from_utf8(out.stdout).unwrap();
        let first = help.lines().next().unwrap_or_default().trim().to_owned();
        assert!(!first.is_empty(), "{bin} --help starts with an empty line");
        assert!(
            !first.starts_with("Runnable programs for em"),
            "{bin} --help: the package's description"
        );
        if let Some(other) = seen.insert(first.clone(), bin) {
            panic!("{bin} and {other} both start their --help with {first:?}");
        }
        // The servers and proxies say where they listen.
        let name = bin.rsplit('/').next().unwrap();
        if [
            "em-proxy",
            "route_by_line",
            "socks4_proxy",
            "pubsub",
            "firehose",
        ]
        .contains(&name)
        {
            assert!(help.contains("--listen"), "{bin} --help");
        }
    }
}
