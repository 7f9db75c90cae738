//! File watchers (`em::watch_file`, EventMachine FW1): modified, moved and
//! deleted in that order then `unbind`, `path()` unchanged by a move, the
//! inotify events each verb stands for (and those no verb reports),
//! directories with entry names, a missing path, `stop_watching`, the
//! reactor's stop, a panicking callback, and watches notify would mix up
//! (the same file twice, a directory and a file in it, a new file at a
//! moved file's path).
//!
//! Real files in a scratch directory. Nothing sleeps: each test waits for
//! an event, under the watchdog. That an event is *not* reported is shown
//! with a sentinel: a later event of the same watch (or of one on the same
//! notify watcher), which cannot arrive before the earlier ones.

mod support;

use std::cell::RefCell;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::thread::{self, ThreadId};

use em::{FileWatch, FileWatcher};

use support::*;

type Hook = Box<dyn FnMut(&FileWatch, &str)>;

/// A watcher named `NAME` that logs `NAME VERB` or `NAME VERB ENTRY` for
/// each event and `NAME unbind` for its unbind, runs its hooks, and logs
/// `NAME wrong thread` for a callback off the reactor thread.
struct Recorder {
    name: &'static str,
    log: Log,
    thread: ThreadId,
    on_event: Hook,
    on_unbind: Box<dyn FnMut(&FileWatch)>,
}

impl Recorder {
    /// Call it on the reactor thread.
    fn new(name: &'static str, log: &Log) -> Self {
        Recorder {
            name,
            log: log.clone(),
            thread: thread::current().id(),
            on_event: Box::new(|_, _| {}),
            on_unbind: Box::new(|_| {}),
        }
    }

    /// Runs `f` after logging each event, with the event as logged.
    fn on_event(mut self, f: impl FnMut(&FileWatch, &str) + 'static) -> Self {
        self.on_event = Box::new(f);
        self
    }

    fn on_unbind(mut self, f: impl FnMut(&FileWatch) + 'static) -> Self {
        self.on_unbind = Box::new(f);
        self
    }

    /// Stops the reactor at its unbind.
    fn stopping(self) -> Self {
        self.on_unbind(|_| em::stop())
    }

    fn event(&mut self, watch: &FileWatch, verb: &str, entry: Option<&Path>) {
        self.check_thread();
        let event = match entry {
            Some(entry) => format!("{} {verb} {}", self.name, entry.display()),
            None => format!("{} {verb}", self.name),
        };
        self.log.push(event.clone());
        (self.on_event)(watch, &event);
    }

    fn check_thread(&self) {
        if thread::current().id() != self.thread || !em::reactor_thread() {
            self.log.push(format!("{} wrong thread", self.name));
        }
    }
}

impl FileWatcher for Recorder {
    fn file_modified(&mut self, watch: &FileWatch, entry: Option<&Path>) {
        self.event(watch, "modified", entry);
    }
    fn file_moved(&mut self, watch: &FileWatch, entry: Option<&Path>) {
        self.event(watch, "moved", entry);
    }
    fn file_deleted(&mut self, watch: &FileWatch, entry: Option<&Path>) {
        self.event(watch, "deleted", entry);
    }
    fn file_created(&mut self, watch: &FileWatch, entry: &Path) {
        self.event(watch, "created", Some(entry));
    }
    fn unbind(&mut self, watch: &FileWatch) {
        self.check_thread();
        self.log.push(format!("{} unbind", self.name));
        (self.on_unbind)(watch);
    }
}

/// Appends `data` in one write(2) (one `IN_MODIFY`), then closes.
fn append(path: &Path, data: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open to append")
        .write_all(data)
        .expect("append");
}

/// A new empty file `name` in `dir`.
fn touch_new(dir: &TempDir, name: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, b"").expect("create a file");
    path
}

