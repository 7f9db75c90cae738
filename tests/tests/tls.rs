//! TLS on em's connections: real handshakes on loopback, with certificates
//! made at run time by rcgen.

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use em::prelude::*;
use em::{TlsErrorKind, TlsOptions, TlsVersion};
use support::run_with_watchdog;

/// A CA and a server certificate it signed, for `names`.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki(names: &[&str]) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "em test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn server_options(p: &Pki) -> TlsOptions {
    TlsOptions::new()
        .cert_chain_pem(p.cert_pem.clone())
        .private_key_pem(p.key_pem.clone())
}

/// An echo server that starts TLS in `post_init`.
struct TlsEcho {
    options: TlsOptions,
}

impl Connection for TlsEcho {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.start_tls(&self.options).expect("start_tls");
    }
    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        conn.send_data(data);
    }
}

type Events = Rc<RefCell<Vec<String>>>;

/// How an `unbind` reads in the tests' event lists: a TLS failure by its
/// kind, anything else by its `Display`.
fn ended(reason: &UnbindReason) -> String {
    match reason {
        UnbindReason::Tls(e) => format!("unbind tls {:?}", e.kind()),
        other => format!("unbind {other}"),
    }
}

/// A client that starts TLS in `post_init`, sends `hello`, and records
/// what happens.
struct Client {
    options: TlsOptions,
    events: Events,
}

impl Connection for Client {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.start_tls(&self.options).expect("start_tls");
        conn.send_data(Bytes::from_static(b"hello"));
    }
    fn ssl_handshake_completed(&mut self, conn: &Conn<BytesCodec>) {
        self.events.borrow_mut().push(format!(
            "handshake {:?} {}",
            conn.tls_protocol_version().unwrap(),
            conn.peer_cert().map_or(0, |c| c.len())
        ));
    }
    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        self.events
            .borrow_mut()
            .push(format!("data {}", String::from_utf8_lossy(&data)));
        conn.close_connection();
    }
    fn unbind(&mut self, _conn: &Conn<BytesCodec>, reason: UnbindReason) {
        self.events.borrow_mut().push(ended(&reason));
        em::stop();
    }
}

/// Runs a server of `server`'s handlers and one [`Client`] of it with
/// `client`'s options; what the client saw (the run ends at its unbind).
fn client_of<H: Connection>(
    server: impl FnMut() -> H + 'static,
    client: TlsOptions,
) -> Vec<String> {
    let events: Events = Rc::default();
    let ev = events.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let s = em::start_server("127.0.0.1:0", server)?;
        em::connect(
            s.local_addr(),
            Client {
                options: client,
                events: ev,
            },
        )?;
        Ok(())
    })
    .unwrap();
    let v = events.borrow().clone();
    v
}

/// [`client_of`] a TLS echo server with `server`'s options.
fn exchange(server: TlsOptions, client: TlsOptions) -> Vec<String> {
    client_of(
        move || TlsEcho {
            options: server.clone(),
        },
        client,
    )
}

#[test]
fn a_verified_handshake_then_echo_both_ways() {
    let p = pki(&["localhost"]);
    let events = exchange(
        server_options(&p),
        TlsOptions::new()
            .root_certs_pem(p.ca_pem.clone())
            .server_name("localhost"),
    );
    assert_eq!(
        events,
        ["handshake Tls13 1", "data hello", "unbind closed locally"]
    );
}

#[test]
fn tls12_only_works_and_is_reported() {
    let p = pki(&["localhost"]);
    let events = exchange(
        server_options(&p).max_version(TlsVersion::Tls12),
        TlsOptions::new()
            .root_certs_pem(p.ca_pem.clone())
            .server_name("localhost"),
    );
    assert_eq!(events[0], "handshake Tls12 1");
}

