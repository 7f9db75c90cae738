//! Child processes as connections (`popen`, `system`): real programs
//! (`cat`, `sh`, `sleep`, `sort`), real pipes and signals, each run under
//! the watchdog.

mod support;

use std::cell::RefCell;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use em::{Conn, Connection, Popen, Signal, Stderr, UnbindReason};
use support::{run_builder_with_watchdog, run_with_watchdog};
use tokio_util::codec::{BytesCodec, LinesCodec};

/// What a child's connection saw.
#[derive(Debug, Default)]
struct Seen {
    lines: Vec<String>,
    reason: Option<UnbindReason>,
    status: Option<ExitStatus>,
    /// Whether the reactor ran something else between the end of the
    /// connection and its `unbind` (it is never blocked on the child).
    ticked: bool,
}

type Shared = Rc<RefCell<Seen>>;

/// Keeps every line, stops the reactor at `unbind`.
struct Lines {
    seen: Shared,
    /// Lines to write to the child's stdin at `post_init`, and whether to
    /// close its stdin after them.
    input: Vec<&'static str>,
    close_stdin: bool,
    stop: bool,
}

impl Lines {
    fn new(seen: &Shared) -> Lines {
        Lines {
            seen: seen.clone(),
            input: Vec::new(),
            close_stdin: false,
            stop: true,
        }
    }
}

impl Connection for Lines {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(64 * 1024)
    }
    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        for line in &self.input {
            conn.send_data(*line);
        }
        if self.close_stdin {
            conn.close_connection_after_writing();
        }
    }
    fn receive_data(&mut self, _: &Conn<LinesCodec>, line: String) {
        self.seen.borrow_mut().lines.push(line);
    }
    fn unbind(&mut self, conn: &Conn<LinesCodec>, reason: UnbindReason) {
        let mut seen = self.seen.borrow_mut();
        seen.status = conn.exit_status();
        seen.reason = Some(reason);
        if self.stop {
            em::stop();
        }
    }
}

fn shared() -> Shared {
    Rc::new(RefCell::new(Seen::default()))
}

fn exited_with(seen: &Seen) -> ExitStatus {
    match &seen.reason {
        Some(UnbindReason::Exited(status)) => {
            assert_eq!(Some(*status), seen.status, "exit_status in unbind");
            *status
        }
        other => panic!("expected Exited, got {other:?}"),
    }
}

#[test]
fn sh_exit_status_arrives_in_unbind_after_its_output() {
    let seen = shared();
    let s = seen.clone();
    run_with_watchdog(move || {
        let conn = em::popen(["sh", "-c", "echo one; echo two; exit 3"], Lines::new(&s))?;
        let pid = conn.pid().expect("pid");
        assert_eq!(conn.peer_addr(), Some(em::Addr::Process(pid)));
        assert_eq!(conn.exit_status(), None, "not exited yet");
        Ok::<_, em::Error>(())
    })
    .unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.lines, ["one", "two"]);
    assert_eq!(exited_with(&seen).code(), Some(3));
}

/// Writes `total` bytes to `cat` in chunks within the watermarks, half
/// closes, and counts what comes back.
struct CatPump {
    chunk: Bytes,
    left: usize,
    /// Small watermarks (64 KiB / 16 KiB), or the reactor's (1 MiB / 256 KiB).
    small: bool,
    got: Rc<RefCell<(usize, Option<UnbindReason>, u32)>>,
}

impl CatPump {
    fn produce(&mut self, conn: &Conn<BytesCodec>) {
        while self.left > 0 && !conn.is_above_high_watermark() {
            let n = self.left.min(self.chunk.len());
            conn.send_data(self.chunk.slice(..n));
            self.left -= n;
        }
        if self.left == 0 {
            conn.close_connection_after_writing();
        }
    }
}

impl Connection for CatPump {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        if self.small {
            conn.set_outbound_watermarks(64 * 1024, 16 * 1024).unwrap();
        }
        self.produce(conn);
    }
    fn outbound_drained(&mut self, conn: &Conn<BytesCodec>) {
        self.got.borrow_mut().2 += 1;
        self.produce(conn);
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        self.got.borrow_mut().0 += data.len();
    }
    fn unbind(&mut self, _: &Conn<BytesCodec>, reason: UnbindReason) {
        self.got.borrow_mut().1 = Some(reason);
        em::stop();
    }
}

