//! The long-running examples stop gracefully on SIGTERM sent the moment
//! they announce readiness: the signal handlers are in place before the
//! `listening on` line is printed (they used to be installed after it, so a
//! supervisor's early SIGTERM sometimes killed the process by the default
//! action, or was swallowed and the server kept running).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Sends signal `sig` to `child`.
#[allow(unsafe_code)]
fn send(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
    // `pid` is our own child, not yet reaped, so it names that process.
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
}

/// Sends SIGTERM to `child`.
fn terminate(child: &Child) {
    send(child, libc::SIGTERM);
}

/// Starts `bin` on port 0 with `extra` arguments and waits for its
/// `listening on ADDR` line; the child and the address it announced.
fn start_listening(bin: &str, extra: &[&str]) -> (Child, std::net::SocketAddr) {
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the example");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read its first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{bin}: {line:?}"));
    (child, addr)
}

/// Starts `bin` on port 0, sends SIGTERM as soon as it prints
/// `listening on`, and checks that it exits 0 within 2 s.
fn start_and_terminate_at_readiness(bin: &str, round: usize) {
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the example");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read its first line");
    assert!(line.starts_with("listening on "), "round {round}: {line:?}");
    terminate(&child);
    // Wait for the exit on another thread, so that the wait is bounded.
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || tx.send(child.wait().expect("wait")).ok());
    match rx.recv_timeout(Duration::from_secs(2)) {
        Ok(status) => assert!(
            status.success(),
            "round {round}: {bin} exited with {status}"
        ),
        Err(_) => {
            Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .ok();
            panic!("round {round}: {bin} still running 2 s after SIGTERM");
        }
    }
}

#[test]
fn echo_server_exits_0_on_sigterm_sent_at_readiness_500_times() {
    for round in 0..500 {
        start_and_terminate_at_readiness(env!("CARGO_BIN_EXE_echo_server"), round);
    }
}

#[test]
fn pubsub_and_firehose_exit_0_on_sigterm_sent_at_readiness() {
    for round in 0..100 {
        start_and_terminate_at_readiness(env!("CARGO_BIN_EXE_pubsub"), round);
        start_and_terminate_at_readiness(env!("CARGO_BIN_EXE_firehose"), round);
    }
}

/// SIGUSR1 makes a server print its stats line on stderr.
#[test]
fn sigusr1_prints_the_stats_line() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_echo_server"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn echo_server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read its first line");
    assert!(line.starts_with("listening on "), "{line:?}");
    send(&child, libc::SIGUSR1);
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("STATS ") {
                tx.send(line).ok();
                break;
            }
        }
    });
    let stats = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a STATS line");
    terminate(&child);
    assert!(child.wait().expect("wait").success());
    assert!(stats.contains(" connections_open=0 "), "{stats}");
    assert!(stats.contains(" bytes_read=0 "), "{stats}");
}

#[test]
fn udp_echo_exits_0_on_sigterm_sent_at_readiness() {
    for round in 0..200 {
        start_and_terminate_at_readiness(env!("CARGO_BIN_EXE_udp_echo"), round);
    }
}

/// `udp_echo` and its raw-tokio baseline echo every datagram, an empty one
/// included, to its sender, at the address they announce.
#[test]
fn the_udp_echo_servers_echo_datagrams() {
    for bin in [
        env!("CARGO_BIN_EXE_udp_echo"),
        env!("CARGO_BIN_EXE_tokio_udp_echo"),
    ] {
        let (mut child, addr) = start_listening(bin, &[]);
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0; 100];
        for datagram in [&b"hello"[..], b"", b"again"] {
            client.send_to(datagram, addr).unwrap();
            let (n, from) = client.recv_from(&mut buf).expect("the echo");
            assert_eq!((&buf[..n], from), (datagram, addr), "{bin}");
        }
        terminate(&child);
        assert!(child.wait().expect("wait").success(), "{bin}");
    }
}

/// The multi-threaded raw-tokio baselines of `bench/reactors.sh` stop on
/// SIGTERM sent at readiness, with any number of threads.
#[test]
fn the_multi_threaded_tokio_echo_servers_exit_0_on_sigterm_sent_at_readiness() {
    for round in 0..50 {
        start_and_terminate_at_readiness(env!("CARGO_BIN_EXE_tokio_echo_mt"), round);
        start_and_terminate_at_readiness(env!("CARGO_BIN_EXE_tokio_echo_reuseport"), round);
    }
}

/// Every thread of `tokio_echo_reuseport` binds the port the first one got
/// (port 0), and both multi-threaded baselines echo on every connection,
/// whichever thread it lands on.
#[test]
fn the_multi_threaded_tokio_echo_servers_echo_on_every_thread() {
    use std::io::{Read, Write};
    for bin in [
        env!("CARGO_BIN_EXE_tokio_echo_mt"),
        env!("CARGO_BIN_EXE_tokio_echo_reuseport"),
    ] {
        let (mut child, addr) = start_listening(bin, &["--threads", "4"]);
        // Enough connections that, spread over the 4 listeners by the
        // kernel's hash of their ports, each almost surely gets some.
        let mut conns: Vec<_> = (0..32)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        for (i, conn) in conns.iter_mut().enumerate() {
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let msg = format!("hello {i}");
            conn.write_all(msg.as_bytes()).unwrap();
            let mut buf = vec![0; msg.len()];
            conn.read_exact(&mut buf).expect("the echo");
            assert_eq!(buf, msg.as_bytes(), "{bin}");
        }
        terminate(&child);
        assert!(child.wait().expect("wait").success(), "{bin}");
    }
}

#[test]
fn echo_server_on_several_reactors_echoes_and_exits_0_on_sigterm_at_readiness() {
    use std::io::{Read, Write};
    for round in 0..20 {
        let (mut child, addr) =
            start_listening(env!("CARGO_BIN_EXE_echo_server"), &["--reactors", "3"]);
        if round == 0 {
            // Every reactor listens by the time the line is printed.
            for i in 0..24 {
                let mut conn = std::net::TcpStream::connect(addr).expect("connect");
                conn.set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let msg = format!("hello {i}");
                conn.write_all(msg.as_bytes()).unwrap();
                let mut buf = vec![0; msg.len()];
                conn.read_exact(&mut buf).expect("the echo");
                assert_eq!(buf, msg.as_bytes());
            }
        }
        terminate(&child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait().expect("wait")).ok());
        let status = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("exits within 5 s of SIGTERM");
        assert!(status.success(), "round {round}: exited with {status}");
    }
}
