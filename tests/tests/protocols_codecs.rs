//! The codecs of em-protocols (`LineText2`, `LineAndText`, `LineProtocol`,
//! `HeaderAndContent`, `ObjectCodec`): split and coalesced input, mode
//! switches at every byte boundary, limits, `decode_eof`, property tests,
//! and real em connections (a handler switching LineText2's mode from
//! `receive_data`, objects as request and response, a bad object frame
//! ending only its connection).

mod support;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt::Debug;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use em::{Conn, Connection, UnbindReason};
use em_protocols::{
    HeaderAndContent, HeaderAndContentMessage, Json, LineAndText, LineAndTextFrame, LineError,
    LineProtocol, LineText2, LineText2Frame, MessagePack, ObjectCodec, ObjectFormat,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tokio_util::codec::{BytesCodec, Decoder, Encoder};

use support::*;

// ---------------------------------------------------------------------
// Feeding a codec as em's pump does.

/// Feeds `input` cut at `cuts` (ascending offsets): after each piece,
/// decodes until nothing more, calling `on_frame` between frames (it may
/// switch modes, as a handler does from `receive_data`); `decode_eof` at
/// the end. Returns the frames, and the error that stopped it if any.
fn feed<D: Decoder>(
    codec: &mut D,
    input: &[u8],
    cuts: &[usize],
    mut on_frame: impl FnMut(&mut D, &D::Item),
) -> (Vec<D::Item>, Option<D::Error>) {
    let mut frames = Vec::new();
    let mut buf = BytesMut::new();
    let mut from = 0;
    for &to in cuts.iter().chain([&input.len()]) {
        let to = to.clamp(from, input.len());
        buf.extend_from_slice(&input[from..to]);
        from = to;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    on_frame(codec, &frame);
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => {
                on_frame(codec, &frame);
                frames.push(frame);
            }
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e)),
        }
    }
}

/// [`feed`] that must succeed.
fn feed_ok<D: Decoder>(
    codec: &mut D,
    input: &[u8],
    cuts: &[usize],
    on_frame: impl FnMut(&mut D, &D::Item),
) -> Vec<D::Item>
where
    D::Error: Debug,
{
    let (frames, error) = feed(codec, input, cuts, on_frame);
    assert!(error.is_none(), "{error:?} after {} frames", frames.len());
    frames
}

/// Checks that `input` decodes to the same frames, `normalize`d, at every
/// cut and every pair of cuts as all at once, and byte by byte; returns
/// those frames.
fn same_at_every_split<D, T>(
    make: impl Fn() -> D,
    input: &[u8],
    on_frame: impl Fn(&mut D, &D::Item),
    normalize: impl Fn(Vec<D::Item>) -> Vec<T>,
) -> Vec<T>
where
    D: Decoder,
    D::Error: Debug,
    T: PartialEq + Debug,
{
    let whole = normalize(feed_ok(&mut make(), input, &[], &on_frame));
    for a in 0..=input.len() {
        for b in a..=input.len() {
            let got = normalize(feed_ok(&mut make(), input, &[a, b], &on_frame));
            assert_eq!(got, whole, "cut at {a} and {b}");
        }
    }
    let bytewise: Vec<usize> = (1..input.len()).collect();
    let got = normalize(feed_ok(&mut make(), input, &bytewise, &on_frame));
    assert_eq!(got, whole, "byte by byte");
    whole
}

fn line(s: &str) -> LineText2Frame {
    LineText2Frame::Line(Bytes::copy_from_slice(s.as_bytes()))
}

fn binary(s: &str) -> LineText2Frame {
    LineText2Frame::Binary(Bytes::copy_from_slice(s.as_bytes()))
}

fn chunk(s: &str) -> LineText2Frame {
    LineText2Frame::BinaryChunk(Bytes::copy_from_slice(s.as_bytes()))
}

/// Joins consecutive `BinaryChunk`s: where chunks end depends on the
/// reads, what they carry does not.
fn join_chunks(frames: Vec<LineText2Frame>) -> Vec<LineText2Frame> {
    let mut out: Vec<LineText2Frame> = Vec::new();
    for frame in frames {
        match (out.last_mut(), frame) {
            (Some(LineText2Frame::BinaryChunk(prev)), LineText2Frame::BinaryChunk(more)) => {
                let mut joined = BytesMut::from(&prev[..]);
                joined.extend_from_slice(&more);
                *prev = joined.freeze();
            }
            (_, frame) => out.push(frame),
        }
    }
    out
}

// ---------------------------------------------------------------------
// LineText2

/// EventMachine's LT1: `"x\r\nBIN\nabcy\n"` with a switch to a 3-byte
/// block after the line "BIN", the same wherever the input is cut.
#[test]
fn line_text2_lt1_same_result_at_every_byte_boundary() {
    let frames = same_at_every_split(
        LineText2::new,
        b"x\r\nBIN\nabcy\n",
        |codec, frame| {
            if *frame == line("BIN") {
                codec.set_binary_mode(3);
            }
        },
        |frames| frames,
    );
    assert_eq!(
        frames,
        [
            line("x"),
            line("BIN"),
            binary("abc"),
            LineText2Frame::EndOfBinary,
            line("y")
        ]
    );
}