/// Pipes `total` bytes through `cat` in `chunk`-byte sends with
/// [`CatPump`]; checks that every byte came back and that cat exited
/// cleanly; returns how often `outbound_drained` ran.
fn through_cat(total: usize, chunk: usize, small: bool) -> u32 {
    let got = Rc::new(RefCell::new((0, None, 0)));
    let g = got.clone();
    run_with_watchdog(move || {
        let pump = CatPump {
            chunk: Bytes::from(vec![b'x'; chunk]),
            left: total,
            small,
            got: g,
        };
        em::popen(["cat"], pump).map(drop)
    })
    .unwrap();
    let (bytes, reason, drained) = got.take();
    assert_eq!(bytes, total, "every byte came back");
    assert!(
        matches!(reason, Some(UnbindReason::Exited(s)) if s.success()),
        "{reason:?}"
    );
    drained
}

#[test]
fn cat_echoes_a_mebibyte_through_stdin_and_stdout_within_the_watermarks() {
    let drained = through_cat(1 << 20, 16 * 1024, true);
    assert!(
        drained > 0,
        "outbound_drained ran on the child's connection"
    );
}

#[test]
fn closing_stdin_behind_a_full_queue_keeps_reading_the_output() {
    // 1 MiB queued when stdin is closed after writing: far more than the
    // pipes hold, so cat blocks on its stdout until em reads it, which em
    // must do while the queue drains (reading stopped there once).
    through_cat(16 << 20, 64 * 1024, false);
}

#[test]
fn a_child_that_stops_reading_its_stdin_still_delivers_its_output() {
    // head reads one line, prints it and exits while em still has most of
    // 400 KiB queued for its stdin: the write fails (EPIPE), the rest is
    // dropped, and its output is still delivered, then its exit.
    let seen = shared();
    let s = seen.clone();
    run_with_watchdog(move || {
        let conn = em::popen(["head", "-n", "1"], Lines::new(&s))?;
        for i in 0..40_000 {
            conn.send_data(format!("line{i:04}"));
        }
        Ok::<_, em::Error>(())
    })
    .unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.lines, ["line0000"]);
    assert!(exited_with(&seen).success());
}

#[test]
fn closing_stdin_after_writing_lets_sort_answer() {
    let seen = shared();
    let s = seen.clone();
    run_with_watchdog(move || {
        let mut h = Lines::new(&s);
        h.input = vec!["pear", "apple", "fig"];
        h.close_stdin = true;
        let conn = Popen::new("sort").env("LC_ALL", "C").start(h)?;
        // Closing after writing: nothing more may be sent.
        assert!(conn.try_send_data("late").unwrap_err().is_closed());
        Ok::<_, em::Error>(())
    })
    .unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.lines, ["apple", "fig", "pear"]);
    assert!(exited_with(&seen).success());
}

#[test]
fn a_child_killed_by_sigkill_reports_the_signal() {
    let seen = shared();
    let s = seen.clone();
    run_with_watchdog(move || {
        let conn = em::popen(["sleep", "60"], Lines::new(&s))?;
        conn.kill(Signal::KILL)?;
        Ok::<_, em::Error>(())
    })
    .unwrap();
    let seen = seen.borrow();
    assert_eq!(exited_with(&seen).signal(), Some(Signal::KILL.as_raw()));
}

#[test]
fn a_child_that_closes_stdout_early_is_waited_for_not_killed() {
    let seen = shared();
    let s = seen.clone();
    run_with_watchdog(move || {
        em::popen_shell("echo early; exec >&-; sleep 0.3; exit 4", Lines::new(&s)).map(drop)
    })
    .unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.lines, ["early"]);
    // Killed, it would report a signal; it exited on its own.
    assert_eq!(exited_with(&seen).code(), Some(4));
}

#[test]
fn close_connection_ends_a_child_with_sigterm_after_the_grace_without_blocking() {
    let seen = shared();
    let s = seen.clone();
    let builder = em::Reactor::builder().child_grace(Duration::from_millis(50));
    run_builder_with_watchdog(builder, move || {
        let conn = em::popen(["sleep", "60"], Lines::new(&s))?;
        conn.close_connection();
        // The reactor goes on while the child is waited for.
        let s = s.clone();
        em::next_tick(move || s.borrow_mut().ticked = true);
        Ok::<_, em::Error>(())
    })
    .unwrap();
    let seen = seen.borrow();
    assert!(seen.ticked, "a tick ran before the child's unbind");
    assert!(
        matches!(seen.reason, Some(UnbindReason::Closed)),
        "{:?}",
        seen.reason
    );
    let status = seen.status.expect("exit status known in unbind");
    assert_eq!(status.signal(), Some(Signal::TERM.as_raw()));
}

