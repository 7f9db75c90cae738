//! STOMP: the codec against hand-written wire bytes (every split point,
//! coalesced frames, heart-beats, limits, the end of the stream,
//! encode-then-decode), and the `Stomp` client against a small STOMP server
//! written here on em over loopback TCP.

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use em::{Conn, Connection, UnbindReason};
use em_protocols::{
    AckMode, Stomp, StompCodec, StompCodecError, StompConnection, StompFrame, StompHandler,
    StompVersion,
};
use tokio_util::codec::{Decoder, Encoder};

use proptest::strategy::Strategy;
use support::*;

fn frame(command: &str, headers: &[(&str, &str)], body: &[u8]) -> StompFrame {
    headers
        .iter()
        .fold(StompFrame::new(command), |f, &(n, v)| f.with_header(n, v))
        .with_body(Bytes::copy_from_slice(body))
}

/// Hand-written wire bytes and the frames they hold.
fn samples() -> Vec<(&'static [u8], Vec<StompFrame>)> {
    vec![
        // No content-length: the body runs to the NUL.
        (
            b"SEND\ndestination:/queue/a\n\nhello\0",
            vec![frame("SEND", &[("destination", "/queue/a")], b"hello")],
        ),
        // CR LF lines, and NULs inside a content-length body.
        (
            b"MESSAGE\r\nsubscription:sub-0\r\nmessage-id:7\r\ncontent-length:5\r\n\r\na\0b\0c\0",
            vec![frame(
                "MESSAGE",
                &[
                    ("subscription", "sub-0"),
                    ("message-id", "7"),
                    ("content-length", "5"),
                ],
                b"a\0b\0c",
            )],
        ),
        // STOMP 1.2 escapes in names and values.
        (
            b"MESSAGE\ndestination:/q\\cx\nnote:line\\none\\\\two\\rend\nna\\cme:v\n\n\0",
            vec![frame(
                "MESSAGE",
                &[
                    ("destination", "/q:x"),
                    ("note", "line\none\\two\rend"),
                    ("na:me", "v"),
                ],
                b"",
            )],
        ),
        // Heart-beats before and after a frame.
        (
            b"\n\r\n\nRECEIPT\nreceipt-id:r-1\n\n\0\n\r\n",
            vec![frame("RECEIPT", &[("receipt-id", "r-1")], b"")],
        ),
        // EventMachine writes `content-length: N` (the value keeps its
        // space, the length is read); 1.0 brokers put colons in values.
        (
            b"MESSAGE\ncontent-length: 3\nmessage-id:ID:host-1:2\n\nab\0\0",
            vec![frame(
                "MESSAGE",
                &[("content-length", " 3"), ("message-id", "ID:host-1:2")],
                b"ab\0",
            )],
        ),
    ]
}

/// Decodes `chunks` fed one after another, as reads arrive, then ends the
/// stream (`decode_eof`).
fn decode_chunks(
    codec: &mut StompCodec,
    chunks: &[&[u8]],
) -> Result<Vec<StompFrame>, StompCodecError> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(f) = codec.decode(&mut buf)? {
            out.push(f);
        }
    }
    while let Some(f) = codec.decode_eof(&mut buf)? {
        out.push(f);
    }
    Ok(out)
}

fn decode(wire: &[u8]) -> Result<Vec<StompFrame>, StompCodecError> {
    decode_chunks(&mut StompCodec::new(), &[wire])
}

/// Every way of cutting `wire` in two, and byte by byte, decodes to
/// `expected`.
fn assert_every_split(wire: &[u8], expected: &[StompFrame]) {
    for split in 0..=wire.len() {
        let (a, b) = wire.split_at(split);
        let got = decode_chunks(&mut StompCodec::new(), &[a, b]).unwrap();
        assert_eq!(
            got,
            expected,
            "split at {split} of {:?}",
            Bytes::copy_from_slice(wire)
        );
    }
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(
        decode_chunks(&mut StompCodec::new(), &bytes).unwrap(),
        expected,
        "byte by byte"
    );
}

