//! em's TLS against peers nobody here wrote: the Debian `openssl s_client`
//! and Python's `ssl` module connect to em's server, and em's client
//! connects to a Python `ssl` server. Certificates from rcgen, written to
//! a temporary directory.

mod support;

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::rc::Rc;

use em::prelude::*;
use em::TlsOptions;
use support::certs::Certs;
use support::run_with_watchdog;

/// TLS from the first byte; echoes one line, then closes after writing.
struct EchoOnce {
    options: TlsOptions,
}

impl Connection for EchoOnce {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        conn.start_tls(&self.options).expect("start_tls");
    }
    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        conn.send_data(format!("em says {line}"));
        conn.close_connection_after_writing();
    }
}

/// Runs em's server; `client` runs the outside program on a thread with
/// the port and returns its output; the reactor stops when it returns.
fn serve_to(certs: &Certs, client: impl FnOnce(u16) -> String + Send + 'static) -> String {
    let options = certs.server_options();
    let (tx, rx) = std::sync::mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let s = em::start_server("127.0.0.1:0", move || EchoOnce {
            options: options.clone(),
        })?;
        let port = s.local_addr().inet().unwrap().port();
        let handle = em::handle()?;
        std::thread::spawn(move || {
            tx.send(client(port)).ok();
            handle.stop();
        });
        Ok(())
    })
    .unwrap();
    rx.recv().unwrap()
}

#[test]
fn openssl_s_client_verifies_and_talks_to_em() {
    let certs = Certs::new("openssl");
    let ca = certs.ca.clone();
    let out = serve_to(&certs, move |port| {
        let mut child = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args([
                "-servername",
                "localhost",
                "-verify_return_error",
                "-brief",
                "-ign_eof",
            ])
            .arg("-CAfile")
            .arg(&ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl (Debian package openssl) must be installed");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"hello from openssl\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.contains("em says hello from openssl"), "{out}");
    assert!(out.contains("Verification: OK"), "{out}");
    assert!(out.contains("TLSv1.3"), "{out}");
}

#[test]
fn python_ssl_client_verifies_and_talks_to_em() {
    let certs = Certs::new("pyclient");
    let ca = certs.ca.clone();
    let out = serve_to(&certs, move |port| {
        let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"hello from python\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(100)
            if not chunk:
                break
            data += chunk
        print(s.version(), data.decode().strip())
        # em closed after writing: Python sees close_notify, a clean end.
        print("clean end" if s.recv(100) == b"" else "more data")
"#;
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&ca)
            .arg(port.to_string())
            .output()
            .expect("python3 must be installed");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.contains("TLSv1.3 em says hello from python"), "{out}");
    assert!(out.contains("clean end"), "{out}");
}

/// A client: sends a line once connected, records the answer and the end.
struct Asker {
    options: TlsOptions,
    seen: Rc<RefCell<Vec<String>>>,
}

impl Connection for Asker {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        conn.start_tls(&self.options).expect("start_tls");
        conn.send_data("hello from em");
    }
    fn ssl_handshake_completed(&mut self, conn: &Conn<LinesCodec>) {
        self.seen
            .borrow_mut()
            .push(format!("handshake {:?}", conn.tls_protocol_version()));
    }
    fn receive_data(&mut self, _conn: &Conn<LinesCodec>, line: String) {
        self.seen.borrow_mut().push(line);
    }
    fn unbind(&mut self, _conn: &Conn<LinesCodec>, reason: UnbindReason) {
        self.seen.borrow_mut().push(format!("unbind {reason}"));
        em::stop();
    }
}

#[test]
fn em_client_verifies_and_talks_to_a_python_ssl_server() {
    let certs = Certs::new("pyserver");
    let script = r#"
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
with socket.create_server(("127.0.0.1", 0)) as srv:
    print(srv.getsockname()[1], flush=True)
    srv.settimeout(20)
    conn, _ = srv.accept()
    with ctx.wrap_socket(conn, server_side=True) as s:
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(100)
            if not chunk:
                break
            data += chunk
        s.sendall(b"python says " + data)
        s.unwrap()
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&certs.cert)
        .arg(&certs.key)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 must be installed");
    let mut port = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let port: u16 = port.trim().parse().expect("the server's port");
    let options = TlsOptions::new()
        .root_certs_file(&certs.ca)
        .server_name("localhost");
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    run_with_watchdog(move || -> em::Result<()> {
        em::connect(("127.0.0.1", port), Asker { options, seen: s })?;
        Ok(())
    })
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(
        *seen.borrow(),
        [
            "handshake Some(Tls13)",
            "python says hello from em",
            "unbind closed by the peer"
        ]
    );
}

/// Accepts any peer certificate (the test checks the key formats, not
/// trust) and records the handshake.
struct AnyPeer {
    seen: Rc<RefCell<Vec<String>>>,
}

impl Connection for AnyPeer {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        conn.start_tls(&TlsOptions::new().verify_peer(true))
            .expect("start_tls");
        conn.send_data("key formats");
    }
    fn ssl_verify_peer(&mut self, _conn: &Conn<LinesCodec>, _cert: &[u8]) -> bool {
        true
    }
    fn receive_data(&mut self, _conn: &Conn<LinesCodec>, line: String) {
        self.seen.borrow_mut().push(line);
    }
    fn unbind(&mut self, _conn: &Conn<LinesCodec>, reason: UnbindReason) {
        self.seen.borrow_mut().push(format!("unbind {reason}"));
        em::stop();
    }
}

/// Runs `openssl` with `args` in `dir`, checking it succeeds.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (Debian package openssl) must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn server_keys_in_pkcs8_rsa_and_ec_pem_made_by_openssl() {
    let certs = Certs::new("keys");
    let dir = certs.dir.clone();
    // An RSA key (PKCS#8, then the traditional "RSA PRIVATE KEY" form) and
    // an EC key in SEC1 form ("EC PRIVATE KEY"), each with a self-signed
    // certificate.
    openssl(&dir, &["genrsa", "-out", "rsa-any.pem", "2048"]);
    openssl(
        &dir,
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "rsa-any.pem",
            "-out",
            "rsa-pkcs8.pem",
        ],
    );
    openssl(
        &dir,
        &[
            "rsa",
            "-in",
            "rsa-any.pem",
            "-traditional",
            "-out",
            "rsa-trad.pem",
        ],
    );
    openssl(
        &dir,
        &[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-noout",
            "-out",
            "ec.pem",
        ],
    );
    for (key, header) in [
        ("rsa-pkcs8.pem", "-----BEGIN PRIVATE KEY-----"),
        ("rsa-trad.pem", "-----BEGIN RSA PRIVATE KEY-----"),
        ("ec.pem", "-----BEGIN EC PRIVATE KEY-----"),
    ] {
        let cert = format!("{key}.crt");
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                key,
                "-out",
                &cert,
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
            ],
        );
        let first_line = std::fs::read_to_string(dir.join(key)).unwrap();
        assert!(first_line.starts_with(header), "{key}: {first_line}");
        let options = TlsOptions::new()
            .cert_chain_file(dir.join(&cert))
            .private_key_file(dir.join(key));
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        run_with_watchdog(move || -> em::Result<()> {
            let server = em::start_server("127.0.0.1:0", move || EchoOnce {
                options: options.clone(),
            })?;
            em::connect(server.local_addr(), AnyPeer { seen: s })?;
            Ok(())
        })
        .unwrap();
        assert_eq!(
            *seen.borrow(),
            ["em says key formats", "unbind closed by the peer"],
            "{key}: {}",
            first_line.lines().next().unwrap_or("")
        );
    }
}