/// The codecs are tokio-util codecs: LT1 through tokio's `FramedRead`,
/// with no em at all, switching through `decoder_mut()` between frames.
#[test]
fn line_text2_works_with_tokio_framed_without_em() {
    use futures::StreamExt;
    use tokio_util::codec::FramedRead;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let frames = runtime.block_on(async {
        let mut framed = FramedRead::new(&b"x\r\nBIN\nabcy\n"[..], LineText2::new());
        let mut frames = Vec::new();
        while let Some(frame) = framed.next().await {
            let frame = frame.expect("decodes");
            if frame == line("BIN") {
                framed.decoder_mut().set_binary_mode(3);
            }
            frames.push(frame);
        }
        frames
    });
    assert_eq!(
        frames,
        [
            line("x"),
            line("BIN"),
            binary("abc"),
            LineText2Frame::EndOfBinary,
            line("y")
        ]
    );
}

/// What the handler of the script below does on each frame: the same
/// function runs on the codec directly here and through
/// `Conn::with_codec` over a connection further down.
fn script_switch(codec: &mut LineText2, frame: &LineText2Frame) {
    let LineText2Frame::Line(l) = frame else {
        return;
    };
    let l = std::str::from_utf8(l).expect("script lines are UTF-8");
    if let Some(n) = l.strip_prefix("BIN ") {
        codec.set_binary_mode(n.parse().unwrap());
    } else if let Some(n) = l.strip_prefix("STREAM ") {
        codec.set_binary_mode_streamed(n.parse().unwrap());
    } else if l == "PIPE" {
        codec.set_delimiter("|").unwrap();
    } else if l == "NL" {
        codec.set_delimiter("\n").unwrap();
    } else if l == "RAW" {
        codec.set_binary_mode_unsized();
    }
}

/// Every mode, and back: a sized block, a streamed one, a custom
/// delimiter and back to `"\n"`, then unsized mode to the end.
const SCRIPT: &[u8] =
    b"x\r\nBIN 3\nabcy\nSTREAM 5\n12\n45PIPE\na\nb|c\r\nd|NL|e\r\nRAW\nrest\nof it";

fn script_frames() -> Vec<LineText2Frame> {
    vec![
        line("x"),
        line("BIN 3"),
        binary("abc"),
        LineText2Frame::EndOfBinary,
        line("y"),
        line("STREAM 5"),
        chunk("12\n45"),
        LineText2Frame::EndOfBinary,
        line("PIPE"),
        line("a\nb"),
        line("c\r\nd"),
        line("NL"),
        line("e"),
        line("RAW"),
        chunk("rest\nof it"),
    ]
}

#[test]
fn line_text2_every_mode_same_result_at_every_byte_boundary() {
    let frames = same_at_every_split(LineText2::new, SCRIPT, script_switch, join_chunks);
    assert_eq!(frames, script_frames());
}

/// EventMachine's LT2: a custom delimiter keeps `"\n"` and `"\r\n"`
/// inside lines (and strips no `"\r"`); a delimiter of several bytes too.
#[test]
fn line_text2_custom_delimiters_keep_newlines_inside_lines() {
    let frames = same_at_every_split(
        || LineText2::new_with_delimiter("|").unwrap(),
        b"a\nb|c\r\nd||e\r|last",
        |_, _| {},
        |frames| frames,
    );
    assert_eq!(
        frames,
        [
            line("a\nb"),
            line("c\r\nd"),
            line(""),
            line("e\r"),
            line("last")
        ]
    );
    let frames = same_at_every_split(
        || LineText2::new_with_delimiter("\r\n.\r\n").unwrap(),
        b"one\r\ntwo\r\n.\r\n.\r\n\r\n.\r\n",
        |_, _| {},
        |frames| frames,
    );
    assert_eq!(frames, [line("one\r\ntwo"), line(".\r\n")]);
}

// ---------------------------------------------------------------------
// LineAndText and LineProtocol

#[test]
fn line_and_text_same_result_at_every_byte_boundary() {
    let frames = same_at_every_split(
        LineAndText::new,
        b"PUT 3\r\nabcPUT 0\r\nQUIT\nlast",
        |codec, frame| {
            if let LineAndTextFrame::Line(l) = frame {
                if let Some(n) = l.strip_prefix("PUT ") {
                    codec.set_binary_mode(n.parse().unwrap());
                }
            }
        },
        |frames| frames,
    );
    assert_eq!(
        frames,
        [
            LineAndTextFrame::Line("PUT 3".into()),
            LineAndTextFrame::Binary("abc".into()),
            LineAndTextFrame::Line("PUT 0".into()),
            LineAndTextFrame::Binary(Bytes::new()),
            LineAndTextFrame::Line("QUIT".into()),
            LineAndTextFrame::Line("last".into()),
        ]
    );
}