#[test]
fn every_split_point_of_each_frame_decodes_the_same() {
    for (wire, expected) in samples() {
        assert_every_split(wire, &expected);
    }
}

#[test]
fn coalesced_frames_decode_in_order_at_every_split_point() {
    let (wire, expected): (Vec<&[u8]>, Vec<Vec<StompFrame>>) = samples().into_iter().unzip();
    let wire = wire.concat();
    let expected = expected.concat();
    assert_eq!(decode(&wire).unwrap(), expected);
    assert_every_split(&wire, &expected);
}

/// End-of-lines alone are heart-beats: nothing is delivered, and the end of
/// the stream after them (even after a lone CR) is clean.
#[test]
fn heartbeats_alone_deliver_nothing() {
    assert_eq!(decode(b"\n\n\r\n\n").unwrap(), vec![]);
    assert_eq!(decode(b"\n\r").unwrap(), vec![]);
    let mut codec = StompCodec::new();
    let mut buf = BytesMut::from(&b"\n\r"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"\nACK\nid:1\n\n\0");
    assert_eq!(
        codec.decode(&mut buf).unwrap(),
        Some(frame("ACK", &[("id", "1")], b""))
    );
}

/// The stream ending inside a frame is `Truncated`, wherever inside.
#[test]
fn decode_eof_with_a_partial_frame_is_an_error() {
    for partial in [
        &b"SEND"[..],
        b"SEND\ndestination:/q",
        b"SEND\ndestination:/q\n",
        b"SEND\n\nbody without its NUL",
        b"SEND\ncontent-length:5\n\nab",
        b"SEND\ncontent-length:2\n\nab",
        b"\nSEND\n\n",
    ] {
        let got = decode(partial);
        assert!(
            matches!(got, Err(StompCodecError::Truncated)),
            "{partial:?}: {got:?}"
        );
    }
}

fn limited(max_frame: usize, max_headers: usize) -> StompCodec {
    let mut codec = StompCodec::new();
    codec.set_max_frame_length(max_frame);
    codec.set_max_headers(max_headers);
    codec
}

fn too_long(got: Result<Vec<StompFrame>, StompCodecError>, max: usize) {
    match got {
        Err(StompCodecError::FrameTooLong { max: m }) => assert_eq!(m, max),
        other => panic!("expected FrameTooLong {{ max: {max} }}, got {other:?}"),
    }
}

/// A frame of exactly `max_frame_length` bytes (command line to NUL) passes,
/// one byte more fails; with and without content-length. A frame that is
/// certain to be too long fails at once, before the rest of it arrives.
#[test]
fn the_frame_length_limit_is_exact_and_early() {
    let plain: &[u8] = b"SEND\n\nabc\0";
    assert_eq!(
        decode_chunks(&mut limited(plain.len(), 8), &[plain])
            .unwrap()
            .len(),
        1
    );
    too_long(
        decode_chunks(&mut limited(plain.len() - 1, 8), &[plain]),
        plain.len() - 1,
    );

    let sized: &[u8] = b"SEND\ncontent-length:3\n\na\0c\0";
    assert_eq!(
        decode_chunks(&mut limited(sized.len(), 8), &[sized])
            .unwrap()
            .len(),
        1
    );
    // The announced length alone says it: no body byte has arrived.
    let mut codec = limited(sized.len() - 1, 8);
    let mut buf = BytesMut::from(&b"SEND\ncontent-length:3\n\n"[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(StompCodecError::FrameTooLong { .. })
    ));

    // Headers that never end, and a body that never ends.
    let mut codec = limited(64, 8);
    let mut buf = BytesMut::from(&b"SEND\nx:"[..]);
    buf.extend_from_slice(&[b'y'; 57]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(StompCodecError::FrameTooLong { max: 64 })
    ));
    let mut codec = limited(64, 8);
    let mut buf = BytesMut::from(&b"SEND\n\n"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(&[b'z'; 58]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(StompCodecError::FrameTooLong { max: 64 })
    ));

    // The encoder keeps the same limit.
    let mut out = BytesMut::new();
    assert!(limited(plain.len(), 8)
        .encode(frame("SEND", &[], b"abc"), &mut out)
        .is_err());
    let mut out = BytesMut::new();
    assert!(limited(sized.len(), 8)
        .encode(frame("SEND", &[], b"a\0c"), &mut out)
        .is_ok());
    assert_eq!(&out[..], sized);
}

