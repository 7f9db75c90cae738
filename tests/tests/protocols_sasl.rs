//! SASL (saslauthd's protocol): the `Sasl` authenticator served on
//! loopback, asked by em's `SaslClient` and by std clients writing the wire
//! bytes by hand; `SaslClient` against a std server reading them by hand;
//! malformed requests end only their own connection.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::sync::mpsc;

use em::{Conn, Connection, UnbindReason};
use em_protocols::{Sasl, SaslClient, SaslError, SaslRequest, SaslServerCodec};

use support::*;

/// Alice's password is `secret` (or `pässwörd` for the `mail` service),
/// for any realm; nobody else gets in. Logs every check.
fn authenticator(log: Log) -> Sasl {
    Sasl::from_fn(move |login, password, service, realm| {
        log.push(format!("validate {login} {password} {service} {realm:?}"));
        login == "alice"
            && match service {
                "imap" => password == "secret",
                "mail" => password == "pässwörd",
                _ => false,
            }
    })
}

/// A request's wire bytes, written by hand: each field a 2-byte big-endian
/// length and its bytes.
fn request(fields: [&str; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        out.extend_from_slice(&(f.len() as u16).to_be_bytes());
        out.extend_from_slice(f.as_bytes());
    }
    out
}

const OK: &[u8] = b"\x00\x02OK";
const NO: &[u8] = b"\x00\x02NO";

fn read_exactly(s: &mut impl Read, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).expect("the reply");
    buf
}

/// em's client asks the authenticator several questions at once
/// (pipelined): each deferred gets its own answer, in order, `true` for
/// OK and `false` for NO; the validator saw each request's four fields.
#[test]
fn sasl_client_gets_ok_and_no_pipelined() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server_log = l.clone();
        let server = em::start_server("127.0.0.1:0", move || authenticator(server_log.clone()))?;
        let client = SaslClient::connect(server.local_addr())?;
        let questions = [
            ("alice", "secret", "imap", ""),
            ("alice", "wrong", "imap", ""),
            ("bob", "secret", "imap", "example.org"),
            ("alice", "pässwörd", "mail", "example.org"),
            ("alice", "secret", "ftp", ""),
        ];
        let n = questions.len();
        for (i, (login, password, service, realm)) in questions.into_iter().enumerate() {
            let l = l.clone();
            let c = client.clone();
            client
                .validate(login, password, service, realm)
                .callback(move |&ok| {
                    l.push(format!("answer {i} {ok}"));
                    if i == n - 1 {
                        c.close();
                        em::stop();
                    }
                })
                .errback(|e| panic!("no answer: {e}"));
        }
        Ok(())
    })
    .expect("run");
    let events = log.events();
    let answers: Vec<_> = events.iter().filter(|e| e.starts_with("answer")).collect();
    assert_eq!(
        answers,
        [
            "answer 0 true",
            "answer 1 false",
            "answer 2 false",
            "answer 3 true",
            "answer 4 false"
        ]
    );
    let checks: Vec<_> = events
        .iter()
        .filter(|e| e.starts_with("validate"))
        .collect();
    assert_eq!(
        checks,
        [
            "validate alice secret imap \"\"",
            "validate alice wrong imap \"\"",
            "validate bob secret imap \"example.org\"",
            "validate alice pässwörd mail \"example.org\"",
            "validate alice secret ftp \"\"",
        ]
    );
}

/// `validate_once` connects, asks, and closes: OK and NO, and a failed
/// connect fails the deferred with `SaslError::Closed`, saying why.
#[test]
fn validate_once_and_a_refused_connect() {
    let log = Log::default();
    let l = log.clone();
    let (_guard, refusing) = refusing_addr();
    run_with_watchdog(move || -> em::Result<()> {
        let server_log = Log::default();
        let server = em::start_server("127.0.0.1:0", move || authenticator(server_log.clone()))?;
        let addr = server.local_addr();
        let outcome = |l: &Log, name: &'static str| {
            let l = l.clone();
            move |r: &Result<bool, SaslError>| {
                l.push(match r {
                    Ok(ok) => format!("{name} {ok}"),
                    Err(SaslError::Closed(why)) => format!("{name} closed: {why}"),
                    Err(e) => format!("{name} error {e}"),
                });
                if l.events().len() == 3 {
                    em::stop();
                }
            }
        };
        SaslClient::validate_once(addr.clone(), "alice", "secret", "imap", "")
            .completion(outcome(&l, "good"));
        SaslClient::validate_once(addr, "alice", "nope", "imap", "").completion(outcome(&l, "bad"));
        SaslClient::validate_once(refusing, "alice", "secret", "imap", "")
            .completion(outcome(&l, "refused"));
        Ok(())
    })
    .expect("run");
    let mut events = log.events();
    events.sort();
    assert_eq!(&events[..2], ["bad false", "good true"]);
    assert!(
        events[2].starts_with("refused closed: connect failed"),
        "{events:?}"
    );
}