/// FW1: writing fires `file_modified`, a rename `file_moved`, deleting
/// `file_deleted` (the watch has ended by then), then `unbind`; `path()`
/// is the original path throughout, even after the move; every callback
/// on the reactor thread.
#[test]
fn modified_moved_deleted_then_unbind_and_path_stays_the_original() {
    let dir = TempDir::new("fw-order");
    let file = touch_new(&dir, "watched.log");
    let moved_to = dir.join("moved.log");
    let log = Log::default();
    let (l, f) = (log.clone(), file.clone());
    let kept: Rc<RefCell<Option<FileWatch>>> = Rc::default();
    let k = kept.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let original = f.clone();
        let paths = l.clone();
        let handler = Recorder::new("w", &l)
            .on_event(move |watch, event| {
                if watch.path() != original {
                    paths.push(format!("path changed to {}", watch.path().display()));
                }
                // Each step once the one before was seen: no sleeps.
                match event {
                    "w modified" => fs::rename(&original, &moved_to).expect("rename"),
                    "w moved" => fs::remove_file(&moved_to).expect("remove"),
                    "w deleted" => paths.push(format!("watching: {}", watch.is_watching())),
                    _ => {}
                }
            })
            .stopping();
        let watch = em::watch_file(&f, handler)?;
        assert_eq!(watch.path(), f);
        assert!(watch.is_watching());
        *k.borrow_mut() = Some(watch);
        append(&f, b"hello\n");
        Ok(())
    })
    .expect("run");
    assert_eq!(
        log.events(),
        [
            "w modified",
            "w moved",
            "w deleted",
            "watching: false",
            "w unbind"
        ]
    );
    let watch = kept.take().expect("the watch");
    assert_eq!(watch.path(), file, "path() after the watch ended");
    assert!(!watch.is_watching());
}

/// What `file_modified` stands for: `IN_MODIFY` (a write, a truncation by
/// `O_TRUNC` or `ftruncate`), once per write(2), not again for the
/// `IN_CLOSE_WRITE` that follows it; and what no verb reports:
/// `IN_ATTRIB` (chmod, both times set as `touch` does, a new hard link),
/// `IN_OPEN`, `IN_CLOSE_WRITE` without a write, and `IN_CLOSE_NOWRITE` (a
/// read). The rename at the end is the sentinel.
#[test]
fn modified_is_a_change_of_content_and_nothing_else() {
    let dir = TempDir::new("fw-mapping");
    let file = touch_new(&dir, "f");
    let log = Log::default();
    let (l, f, d) = (log.clone(), file.clone(), dir.join("renamed"));
    run_with_watchdog(move || -> em::Result<()> {
        let l2 = l.clone();
        let handler = Recorder::new("w", &l)
            .on_event(move |watch, event| {
                if event == "w moved" {
                    watch.stop_watching();
                }
                let _ = &l2;
            })
            .stopping();
        em::watch_file(&f, handler)?;
        // Not reported: attributes, times, links, opens and reads.
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).expect("chmod");
        let file = OpenOptions::new().write(true).open(&f).expect("open");
        let epoch = std::time::SystemTime::UNIX_EPOCH;
        // Both times (`touch`); the modification time alone (`touch -m`)
        // is an IN_MODIFY for the kernel.
        file.set_times(fs::FileTimes::new().set_accessed(epoch).set_modified(epoch))
            .expect("set the times");
        drop(file); // IN_CLOSE_WRITE without a write
        fs::hard_link(&f, d.with_extension("link")).expect("link");
        fs::read(&f).expect("read");
        l.push("-- one write");
        append(&f, b"one write\n");
        // The sentinel.
        fs::rename(&f, &d).expect("rename");
        Ok(())
    })
    .expect("run");
    // The "-- one write" marker is logged in the run block, before any
    // event could be delivered.
    assert_eq!(
        log.events(),
        ["-- one write", "w modified", "w moved", "w unbind"]
    );
}