#[test]
fn an_untrusted_issuer_is_refused_by_default() {
    let p = pki(&["localhost"]);
    // Mozilla's roots do not include our test CA.
    let events = exchange(
        server_options(&p),
        TlsOptions::new().server_name("localhost"),
    );
    assert_eq!(events, ["unbind tls UnknownIssuer"]);
}

#[test]
fn a_wrong_host_name_is_refused() {
    let p = pki(&["localhost"]);
    let events = exchange(
        server_options(&p),
        TlsOptions::new()
            .root_certs_pem(p.ca_pem.clone())
            .server_name("example.com"),
    );
    assert_eq!(events, ["unbind tls WrongHostName"]);
}

#[test]
fn tls12_only_against_tls13_only_fails_cleanly() {
    let p = pki(&["localhost"]);
    let events = exchange(
        server_options(&p).min_version(TlsVersion::Tls13),
        TlsOptions::new()
            .root_certs_pem(p.ca_pem.clone())
            .server_name("localhost")
            .max_version(TlsVersion::Tls12),
    );
    assert_eq!(events, ["unbind tls ProtocolMismatch"]);
}

#[test]
fn a_server_without_a_certificate_is_a_typed_error() {
    run_with_watchdog(|| -> em::Result<()> {
        let (a, _b) = em::connect_pair(em::handler(|_c, _d| {})(), em::handler(|_c, _d| {})())?;
        let e = a.start_tls_server(&TlsOptions::new()).unwrap_err();
        assert!(e.is_tls_config(), "{e}");
        assert!(e.to_string().contains("needs a certificate"), "{e}");
        em::stop();
        Ok(())
    })
    .unwrap();
}

#[test]
fn the_error_kinds_read_as_words() {
    assert_eq!(
        TlsErrorKind::UnknownIssuer.to_string(),
        "the peer's certificate has an unknown issuer"
    );
}

// ---- Pinning with ssl_verify_peer (TLS3). ----

/// A client that accepts only the certificate whose DER is `pinned`.
struct Pinning {
    pinned: Vec<u8>,
    seen: Events,
}

impl Connection for Pinning {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.start_tls(&TlsOptions::new().verify_peer(true))
            .expect("start_tls");
        conn.send_data(Bytes::from_static(b"pinned"));
    }
    fn ssl_verify_peer(&mut self, _conn: &Conn<BytesCodec>, cert: &[u8]) -> bool {
        self.seen.borrow_mut().push("verify".into());
        cert == self.pinned.as_slice()
    }
    fn ssl_handshake_completed(&mut self, _conn: &Conn<BytesCodec>) {
        self.seen.borrow_mut().push("handshake".into());
    }
    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        self.seen
            .borrow_mut()
            .push(format!("data {}", String::from_utf8_lossy(&data)));
        conn.close_connection();
    }
    fn unbind(&mut self, _conn: &Conn<BytesCodec>, reason: UnbindReason) {
        self.seen.borrow_mut().push(ended(&reason));
        em::stop();
    }
}

/// A self-signed certificate (no CA): its PEM, its key's PEM, its DER.
fn self_signed() -> (String, String, Vec<u8>) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (
        c.cert.pem(),
        c.signing_key.serialize_pem(),
        c.cert.der().to_vec(),
    )
}

fn pin(server_cert: (String, String), pinned: Vec<u8>) -> Vec<String> {
    let seen: Events = Rc::default();
    let sn = seen.clone();
    let options = TlsOptions::new()
        .cert_chain_pem(server_cert.0)
        .private_key_pem(server_cert.1);
    run_with_watchdog(move || -> em::Result<()> {
        let s = em::start_server("127.0.0.1:0", move || TlsEcho {
            options: options.clone(),
        })?;
        em::connect(s.local_addr(), Pinning { pinned, seen: sn })?;
        Ok(())
    })
    .unwrap();
    let v = seen.borrow().clone();
    v
}