/// std clients write requests byte for byte and read the replies: the
/// authenticator's framing, checked without em's codec. A request fed one
/// byte at a time, and two requests in one write, are answered in order.
#[test]
fn raw_clients_get_ok_and_no() {
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server_log = Log::default();
        let server = em::start_server("127.0.0.1:0", move || authenticator(server_log.clone()))?;
        let addr = server.local_addr().inet().expect("a TCP server");
        spawn_peer(em::handle()?, done_tx, move || {
            let mut s = client(addr);
            s.write_all(&request(["alice", "secret", "imap", ""]))
                .unwrap();
            assert_eq!(read_exactly(&mut s, 4), OK);
            s.write_all(&request(["alice", "secret", "pop", ""]))
                .unwrap();
            assert_eq!(read_exactly(&mut s, 4), NO);
            for byte in request(["alice", "pässwörd", "mail", "realm"]) {
                s.write_all(&[byte]).unwrap();
                s.flush().unwrap();
            }
            assert_eq!(read_exactly(&mut s, 4), OK);
            let mut two = request(["eve", "secret", "imap", ""]);
            two.extend(request(["alice", "secret", "imap", ""]));
            s.write_all(&two).unwrap();
            assert_eq!(read_exactly(&mut s, 8), [NO, OK].concat());
            // An empty request (four empty fields) is a request too.
            s.write_all(&[0; 8]).unwrap();
            assert_eq!(read_exactly(&mut s, 4), NO);
        });
        Ok(())
    })
    .expect("run");
    join_peer(&done_rx);
}

/// em's `SaslClient` against a std server that reads its bytes by hand:
/// the request's framing, checked without em's codec; a real saslauthd's
/// `NO reason` reply is a no, `OK` a yes.
#[test]
fn sasl_client_against_a_hand_written_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        spawn_peer(em::handle()?, done_tx, move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
            let first = request(["alice", "wrong", "imap", "EXAMPLE"]);
            assert_eq!(read_exactly(&mut s, first.len()), first);
            s.write_all(b"\x00\x18NO authentication failed").unwrap();
            let second = request(["alice", "secret", "", ""]);
            assert_eq!(read_exactly(&mut s, second.len()), second);
            s.write_all(OK).unwrap();
            // The client closes once answered.
            read_until_closed(&mut s)
        });
        let client = SaslClient::connect(addr)?;
        let l1 = l.clone();
        client
            .validate("alice", "wrong", "imap", "EXAMPLE")
            .callback(move |&ok| l1.push(format!("first {ok}")));
        let c = client.clone();
        client
            .validate("alice", "secret", "", "")
            .callback(move |&ok| {
                l.push(format!("second {ok}"));
                c.close();
            });
        Ok(())
    })
    .expect("run");
    assert_eq!(join_peer(&done_rx), b"");
    assert_eq!(log.events(), ["first false", "second true"]);
}

/// A field over the client's own limit fails that deferred at once, typed;
/// the connection stays usable.
#[test]
fn sasl_client_refuses_an_overlong_field() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server_log = Log::default();
        let server = em::start_server("127.0.0.1:0", move || authenticator(server_log.clone()))?;
        let client = SaslClient::connect(server.local_addr())?;
        let long = "x".repeat(SaslServerCodec::DEFAULT_MAX_FIELD_LENGTH + 1);
        let l1 = l.clone();
        client
            .validate("alice", &long, "imap", "")
            .errback(move |e| {
                l1.push(format!("{e:?}"));
            });
        let c = client.clone();
        client
            .validate("alice", "secret", "imap", "")
            .callback(move |&ok| {
                l.push(format!("then {ok}"));
                c.close();
                em::stop();
            });
        Ok(())
    })
    .expect("run");
    assert_eq!(
        log.events(),
        ["FieldTooLong { len: 8193, max: 8192 }", "then true"]
    );
}

/// The authenticator, reporting how each connection ended.
struct Reporting {
    sasl: Sasl,
    ended: mpsc::Sender<String>,
}

impl Connection for Reporting {
    type Codec = SaslServerCodec;

    fn codec(&self) -> SaslServerCodec {
        self.sasl.codec()
    }

    fn receive_data(&mut self, conn: &Conn<SaslServerCodec>, req: SaslRequest) {
        self.sasl.receive_data(conn, req);
    }