/// Truncations are changes of content: `O_TRUNC` and `ftruncate`.
#[test]
fn a_truncation_is_file_modified() {
    for how in ["O_TRUNC", "ftruncate"] {
        let dir = TempDir::new("fw-trunc");
        let file = dir.join("f");
        fs::write(&file, b"some content\n").expect("write");
        let log = Log::default();
        let (l, f, d) = (log.clone(), file.clone(), dir.join("renamed"));
        run_with_watchdog(move || -> em::Result<()> {
            let handler = Recorder::new("w", &l)
                .on_event(|watch, event| {
                    if event == "w moved" {
                        watch.stop_watching();
                    }
                })
                .stopping();
            em::watch_file(&f, handler)?;
            match how {
                "O_TRUNC" => drop(fs::File::create(&f).expect("open with O_TRUNC")),
                _ => OpenOptions::new()
                    .write(true)
                    .open(&f)
                    .expect("open")
                    .set_len(0)
                    .expect("ftruncate"),
            }
            fs::rename(&f, &d).expect("rename");
            Ok(())
        })
        .expect("run");
        assert_eq!(log.events(), ["w modified", "w moved", "w unbind"], "{how}");
    }
}

/// A watched directory reports its entries by name: created (made or
/// moved in), modified, moved (away), deleted, for files and
/// subdirectories; then its own deletion, with no name, ends the watch.
#[test]
fn a_directory_reports_its_entries_by_name() {
    let dir = TempDir::new("fw-dir");
    let watched = dir.join("d");
    fs::create_dir(&watched).expect("mkdir");
    let outside = dir.join("outside");
    fs::write(&outside, b"").expect("create");
    let log = Log::default();
    let (l, w) = (log.clone(), watched.clone());
    run_with_watchdog(move || -> em::Result<()> {
        let watch = em::watch_file(&w, Recorder::new("d", &l).stopping())?;
        assert_eq!(watch.path(), w);
        let a = w.join("a");
        fs::write(&a, b"").expect("create a"); // create, then open/close: one event
        append(&a, b"x");
        fs::rename(&a, w.join("b")).expect("rename a to b");
        fs::remove_file(w.join("b")).expect("remove b");
        fs::create_dir(w.join("sub")).expect("mkdir sub");
        fs::remove_dir(w.join("sub")).expect("rmdir sub");
        fs::rename(&outside, w.join("in")).expect("move in");
        fs::rename(w.join("in"), &outside).expect("move out");
        fs::remove_dir(&w).expect("rmdir the watched directory");
        Ok(())
    })
    .expect("run");
    assert_eq!(
        log.events(),
        [
            "d created a",
            "d modified a",
            "d moved a",
            "d created b",
            "d deleted b",
            "d created sub",
            "d deleted sub",
            "d created in",
            "d moved in",
            "d deleted",
            "d unbind",
        ]
    );
}

/// A path that does not exist is an `is_io()` error naming it, with the
/// system's `NotFound`; the handler is dropped unused. Outside a reactor,
/// `is_no_reactor()`.
#[test]
fn a_missing_path_is_an_io_error_naming_it() {
    let dir = TempDir::new("fw-missing");
    let missing = dir.join("no-such-file");
    let (flag, dropped) = DropFlag::new();
    let m = missing.clone();
    run_with_watchdog(move || {
        struct Unused(#[allow(dead_code)] DropFlag);
        impl FileWatcher for Unused {}
        let err = em::watch_file(&m, Unused(flag)).unwrap_err();
        assert!(err.is_io(), "{err:?}");
        assert!(
            err.to_string().contains(&*m.to_string_lossy()),
            "the message names the path: {err}"
        );
        assert_eq!(
            err.io_error().map(|e| e.kind()),
            Some(std::io::ErrorKind::NotFound)
        );
        em::stop();
    })
    .expect("run");
    assert!(dropped.get(), "the handler was dropped");
    struct Nothing;
    impl FileWatcher for Nothing {}
    let file = touch_new(&dir, "exists");
    assert!(em::watch_file(&file, Nothing).unwrap_err().is_no_reactor());
}

/// `stop_watching` (from outside the watch's callbacks): `unbind` follows
/// once, after `stop_watching` returned, and no event reaches the watch
/// afterwards. A second watch on the same notify watcher (files in one
/// directory) is the sentinel: its event comes after any the first could
/// have had. Idempotent.
#[test]
fn stop_watching_unbinds_once_and_no_event_follows() {
    let dir = TempDir::new("fw-stop");
    let (a, b) = (touch_new(&dir, "a"), touch_new(&dir, "b"));
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let sentinel = Recorder::new("b", &l).on_event(|watch, _| {
            watch.stop_watching();
            em::stop();
        });
        em::watch_file(&b, sentinel)?;
        let watch = em::watch_file(&a, Recorder::new("a", &l))?;
        watch.stop_watching();
        watch.stop_watching();
        assert!(!watch.is_watching());
        l.push("stop_watching returned");
        append(&a, b"after the stop\n");
        append(&b, b"sentinel\n");
        Ok(())
    })
    .expect("run");
    assert_eq!(
        log.events(),
        [
            "stop_watching returned",
            "a unbind",
            "b modified",
            "b unbind"
        ]
    );
}