/// LP1 not replicated: EventMachine's LineProtocol gives a, a, b for
/// "a\n" then "b\n" (input ending exactly on "\n" stays in its buffer).
#[test]
fn line_protocol_delivers_each_line_once() {
    let lines = feed_ok(&mut LineProtocol::new(), b"a\nb\n", &[2], |_, _| {});
    assert_eq!(lines, ["a", "b"]);
    let lines = same_at_every_split(
        LineProtocol::new,
        b"a\nb\r\n\nc\n",
        |_, _| {},
        |lines| lines,
    );
    assert_eq!(lines, ["a", "b", "", "c"]);
}

// ---------------------------------------------------------------------
// HeaderAndContent

#[test]
fn header_and_content_same_result_at_every_byte_boundary() {
    let input = b"\r\nGET / HTTP/1.0\r\nHost: a\r\n\r\n\n\
        Content-Length: 5\nX: 1\n\nhello\
        NOTIFY\r\ncontent-length:2\r\n\r\n\r\n";
    let messages = same_at_every_split(HeaderAndContent::new, input, |_, _| {}, |m| m);
    let message = |start: Option<&str>, headers: &[(&str, &str)], body: &'static str| {
        HeaderAndContentMessage {
            start_line: start.map(str::to_owned),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Bytes::from_static(body.as_bytes()),
        }
    };
    assert_eq!(
        messages,
        [
            message(Some("GET / HTTP/1.0"), &[("Host", "a")], ""),
            message(None, &[("Content-Length", "5"), ("X", "1")], "hello"),
            message(Some("NOTIFY"), &[("content-length", "2")], "\r\n"),
        ]
    );
    assert_eq!(messages[1].header("content-length"), Some("5"));
}

