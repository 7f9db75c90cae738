//! `loadgen --tls` drives the raw tokio-rustls baseline (`tokio_tls_echo
//! --tls-self-signed`): echo trusting the certificate the server wrote
//! (`--write-cert`, `--ca`), stream and handshake with `--insecure`, all
//! without errors; a name the certificate does not hold is refused.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::Running;

/// Runs `bin` with `args` and `stdin`, waiting at most 30 s; its output.
fn run_with_input(bin: &str, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().expect("wait")).ok());
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .ok();
            panic!("{bin} {args:?} still running after 30 s");
        })
}

/// Runs `loadgen` with `args`, waiting at most 30 s for it to finish.
fn loadgen(args: &[&str]) -> Output {
    run_with_input(env!("CARGO_BIN_EXE_loadgen"), args, b"")
}

/// Runs `loadgen` with `args`, checks that it succeeds, and returns its
/// `LOADGEN …` line.
fn summary(args: &[&str]) -> String {
    let out = loadgen(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "loadgen {args:?}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The number after `key=` in a `LOADGEN …` line.
fn field(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("{key} in {line:?}: {e}"))
}

#[test]
fn loadgen_drives_tokio_tls_echo_over_tls() {
    let cert = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("tokio_tls_echo-{}.pem", std::process::id()));
    let cert_arg = cert.to_str().expect("a UTF-8 path");
    let (server, addr) = Running::start(
        env!("CARGO_BIN_EXE_tokio_tls_echo"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-self-signed",
            "--write-cert",
            cert_arg,
        ],
    );
    let window = ["--duration", "1", "--warmup", "0.2", "--addr", &addr];

    let echo = summary(
        &[
            &[
                "echo", "--tls", "--ca", cert_arg, "--conns", "4", "--size", "64",
            ][..],
            &window,
        ]
        .concat(),
    );
    assert!(field(&echo, "msgs") > 0.0, "{echo}");
    assert_eq!(field(&echo, "errors"), 0.0, "{echo}");

    let stream = summary(
        &[
            &["stream", "--tls", "--insecure", "--size", "16384"][..],
            &window,
        ]
        .concat(),
    );
    assert!(field(&stream, "msgs") > 0.0, "{stream}");
    assert_eq!(field(&stream, "errors"), 0.0, "{stream}");

    let handshake = summary(
        &[
            &["handshake", "--tls", "--insecure", "--conns", "2"][..],
            &window,
        ]
        .concat(),
    );
    assert!(field(&handshake, "handshakes") > 0.0, "{handshake}");
    assert_eq!(field(&handshake, "errors"), 0.0, "{handshake}");

    // With --ca the name is verified: the certificate holds only
    // `localhost` and 127.0.0.1.
    let wrong = loadgen(
        &[
            &[
                "echo",
                "--tls",
                "--ca",
                cert_arg,
                "--server-name",
                "example.com",
                "--size",
                "64",
            ][..],
            &window,
        ]
        .concat(),
    );
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success(), "{stderr}");
    assert!(stderr.contains("not valid for name"), "{stderr}");

    server.terminate();
    std::fs::remove_file(&cert).ok();
}

#[test]
fn em_echo_server_and_client_over_tls_verified_and_not() {
    let cert = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("echo_server-{}.pem", std::process::id()));
    let cert_arg = cert.to_str().expect("a UTF-8 path");
    let (server, addr) = Running::start(
        env!("CARGO_BIN_EXE_echo_server"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-self-signed",
            "--write-cert",
            cert_arg,
        ],
    );
    let client = env!("CARGO_BIN_EXE_echo_client");
    let verified = run_with_input(
        client,
        &[
            "--connect",
            &addr,
            "--tls",
            "--ca",
            cert_arg,
            "--server-name",
            "localhost",
            "one",
            "two",
        ],
        b"",
    );
    assert!(verified.status.success(), "{verified:?}");
    assert_eq!(String::from_utf8_lossy(&verified.stdout), "one\ntwo\n");
    // Mozilla's roots do not hold the self-signed certificate.
    let refused = run_with_input(client, &["--connect", &addr, "--tls", "x"], b"");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("unknown issuer"), "{stderr}");
    let insecure = run_with_input(
        client,
        &["--connect", &addr, "--tls", "--insecure", "anyway"],
        b"",
    );
    assert!(insecure.status.success(), "{insecure:?}");
    // The server served all three and is still up: loadgen over TLS too.
    let echo = summary(&[
        "echo",
        "--tls",
        "--ca",
        cert_arg,
        "--conns",
        "4",
        "--size",
        "64",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--addr",
        &addr,
    ]);
    assert_eq!(field(&echo, "errors"), 0.0, "{echo}");
    server.terminate();
    std::fs::remove_file(&cert).ok();
}

#[test]
fn openssl_starttls_smtp_upgrades_a_starttls_server_session() {
    let cert = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("starttls-{}.pem", std::process::id()));
    let cert_arg = cert.to_str().expect("a UTF-8 path");
    let (server, addr) = Running::start(
        env!("CARGO_BIN_EXE_starttls_server"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-self-signed",
            "--write-cert",
            cert_arg,
        ],
    );
    let out = run_with_input(
        "openssl",
        &[
            "s_client",
            "-starttls",
            "smtp",
            "-connect",
            &addr,
            "-CAfile",
            cert_arg,
            "-servername",
            "localhost",
            "-verify_return_error",
            "-brief",
            "-ign_eof",
        ],
        b"NOOP\r\nhello over tls\r\nQUIT\r\n",
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("Verification: OK"), "{all}");
    assert!(all.contains("250 OK"), "{all}");
    assert!(all.contains("250 echo: hello over tls"), "{all}");
    assert!(all.contains("221 Bye"), "{all}");
    server.terminate();
    std::fs::remove_file(&cert).ok();
}