/// `stop_watching` from the watch's own callback: `unbind` follows as soon
/// as the callback returns, and the later events are not delivered.
#[test]
fn stop_watching_from_a_callback_unbinds_after_it() {
    let dir = TempDir::new("fw-stop-inside");
    let file = touch_new(&dir, "f");
    let log = Log::default();
    let (l, f) = (log.clone(), file.clone());
    run_with_watchdog(move || -> em::Result<()> {
        let l2 = l.clone();
        let handler = Recorder::new("w", &l)
            .on_event(move |watch, _| {
                watch.stop_watching();
                l2.push("callback returns");
            })
            .stopping();
        em::watch_file(&f, handler)?;
        append(&f, b"one\n");
        let renamed = f.with_extension("moved");
        fs::rename(&f, &renamed).expect("rename");
        fs::remove_file(&renamed).expect("remove");
        Ok(())
    })
    .expect("run");
    assert_eq!(log.events(), ["w modified", "callback returns", "w unbind"]);
}

/// The reactor's stop ends every live watch: each gets its `unbind`
/// before `run` returns, a watch stopped just before the stop included
/// (its `unbind` was still due), once each.
#[test]
fn every_live_watch_unbinds_when_the_reactor_stops() {
    let dir = TempDir::new("fw-teardown");
    let (a, b) = (touch_new(&dir, "a"), touch_new(&dir, "b"));
    let sub = dir.join("sub");
    fs::create_dir(&sub).expect("mkdir");
    let log = Log::default();
    let l = log.clone();
    let kept: Rc<RefCell<Vec<FileWatch>>> = Rc::default();
    let k = kept.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let watches = [
            em::watch_file(&a, Recorder::new("a", &l))?,
            em::watch_file(&b, Recorder::new("b", &l))?,
            em::watch_file(&sub, Recorder::new("sub", &l))?,
        ];
        watches[1].stop_watching(); // its unbind is queued for a later tick
        em::stop();
        k.borrow_mut().extend(watches);
        Ok(())
    })
    .expect("run");
    let mut events = log.events();
    events.sort();
    assert_eq!(events, ["a unbind", "b unbind", "sub unbind"]);
    assert!(kept.borrow().iter().all(|w| !w.is_watching()));
}