// ---------------------------------------------------------------------
// ObjectCodec

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Request {
    id: u32,
    op: Op,
    args: Vec<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Op {
    Sum,
    Max,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Response {
    id: u32,
    result: Option<i64>,
}

fn requests() -> Vec<Request> {
    vec![
        Request {
            id: 1,
            op: Op::Sum,
            args: vec![1, 2, 3],
        },
        Request {
            id: 2,
            op: Op::Max,
            args: vec![],
        },
        Request {
            id: 3,
            op: Op::Max,
            args: vec![-5, 7, 2],
        },
    ]
}

fn answer(r: &Request) -> Response {
    let result = match r.op {
        Op::Sum => Some(r.args.iter().sum()),
        Op::Max => r.args.iter().copied().max(),
    };
    Response { id: r.id, result }
}

fn objects_same_at_every_split<F: ObjectFormat>() {
    let mut wire = BytesMut::new();
    let mut codec = ObjectCodec::<Request, F>::new();
    for r in requests() {
        codec.encode(&r, &mut wire).unwrap();
    }
    let got = same_at_every_split(ObjectCodec::<Request, F>::new, &wire, |_, _| {}, |o| o);
    assert_eq!(got, requests());
}

/// EventMachine's OP1: a 4-byte big-endian length, then the payload;
/// partial frames wait for the rest.
#[test]
fn object_codec_same_result_at_every_byte_boundary() {
    objects_same_at_every_split::<Json>();
    objects_same_at_every_split::<MessagePack>();
    let mut wire = BytesMut::new();
    ObjectCodec::<Vec<u8>>::new()
        .encode(vec![1u8, 2], &mut wire)
        .unwrap();
    assert_eq!(&wire[..], b"\0\0\0\x05[1,2]");
}

// ---------------------------------------------------------------------
// Limits and decode_eof

#[test]
fn every_limit_is_an_error_that_says_which() {
    let mut codec = LineText2::new();
    codec.set_max_line_length(8);
    let (frames, e) = feed(&mut codec, b"12345678\n123456789\n", &[], |_, _| {});
    assert_eq!(frames, [line("12345678")]);
    assert_eq!(
        e.unwrap().to_string(),
        "line longer than 8 bytes (the codec's max_line_length)"
    );

    let mut codec = LineText2::new();
    codec.set_max_binary_length(4);
    let (_, e) = feed(&mut codec, b"BIN 5\nabcde", &[], script_switch);
    assert_eq!(
        e.unwrap().to_string(),
        "binary block of 5 bytes asked for, over the codec's max_binary_length (4 bytes)"
    );

    let (_, e) = feed(
        &mut LineProtocol::new_with_max_line_length(2),
        b"abc",
        &[],
        |_, _| {},
    );
    assert!(matches!(e, Some(LineError::LineTooLong { max: 2 })));

    let mut codec = HeaderAndContent::new();
    codec.set_max_headers(1);
    let (_, e) = feed(&mut codec, b"A: 1\nB: 2\n\n", &[], |_, _| {});
    assert_eq!(
        e.unwrap().to_string(),
        "more than 1 header lines (the codec's max_headers)"
    );
    let mut codec = HeaderAndContent::new();
    codec.set_max_header_size(8);
    let (_, e) = feed(&mut codec, b"A: 1\nB: 2345\n\n", &[], |_, _| {});
    assert_eq!(
        e.unwrap().to_string(),
        "headers larger than 8 bytes (the codec's max_header_size)"
    );
    let mut codec = HeaderAndContent::new();
    codec.set_max_body_length(1);
    let (_, e) = feed(&mut codec, b"Content-Length: 2\n\nab", &[], |_, _| {});
    assert_eq!(
        e.unwrap().to_string(),
        "body of 2 bytes (Content-Length) is over the codec's max_body_length (1 bytes)"
    );
    let (_, e) = feed(
        &mut HeaderAndContent::new(),
        b"Content-Length: 1\nContent-length: 1\n\na",
        &[],
        |_, _| {},
    );
    assert_eq!(
        e.unwrap().to_string(),
        "more than one Content-Length header"
    );

    let mut codec = ObjectCodec::<Request>::new();
    codec.set_max_frame_length(10);
    let (_, e) = feed(&mut codec, b"\0\0\0\x0b", &[], |_, _| {});
    assert_eq!(
        e.unwrap().to_string(),
        "object frame of 11 bytes is over the codec's max_frame_length (10 bytes)"
    );
    let mut out = BytesMut::new();
    assert!(codec.encode(&requests()[0], &mut out).is_err());
    assert!(
        out.is_empty(),
        "nothing queued for a frame too long to send"
    );
}

/// At the end of the stream: an unfinished line is delivered (as
/// tokio-util's LinesCodec does), anything else unfinished is an error.
#[test]
fn decode_eof_delivers_a_last_line_and_refuses_anything_else_unfinished() {
    let frames = feed_ok(&mut LineText2::new(), b"a\nno newline\r", &[], |_, _| {});
    assert_eq!(frames, [line("a"), line("no newline")]);
    let lines = feed_ok(&mut LineProtocol::new(), b"a\nb", &[], |_, _| {});
    assert_eq!(lines, ["a", "b"]);

    let (frames, e) = feed(&mut LineText2::new(), b"BIN 4\nabc", &[], script_switch);
    assert_eq!(frames, [line("BIN 4")]);
    assert_eq!(
        e.unwrap().to_string(),
        "the stream ended 1 bytes before the end of a 4-byte binary block"
    );
    let (frames, e) = feed(&mut LineText2::new(), b"STREAM 4\nabc", &[], script_switch);
    assert_eq!(frames, [line("STREAM 4"), chunk("abc")]);
    assert!(matches!(
        e,
        Some(LineError::Truncated {
            size: 4,
            missing: 1
        })
    ));
    let frames = feed_ok(&mut LineText2::new(), b"RAW\nabc", &[], script_switch);
    assert_eq!(frames, [line("RAW"), chunk("abc")]);

    let (_, e) = feed(&mut HeaderAndContent::new(), b"A: 1\n", &[], |_, _| {});
    assert_eq!(e.unwrap().to_string(), "the stream ended inside a message");
    assert!(feed_ok(&mut HeaderAndContent::new(), b"\r\n\n", &[], |_, _| {}).is_empty());

    let (_, e) = feed(
        &mut ObjectCodec::<Request>::new(),
        b"\0\0\0\x09{}",
        &[],
        |_, _| {},
    );
    assert_eq!(
        e.unwrap().to_string(),
        "the stream ended inside an object frame (6 bytes of it had arrived)"
    );
}

// ---------------------------------------------------------------------
// Property tests

/// What a random handler does to a LineText2 codec on a frame.
fn random_switch(codec: &mut LineText2, action: u8) {
    match action % 8 {
        0 | 1 => {}
        2 => codec.set_binary_mode(usize::from(action / 8)),
        3 => codec.set_binary_mode_streamed(usize::from(action / 8)),
        4 => codec.set_binary_mode_unsized(),
        5 => codec.set_line_mode(),
        6 => codec
            .set_delimiter(&[b'\n', b'|', b'\r'][..usize::from(action / 8 % 3) + 1])
            .unwrap(),
        _ => codec.set_max_line_length(usize::from(action / 8)),
    }
}

/// Runs `D` over `input` cut at `cuts`; errors are fine, panics are not.
fn never_panics<D: Decoder>(mut codec: D, input: &[u8], cuts: &[usize]) {
    let _ = feed(&mut codec, input, cuts, |_, _| {});
}

fn sorted(mut cuts: Vec<usize>) -> Vec<usize> {
    cuts.sort_unstable();
    cuts
}

proptest! {
    #[test]
    fn random_input_never_panics_a_codec(
        input in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(0usize..600, 0..8).prop_map(sorted),
        actions in proptest::collection::vec(any::<u8>(), 1..16),
    ) {
        // A handler that switches to an empty block on every frame gets
        // frames forever (each switch is one more block), as any handler
        // looping would: the switches stop after SWITCHES frames, so that
        // each run ends; what is checked is that nothing panics.
        const SWITCHES: usize = 2_000;
        let mut next = actions.iter().cycle().take(SWITCHES);
        let mut codec = LineText2::new();
        codec.set_max_line_length(64);
        codec.set_max_binary_length(200);
        let _ = feed(&mut codec, &input, &cuts, |codec, _| {
            if let Some(&action) = next.next() {
                random_switch(codec, action)
            }
        });
        let mut codec = LineAndText::new_with_max_line_length(64);
        let mut next = actions.iter().cycle().take(SWITCHES);
        let _ = feed(&mut codec, &input, &cuts, |codec, _| match next.next().map(|a| a % 4) {
            Some(0) => codec.set_binary_mode(usize::from(actions[0])),
            Some(1) => codec.set_binary_mode_unsized(),
            Some(2) => codec.set_line_mode(),
            _ => {}
        });
        never_panics(LineProtocol::new_with_max_line_length(32), &input, &cuts);
        let mut codec = HeaderAndContent::new();
        codec.set_max_headers(4);
        codec.set_max_header_size(100);
        codec.set_max_body_length(100);
        never_panics(codec, &input, &cuts);
        never_panics(HeaderAndContent::new(), &input, &cuts);
        never_panics(ObjectCodec::<Request>::new_with_max_frame_length(300), &input, &cuts);
        never_panics(ObjectCodec::<serde::de::IgnoredAny, MessagePack>::new(), &input, &cuts);
    }

    /// Lines and blocks encoded then decoded (the handler switching to
    /// binary mode before each block) come back the same, wherever the
    /// bytes are cut, for random delimiters of one to three bytes.
    #[test]
    fn line_text2_encode_then_decode_is_the_identity(
        delimiter in proptest::collection::vec(prop::sample::select(b"ab\r\n|".to_vec()), 1..4),
        items in proptest::collection::vec(
            (any::<bool>(), any::<bool>(), proptest::collection::vec(prop::sample::select(b"abx\r\n|".to_vec()), 0..12)),
            0..12,
        ),
        cuts in proptest::collection::vec(0usize..200, 0..6).prop_map(sorted),
    ) {
        let mut codec = LineText2::new_with_delimiter(&delimiter).unwrap();
        let mut wire = BytesMut::new();
        // (is a block, streamed, bytes), for the lines the encoder takes.
        let mut sent = Vec::new();
        for (block, streamed, bytes) in items {
            let bytes = Bytes::from(bytes);
            if block {
                codec.encode(LineText2Frame::Binary(bytes.clone()), &mut wire).unwrap();
                sent.push((true, streamed, bytes));
            } else if delimiter == b"\n" && bytes.last() == Some(&b'\r') {
                // With "\n", a "\r" before it is stripped: not sent as is.
            } else if codec.encode(LineText2Frame::Line(bytes.clone()), &mut wire).is_ok() {
                sent.push((false, false, bytes));
            } else {
                // Refused: the delimiter would be found before its end.
                let mut probe = bytes.to_vec();
                probe.extend_from_slice(&delimiter);
                let first = probe.windows(delimiter.len()).position(|w| w == &delimiter[..]);
                prop_assert!(first.is_some_and(|at| at < bytes.len()));
            }
        }
        // The handler switches before each block, from the frame before
        // it (or before any input, for a block first).
        let switch = |codec: &mut LineText2, next: Option<&(bool, bool, Bytes)>| {
            if let Some((true, streamed, bytes)) = next {
                match streamed {
                    true => codec.set_binary_mode_streamed(bytes.len()),
                    false => codec.set_binary_mode(bytes.len()),
                }
            }
        };
        let mut decoder = LineText2::new_with_delimiter(&delimiter).unwrap();
        switch(&mut decoder, sent.first());
        let mut done = 0;
        let frames = feed_ok(&mut decoder, &wire, &cuts, |codec, frame| {
            match frame {
                LineText2Frame::Line(_) | LineText2Frame::EndOfBinary => {
                    done += 1;
                    switch(codec, sent.get(done));
                }
                _ => {}
            }
        });
        let mut got = Vec::new();
        let mut streamed_block = BytesMut::new();
        let mut whole_block_ends = false;
        for frame in frames {
            match frame {
                LineText2Frame::Line(l) => got.push((false, l)),
                LineText2Frame::Binary(b) => {
                    got.push((true, b));
                    whole_block_ends = true;
                }
                LineText2Frame::BinaryChunk(c) => streamed_block.extend_from_slice(&c),
                LineText2Frame::EndOfBinary if whole_block_ends => whole_block_ends = false,
                LineText2Frame::EndOfBinary => got.push((true, streamed_block.split().freeze())),
            }
        }
        let want: Vec<(bool, Bytes)> = sent.into_iter().map(|(b, _, bytes)| (b, bytes)).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn line_protocol_encode_then_decode_is_the_identity(
        lines in proptest::collection::vec("[^\n]{0,20}", 0..10),
        cuts in proptest::collection::vec(0usize..300, 0..6).prop_map(sorted),
    ) {
        let lines: Vec<String> = lines.into_iter().filter(|l| !l.ends_with('\r')).collect();
        let mut codec = LineProtocol::new();
        let mut wire = BytesMut::new();
        for l in &lines {
            codec.encode(l.as_str(), &mut wire).unwrap();
        }
        prop_assert_eq!(feed_ok(&mut LineProtocol::new(), &wire, &cuts, |_, _| {}), lines);
    }

    #[test]
    fn header_and_content_encode_then_decode_is_the_identity(
        messages in proptest::collection::vec(message(), 1..4),
        cuts in proptest::collection::vec(0usize..600, 0..6).prop_map(sorted),
    ) {
        let mut codec = HeaderAndContent::new();
        let mut wire = BytesMut::new();
        for m in &messages {
            codec.encode(m, &mut wire).unwrap();
        }
        prop_assert_eq!(feed_ok(&mut HeaderAndContent::new(), &wire, &cuts, |_, _| {}), messages);
    }

    #[test]
    fn objects_encode_then_decode_is_the_identity(
        objects in proptest::collection::vec(object(), 0..6),
        cuts in proptest::collection::vec(0usize..600, 0..6).prop_map(sorted),
    ) {
        prop_assert_eq!(round_trip::<Json>(&objects, &cuts), objects.clone());
        prop_assert_eq!(round_trip::<MessagePack>(&objects, &cuts), objects);
    }
}

/// A random message: a start line or not, headers, a body (with its
/// `Content-Length`, set by `with_body`).
fn message() -> impl Strategy<Value = HeaderAndContentMessage> {
    (
        proptest::option::of("[A-Z]{1,8}( [a-z/]{1,8}){0,2}"),
        proptest::collection::vec(
            ("[A-Za-z][A-Za-z0-9-]{0,8}", "([!-~]([ -~]{0,10}[!-~])?)?"),
            0..5,
        ),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_filter_map("a message needs something", |(start, headers, body)| {
            let mut m = HeaderAndContentMessage::new();
            m.start_line = start;
            m.headers = headers
                .into_iter()
                .filter(|(n, _)| !n.eq_ignore_ascii_case("content-length"))
                .collect();
            let m = m.with_body(body);
            let empty = m.start_line.is_none() && m.headers.is_empty();
            (!empty).then_some(m)
        })
}

fn object() -> impl Strategy<Value = Request> {
    (
        any::<u32>(),
        any::<bool>(),
        proptest::collection::vec(any::<i64>(), 0..6),
    )
        .prop_map(|(id, sum, args)| Request {
            id,
            op: if sum { Op::Sum } else { Op::Max },
            args,
        })
}

fn round_trip<F: ObjectFormat>(objects: &[Request], cuts: &[usize]) -> Vec<Request> {
    let mut codec = ObjectCodec::<Request, F>::new();
    let mut wire = BytesMut::new();
    for o in objects {
        codec.encode(o, &mut wire).unwrap();
    }
    feed_ok(
        &mut ObjectCodec::<Request, F>::new(),
        &wire,
        cuts,
        |_, _| {},
    )
}

// ---------------------------------------------------------------------
// Over em connections

/// Runs [`script_switch`] through `Conn::with_codec` from `receive_data`,
/// answers each whole block with `got N` (a line through the same codec),
/// records the frames, and stops the reactor when the peer has closed.
struct Switcher {
    frames: Rc<RefCell<Vec<LineText2Frame>>>,
    ended: Rc<RefCell<Option<String>>>,
}

impl Connection for Switcher {
    type Codec = LineText2;

    fn codec(&self) -> LineText2 {
        LineText2::new()
    }

    fn receive_data(&mut self, conn: &Conn<LineText2>, frame: LineText2Frame) {
        conn.with_codec(|codec| script_switch(codec, &frame))
            .expect("with_codec from receive_data");
        if let LineText2Frame::Binary(block) = &frame {
            conn.send_data(format!("got {}", block.len()));
        }
        self.frames.borrow_mut().push(frame);
    }

    fn unbind(&mut self, _: &Conn<LineText2>, why: UnbindReason) {
        *self.ended.borrow_mut() = Some(reason(&why));
        em::stop();
    }
}

/// Sends its pieces 1 ms apart (under the paused clock, the next goes
/// once everything else is idle, so each arrives in a read of its own),
/// and closes once all have gone and the one `got` answer has come.
struct Pieces {
    pieces: Rc<RefCell<VecDeque<Bytes>>>,
    answers: Rc<RefCell<Vec<LineText2Frame>>>,
}

impl Pieces {
    fn send_next(
        conn: Conn<LineText2>,
        pieces: Rc<RefCell<VecDeque<Bytes>>>,
        answers: Rc<RefCell<Vec<LineText2Frame>>>,
    ) {
        let Some(piece) = pieces.borrow_mut().pop_front() else {
            if !answers.borrow().is_empty() {
                conn.close_connection_after_writing();
            }
            return;
        };
        conn.send_data(LineText2Frame::BinaryChunk(piece));
        em::add_timer(Duration::from_millis(1), move || {
            Pieces::send_next(conn, pieces, answers)
        })
        .expect("add_timer");
    }
}

impl Connection for Pieces {
    type Codec = LineText2;

    fn codec(&self) -> LineText2 {
        LineText2::new()
    }

    fn connection_completed(&mut self, conn: &Conn<LineText2>) {
        Pieces::send_next(conn.clone(), self.pieces.clone(), self.answers.clone());
    }

    fn receive_data(&mut self, conn: &Conn<LineText2>, frame: LineText2Frame) {
        self.answers.borrow_mut().push(frame);
        if self.pieces.borrow().is_empty() {
            conn.close_connection_after_writing();
        }
    }
}

/// A handler switches LineText2 from `receive_data` through
/// `Conn::with_codec` (to a sized block, a streamed one, another
/// delimiter and back, unsized mode) over a real connection: the frames
/// are the same whether the script arrives whole, in 3-byte pieces or
/// byte by byte (each piece in a read of its own: the streamed and
/// unsized data arrive as that many chunks), and the answer sent through
/// the codec arrives.
#[test]
fn a_handler_switches_line_text2_modes_from_receive_data_over_a_connection() {
    // Each read of a piece of the streamed block or the unsized tail is a
    // chunk: as many as the pieces they overlap.
    let pieces_over = |part: &[u8], size: usize| {
        let at = SCRIPT.windows(part.len()).position(|w| w == part).unwrap();
        (at + part.len() - 1) / size - at / size + 1
    };
    for (name, size) in [("whole", SCRIPT.len()), ("3 bytes", 3), ("1 byte", 1)] {
        let want_chunks = pieces_over(b"12\n45", size) + pieces_over(b"rest\nof it", size);
        let frames = Rc::new(RefCell::new(Vec::new()));
        let ended = Rc::new(RefCell::new(None));
        let answers = Rc::new(RefCell::new(Vec::new()));
        let pieces: VecDeque<Bytes> = SCRIPT.chunks(size).map(Bytes::copy_from_slice).collect();
        let (f, e, a) = (frames.clone(), ended.clone(), answers.clone());
        let paused = em::Reactor::builder().start_paused(true);
        run_builder_with_watchdog(paused, move || {
            em::connect_pair(
                Switcher {
                    frames: f,
                    ended: e,
                },
                Pieces {
                    pieces: Rc::new(RefCell::new(pieces)),
                    answers: a,
                },
            )
            .map(drop)
        })
        .unwrap();
        let frames = frames.take();
        let chunks = frames
            .iter()
            .filter(|f| matches!(f, LineText2Frame::BinaryChunk(_)))
            .count();
        assert_eq!(chunks, want_chunks, "{name}: {frames:?}");
        let frames = join_chunks(frames);
        assert_eq!(frames, script_frames(), "{name}");
        assert_eq!(ended.take().as_deref(), Some("PeerClosed"), "{name}");
        assert_eq!(answers.take(), [line("got 3")], "{name}");
    }
}

/// Computes an answer per request.
struct Calculator<F: ObjectFormat + 'static> {
    ended: Log,
    _format: std::marker::PhantomData<F>,
}

impl<F: ObjectFormat + 'static> Calculator<F> {
    fn new(ended: Log) -> Self {
        Calculator {
            ended,
            _format: std::marker::PhantomData,
        }
    }
}

impl<F: ObjectFormat + 'static> Connection for Calculator<F> {
    type Codec = ObjectCodec<Request, F>;

    fn codec(&self) -> Self::Codec {
        ObjectCodec::new()
    }

    fn receive_data(&mut self, conn: &Conn<Self::Codec>, request: Request) {
        conn.send_data(answer(&request));
    }

    fn unbind(&mut self, conn: &Conn<Self::Codec>, why: UnbindReason) {
        self.ended.push(format!("{} {why}", conn.id()));
    }
}

/// Sends requests one at a time, collects the answers, and either stops
/// the reactor after the last or hands over to `then`.
struct Asker<F: ObjectFormat + 'static> {
    todo: VecDeque<Request>,
    answers: Rc<RefCell<Vec<Response>>>,
    then: Option<Box<dyn FnOnce()>>,
    _format: std::marker::PhantomData<F>,
}