#[test]
fn a_pinned_self_signed_certificate_is_accepted_by_ssl_verify_peer() {
    let (cert, key, der) = self_signed();
    assert_eq!(
        pin((cert, key), der),
        [
            "verify",
            "handshake",
            "data pinned",
            "unbind closed locally"
        ]
    );
}

#[test]
fn another_certificate_is_refused_by_ssl_verify_peer_before_any_data() {
    let (cert, key, _) = self_signed();
    let (_, _, other) = self_signed();
    assert_eq!(
        pin((cert, key), other),
        ["verify", "unbind tls RefusedByCallback"]
    );
}

// ---- Client certificates. ----

/// A client certificate signed by `p`'s CA: chain PEM, key PEM.
fn client_cert(
    p: &Pki,
    ca_key: &rcgen::KeyPair,
    ca_params: rcgen::CertificateParams,
) -> (String, String) {
    let _ = p;
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["client.example".to_string()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A server that requires a client certificate from `ca_pem`, and records
/// how each connection went.
struct Requiring {
    options: TlsOptions,
    seen: Events,
}

impl Connection for Requiring {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.start_tls(&self.options).expect("start_tls");
    }
    fn ssl_handshake_completed(&mut self, conn: &Conn<BytesCodec>) {
        self.seen.borrow_mut().push(format!(
            "server handshake, client chain {}",
            conn.peer_cert().map_or(0, |c| c.len())
        ));
    }
    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        conn.send_data(data);
    }
    fn unbind(&mut self, _conn: &Conn<BytesCodec>, reason: UnbindReason) {
        self.seen
            .borrow_mut()
            .push(format!("server {}", ended(&reason)));
        em::stop();
    }
}

fn with_client_cert(send_cert: bool) -> (Vec<String>, Vec<String>) {
    // One CA signs the server's and the client's certificates.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &rcgen::Issuer::new(ca_params.clone(), &ca_key))
        .unwrap();
    let p = Pki {
        ca_pem: ca.pem(),
        cert_pem: server_cert.pem(),
        key_pem: server_key.serialize_pem(),
    };
    let (chain, key) = client_cert(&p, &ca_key, ca_params);
    let server = server_options(&p)
        .root_certs_pem(p.ca_pem.clone())
        .fail_if_no_peer_cert(true);
    let mut client = TlsOptions::new()
        .root_certs_pem(p.ca_pem.clone())
        .server_name("localhost");
    if send_cert {
        client = client.cert_chain_pem(chain).private_key_pem(key);
    }
    let server_seen: Events = Rc::default();
    let ss = server_seen.clone();
    let client_seen = client_of(
        move || Requiring {
            options: server.clone(),
            seen: ss.clone(),
        },
        client,
    );
    let r = (server_seen.borrow().clone(), client_seen);
    r
}

#[test]
fn a_required_client_certificate_is_checked_and_seen() {
    let (server, client) = with_client_cert(true);
    assert_eq!(server[0], "server handshake, client chain 1", "{server:?}");
    assert_eq!(client[1], "data hello", "{client:?}");
}

#[test]
fn a_missing_client_certificate_fails_the_handshake() {
    let (server, _client) = with_client_cert(false);
    assert_eq!(
        server.first().map(String::as_str),
        Some("server unbind tls NoPeerCertificate"),
        "{server:?}"
    );
}

// ---- ALPN and SNI. ----

/// A server that records the ALPN protocol and SNI name it saw.
struct Recording {
    options: TlsOptions,
    seen: Events,
}

impl Connection for Recording {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.start_tls(&self.options).expect("start_tls");
    }
    fn ssl_handshake_completed(&mut self, conn: &Conn<BytesCodec>) {
        self.seen.borrow_mut().push(format!(
            "alpn {:?} sni {:?} suite {}",
            conn.alpn_protocol().map(|p| String::from_utf8(p).unwrap()),
            conn.sni_hostname(),
            conn.tls_cipher_suite().is_some(),
        ));
    }
    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        conn.send_data(data);
    }
}

