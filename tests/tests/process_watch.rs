//! Watching a process (`em::watch_process`, EventMachine's
//! `EM.watch_process`, which EventMachine cannot do on Linux): a child of
//! the test killed, a process that is not ours, one that has already
//! exited, a pid that does not exist, `stop_watching`, the reactor's stop,
//! a panicking callback.
//!
//! Real processes (`sleep`), killed by the test; nothing sleeps to
//! synchronise, every run is under the watchdog.

mod support;

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::thread::{self, ThreadId};

use em::{ProcessWatch, ProcessWatcher};

use support::*;

/// A watcher named `NAME` that logs `NAME exited` and `NAME unbind` (and
/// `NAME wrong thread` for a callback off the reactor thread), and runs
/// its hooks.
struct Recorder {
    name: &'static str,
    log: Log,
    thread: ThreadId,
    on_exit: Box<dyn FnMut(&ProcessWatch)>,
    on_unbind: Box<dyn FnMut(&ProcessWatch)>,
}

impl Recorder {
    /// Call it on the reactor thread.
    fn new(name: &'static str, log: &Log) -> Self {
        Recorder {
            name,
            log: log.clone(),
            thread: thread::current().id(),
            on_exit: Box::new(|_| {}),
            on_unbind: Box::new(|_| {}),
        }
    }

    fn on_exit(mut self, f: impl FnMut(&ProcessWatch) + 'static) -> Self {
        self.on_exit = Box::new(f);
        self
    }

    /// Stops the reactor at its unbind.
    fn stopping(mut self) -> Self {
        self.on_unbind = Box::new(|_| em::stop());
        self
    }

    fn check_thread(&self) {
        if thread::current().id() != self.thread || !em::reactor_thread() {
            self.log.push(format!("{} wrong thread", self.name));
        }
    }
}

impl ProcessWatcher for Recorder {
    fn process_exited(&mut self, watch: &ProcessWatch) {
        self.check_thread();
        self.log.push(format!("{} exited", self.name));
        (self.on_exit)(watch);
    }

    fn unbind(&mut self, watch: &ProcessWatch) {
        self.check_thread();
        self.log.push(format!("{} unbind", self.name));
        (self.on_unbind)(watch);
    }
}

/// `sleep 30`, a child of the test.
fn sleeper() -> Child {
    Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep")
}

/// Sends SIGKILL to `pid` with kill(1).
fn kill(pid: u32) {
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {pid}: {status}");
}

/// A child of the test, killed after the watch is in place:
/// `process_exited`, then `unbind`, on the reactor thread; `pid()` is the
/// child's. The test reaps the child itself.
#[test]
fn a_child_killed_is_process_exited_then_unbind() {
    let mut child = sleeper();
    let pid = child.id();
    let log = Log::default();
    let l = log.clone();
    let kept: Rc<RefCell<Option<ProcessWatch>>> = Rc::default();
    let k = kept.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let pids = l.clone();
        let handler = Recorder::new("p", &l)
            .on_exit(move |watch| {
                pids.push(format!("pid {}", watch.pid()));
                pids.push(format!("watching: {}", watch.is_watching()));
            })
            .stopping();
        let watch = em::watch_process(pid, handler)?;
        assert_eq!(watch.pid(), pid);
        assert!(watch.is_watching());
        *k.borrow_mut() = Some(watch);
        kill(pid);
        Ok(())
    })
    .expect("run");
    assert_eq!(
        log.events(),
        [
            "p exited",
            format!("pid {pid}").as_str(),
            "watching: false",
            "p unbind"
        ]
    );
    assert!(!kept.take().expect("the watch").is_watching());
    let status = child.wait().expect("reap the child");
    assert!(!status.success(), "killed: {status}");
}