impl<F: ObjectFormat + 'static> Asker<F> {
    fn new(todo: Vec<Request>, answers: Rc<RefCell<Vec<Response>>>) -> Self {
        Asker {
            todo: todo.into(),
            answers,
            then: None,
            _format: std::marker::PhantomData,
        }
    }
}

impl<F: ObjectFormat + 'static> Connection for Asker<F> {
    type Codec = ObjectCodec<Response, F>;

    fn codec(&self) -> Self::Codec {
        ObjectCodec::new()
    }

    fn connection_completed(&mut self, conn: &Conn<Self::Codec>) {
        if let Some(first) = self.todo.pop_front() {
            conn.send_data(first);
        }
    }

    fn receive_data(&mut self, conn: &Conn<Self::Codec>, response: Response) {
        self.answers.borrow_mut().push(response);
        match self.todo.pop_front() {
            Some(next) => {
                conn.send_data(next);
            }
            None => match self.then.take() {
                Some(then) => then(),
                None => em::stop(),
            },
        }
    }
}

/// Objects as request and response over TCP (JSON) and over an in-memory
/// pair (MessagePack): the server decodes `Request`s and sends
/// `Response`s, the client the other way round.
#[test]
fn object_codec_request_and_response_over_connections() {
    let want: Vec<Response> = requests().iter().map(answer).collect();

    let answers = Rc::new(RefCell::new(Vec::new()));
    let a = answers.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let ended = Log::default();
        let server = em::start_server("127.0.0.1:0", move || {
            Calculator::<Json>::new(ended.clone())
        })?;
        em::connect(server.local_addr(), Asker::<Json>::new(requests(), a))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(answers.take(), want, "JSON over TCP");

    let answers = Rc::new(RefCell::new(Vec::new()));
    let a = answers.clone();
    run_with_watchdog(move || {
        em::connect_pair(
            Calculator::<MessagePack>::new(Log::default()),
            Asker::<MessagePack>::new(requests(), a),
        )
        .map(drop)
    })
    .unwrap();
    assert_eq!(answers.take(), want, "MessagePack in memory");
}