/// Whether process `pid` still exists, a zombie included (`/proc/PID`).
fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn stop_kills_a_child_that_ignores_sigterm_and_leaves_no_zombie() {
    let seen = shared();
    let s = seen.clone();
    let pid = Rc::new(RefCell::new(0));
    let p = pid.clone();
    let builder = em::Reactor::builder().child_grace(Duration::from_millis(50));
    run_builder_with_watchdog(builder, move || {
        struct Stubborn(Shared);
        impl Connection for Stubborn {
            type Codec = LinesCodec;
            fn codec(&self) -> LinesCodec {
                LinesCodec::new()
            }
            fn receive_data(&mut self, _: &Conn<LinesCodec>, line: String) {
                // Its trap is set: stop the reactor now.
                assert_eq!(line, "ready");
                em::stop();
            }
            fn unbind(&mut self, conn: &Conn<LinesCodec>, reason: UnbindReason) {
                let mut seen = self.0.borrow_mut();
                seen.status = conn.exit_status();
                seen.reason = Some(reason);
            }
        }
        // An ignored signal stays ignored across exec: `sleep` ignores
        // SIGTERM.
        let conn = em::popen_shell("trap '' TERM; echo ready; exec sleep 60", Stubborn(s))?;
        *p.borrow_mut() = conn.pid().unwrap();
        Ok::<_, em::Error>(())
    })
    .unwrap();
    let seen = seen.borrow();
    assert!(matches!(seen.reason, Some(UnbindReason::ReactorStopped)));
    let status = seen.status.expect("exit status known in unbind");
    assert_eq!(status.signal(), Some(Signal::KILL.as_raw()), "{status}");
    let pid = *pid.borrow();
    assert!(!process_exists(pid), "child {pid} left behind (a zombie?)");
}

#[test]
fn a_hundred_children_at_once() {
    const N: usize = 100;
    let done = Rc::new(RefCell::new(Vec::new()));
    let d = done.clone();
    run_with_watchdog(move || {
        struct One(usize, Rc<RefCell<Vec<(usize, String, i32)>>>, String);
        impl Connection for One {
            type Codec = LinesCodec;
            fn codec(&self) -> LinesCodec {
                LinesCodec::new()
            }
            fn receive_data(&mut self, _: &Conn<LinesCodec>, line: String) {
                self.2 = line;
            }
            fn unbind(&mut self, _: &Conn<LinesCodec>, reason: UnbindReason) {
                let UnbindReason::Exited(status) = reason else {
                    panic!("{reason}")
                };
                let mut done = self.1.borrow_mut();
                done.push((self.0, std::mem::take(&mut self.2), status.code().unwrap()));
                if done.len() == N {
                    em::stop();
                }
            }
        }
        for i in 0..N {
            let script = format!("echo child{i}; exit {}", i % 7);
            em::popen(["sh", "-c", &script], One(i, d.clone(), String::new()))?;
        }
        Ok::<_, em::Error>(())
    })
    .unwrap();
    let mut done = done.take();
    done.sort();
    assert_eq!(done.len(), N);
    for (i, (n, line, code)) in done.into_iter().enumerate() {
        assert_eq!((n, line, code), (i, format!("child{i}"), (i % 7) as i32));
    }
}

#[test]
fn system_gives_stdout_only_and_the_status() {
    // PR1: stderr is not captured.
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    run_with_watchdog(move || {
        let pid = em::system(
            ["sh", "-c", "echo out; echo err 1>&2; exit 3"],
            move |out, status| {
                *g.borrow_mut() = Some((out, status));
                em::stop();
            },
        )?;
        assert!(pid > 0);
        Ok::<_, em::Error>(())
    })
    .unwrap();
    let (out, status) = got.take().expect("system called back");
    assert_eq!(&out[..], b"out\n");
    assert_eq!(status.code(), Some(3));
}

#[test]
fn system_async_awaits_output_and_status() {
    let (out, status) = em::synchrony(async {
        let (out, status) = em::system_async(["sh", "-c", "printf 'a\\nb\\n'; exit 1"]).await?;
        // A child that reads stdin sees its end at once: no hang.
        let (cat, _) = em::system_async(["cat"]).await?;
        assert!(cat.is_empty());
        Ok::<_, em::Error>((out, status))
    })
    .unwrap()
    .unwrap();
    assert_eq!(&out[..], b"a\nb\n");
    assert_eq!(status.code(), Some(1));
}