/// `max_headers` headers pass; one more fails as soon as its line is read,
/// before the blank line.
#[test]
fn the_header_count_limit() {
    assert_eq!(
        decode_chunks(&mut limited(1024, 2), &[b"SEND\na:1\nb:2\n\n\0"]).unwrap(),
        vec![frame("SEND", &[("a", "1"), ("b", "2")], b"")]
    );
    let mut codec = limited(1024, 2);
    let mut buf = BytesMut::from(&b"SEND\na:1\nb:2\nc:3\n"[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(StompCodecError::TooManyHeaders { max: 2 })
    ));
    let mut out = BytesMut::new();
    let three = frame("SEND", &[("a", "1"), ("b", "2"), ("c", "3")], b"");
    assert!(matches!(
        limited(1024, 2).encode(three, &mut out),
        Err(StompCodecError::TooManyHeaders { max: 2 })
    ));
}

#[test]
fn malformed_frames_are_errors() {
    for bad in [
        &b"SEND\nno colon here\n\n\0"[..],
        b"SEND\nx:a\\tb\n\n\0",
        b"SEND\nx:trailing\\\n\n\0",
        b"SEND\ncontent-length:five\n\n\0",
        b"SEND\ncontent-length:1\n\nab\0",
        b"SE ND\n\n\0",
        b"SEND\nx:\xff\n\n\0",
    ] {
        let got = decode(bad);
        assert!(
            matches!(got, Err(StompCodecError::Malformed(_))),
            "{bad:?}: {got:?}"
        );
    }
}

/// The encoder's bytes, checked by hand: escaping per frame and version,
/// the content-length it adds, and what it refuses.
#[test]
fn encoding_by_hand() {
    let encode = |codec: &mut StompCodec, f: StompFrame| {
        let mut out = BytesMut::new();
        codec.encode(f, &mut out).map(|()| out.freeze())
    };
    let mut codec = StompCodec::new();
    assert_eq!(
        encode(&mut codec, frame("SEND", &[("a:b", "c\\d\r\ne")], b"x")).unwrap(),
        &b"SEND\na\\cb:c\\\\d\\r\\ne\ncontent-length:1\n\nx\0"[..]
    );
    // CONNECT travels unescaped, for 1.0 servers.
    assert_eq!(
        encode(&mut codec, frame("CONNECT", &[("passcode", "a:b\\c")], b"")).unwrap(),
        &b"CONNECT\npasscode:a:b\\c\n\n\0"[..]
    );
    assert!(encode(&mut codec, frame("CONNECT", &[("login", "a\nb")], b"")).is_err());
    assert!(encode(&mut codec, frame("SEND", &[("content-length", "2")], b"x")).is_err());
    assert!(encode(&mut codec, frame("SE\nND", &[], b"")).is_err());
    assert!(encode(&mut codec, frame("", &[], b"")).is_err());
    codec.set_version(StompVersion::V1_1);
    assert!(encode(&mut codec, frame("SEND", &[("x", "a\rb")], b"")).is_err());
    codec.set_version(StompVersion::V1_0);
    assert_eq!(
        encode(&mut codec, frame("SEND", &[("x", "a:b\\c")], b"")).unwrap(),
        &b"SEND\nx:a:b\\c\n\n\0"[..]
    );
    assert!(encode(&mut codec, frame("SEND", &[("x:y", "z")], b"")).is_err());
}

