//! `tail FILE`: `tail -f` on em's file watcher ([`em::watch_file`]).
//! Prints to stdout every byte appended to FILE from the moment it starts
//! (what is there already is skipped), as soon as the watcher reports the
//! write. Prints `tail: following FILE from byte N` to stderr once
//! ready; stops gracefully, with exit status 0, on SIGINT/SIGTERM. Logs go
//! to stderr (`RUST_LOG`).
//!
//! * **Reading.** On each `file_modified`, plain std reads on the reactor
//!   thread (`pread(2)` from the position read up to), not `em::defer`:
//!   appended lines are a few pages from the page cache, far cheaper to
//!   read in place than to hand to a thread pool and back. A large
//!   append is read 1 MiB per reactor turn (the rest on the next tick), so
//!   a burst never holds the reactor long.
//! * **Following.** Like `tail -f` (GNU's `--follow=descriptor`), it
//!   follows the file, not the name: the file is read through the
//!   descriptor opened at start, so after a rename (a log rotated away) it
//!   keeps printing what is written to the renamed file.
//! * **Truncation.** When the file is found shorter than what was read of
//!   it, it was truncated (`> FILE`, a log rotated by copy-and-truncate):
//!   `tail: FILE: file truncated` goes to stderr, as GNU tail says it, and
//!   printing goes on from the start of the file, whose content is new.
//!   As for any `tail`, a truncation followed by writes past the old
//!   length before the watcher reports it looks like an append.
//! * **Deletion.** While tail holds the file open, the file lives on after
//!   an unlink (Linux reports the deletion only when the last descriptor
//!   is closed), so tail waits, as `tail -f` does. If the watch ends some
//!   other way, tail says so and exits with status 1.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use clap::Parser;
use em::{FileWatch, FileWatcher};

/// Prints what is appended to FILE, as it is written.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The file to follow.
    file: PathBuf,
}

/// How much is read per reactor turn.
const READ_PER_TURN: usize = 1 << 20;

/// The followed file and how far it has been printed.
struct Follower {
    path: PathBuf,
    file: File,
    /// Bytes of the file read so far (the offset of the next read).
    position: u64,
    buf: Vec<u8>,
    /// The rest of a large append is queued for the next tick.
    queued: bool,
}

impl Follower {
    /// Prints what was appended since the last read, up to
    /// [`READ_PER_TURN`]; true if there may be more.
    fn print_new(&mut self) -> io::Result<bool> {
        let len = self.file.metadata()?.len();
        if len < self.position {
            report(&format!("{}: file truncated", self.path.display()));
            self.position = 0;
        }
        let mut stdout = io::stdout().lock();
        let mut read = 0;
        while read < READ_PER_TURN {
            let n = self.file.read_at(&mut self.buf, self.position)?;
            if n == 0 {
                stdout.flush()?;
                return Ok(false);
            }
            stdout.write_all(&self.buf[..n])?;
            self.position += n as u64;
            read += n;
        }
        stdout.flush()?;
        Ok(true)
    }
}

/// Prints what is new, on this tick and, for a large append, the next
/// ones; a failed read or write stops the program (with status 0 when
/// stdout was closed by its reader, 1 otherwise).
fn catch_up(follower: &Rc<RefCell<Follower>>, failed: &Rc<RefCell<Option<String>>>) {
    let mut state = follower.borrow_mut();
    match state.print_new() {
        Ok(false) => {}
        Ok(true) => {
            state.queued = true;
            let (follower, failed) = (follower.clone(), failed.clone());
            em::next_tick(move || {
                follower.borrow_mut().queued = false;
                catch_up(&follower, &failed);
            });
        }
        // Nobody reads the output any more (`tail FILE | head`): stop,
        // quietly, with status 0.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => em::stop(),
        Err(e) => {
            *failed.borrow_mut() = Some(format!("cannot follow: {e}"));
            em::stop();
        }
    }
}

/// The watch's handler: each modification prints what is new.
struct Tail {
    follower: Rc<RefCell<Follower>>,
    /// Why the program stops, when it is not a signal.
    failed: Rc<RefCell<Option<String>>>,
}

impl FileWatcher for Tail {
    fn file_modified(&mut self, _: &FileWatch, _: Option<&Path>) {
        // With a catch-up queued, that one reads this write too.
        if !self.follower.borrow().queued {
            catch_up(&self.follower, &self.failed);
        }
    }

    fn file_moved(&mut self, watch: &FileWatch, _: Option<&Path>) {
        tracing::info!(path = %watch.path().display(), "the file was moved; following it");
    }

    fn file_deleted(&mut self, watch: &FileWatch, _: Option<&Path>) {
        tracing::info!(path = %watch.path().display(), "the file was deleted");
    }

    fn unbind(&mut self, watch: &FileWatch) {
        if !em::stopping() {
            *self.failed.borrow_mut() =
                Some(format!("{}: no longer watched", watch.path().display()));
            em::stop();
        }
    }
}

/// A message for the person at the terminal, as `tail` words them.
#[allow(clippy::print_stderr)]
fn report(message: &str) {
    eprintln!("tail: {message}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    let failed: Rc<RefCell<Option<String>>> = Rc::default();
    let why = failed.clone();
    em::run(move || {
        // Handlers first: a supervisor may send SIGTERM the moment it reads
        // the readiness line.
        em_examples::stop_on_signal()?;
        let file = File::open(&args.file)
            .map_err(|e| format!("cannot open {}: {e}", args.file.display()))?;
        let position = file.metadata()?.len();
        let follower = Rc::new(RefCell::new(Follower {
            path: args.file.clone(),
            file,
            position,
            buf: vec![0; 64 << 10],
            queued: false,
        }));
        em::watch_file(
            &args.file,
            Tail {
                follower: follower.clone(),
                failed: failed.clone(),
            },
        )?;
        // Whatever was appended between the open and the watch.
        catch_up(&follower, &failed);
        report(&format!(
            "following {} from byte {position}",
            args.file.display()
        ));
        Ok(())
    })?;
    match why.take() {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