#[test]
fn alpn_is_agreed_and_the_sni_name_picks_the_certificate() {
    let main = pki(&["localhost"]);
    let other = pki(&["other.example"]);
    let server = server_options(&main)
        .sni_cert(
            "other.example",
            other.cert_pem.clone(),
            other.key_pem.clone(),
        )
        .alpn_protocols(["h2", "http/1.1"]);
    // The client trusts only the CA of the SNI certificate, so the
    // handshake succeeds only if the server picked it by name.
    let client = TlsOptions::new()
        .root_certs_pem(other.ca_pem.clone())
        .server_name("other.example")
        .alpn_protocols(["http/1.1"]);
    let server_seen: Events = Rc::default();
    let ss = server_seen.clone();
    let client_seen = client_of(
        move || Recording {
            options: server.clone(),
            seen: ss.clone(),
        },
        client,
    );
    assert_eq!(
        server_seen.borrow()[0],
        "alpn Some(\"http/1.1\") sni Some(\"other.example\") suite true"
    );
    assert_eq!(client_seen[1], "data hello");
}

// ---- STARTTLS, close_notify and bad peers, against a client driven by
// hand with rustls's blocking API. ----

/// A line server: echoes lines as `echo: LINE`; on `STARTTLS` answers `GO`
/// in plain text and starts TLS; closes after writing on `BYE`.
struct StartTls {
    options: TlsOptions,
    seen: Events,
    /// TLS from the first byte instead of on `STARTTLS`.
    from_start: bool,
}

impl Connection for StartTls {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        if self.from_start {
            conn.start_tls(&self.options).expect("start_tls");
        }
    }
    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        match line.as_str() {
            "STARTTLS" => {
                conn.send_data("GO");
                conn.start_tls(&self.options).expect("start_tls");
            }
            "BYE" => {
                conn.send_data("bye");
                conn.close_connection_after_writing();
            }
            _ => {
                conn.send_data(format!("echo: {line} tls={}", conn.is_tls()));
            }
        }
    }
    fn ssl_handshake_completed(&mut self, _conn: &Conn<LinesCodec>) {
        self.seen.borrow_mut().push("handshake".into());
    }
    fn unbind(&mut self, _conn: &Conn<LinesCodec>, reason: UnbindReason) {
        self.seen.borrow_mut().push(ended(&reason));
    }
}

/// Runs a reactor with `server` on a port; `client` runs on a thread with
/// the address, and the reactor stops when it returns.
fn with_server<H: Connection>(
    server: impl FnMut() -> H + 'static,
    client: impl FnOnce(std::net::SocketAddr) + Send + 'static,
) {
    let (tx, rx) = std::sync::mpsc::channel::<std::thread::Result<()>>();
    run_with_watchdog(move || -> em::Result<()> {
        let s = em::start_server("127.0.0.1:0", server)?;
        let addr = s.local_addr().inet().unwrap();
        let handle = em::handle()?;
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| client(addr)));
            tx.send(r).ok();
            handle.stop();
        });
        Ok(())
    })
    .unwrap();
    if let Err(panic) = rx.recv().unwrap() {
        std::panic::resume_unwind(panic);
    }
}

fn rustls_client(ca_pem: &str) -> rustls::ClientConnection {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    // ring, as em uses (see TlsOptions); rustls deprecates it only for its
    // lack of post-quantum key exchange.
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    rustls::ClientConnection::new(std::sync::Arc::new(config), "localhost".try_into().unwrap())
        .unwrap()
}

/// Reads one line from `r`, a byte at a time (so nothing past it is
/// consumed).
fn read_line(r: &mut impl std::io::Read) -> String {
    let mut line = Vec::new();
    let mut b = [0u8];
    loop {
        let n = r.read(&mut b).unwrap();
        assert_eq!(
            n,
            1,
            "end of stream after {:?}",
            String::from_utf8_lossy(&line)
        );
        if b[0] == b'\n' {
            return String::from_utf8(line).unwrap();
        }
        line.push(b[0]);
    }
}