/// A small deterministic generator (xorshift), so that the identity test
/// covers many frames without a dependency and fails the same way twice.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn text(&mut self, alphabet: &[char], min: usize, max: usize) -> String {
        let len = min + self.below(max - min + 1);
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
}

/// Encode then decode is the identity, for thousands of random frames with
/// awkward header text and bodies with NULs, in each version; the
/// content-length the encoder adds to a non-empty body comes back as the
/// last header. Decoded byte by byte too.
#[test]
fn encode_then_decode_is_the_identity() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let commands = [
        "SEND",
        "MESSAGE",
        "SUBSCRIBE",
        "ACK",
        "ERROR",
        "RECEIPT",
        "CONNECT",
        "CONNECTED",
    ];
    for round in 0..3000 {
        let version = [StompVersion::V1_0, StompVersion::V1_1, StompVersion::V1_2][round % 3];
        let command = commands[rng.below(commands.len())];
        let escaped = version != StompVersion::V1_0 && !command.starts_with("CONNECT");
        let names: &[char] = if escaped {
            &['a', 'b', '-', ':', '\\', '\n', 'é', '0']
        } else {
            &['a', 'b', '-', '\\', 'é', '0']
        };
        let values: &[char] = match (escaped, version) {
            (false, _) => &['a', ' ', ':', '\\', 'é', '€', '0'],
            (true, StompVersion::V1_1) => &['a', ' ', ':', '\\', '\n', 'é', '0'],
            (true, _) => &['a', ' ', ':', '\\', '\n', '\r', 'é', '0'],
        };
        let mut f = StompFrame::new(command);
        for _ in 0..rng.below(6) {
            f = f.with_header(rng.text(names, 1, 8), rng.text(values, 0, 10));
        }
        let body: Vec<u8> = (0..rng.below(40))
            .map(|_| [0u8, b'a', b'\n', 0xff][rng.below(4)])
            .collect();
        let explicit = rng.below(2) == 0;
        if explicit {
            f = f.with_header("content-length", body.len().to_string());
        }
        f = f.with_body(body.clone());

        let mut codec = StompCodec::new();
        codec.set_version(version);
        let mut wire = BytesMut::new();
        codec.encode(&f, &mut wire).unwrap();
        let mut expected = f.clone();
        if !explicit && !body.is_empty() {
            expected = expected.with_header("content-length", body.len().to_string());
        }
        let chunks: Vec<&[u8]> = wire.chunks(1 + rng.below(7)).collect();
        let got = decode_chunks(&mut codec, &chunks).unwrap();
        assert_eq!(
            got,
            vec![expected],
            "round {round}, {version}, wire {wire:?}"
        );
    }
}

/// The codec works under tokio's `Framed` too, outside em: frames sent one
/// way through a small in-memory pipe arrive whole, in order.
#[test]
fn works_with_tokio_framed() {
    use futures::{SinkExt, StreamExt};
    use tokio_util::codec::Framed;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let (a, b) = tokio::io::duplex(16);
        let mut tx = Framed::new(a, StompCodec::new());
        let mut rx = Framed::new(b, StompCodec::new());
        let frames: Vec<StompFrame> = samples().into_iter().flat_map(|(_, f)| f).collect();
        let sent = frames.clone();
        let writer = async move {
            for f in sent {
                tx.send(f).await.unwrap();
            }
        };
        let reader = async {
            let mut got = Vec::new();
            while got.len() < frames.len() {
                got.push(rx.next().await.expect("a frame").unwrap());
            }
            got
        };
        let ((), got) = tokio::time::timeout(EVENT_TIMEOUT, async { tokio::join!(writer, reader) })
            .await
            .expect("bounded");
        // The first sample's body had no content-length: the encoder added it.
        let mut expected = frames.clone();
        expected[0] = expected[0].clone().with_header("content-length", "5");
        assert_eq!(got, expected);
    });
}

// ---------------------------------------------------------------------------
// The client against a small STOMP server.

type Seen = Rc<RefCell<Vec<StompFrame>>>;