/// Sends raw bytes, records how its connection ended.
struct Raw {
    bytes: &'static [u8],
    ended: Log,
}

impl Connection for Raw {
    type Codec = BytesCodec;

    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }

    fn connection_completed(&mut self, conn: &Conn<BytesCodec>) {
        conn.send_data(Bytes::from_static(self.bytes));
    }

    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}

    fn unbind(&mut self, _: &Conn<BytesCodec>, why: UnbindReason) {
        self.ended.push(format!("raw {}", reason(&why)));
    }
}

/// A payload that does not parse, and a length over the maximum, each end
/// their own connection with `UnbindReason::Codec` and a clear message;
/// a good client, connected before them, keeps being answered after.
#[test]
fn a_bad_object_frame_ends_only_its_connection() {
    let ended = Log::default();
    let answers = Rc::new(RefCell::new(Vec::new()));
    let (e, a) = (ended.clone(), answers.clone());
    run_with_watchdog(move || -> em::Result<()> {
        let server_log = e.clone();
        let server = em::start_server("127.0.0.1:0", move || {
            Calculator::<Json>::new(server_log.clone())
        })?;
        let addr = server.local_addr();
        let mut good = Asker::<Json>::new(requests()[..1].to_vec(), a.clone());
        // After its first answer, the good client sets off the bad ones,
        // and asks again once both have been cut off.
        let (log, bad_addr) = (e.clone(), addr.clone());
        good.then = Some(Box::new(move || {
            for bytes in [&b"\0\0\0\x05{oops"[..], b"\xff\xff\xff\xff"] {
                em::connect(
                    bad_addr.clone(),
                    Raw {
                        bytes,
                        ended: log.clone(),
                    },
                )
                .expect("connect");
            }
        }));
        let good = em::connect(addr, good)?;
        fn ask_when_both_cut(log: Log, good: Conn<ObjectCodec<Response>>) {
            if log
                .events()
                .iter()
                .filter(|e| e.starts_with("raw "))
                .count()
                == 2
            {
                good.send_data(&requests()[2]);
            } else {
                em::next_tick(move || ask_when_both_cut(log, good));
            }
        }
        ask_when_both_cut(e, good);
        Ok(())
    })
    .unwrap();
    let events = ended.events();
    let codec_errors: Vec<&str> = events
        .iter()
        .filter_map(|e| e.split_once(' ').map(|(_, why)| why))
        .filter(|why| why.starts_with("codec error"))
        .collect();
    assert_eq!(codec_errors.len(), 2, "{events:?}");
    assert!(
        codec_errors.iter().any(|why| why.starts_with(
            "codec error: object payload is not the expected JSON: key must be a string"
        )),
        "{events:?}"
    );
    assert!(
        codec_errors.contains(
            &"codec error: object frame of 4294967295 bytes is over the codec's max_frame_length (8388608 bytes)"
        ),
        "{events:?}"
    );
    // The good connection was answered before and after, and ended only
    // with the reactor.
    assert_eq!(
        answers.take(),
        [answer(&requests()[0]), answer(&requests()[2])]
    );
    assert!(
        events.iter().any(|e| e.ends_with(" the reactor stopped")),
        "{events:?}"
    );
}