#[test]
fn starttls_with_the_client_hello_pipelined_behind_the_command() {
    use std::io::Write;
    let p = pki(&["localhost"]);
    let seen: Events = Rc::default();
    let sn = seen.clone();
    let options = server_options(&p);
    let ca = p.ca_pem.clone();
    with_server(
        move || StartTls {
            options: options.clone(),
            seen: sn.clone(),
            from_start: false,
        },
        move |addr| {
            let mut tcp = std::net::TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            tcp.write_all(b"before\n").unwrap();
            assert_eq!(read_line(&mut tcp), "echo: before tls=false");
            // The command and the ClientHello in one write: the server reads
            // both at once and must hand the hello to the handshake.
            let mut tls = rustls_client(&ca);
            let mut out = b"STARTTLS\n".to_vec();
            tls.write_tls(&mut out).unwrap();
            tcp.write_all(&out).unwrap();
            // The answer queued before start_tls comes in plain text.
            assert_eq!(read_line(&mut tcp), "GO");
            let mut stream = rustls::StreamOwned::new(tls, tcp);
            stream.write_all(b"after\nBYE\n").unwrap();
            assert_eq!(read_line(&mut stream), "echo: after tls=true");
            assert_eq!(read_line(&mut stream), "bye");
            // close_connection_after_writing sent close_notify: a clean end,
            // not an UnexpectedEof.
            let mut rest = Vec::new();
            std::io::Read::read_to_end(&mut stream, &mut rest).expect("a clean close_notify");
            assert!(rest.is_empty());
        },
    );
    assert_eq!(*seen.borrow(), ["handshake", "unbind closed locally"]);
}

#[test]
fn garbage_instead_of_a_client_hello_ends_only_that_connection() {
    use std::io::{Read, Write};
    let p = pki(&["localhost"]);
    let seen: Events = Rc::default();
    let sn = seen.clone();
    let options = server_options(&p);
    let ca = p.ca_pem.clone();
    with_server(
        move || StartTls {
            options: options.clone(),
            seen: sn.clone(),
            from_start: true,
        },
        move |addr| {
            // A good client, connected first, stays in service.
            let mut good = rustls::StreamOwned::new(
                rustls_client(&ca),
                std::net::TcpStream::connect(addr).unwrap(),
            );
            good.sock
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            good.write_all(b"one\n").unwrap();
            assert_eq!(read_line(&mut good), "echo: one tls=true");
            let mut bad = std::net::TcpStream::connect(addr).unwrap();
            bad.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            bad.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let mut answer = Vec::new();
            // An alert, then the end; never a hang.
            let _ = bad.read_to_end(&mut answer);
            good.write_all(b"two\n").unwrap();
            assert_eq!(read_line(&mut good), "echo: two tls=true");
        },
    );
    let seen = seen.borrow();
    assert!(seen.contains(&"unbind tls NotTls".to_string()), "{seen:?}");
}

#[test]
fn an_expired_certificate_is_refused_by_default() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let cert = params
        .signed_by(&key, &rcgen::Issuer::new(ca_params, &ca_key))
        .unwrap();
    let events = exchange(
        TlsOptions::new()
            .cert_chain_pem(cert.pem())
            .private_key_pem(key.serialize_pem()),
        TlsOptions::new()
            .root_certs_pem(ca.pem())
            .server_name("localhost"),
    );
    assert_eq!(events, ["unbind tls Expired"]);
}

// ---- Many at once. ----

/// Raises this process's open-file limit to its hard limit (a fresh
/// machine's soft limit is often 1,024; the test needs ~2,000).
#[allow(unsafe_code)]
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// One of many clients: sends its own 1 KiB pattern, checks the echo byte
/// for byte, then waits for the others.
struct Many {
    options: TlsOptions,
    me: u32,
    got: Vec<u8>,
    done: Rc<std::cell::Cell<u32>>,
    total: u32,
}