/// Ends the run once both sides' `unbind` ran.
fn unbound(log: &Log, event: String) {
    log.push(event);
    if log.events().iter().filter(|e| e.contains("unbind")).count() == 2 {
        em::stop();
    }
}

fn why(reason: &UnbindReason) -> String {
    match reason {
        UnbindReason::Codec(e) => match e.downcast_ref::<StompCodecError>() {
            Some(StompCodecError::FrameTooLong { max }) => format!("Codec(FrameTooLong {max})"),
            _ => format!("Codec({e})"),
        },
        other => support::reason(other),
    }
}

/// A broker with one message: records every frame it receives; answers
/// `CONNECT` with `CONNECTED` (naming `version`, or none for 1.0) or, for
/// a wrong passcode, `ERROR` and a close; `SUBSCRIBE` with one `MESSAGE`
/// (a Windows path in a header, NULs in the body); `DISCONNECT` with its
/// `RECEIPT`.
struct Broker {
    version: Option<&'static str>,
    body: Bytes,
    seen: Seen,
    log: Log,
}

impl Connection for Broker {
    type Codec = StompCodec;

    fn codec(&self) -> StompCodec {
        StompCodec::new()
    }

    fn receive_data(&mut self, conn: &Conn<StompCodec>, f: StompFrame) {
        self.seen.borrow_mut().push(f.clone());
        match f.command.as_str() {
            "CONNECT" if f.header("passcode") != Some("secret") => {
                conn.send_data(frame("ERROR", &[("message", "bad login")], b"who are you?"));
                conn.close_connection_after_writing();
            }
            "CONNECT" => {
                let mut connected = frame("CONNECTED", &[("server", "test/1")], b"");
                if let Some(v) = self.version {
                    connected = connected.with_header("version", v);
                }
                let version = self
                    .version
                    .map_or(StompVersion::V1_0, |v| StompVersion::parse(v).unwrap());
                conn.send_data(connected);
                conn.with_codec(|c| c.set_version(version)).unwrap();
            }
            "SUBSCRIBE" => {
                let message = frame(
                    "MESSAGE",
                    &[
                        ("subscription", f.header("id").unwrap_or("none")),
                        ("message-id", "m:1"),
                        ("destination", f.header("destination").unwrap_or("none")),
                        ("ack", "a-1"),
                        ("x-path", "C:\\dir"),
                    ],
                    &self.body,
                );
                conn.send_data(message);
            }
            "DISCONNECT" => {
                let receipt = f.header("receipt").unwrap_or("none");
                conn.send_data(frame("RECEIPT", &[("receipt-id", receipt)], b""));
            }
            _ => {}
        }
    }

    fn unbind(&mut self, _: &Conn<StompCodec>, reason: UnbindReason) {
        unbound(&self.log, format!("server unbind {}", why(&reason)));
    }
}

/// The EventMachine example's client: CONNECT once connected; SUBSCRIBE once
/// CONNECTED; on the MESSAGE, ACK it, SEND one with a header `tag`, and
/// DISCONNECT. Logs what it gets.
struct Client {
    passcode: &'static str,
    tag: &'static str,
    log: Log,
}

impl StompHandler for Client {
    fn post_init(&mut self, _: &Stomp) {
        self.log.push("client post_init");
    }

    fn connection_completed(&mut self, stomp: &Stomp) {
        self.log.push("client connection_completed");
        stomp.connect("guest", self.passcode, "/");
    }

