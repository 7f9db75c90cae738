//! The `em::Channel` servers: pubsub tells a client whose line is too long
//! why it is closed; firehose refuses an interval or a batch of 0.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::Running;

#[test]
fn pubsub_answers_a_line_too_long_with_err_then_closes() {
    let (server, addr) = Running::start(
        env!("CARGO_BIN_EXE_pubsub"),
        &["--listen", "127.0.0.1:0", "--max-line", "16"],
    );
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"SUB news\n").unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "SUBSCRIBED news\n");
    // The line after the long one, in the same write, is not answered.
    s.write_all(format!("PUB news {}\nSTATS news\n", "x".repeat(100)).as_bytes())
        .unwrap();
    let mut rest = String::new();
    r.read_to_string(&mut rest).expect("the server closes");
    assert!(rest.starts_with("ERR line too long"), "{rest:?}");
    assert_eq!(rest.lines().count(), 1, "{rest:?}");
    server.terminate();
}

#[test]
fn firehose_refuses_an_interval_or_a_batch_of_0() {
    for flag in ["--interval-ms", "--batch"] {
        let out = support::output_within(
            env!("CARGO_BIN_EXE_firehose"),
            &["--listen", "127.0.0.1:0", flag, "0"],
            &[],
            Duration::from_secs(5),
        );
        assert_eq!(out.status.code(), Some(2), "{flag} 0");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(flag), "{flag} 0: {stderr}");
    }
}

#[path = "../../tests/tests/support/redis.rs"]
#[allow(dead_code, unreachable_pub)]
mod redis;

/// Two pubsub servers sharing their topics through Debian's redis-server:
/// a message published on either reaches the subscribers of both, once.
#[test]
fn pubsub_servers_share_topics_through_redis_server() {
    let redis = redis::RedisServer::start("pubsub-example");
    let flag = format!("unix:{}", redis.socket().display());
    let servers: Vec<_> = (0..2)
        .map(|_| {
            Running::start(
                env!("CARGO_BIN_EXE_pubsub"),
                &["--listen", "127.0.0.1:0", "--redis", &flag],
            )
        })
        .collect();
    let connect = |addr: &str| {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (BufReader::new(s.try_clone().unwrap()), s)
    };
    let (mut sub_a, mut a) = connect(&servers[0].1);
    let (mut sub_b, mut b) = connect(&servers[1].1);
    let (mut replies, mut publisher) = connect(&servers[1].1);
    for (r, s) in [(&mut sub_a, &mut a), (&mut sub_b, &mut b)] {
        s.write_all(b"SUB news\n").unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "SUBSCRIBED news\n");
    }
    // The servers subscribe to Redis as they start: publish until a
    // message gets through to both (bounded), then one more.
    let mut line = String::new();
    let mut n = 0;
    loop {
        publisher
            .write_all(format!("PUB news warmup {n}\n").as_bytes())
            .unwrap();
        line.clear();
        replies.read_line(&mut line).unwrap();
        if line == "PUBLISHED news 2\n" {
            break;
        }
        n += 1;
        assert!(
            n < 500,
            "the servers never both subscribed to Redis: {line:?}"
        );
    }
    publisher.write_all(b"PUB news hello from b\n").unwrap();
    line.clear();
    replies.read_line(&mut line).unwrap();
    assert_eq!(line, "PUBLISHED news 2\n", "both servers got it from Redis");
    for r in [&mut sub_a, &mut sub_b] {
        let mut got = String::new();
        loop {
            got.clear();
            r.read_line(&mut got).unwrap();
            if !got.contains("warmup") {
                break;
            }
        }
        assert_eq!(got, "MSG news hello from b\n");
    }
    for (server, _) in servers {
        server.terminate();
    }
}

/// `redis_bridge_bench` in its three roles against redis-server: both
/// sides in one process (each batch sent from the last reply's callback,
/// or after awaiting the replies), and split between a receiver (a Bridge)
/// and a publisher (a Client) in two processes; every message arrives, in
/// order.
#[test]
fn redis_bridge_bench_counts_every_message_in_one_or_two_processes_with_redis_server() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let redis = redis::RedisServer::start("bridge-bench");
    let flag = format!("unix:{}", redis.socket().display());
    let bin = env!("CARGO_BIN_EXE_redis_bridge_bench");
    let common = ["--redis", &flag, "--messages", "2000", "--window", "16"];
    for style in ["callback", "await"] {
        let out = Command::new(bin)
            .args(common)
            .args(["--style", style])
            .output()
            .unwrap();
        assert!(out.status.success(), "{style}: {out:?}");
        let line = String::from_utf8(out.stdout).unwrap();
        assert!(
            line.starts_with("BRIDGE messages=2000 ") && line.contains("lost=0"),
            "{style}: {line}"
        );
    }

    let mut receiver = Command::new(bin)
        .args(common)
        .args(["--role", "receive"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(receiver.stdout.take().unwrap()).lines();
    // Blocks until the receiver is subscribed (its stdout closes if it dies).
    assert_eq!(lines.next().unwrap().unwrap(), "READY");
    let out = Command::new(bin)
        .args(common)
        .args(["--role", "publish"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("PUBLISH messages=2000 "));
    let received = lines.next().unwrap().unwrap();
    assert!(received.starts_with("RECEIVE messages=2000 "), "{received}");
    assert!(receiver.wait().unwrap().success(), "in order, none missing");
}

/// A publisher whose PUBLISHes Redis refuses (an ACL takes the command
/// away) stops at the first batch and exits 1 with Redis's error, in both
/// styles: no batch is sent after a failed one.
#[test]
fn redis_bridge_bench_stops_at_the_first_refused_publish_with_redis_server() {
    use std::process::Command;
    let redis = redis::RedisServer::start("bridge-bench-refused");
    let socket = redis.socket();
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(&socket)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    cli(&["ACL", "SETUSER", "default", "-publish"]);
    let flag = format!("unix:{}", socket.display());
    let bin = env!("CARGO_BIN_EXE_redis_bridge_bench");
    for style in ["callback", "await"] {
        cli(&["CONFIG", "RESETSTAT"]);
        let out = Command::new(bin)
            .args([
                "--redis",
                &flag,
                "--role",
                "publish",
                "--messages",
                "100000",
            ])
            .args(["--window", "16", "--style", style])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{style}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("NOPERM"), "{style}: {stderr}");
        let stats = cli(&["INFO", "commandstats"]);
        let refused: u64 = stats
            .lines()
            .find(|l| l.starts_with("cmdstat_publish:"))
            .and_then(|l| l.split("rejected_calls=").nth(1))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{style}: no publish stats in {stats}"));
        assert_eq!(refused, 16, "{style}: one batch, then no more");
    }
}