/// A process that is not ours (a grandchild, reparented once its parent
/// shell exited), killed with kill(1): `process_exited`. A closure is a
/// handler.
#[test]
fn a_process_that_is_not_ours_is_watched_too() {
    let mut shell = Command::new("sh")
        .args(["-c", "sleep 30 >/dev/null 2>&1 & echo $!"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let mut line = String::new();
    BufReader::new(shell.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the pid");
    assert!(shell.wait().expect("wait for sh").success());
    let pid: u32 = line.trim().parse().expect("a pid");
    let exited = Rc::new(RefCell::new(Vec::new()));
    let e = exited.clone();
    run_with_watchdog(move || -> em::Result<()> {
        em::watch_process(pid, move |watch: &ProcessWatch| {
            e.borrow_mut().push(watch.pid());
            em::stop();
        })?;
        kill(pid);
        Ok(())
    })
    .expect("run");
    assert_eq!(*exited.borrow(), [pid]);
}

/// A process that has exited but is not reaped yet (a zombie) is reported
/// at once: a second watch made from the first one's `process_exited`.
#[test]
fn a_process_that_already_exited_is_reported() {
    let mut child = sleeper();
    let pid = child.id();
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let l2 = l.clone();
        let first = Recorder::new("first", &l).on_exit(move |watch| {
            let again = em::watch_process(watch.pid(), Recorder::new("again", &l2).stopping())
                .expect("watch the exited process");
            assert!(again.is_watching());
        });
        em::watch_process(pid, first)?;
        kill(pid);
        Ok(())
    })
    .expect("run");
    assert_eq!(
        log.events(),
        [
            "first exited",
            "first unbind",
            "again exited",
            "again unbind"
        ]
    );
    child.wait().expect("reap");
}

/// A pid no process has is an `is_io()` error naming it; pid 0 and pids
/// past `i32::MAX` are invalid arguments; the handler is dropped.
/// Outside a reactor, `is_no_reactor()`.
#[test]
fn a_pid_that_does_not_exist_is_an_error() {
    // A child that has been reaped: its pid is free (Linux hands pids out
    // in increasing order, so it is not reused this soon).
    let mut gone = Command::new("true").spawn().expect("spawn true");
    let pid = gone.id();
    gone.wait().expect("reap");
    let (flag, dropped) = DropFlag::new();
    run_with_watchdog(move || {
        let handler = move |_: &ProcessWatch| {
            let _ = &flag;
        };
        let err = em::watch_process(pid, handler).unwrap_err();
        assert!(err.is_io(), "{err:?}");
        assert!(err.to_string().contains(&pid.to_string()), "{err}");
        for bad in [0, u32::MAX, i32::MAX as u32 + 1] {
            let err = em::watch_process(bad, |_: &ProcessWatch| {}).unwrap_err();
            assert!(err.is_invalid_argument(), "pid {bad}: {err:?}");
        }
        em::stop();
    })
    .expect("run");
    assert!(dropped.get(), "the handler was dropped");
    let err = em::watch_process(std::process::id(), |_: &ProcessWatch| {}).unwrap_err();
    assert!(err.is_no_reactor());
}

/// `stop_watching`: `unbind` follows once, after `stop_watching` returned,
/// and `process_exited` never runs; the process is left alone. A second
/// watch on the same process is the sentinel that it exited.
#[test]
fn stop_watching_unbinds_once_and_process_exited_never_runs() {
    let mut child = sleeper();
    let pid = child.id();
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let stopped = em::watch_process(pid, Recorder::new("stopped", &l))?;
        em::watch_process(pid, Recorder::new("sentinel", &l).stopping())?;
        stopped.stop_watching();
        stopped.stop_watching();
        assert!(!stopped.is_watching());
        l.push("stop_watching returned");
        kill(pid);
        Ok(())
    })
    .expect("run");
    let events = log.events();
    assert_eq!(events[0], "stop_watching returned", "{events:?}");
    assert_eq!(log.count("stopped unbind"), 1, "{events:?}");
    assert_eq!(log.count("stopped exited"), 0, "{events:?}");
    assert_eq!(
        events.last().map(String::as_str),
        Some("sentinel unbind"),
        "{events:?}"
    );
    assert_eq!(log.count("sentinel exited"), 1, "{events:?}");
    child.wait().expect("reap");
}

/// The reactor's stop ends every live process watch: `unbind` before
/// `run` returns, once, and no `process_exited`.
#[test]
fn every_live_process_watch_unbinds_when_the_reactor_stops() {
    let mut children = [sleeper(), sleeper()];
    let pids = children.each_ref().map(Child::id);
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        em::watch_process(pids[0], Recorder::new("a", &l))?;
        em::watch_process(pids[1], Recorder::new("b", &l))?;
        em::stop();
        Ok(())
    })
    .expect("run");
    assert_eq!(log.events(), ["a unbind", "b unbind"]);
    for (child, pid) in children.iter_mut().zip(pids) {
        kill(pid);
        child.wait().expect("reap");
    }
}

/// A panic in `process_exited` is contained: the error handler hears of
/// it under that name, and `unbind` follows.
#[test]
fn a_panicking_process_exited_is_contained() {
    let mut child = sleeper();
    let pid = child.id();
    let log = Log::default();
    let l = log.clone();
    let reports = Log::default();
    let r = reports.clone();
    em::set_error_handler(move |report| {
        r.push(format!("{}: {}", report.callback(), report.message()))
    });
    let result = run_with_watchdog(move || -> em::Result<()> {
        let handler = Recorder::new("p", &l)
            .on_exit(|_| panic!("boom"))
            .stopping();
        em::watch_process(pid, handler)?;
        kill(pid);
        Ok(())
    });
    em::clear_error_handler();
    result.expect("run");
    assert_eq!(reports.events(), ["process_exited: boom"]);
    assert_eq!(log.events(), ["p exited", "p unbind"]);
    child.wait().expect("reap");
}