    fn receive_msg(&mut self, stomp: &Stomp, msg: StompFrame) {
        let body = String::from_utf8_lossy(&msg.body).into_owned();
        match msg.command.as_str() {
            "CONNECTED" => {
                let version = stomp.version().map(|v| v.to_string());
                let id = stomp.subscribe("/queue/a", AckMode::ClientIndividual);
                self.log
                    .push(format!("client CONNECTED {version:?}, subscribed {id}"));
            }
            "MESSAGE" => {
                self.log.push(format!(
                    "client MESSAGE sub={:?} path={:?} body={body:?}",
                    msg.header("subscription"),
                    msg.header("x-path"),
                ));
                stomp.ack(&msg);
                stomp.send("/queue/b", &b"one\0two"[..], &[("x-tag", self.tag)]);
                let receipt = stomp.disconnect();
                self.log.push(format!("client DISCONNECT {receipt}"));
            }
            other => {
                let headers: Vec<String> = msg
                    .headers
                    .iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect();
                self.log
                    .push(format!("client {other} {headers:?} body={body:?}"));
            }
        }
    }

    fn unbind(&mut self, _: &Stomp, reason: UnbindReason) {
        unbound(&self.log, format!("client unbind {}", why(&reason)));
    }
}

/// Runs one conversation between `Client` and `Broker`; what the broker
/// received and the log.
fn conversation(
    version: Option<&'static str>,
    passcode: &'static str,
    tag: &'static str,
    client_codec: StompCodec,
    body: &'static [u8],
) -> (Vec<StompFrame>, Vec<String>) {
    let seen = Seen::default();
    let log = Log::default();
    let (s, l) = (seen.clone(), log.clone());
    run_with_watchdog(move || -> em::Result<()> {
        let server_log = l.clone();
        let server = em::start_server("127.0.0.1:0", move || Broker {
            version,
            body: Bytes::from_static(body),
            seen: s.clone(),
            log: server_log.clone(),
        })?;
        let client = Client {
            passcode,
            tag,
            log: l,
        };
        em::connect(
            server.local_addr(),
            StompConnection::new_with_codec(client, client_codec),
        )?;
        Ok(())
    })
    .expect("run");
    let seen = seen.borrow().clone();
    (seen, log.events())
}

/// The whole conversation over loopback TCP, STOMP 1.2: CONNECT (its
/// headers), CONNECTED (the version taken), SUBSCRIBE then the MESSAGE
/// delivered to `receive_msg` (escaped header, NULs in the body), the ACK
/// the server saw, the SEND it saw (headers, body, the content-length
/// added), and the RECEIPT for DISCONNECT, after which the client closes.
#[test]
fn client_conversation_over_tcp() {
    let tag = "a:b\nc\\d";
    let (seen, log) = conversation(Some("1.2"), "secret", tag, StompCodec::new(), b"hi\0there");
    assert_eq!(
        log,
        [
            "client post_init",
            "client connection_completed",
            "client CONNECTED Some(\"1.2\"), subscribed sub-0",
            "client MESSAGE sub=Some(\"sub-0\") path=Some(\"C:\\\\dir\") body=\"hi\\0there\"",
            "client DISCONNECT receipt-0",
            "client RECEIPT [\"receipt-id=receipt-0\"] body=\"\"",
            "client unbind Closed",
            "server unbind PeerClosed",
        ]
    );
    let expected = vec![
        frame(
            "CONNECT",
            &[
                ("accept-version", "1.0,1.1,1.2"),
                ("host", "/"),
                ("login", "guest"),
                ("passcode", "secret"),
                ("heart-beat", "0,0"),
            ],
            b"",
        ),
        frame(
            "SUBSCRIBE",
            &[
                ("id", "sub-0"),
                ("destination", "/queue/a"),
                ("ack", "client-individual"),
            ],
            b"",
        ),
        frame("ACK", &[("id", "a-1")], b""),
        frame(
            "SEND",
            &[
                ("destination", "/queue/b"),
                ("x-tag", tag),
                ("content-length", "7"),
            ],
            b"one\0two",
        ),
        frame("DISCONNECT", &[("receipt", "receipt-0")], b""),
    ];
    assert_eq!(seen, expected);
}