/// A panic in a callback is contained: the error handler hears of it
/// under the callback's name, the watch ends with its `unbind`, and the
/// reactor and other watches go on.
#[test]
fn a_panicking_callback_is_contained_and_unbinds() {
    let dir = TempDir::new("fw-panic");
    let (a, b) = (touch_new(&dir, "a"), touch_new(&dir, "b"));
    let log = Log::default();
    let l = log.clone();
    let reports = Log::default();
    let r = reports.clone();
    em::set_error_handler(move |report| {
        r.push(format!("{}: {}", report.callback(), report.message()))
    });
    let result = run_with_watchdog(move || -> em::Result<()> {
        let bad = Recorder::new("a", &l).on_event(|_, _| panic!("boom"));
        let watch = em::watch_file(&a, bad)?;
        let b2 = b.clone();
        let after = l.clone();
        let good = Recorder::new("b", &l).on_event(move |w, _| {
            after.push(format!("a still watching: {}", watch.is_watching()));
            w.stop_watching();
            em::stop();
        });
        em::watch_file(&b2, good)?;
        append(&a, b"panics\n");
        append(&a, b"not delivered\n");
        append(&b, b"still served\n");
        Ok(())
    });
    em::clear_error_handler();
    result.expect("run");
    assert_eq!(reports.events(), ["file_modified: boom"]);
    assert_eq!(
        log.events(),
        [
            "a modified",
            "a unbind",
            "b modified",
            "a still watching: false",
            "b unbind"
        ]
    );
}

/// Whatever happens after `watch_file` returned is reported, however
/// soon: twenty files, each written right after its watch was made.
#[test]
fn an_event_right_after_watch_file_returns_is_never_lost() {
    let dir = TempDir::new("fw-soon");
    let files: Vec<PathBuf> = (0..20).map(|i| touch_new(&dir, &format!("f{i}"))).collect();
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let left = Rc::new(std::cell::Cell::new(files.len()));
        for file in &files {
            let left = left.clone();
            let handler = Recorder::new("w", &l).on_event(move |watch, _| {
                watch.stop_watching();
                left.set(left.get() - 1);
                if left.get() == 0 {
                    em::stop();
                }
            });
            em::watch_file(file, handler)?;
            append(file, b"x");
        }
        Ok(())
    })
    .expect("run");
    assert_eq!(log.count("w modified"), 20);
    assert_eq!(log.count("w unbind"), 20);
}

/// The same file watched twice: both watches hear its events, and
/// stopping one leaves the other watching (EventMachine's second
/// `stop_watching` raised, eventmachine#512).
#[test]
fn the_same_file_watched_twice_reports_to_both() {
    let dir = TempDir::new("fw-twice");
    let file = touch_new(&dir, "f");
    let log = Log::default();
    let (l, f) = (log.clone(), file.clone());
    run_with_watchdog(move || -> em::Result<()> {
        let first: Rc<RefCell<Option<FileWatch>>> = Rc::default();
        let seen = Rc::new(std::cell::Cell::new(0));
        // Once both heard the write, the first stops and the file goes.
        let recorder = |name| {
            let (first, seen, f) = (first.clone(), seen.clone(), f.clone());
            Recorder::new(name, &l).on_event(move |_, event| {
                if event.ends_with(" modified") {
                    seen.set(seen.get() + 1);
                    if seen.get() == 2 {
                        first.borrow().as_ref().expect("first").stop_watching();
                        fs::remove_file(&f).expect("remove");
                    }
                }
            })
        };
        *first.borrow_mut() = Some(em::watch_file(&f, recorder("1"))?);
        // Through another spelling of the same path.
        let dotted = f.parent().unwrap().join(".").join("f");
        let second = em::watch_file(&dotted, recorder("2").stopping())?;
        assert_eq!(second.path(), dotted);
        append(&f, b"x");
        Ok(())
    })
    .expect("run");
    let events = log.events();
    // Two notify watchers: no order between the watches.
    let of = |name: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e.starts_with(name))
            .cloned()
            .collect()
    };
    assert_eq!(of("1 "), ["1 modified", "1 unbind"]);
    assert_eq!(of("2 "), ["2 modified", "2 deleted", "2 unbind"]);
}