    fn unbind(&mut self, _: &Conn<SaslServerCodec>, reason: UnbindReason) {
        let why = match &reason {
            UnbindReason::Codec(e) => match e.downcast_ref::<SaslError>() {
                Some(SaslError::FieldTooLong { len, max }) => format!("FieldTooLong {len} {max}"),
                Some(SaslError::Truncated) => "Truncated".into(),
                Some(SaslError::InvalidUtf8) => "InvalidUtf8".into(),
                _ => format!("Codec({e})"),
            },
            other => support::reason(other),
        };
        self.ended.send(why).ok();
    }
}

/// Malformed requests end only their own connection: a field longer than
/// the authenticator's limit (ended as soon as its length is read), a field
/// whose length runs past the end of the stream, a field that is not
/// UTF-8. A well-behaved client connected before them is answered before
/// and after.
#[test]
fn malformed_requests_end_only_their_connection() {
    let (done_tx, done_rx) = mpsc::channel();
    let (ended_tx, ended_rx) = mpsc::channel::<String>();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || Reporting {
            sasl: authenticator(Log::default()).with_max_field_length(16),
            ended: ended_tx.clone(),
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        spawn_peer(em::handle()?, done_tx, move || {
            let mut good = client(addr);
            good.write_all(&request(["alice", "secret", "imap", ""]))
                .unwrap();
            assert_eq!(read_exactly(&mut good, 4), OK);

            // Too long: 17 bytes announced, two sent; the server need not
            // wait for the rest.
            let mut too_long = client(addr);
            too_long.write_all(b"\x00\x05alice\x00\x11se").unwrap();
            assert_eq!(read_until_closed(&mut too_long), b"");
            let first = recv(&ended_rx);

            // Past the end: 16 bytes announced, 2 sent, then the end of the stream.
            let mut short = client(addr);
            short.write_all(b"\x00\x10ab").unwrap();
            short.shutdown(Shutdown::Write).unwrap();
            assert_eq!(read_until_closed(&mut short), b"");
            let second = recv(&ended_rx);

            // Not UTF-8.
            let mut binary = client(addr);
            binary
                .write_all(b"\x00\x01\xff\x00\x00\x00\x00\x00\x00")
                .unwrap();
            assert_eq!(read_until_closed(&mut binary), b"");
            let third = recv(&ended_rx);

            good.write_all(&request(["alice", "wrong", "imap", ""]))
                .unwrap();
            assert_eq!(read_exactly(&mut good, 4), NO);
            good.write_all(&request(["alice", "secret", "imap", ""]))
                .unwrap();
            assert_eq!(read_exactly(&mut good, 4), OK);
            vec![first, second, third]
        });
        Ok(())
    })
    .expect("run");
    assert_eq!(
        join_peer(&done_rx),
        ["FieldTooLong 17 16", "Truncated", "InvalidUtf8"]
    );
}

proptest::proptest! {
    /// Random bytes never panic either side's codec.
    #[test]
    fn random_input_never_panics_the_sasl_codecs(
        input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
    ) {
        use tokio_util::codec::Decoder;
        let mut buf = bytes::BytesMut::from(&input[..]);
        let mut server = SaslServerCodec::new();
        while let Ok(Some(_)) = server.decode(&mut buf) {}
        let _ = server.decode_eof(&mut buf);
        let mut buf = bytes::BytesMut::from(&input[..]);
        let mut client = em_protocols::SaslClientCodec::new();
        while let Ok(Some(_)) = client.decode(&mut buf) {}
        let _ = client.decode_eof(&mut buf);
    }

    /// A request the client encodes is the request the server decodes,
    /// wherever the bytes are cut.
    #[test]
    fn a_request_encodes_then_decodes_to_itself(
        fields in proptest::array::uniform4("\\PC{0,40}"),
        cut in 0usize..200,
    ) {
        use tokio_util::codec::{Decoder, Encoder};
        let [login, password, service, realm] = fields;
        let request = SaslRequest { login, password, service, realm };
        let mut wire = bytes::BytesMut::new();
        em_protocols::SaslClientCodec::new().encode(&request, &mut wire).unwrap();
        let cut = cut.min(wire.len());
        let mut server = SaslServerCodec::new();
        let mut buf = bytes::BytesMut::from(&wire[..cut]);
        let mut got = server.decode(&mut buf).unwrap();
        buf.extend_from_slice(&wire[cut..]);
        if got.is_none() {
            got = server.decode(&mut buf).unwrap();
        }
        proptest::prop_assert!(got == Some(request));
        proptest::prop_assert!(buf.is_empty());
    }
}