#[test]
fn stderr_merged_or_discarded_or_to_its_own_connection() {
    let merged = em::synchrony(
        Popen::shell("echo out; echo err >&2")
            .stderr(Stderr::Merge)
            .output(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(&merged.0[..], b"out\nerr\n");

    let discarded = em::synchrony(
        Popen::shell("echo out; echo err >&2")
            .stderr(Stderr::Null)
            .output(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(&discarded.0[..], b"out\n");

    let out = shared();
    let err = shared();
    let (o, e) = (out.clone(), err.clone());
    run_with_watchdog(move || {
        let mut stderr = Lines::new(&e);
        stderr.stop = false;
        let conn = Popen::shell("echo out; echo err1 >&2; echo err2 >&2; exit 2")
            .stderr_to(stderr)
            .start(Lines::new(&o))?;
        assert!(conn.pid().is_some());
        Ok::<_, em::Error>(())
    })
    .unwrap();
    let (out, err) = (out.borrow(), err.borrow());
    assert_eq!(out.lines, ["out"]);
    assert_eq!(exited_with(&out).code(), Some(2));
    assert_eq!(err.lines, ["err1", "err2"]);
    assert!(
        matches!(err.reason, Some(UnbindReason::PeerClosed)),
        "{:?}",
        err.reason
    );
}

#[test]
fn pause_holds_a_childs_output_until_resume() {
    let seen = shared();
    let s = seen.clone();
    run_with_watchdog(move || {
        struct Paused(Shared);
        impl Connection for Paused {
            type Codec = LinesCodec;
            fn codec(&self) -> LinesCodec {
                LinesCodec::new()
            }
            fn post_init(&mut self, conn: &Conn<LinesCodec>) {
                conn.pause();
                conn.send_data("hello");
                conn.close_connection_after_writing();
                let conn = conn.clone();
                let seen = self.0.clone();
                // Whenever cat has answered, nothing is delivered while
                // paused; resume delivers it.
                em::add_timer(Duration::from_millis(200), move || {
                    assert!(seen.borrow().lines.is_empty(), "nothing while paused");
                    conn.resume();
                })
                .unwrap();
            }
            fn receive_data(&mut self, _: &Conn<LinesCodec>, line: String) {
                self.0.borrow_mut().lines.push(line);
            }
            fn unbind(&mut self, conn: &Conn<LinesCodec>, reason: UnbindReason) {
                let mut seen = self.0.borrow_mut();
                seen.status = conn.exit_status();
                seen.reason = Some(reason);
                em::stop();
            }
        }
        em::popen(["cat"], Paused(s)).map(drop)
    })
    .unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.lines, ["hello"]);
    assert!(exited_with(&seen).success());
}

#[test]
fn an_inactivity_timeout_ends_a_silent_child() {
    let seen = shared();
    let s = seen.clone();
    let builder = em::Reactor::builder().child_grace(Duration::from_millis(20));
    run_builder_with_watchdog(builder, move || {
        let conn = em::popen(["sleep", "60"], Lines::new(&s))?;
        conn.set_comm_inactivity_timeout(Duration::from_millis(100));
        Ok::<_, em::Error>(())
    })
    .unwrap();
    let seen = seen.borrow();
    assert!(
        matches!(seen.reason, Some(UnbindReason::InactivityTimeout)),
        "{:?}",
        seen.reason
    );
    assert_eq!(
        seen.status.and_then(|s| s.signal()),
        Some(Signal::TERM.as_raw())
    );
}

#[test]
fn bad_commands_are_typed_errors() {
    run_with_watchdog(|| {
        let missing = em::popen(["/nonexistent/program"], Lines::new(&shared())).unwrap_err();
        assert!(missing.is_io(), "{missing}");
        assert!(
            missing.to_string().contains("/nonexistent/program"),
            "{missing}"
        );
        let empty = em::popen(Vec::<String>::new(), Lines::new(&shared())).unwrap_err();
        assert!(empty.is_invalid_argument(), "{empty}");
        assert_eq!(em::connection_count(), 0, "nothing left running");
        em::stop();
    })
    .unwrap();
    let outside = em::popen(["true"], Lines::new(&shared())).unwrap_err();
    assert!(outside.is_no_reactor(), "{outside}");
}

#[test]
fn kill_is_for_live_children_only() {
    let seen = shared();
    let s = seen.clone();
    run_with_watchdog(move || {
        // Not a child: unsupported.
        let (a, _b) = em::connect_pair(Lines::new(&shared()), Lines::new(&shared()))?;
        assert!(a.kill(Signal::TERM).unwrap_err().is_unsupported());
        assert_eq!(a.pid(), None);

        struct Check(Shared);
        impl Connection for Check {
            type Codec = LinesCodec;
            fn codec(&self) -> LinesCodec {
                LinesCodec::new()
            }
            fn receive_data(&mut self, _: &Conn<LinesCodec>, _: String) {}
            fn unbind(&mut self, conn: &Conn<LinesCodec>, reason: UnbindReason) {
                // Reaped: its pid may be another process's now.
                assert!(conn.kill(Signal::TERM).unwrap_err().is_closed());
                self.0.borrow_mut().reason = Some(reason);
                self.0.borrow_mut().status = conn.exit_status();
                em::stop();
            }
        }
        let conn = em::popen(["true"], Check(s))?;
        assert!(conn.pid().is_some());
        Ok::<_, em::Error>(())
    })
    .unwrap();
    assert!(exited_with(&seen.borrow()).success());
}