/// A directory and a file in it, both watched: the file's deletion
/// reaches both, the file's watch as its own `file_deleted` (notify alone
/// would drop the file's inotify watch when the directory reports it
/// deleted, losing it).
#[test]
fn a_directory_and_a_file_in_it_both_hear_their_events() {
    let dir = TempDir::new("fw-nested");
    let file = touch_new(&dir, "f");
    let log = Log::default();
    let (l, f, d) = (log.clone(), file.clone(), dir.path().to_path_buf());
    run_with_watchdog(move || -> em::Result<()> {
        let directory = em::watch_file(&d, Recorder::new("dir", &l))?;
        let file_watch = Recorder::new("file", &l).on_unbind(move |_| {
            directory.stop_watching();
            em::stop();
        });
        em::watch_file(&f, file_watch)?;
        append(&f, b"x");
        fs::rename(&f, f.with_extension("new")).expect("rename");
        fs::remove_file(f.with_extension("new")).expect("remove");
        Ok(())
    })
    .expect("run");
    let events = log.events();
    let file: Vec<_> = events.iter().filter(|e| e.starts_with("file ")).collect();
    assert_eq!(
        file,
        ["file modified", "file moved", "file deleted", "file unbind"]
    );
    let directory: Vec<_> = events
        .iter()
        .filter(|e| e.starts_with("dir ") && !e.ends_with("unbind"))
        .collect();
    // The directory's own events up to the file watch's end (it is stopped
    // from there).
    assert!(
        [
            "dir modified f",
            "dir moved f",
            "dir created f.new",
            "dir deleted f.new"
        ]
        .starts_with(&directory.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
        "{events:?}"
    );
    assert_eq!(log.count("dir unbind"), 1);
}

/// A file moved away while watched (a log rotated), and a new file made
/// at its old path and watched too: each watch hears only its own file,
/// though notify knows both by the same path.
#[test]
fn a_new_file_at_a_moved_files_path_is_a_watch_of_its_own() {
    let dir = TempDir::new("fw-rotate");
    let path = touch_new(&dir, "app.log");
    let rotated = dir.join("app.log.1");
    let log = Log::default();
    let (l, p) = (log.clone(), path.clone());
    run_with_watchdog(move || -> em::Result<()> {
        let unbound = Rc::new(std::cell::Cell::new(0));
        let recorder = |name| {
            let unbound = unbound.clone();
            Recorder::new(name, &l)
                .on_event(|watch, event| {
                    if event.ends_with(" modified") {
                        watch.stop_watching();
                    }
                })
                .on_unbind(move |_| {
                    unbound.set(unbound.get() + 1);
                    if unbound.get() == 2 {
                        em::stop();
                    }
                })
        };
        let old = em::watch_file(&p, recorder("old"))?;
        fs::rename(&p, &rotated).expect("rotate");
        fs::write(&p, b"").expect("create the new file");
        let new = em::watch_file(&p, recorder("new"))?;
        assert_eq!(old.path(), new.path());
        append(&p, b"new\n");
        append(&rotated, b"old\n");
        Ok(())
    })
    .expect("run");
    let events = log.events();
    let of = |name: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e.starts_with(name))
            .cloned()
            .collect()
    };
    assert_eq!(of("old "), ["old moved", "old modified", "old unbind"]);
    assert_eq!(of("new "), ["new modified", "new unbind"]);
}

/// Two names of one file (a hard link): each watch hears the write, as
/// each name's own.
#[test]
fn two_hard_links_to_one_file_are_two_watches() {
    let dir = TempDir::new("fw-link");
    let file = touch_new(&dir, "f");
    let link = dir.join("link");
    fs::hard_link(&file, &link).expect("link");
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let heard = Rc::new(std::cell::Cell::new(0));
        let recorder = |name| {
            let heard = heard.clone();
            Recorder::new(name, &l).on_event(move |watch, _| {
                watch.stop_watching();
                heard.set(heard.get() + 1);
                if heard.get() == 2 {
                    em::stop();
                }
            })
        };
        em::watch_file(&file, recorder("file"))?;
        let by_link = em::watch_file(&link, recorder("link"))?;
        assert_eq!(by_link.path(), link);
        append(&file, b"x");
        Ok(())
    })
    .expect("run");
    let mut events = log.events();
    events.sort();
    assert_eq!(
        events,
        [
            "file modified",
            "file unbind",
            "link modified",
            "link unbind"
        ]
    );
}