impl Many {
    fn pattern(me: u32) -> Vec<u8> {
        (0..1024u32)
            .map(|i| (i.wrapping_mul(31) ^ me) as u8)
            .collect()
    }
}

impl Connection for Many {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.start_tls(&self.options).expect("start_tls");
        conn.send_data(Bytes::from(Self::pattern(self.me)));
    }
    fn receive_data(&mut self, _conn: &Conn<BytesCodec>, data: BytesMut) {
        self.got.extend_from_slice(&data);
        if self.got.len() == 1024 {
            assert_eq!(self.got, Self::pattern(self.me), "client {}", self.me);
            self.done.set(self.done.get() + 1);
            if self.done.get() == self.total {
                em::stop();
            }
        }
    }
    fn unbind(&mut self, _conn: &Conn<BytesCodec>, reason: UnbindReason) {
        assert!(
            matches!(reason, UnbindReason::ReactorStopped),
            "client {} ended early: {reason}",
            self.me
        );
    }
}

#[test]
fn a_thousand_concurrent_tls_echo_clients() {
    const CLIENTS: u32 = 1000;
    raise_fd_limit();
    let p = pki(&["localhost"]);
    let server = server_options(&p);
    let client = TlsOptions::new()
        .root_certs_pem(p.ca_pem.clone())
        .server_name("localhost");
    let done = Rc::new(std::cell::Cell::new(0));
    let d = done.clone();
    support::run_builder_with_watchdog_for(
        em::Reactor::builder().stop_on_panic(true),
        std::time::Duration::from_secs(120),
        move || -> em::Result<()> {
            let s = em::start_server("127.0.0.1:0", move || TlsEcho {
                options: server.clone(),
            })?;
            for me in 0..CLIENTS {
                em::connect(
                    s.local_addr(),
                    Many {
                        options: client.clone(),
                        me,
                        got: Vec::new(),
                        done: d.clone(),
                        total: CLIENTS,
                    },
                )?;
            }
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(done.get(), CLIENTS);
}

// ---- Options, misuse and panics. ----

#[test]
fn a_chosen_cipher_suite_is_used_and_an_unknown_one_is_a_typed_error() {
    let p = pki(&["localhost"]);
    let seen: Events = Rc::default();
    let ss = seen.clone();
    let server = server_options(&p).cipher_suites(["TLS13_CHACHA20_POLY1305_SHA256"]);
    let client = TlsOptions::new()
        .root_certs_pem(p.ca_pem.clone())
        .server_name("localhost");
    client_of(
        move || Recording {
            options: server.clone(),
            seen: ss.clone(),
        },
        client,
    );
    assert!(
        seen.borrow()[0].ends_with("suite true"),
        "{:?}",
        seen.borrow()
    );
    let e = TlsOptions::new()
        .cipher_suites(["TLS_NULL_WITH_NULL_NULL"])
        .check_client()
        .unwrap_err();
    assert!(e.is_tls_config(), "{e}");
    assert!(e.to_string().contains("unknown cipher suite"), "{e}");
}

/// The suite the client reports is the one the server was limited to.
#[test]
fn the_suite_reported_is_the_one_configured() {
    let p = pki(&["localhost"]);
    let got: Rc<RefCell<Option<&'static str>>> = Rc::default();
    let g = got.clone();
    let server = server_options(&p).cipher_suites(["TLS13_CHACHA20_POLY1305_SHA256"]);
    let client = TlsOptions::new()
        .root_certs_pem(p.ca_pem.clone())
        .server_name("localhost");
    run_with_watchdog(move || -> em::Result<()> {
        let s = em::start_server("127.0.0.1:0", move || TlsEcho {
            options: server.clone(),
        })?;
        let mut on_reply = em::handler(move |conn: &Conn, _data| {
            *g.borrow_mut() = conn.tls_cipher_suite();
            em::stop();
        });
        let c = em::connect(s.local_addr(), on_reply())?;
        c.start_tls(&client)?;
        c.send_data(Bytes::from_static(b"x"));
        Ok(())
    })
    .unwrap();
    assert_eq!(*got.borrow(), Some("TLS13_CHACHA20_POLY1305_SHA256"));
}

#[test]
fn tls_runs_on_an_in_memory_pair_and_twice_is_an_error() {
    let p = pki(&["localhost"]);
    let server = server_options(&p);
    let client = TlsOptions::new()
        .root_certs_pem(p.ca_pem.clone())
        .server_name("localhost");
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let echo = em::handler(|conn: &Conn, data| conn.send_data(data))();
        let mut on_reply = em::handler(move |conn: &Conn, data| {
            g.borrow_mut()
                .push((data.to_vec(), conn.tls_protocol_version()));
            em::stop();
        });
        let (a, b) = em::connect_pair(echo, on_reply())?;
        a.start_tls_server(&server)?;
        b.start_tls(&client)?;
        let again = b.start_tls(&client).unwrap_err();
        assert!(again.is_already_started(), "{again}");
        assert!(b.is_tls());
        b.send_data(Bytes::from_static(b"in memory"));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        *got.borrow(),
        [(b"in memory".to_vec(), Some(TlsVersion::Tls13))]
    );
}

/// A server whose `ssl_handshake_completed` panics.
struct Panicking {
    options: TlsOptions,
    seen: Events,
}

impl Connection for Panicking {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.start_tls(&self.options).expect("start_tls");
    }
    fn ssl_handshake_completed(&mut self, _conn: &Conn<BytesCodec>) {
        panic!("boom in ssl_handshake_completed");
    }
    fn receive_data(&mut self, _conn: &Conn<BytesCodec>, _data: BytesMut) {}
    fn unbind(&mut self, _conn: &Conn<BytesCodec>, reason: UnbindReason) {
        self.seen
            .borrow_mut()
            .push(format!("server unbind {reason}"));
        if self.seen.borrow().len() == 2 {
            em::stop();
        }
    }
}

