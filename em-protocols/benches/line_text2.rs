//! LineText2 in line mode against tokio-util's `LinesCodec`, decoding the
//! same input: 1 MiB of 30 to 50-byte lines (`"\r\n"` and `"\n"` ends),
//! fed in 16 KiB chunks, every frame decoded as soon as it is whole, both
//! codecs with the same 16 KiB line limit.
//!
//! * `LinesCodec`: tokio-util's, `String` lines (one copy and a UTF-8
//!   check per line).
//! * `LineText2`: `Bytes` lines, split off the read buffer (no copy).
//! * `LineText2+utf8`: the same, with each line checked as UTF-8, what a
//!   handler wanting `&str` does.
//! * `LineProtocol`: `String` lines like `LinesCodec` (copy and check), on
//!   LineText2's engine: the like-for-like comparison.
//!
//! `cargo bench -p em-protocols --bench line_text2 -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use em_protocols::{LineProtocol, LineText2, LineText2Frame};
use tokio_util::codec::{Decoder, LinesCodec};

const INPUT: usize = 1 << 20;
const CHUNK: usize = 16 * 1024;
const MAX_LINE: usize = 16 * 1024;

/// 1 MiB of printable lines of 30 to 50 bytes, some ending in "\r\n".
fn input() -> Vec<u8> {
    let mut out = Vec::with_capacity(INPUT + 64);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    while out.len() < INPUT {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = 30 + (seed % 21) as usize;
        out.extend((0..len).map(|i| b' ' + ((seed as usize + i * 7) % 94) as u8));
        if seed.is_multiple_of(3) {
            out.push(b'\r');
        }
        out.push(b'\n');
    }
    out
}

/// Feeds `input` to `codec` in `CHUNK`s, as a reader would, decoding
/// after each; returns the number of frames and hands each to `sink`.
fn run<D: Decoder>(codec: &mut D, input: &[u8], mut sink: impl FnMut(D::Item)) -> usize
where
    D::Error: std::fmt::Debug,
{
    let mut buf = BytesMut::with_capacity(4 * CHUNK);
    let mut frames = 0;
    for chunk in input.chunks(CHUNK) {
        buf.extend_from_slice(chunk);
        while let Some(frame) = codec.decode(&mut buf).expect("decodes") {
            sink(frame);
            frames += 1;
        }
    }
    frames
}

fn bench(c: &mut Criterion) {
    let input = input();
    let lines = input.iter().filter(|&&b| b == b'\n').count();
    let mut group = c.benchmark_group("lines_1MiB_16KiB_chunks");
    group.throughput(Throughput::Bytes(input.len() as u64));

    group.bench_function("LinesCodec", |b| {
        b.iter(|| {
            let mut codec = LinesCodec::new_with_max_length(MAX_LINE);
            let n = run(&mut codec, &input, |line| {
                black_box(line);
            });
            assert_eq!(n, lines);
        })
    });
    group.bench_function("LineText2", |b| {
        b.iter(|| {
            let mut codec = LineText2::new();
            codec.set_max_line_length(MAX_LINE);
            let n = run(&mut codec, &input, |frame| {
                black_box(frame);
            });
            assert_eq!(n, lines);
        })
    });
    group.bench_function("LineText2+utf8", |b| {
        b.iter(|| {
            let mut codec = LineText2::new();
            codec.set_max_line_length(MAX_LINE);
            let n = run(&mut codec, &input, |frame| {
                if let LineText2Frame::Line(line) = frame {
                    black_box(std::str::from_utf8(&line).expect("UTF-8"));
                }
            });
            assert_eq!(n, lines);
        })
    });
    group.bench_function("LineProtocol", |b| {
        b.iter(|| {
            let mut codec = LineProtocol::new_with_max_line_length(MAX_LINE);
            let n = run(&mut codec, &input, |line| {
                black_box(line);
            });
            assert_eq!(n, lines);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