/// The client speaks the version the server's CONNECTED names: the ACK
/// names the message as that version wants, and header text is read and
/// written with that version's escaping (a backslash travels raw in 1.0,
/// escaped in 1.1 and 1.2, and arrives intact either way).
#[test]
fn the_client_speaks_the_negotiated_version() {
    for (version, ack) in [
        (None, vec![("message-id", "m:1")]),
        (
            Some("1.1"),
            vec![("message-id", "m:1"), ("subscription", "sub-0")],
        ),
        (Some("1.2"), vec![("id", "a-1")]),
    ] {
        let (seen, log) = conversation(version, "secret", "x\\y", StompCodec::new(), b"body");
        let name = version.unwrap_or("1.0");
        assert!(
            log.contains(&format!(
                "client CONNECTED Some({name:?}), subscribed sub-0"
            )),
            "{name}: {log:?}"
        );
        assert!(
            log.contains(
                &"client MESSAGE sub=Some(\"sub-0\") path=Some(\"C:\\\\dir\") body=\"body\""
                    .to_string()
            ),
            "{name}: {log:?}"
        );
        let acks: Vec<_> = seen.iter().filter(|f| f.command == "ACK").collect();
        assert_eq!(acks, [&frame("ACK", &ack, b"")], "{name}");
        let send = seen.iter().find(|f| f.command == "SEND").expect("a SEND");
        assert_eq!(send.header("x-tag"), Some("x\\y"), "{name}");
        assert_eq!(
            log.last().map(String::as_str),
            Some("server unbind PeerClosed"),
            "{name}"
        );
    }
}

/// An ERROR frame (a refused login) is delivered to `receive_msg`, headers
/// and body, before the server's close ends the client.
#[test]
fn an_error_frame_is_delivered() {
    let (seen, log) = conversation(Some("1.2"), "wrong", "t", StompCodec::new(), b"");
    assert_eq!(seen.len(), 1, "only the CONNECT: {seen:?}");
    // The server's unbind may come before or after the client's callbacks.
    assert!(log.contains(&"server unbind Closed".to_string()), "{log:?}");
    let client: Vec<_> = log.iter().filter(|e| e.starts_with("client")).collect();
    assert_eq!(
        &client[2..],
        [
            "client ERROR [\"message=bad login\", \"content-length=12\"] body=\"who are you?\"",
            "client unbind PeerClosed",
        ]
    );
}

/// A frame over the client's own limit ends that connection with the
/// codec's `FrameTooLong`; the server sees the client go.
#[test]
fn a_frame_over_the_clients_limit_ends_the_connection() {
    let mut codec = StompCodec::new();
    codec.set_max_frame_length(128);
    let (_, log) = conversation(Some("1.2"), "secret", "t", codec, &[b'x'; 200]);
    assert_eq!(
        &log[2..],
        [
            "client CONNECTED Some(\"1.2\"), subscribed sub-0",
            "client unbind Codec(FrameTooLong 128)",
            "server unbind PeerClosed",
        ]
    );
}

/// Pieces STOMP frames are made of, and a few that break them, for
/// random input that reaches deep into the codec.
const FRAGMENTS: &[&[u8]] = &[
    b"SEND\n",
    b"MESSAGE\r\n",
    b"CONNECTED\n",
    b"destination:/q\n",
    b"content-length:3\n",
    b"content-length: 99999999\n",
    b"a\\cb:c\\nd\n",
    b"\\x",
    b"\n",
    b"\r\n",
    b"\0",
    b"abc",
    b":",
    b"\xff\xfe",
];

proptest::proptest! {
    /// Random input, cut anywhere, never panics the codec: each decode
    /// either gives frames or a typed error.
    #[test]
    fn random_input_never_panics_the_stomp_codec(
        pieces in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::sample::select(FRAGMENTS).prop_map(|f| f.to_vec()),
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..8),
            ],
            0..40,
        ),
        cut in 0usize..400,
    ) {
        let input = pieces.concat();
        let cut = cut.min(input.len());
        let mut codec = StompCodec::new();
        codec.set_max_frame_length(256);
        codec.set_max_headers(8);
        let _ = decode_chunks(&mut codec, &[&input[..cut], &input[cut..]]);
    }
}