#[test]
fn a_panic_in_ssl_handshake_completed_ends_only_that_connection() {
    let p = pki(&["localhost"]);
    // Both the panicking server's unbind and the other client's echo land
    // here; the second of them stops the reactor.
    let seen: Events = Rc::default();
    let (ss, cs) = (seen.clone(), seen.clone());
    let bad = server_options(&p);
    let good = server_options(&p);
    let client = TlsOptions::new()
        .root_certs_pem(p.ca_pem.clone())
        .server_name("localhost");
    run_with_watchdog(move || -> em::Result<()> {
        em::set_error_handler(|_report| {});
        let panicking = em::start_server("127.0.0.1:0", move || Panicking {
            options: bad.clone(),
            seen: ss.clone(),
        })?;
        let fine = em::start_server("127.0.0.1:0", move || TlsEcho {
            options: good.clone(),
        })?;
        let quiet = em::handler(|_conn: &Conn, _data| {})();
        em::connect(panicking.local_addr(), quiet)?.start_tls(&client)?;
        let on_echo = em::handler(move |_conn: &Conn, data| {
            cs.borrow_mut()
                .push(format!("echo {}", String::from_utf8_lossy(&data)));
            if cs.borrow().len() == 2 {
                em::stop();
            }
        })();
        let c = em::connect(fine.local_addr(), on_echo)?;
        c.start_tls(&client)?;
        c.send_data(Bytes::from_static(b"still served"));
        Ok(())
    })
    .unwrap();
    let seen = seen.borrow();
    assert!(seen.contains(&"echo still served".to_string()), "{seen:?}");
    assert!(
        seen.iter().any(
            |e| e.starts_with("server unbind") && e.contains("boom in ssl_handshake_completed")
        ),
        "{seen:?}"
    );
}