/// EventMachine's LineAndTextProtocol reports any error in `receive_line`
/// as "overlength line" (LTP1); em ends the connection with the codec's
/// own error, which says what the limit was.
#[test]
fn an_overlong_line_ends_a_line_and_text_connection_with_a_clear_reason() {
    struct Lines {
        ended: Log,
    }
    impl Connection for Lines {
        type Codec = LineAndText;
        fn codec(&self) -> LineAndText {
            LineAndText::new_with_max_line_length(8)
        }
        fn receive_data(&mut self, _: &Conn<LineAndText>, frame: LineAndTextFrame) {
            self.ended.push(format!("{frame:?}"));
        }
        fn unbind(&mut self, _: &Conn<LineAndText>, why: UnbindReason) {
            self.ended.push(why.to_string());
            em::stop();
        }
    }
    let ended = Log::default();
    let e = ended.clone();
    run_with_watchdog(move || {
        em::connect_pair(
            Lines { ended: e },
            Raw {
                bytes: b"short\nmuch too long\n",
                ended: Log::default(),
            },
        )
        .map(drop)
    })
    .unwrap();
    assert_eq!(
        ended.events(),
        [
            "Line(\"short\")",
            "codec error: line longer than 8 bytes (the codec's max_line_length)"
        ]
    );
}
