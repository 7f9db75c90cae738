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
        let what = match &reason {
            UnbindReason::Tls(e) => format!("unbind tls {:?}", e.kind()),
            other => format!("unbind {other}"),
        };
        self.events.borrow_mut().push(what);
        em::stop();
    }
}

fn exchange(server: TlsOptions, client: TlsOptions) -> Vec<String> {
    let events: Events = Rc::default();
    let ev = events.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let s = em::start_server("127.0.0.1:0", move || TlsEcho {
            options: server.clone(),
        })?;
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
