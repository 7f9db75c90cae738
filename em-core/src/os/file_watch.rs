//! File watchers (EventMachine's `EM.watch_file`): [`watch_file`], the
//! [`FileWatcher`] handler trait and the [`FileWatch`] handle, on the
//! notify crate (inotify on Linux).
//!
//! # Design
//!
//! notify's inotify backend reads its events on a thread of its own, one
//! thread and one inotify instance per notify watcher. A reactor therefore
//! keeps **one notify watcher for all its watches** (a *lane*), not one per
//! `watch_file`: a thread per watch would cost a thread per file, and Linux
//! allows a user only 128 inotify instances by default
//! (`fs.inotify.max_user_instances`), against tens of thousands of watches
//! in one instance (`fs.inotify.max_user_watches`).
//!
//! The lane's thread routes each event to its watch by path: every watch
//! is known to notify by its canonical path (its *label*), and an event is
//! about a label, or about an entry of a label that is a directory. It
//! tags the event with the watch's number and moves it to the reactor
//! thread with [`Handle::schedule`](crate::Handle::schedule), the
//! reactor's one cross-thread queue, so a watch's events arrive in order.
//! An event for a watch that has ended since is dropped there.
//!
//! notify keys its own books by path, which mixes two watches up in three
//! cases: the same file under two labels (a hard link, a bind mount),
//! the same label for two files (a file moved away while still watched,
//! and a new one made at its old path), and a label inside another (a
//! directory and a file in it: notify drops the file's inotify watch when
//! the directory reports the file deleted or moved). A watch that would
//! meet one of these in every lane gets a lane of its own: a second notify
//! watcher, dropped once it has no watch left. Files in different places
//! share one lane; the same file watched twice, or a directory and a file
//! in it, take two.
//!
//! Everything but the routing runs on the reactor thread.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex, PoisonError};

use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::error::{Error, Result};
use crate::os::watcher::{self, Lifecycle, Live, Watch};
use crate::reactor::core::Core;
use crate::reactor::remote::Handle;

/// The handler of a file watch ([`watch_file`]): EventMachine's
/// `EM::FileWatch` callbacks. Every method has a default that does
/// nothing, so a handler overrides only what it needs.
///
/// A watch moves no bytes, so this is not a
/// [`Connection`](crate::Connection): no codec, no `receive_data`.
///
/// # The callbacks
///
/// Each runs on the reactor thread and gets the [`FileWatch`] (to read its
/// [`path`](FileWatch::path) or [`stop_watching`](FileWatch::stop_watching)).
/// When the watched path is a directory, the events about its entries come
/// with the entry's name (`"app.log"`, not a full path: join it to
/// [`FileWatch::path`]); `None` means the watched path itself.
///
/// * [`file_modified`](FileWatcher::file_modified): the file's content
///   changed: a write, an append, a truncation (`IN_MODIFY`). A write of
///   many blocks may be reported once or several times: read what is new
///   rather than counting calls. Attribute changes (`chmod`, both times
///   set as `touch` does, a new hard link) are not reported, nor are opens
///   and closes, as in EventMachine; the modification time set alone
///   (`touch -m`) is, since the kernel reports it as a modification. For
///   a directory: an entry's content changed. If the system's queue of
///   file events overflows (events were lost), every watch hears a
///   `file_modified` with no entry, so that a program looks again.
/// * [`file_moved`](FileWatcher::file_moved): the watched path was renamed
///   or moved (`IN_MOVE_SELF`); the watch follows the file to its new
///   place, and [`path`](FileWatch::path) still says where it was (the new
///   place is not known). For a directory: the entry was moved away
///   (renamed within the directory, or out of it: `IN_MOVED_FROM`); its
///   new name, if still inside, comes as a `file_created`.
/// * [`file_deleted`](FileWatcher::file_deleted): the watched file is gone
///   (`IN_DELETE_SELF`); the watch has ended when this runs
///   ([`is_watching`](FileWatch::is_watching) is false), and `unbind`
///   follows at once. On Linux this comes only when the last descriptor
///   open on the file is closed, since the file lives until then. For a
///   directory: the entry was removed (`IN_DELETE`); the watch goes on.
/// * [`file_created`](FileWatcher::file_created): directories only: an
///   entry appeared, made there or moved in (`IN_CREATE`,
///   `IN_MOVED_TO`).
/// * [`unbind`](FileWatcher::unbind): exactly once, last: after
///   `file_deleted` of the watched path, after
///   [`stop_watching`](FileWatch::stop_watching) (once the current
///   callback of this watch has returned, or on a later tick, never inside
///   `stop_watching`), after a callback of this watch panicked, or when
///   the reactor stops (before `run` returns). The handler is dropped
///   after it.
///
/// A watch's events arrive in the order they happened; no order is
/// promised between two watches. A callback may call any em function,
/// `stop_watching` on its own watch included (no further event reaches
/// it). A panic in a callback is contained like any callback's: it is
/// reported to the [error handler](crate::set_error_handler) under the
/// callback's name, the watch ends and `unbind` runs.
pub trait FileWatcher: 'static {
    /// The file's content changed (or, for a directory, the content of
    /// the entry `entry`).
    fn file_modified(&mut self, watch: &FileWatch, entry: Option<&Path>) {
        let _ = (watch, entry);
    }

    /// The watched path was moved or renamed (or, for a directory, the
    /// entry `entry` was moved away).
    fn file_moved(&mut self, watch: &FileWatch, entry: Option<&Path>) {
        let _ = (watch, entry);
    }

    /// The watched file was deleted, and the watch ends: `unbind` follows
    /// (or, for a directory, the entry `entry` was removed).
    fn file_deleted(&mut self, watch: &FileWatch, entry: Option<&Path>) {
        let _ = (watch, entry);
    }

    /// For a directory: the entry `entry` appeared (made there, or moved
    /// in).
    fn file_created(&mut self, watch: &FileWatch, entry: &Path) {
        let _ = (watch, entry);
    }

    /// The watch has ended: exactly once, last.
    fn unbind(&mut self, watch: &FileWatch) {
        let _ = watch;
    }
}

/// A file or directory watch, made by [`watch_file`] (EventMachine's
/// `EM::FileWatch`): the handle its callbacks get, and the one to stop it.
///
/// Cloning gives a second handle to the same watch; dropping every handle
/// does not stop it (the reactor holds it until it ends). `!Send`: it
/// belongs to the reactor thread, and outlives its reactor harmlessly.
///
/// ```compile_fail
/// # use em_core as em;
/// fn on_another_thread(watch: em::FileWatch) {
///     std::thread::spawn(move || watch.stop_watching()); // error: `FileWatch` is not `Send`
/// }
/// ```
#[derive(Clone)]
pub struct FileWatch {
    inner: Rc<Inner>,
}

struct Inner {
    /// The path as given to `watch_file`.
    path: PathBuf,
    /// Where its events come from.
    source: Source,
    lifecycle: Lifecycle<FileWatch>,
}

/// A watch's place in its reactor's router.
struct Source {
    router: Weak<Router>,
    lane: usize,
    label: PathBuf,
}

impl FileWatch {
    /// The path given to [`watch_file`], as given, even after the file was
    /// moved (EventMachine FW1): the watch follows the file, not the path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stops the watch (EventMachine's `stop_watching`): no callback but
    /// `unbind` runs from now on, and `unbind` follows once, after the
    /// current callback of this watch if called from one, otherwise on a
    /// later tick (never inside this call). Idempotent; a no-op once the
    /// watch has ended. Reactor thread only (the type is `!Send`).
    pub fn stop_watching(&self) {
        watcher::stop(self);
    }

    /// Whether the watch still watches: false from `stop_watching`, the
    /// watched file's deletion (already inside `file_deleted`), a panic in
    /// a callback or the reactor's stop on.
    pub fn is_watching(&self) -> bool {
        self.inner.lifecycle.is_watching()
    }
}

impl Watch for FileWatch {
    type Handler = dyn FileWatcher;

    fn lifecycle(&self) -> &Lifecycle<Self> {
        &self.inner.lifecycle
    }

    fn unbind(handler: &mut dyn FileWatcher, watch: &Self) {
        handler.unbind(watch);
    }

    fn release(&self) {
        if let Some(router) = self.inner.source.router.upgrade() {
            router.remove(self.inner.lifecycle.id(), &self.inner.source);
        }
    }
}

impl fmt::Debug for FileWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileWatch")
            .field("path", &self.inner.path)
            .field("watching", &self.is_watching())
            .finish()
    }
}

/// Watches the file or directory at `path` with `handler` (EventMachine's
/// `EM.watch_file`), and returns the watch once it is in place: whatever
/// happens to the file after `watch_file` returns is reported. Reactor
/// thread only.
///
/// The watch follows the file itself (its inode), not the path: after a
/// move it keeps reporting on the file at its new place, and a new file
/// made at the old path is not watched. A symbolic link is followed: the
/// watch is on the file it points to. A directory reports its entries'
/// events by name (see [`FileWatcher`]), one level deep. The callbacks, the
/// one `unbind` and their order are described there.
///
/// The watch is in place when this returns: installing it waits for the
/// file watcher's thread (a round trip of microseconds). A reactor's
/// watches share one such thread (one notify watcher); a file watched
/// twice, or a path inside or around another watched one, gets a second,
/// so that notify, which knows watches by path, cannot mix them up.
/// On Linux a file watch is an inotify watch, which counts toward the
/// user's `fs.inotify.max_user_watches`.
///
/// Errors: `is_no_reactor()` / `is_stopping()`; `is_io()` when the path
/// does not exist or cannot be watched (permissions, the system's limit of
/// watches): the message names the path, and
/// [`io_error`](Error::io_error) keeps the system's error kind
/// (`NotFound` for a missing path). On error `handler` is dropped.
///
/// ```
/// # use em_core as em;
/// use std::io::Write;
/// use em::{FileWatch, FileWatcher};
///
/// /// Stops the reactor at the first change.
/// struct StopOnChange;
///
/// impl FileWatcher for StopOnChange {
///     fn file_modified(&mut self, watch: &FileWatch, _entry: Option<&std::path::Path>) {
///         eprintln!("{} changed", watch.path().display());
///         em::stop();
///     }
/// }
///
/// let path = std::env::temp_dir().join(format!("em-doc-watch-{}", std::process::id()));
/// std::fs::write(&path, "")?;
/// let file = path.clone();
/// em::run(move || {
///     let watch = em::watch_file(&file, StopOnChange)?;
///     assert_eq!(watch.path(), file);
///     // Any change after watch_file returned is seen.
///     std::fs::OpenOptions::new().append(true).open(&file)?.write_all(b"hello\n")?;
/// #   em_core::spawn(async {
/// #       tokio::time::sleep(std::time::Duration::from_secs(20)).await;
/// #       em_core::stop(); // watchdog
/// #   })?;
///     Ok(())
/// })?;
/// std::fs::remove_file(&path)?;
///
/// let missing = em::run(|| {
///     let err = em::watch_file("/no/such/file", StopOnChange).unwrap_err();
///     assert!(err.is_io());
///     assert!(err.to_string().contains("/no/such/file"));
///     em::stop();
/// });
/// missing?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn watch_file<H: FileWatcher>(path: impl AsRef<Path>, handler: H) -> Result<FileWatch> {
    let core = Core::current_accepting("watch_file")?;
    let path = path.as_ref().to_path_buf();
    let cannot = |e: io::Error| path_error(&path, e);
    let label = std::fs::canonicalize(&path).map_err(cannot)?;
    let file = FileId::of(&std::fs::metadata(&label).map_err(cannot)?);
    let live = Live::<FileWatch>::of(&core);
    let router = core.local(|| Router::new(Handle::new(core.remote.clone())));
    let id = live.next_id();
    let lane = router.add(id, &label, file).map_err(cannot)?;
    let watch = FileWatch {
        inner: Rc::new(Inner {
            path,
            source: Source {
                router: Rc::downgrade(&router),
                lane,
                label,
            },
            lifecycle: Lifecycle::new(&live, id, Box::new(handler)),
        }),
    };
    tracing::debug!(path = %watch.path().display(), lane, "watching a file");
    live.insert(watch.clone());
    Ok(watch)
}

/// An `is_io()` error of `watch_file` whose message names the path,
/// keeping the system's error kind.
fn path_error(path: &Path, e: io::Error) -> Error {
    Error::io(
        "watch_file",
        io::Error::new(e.kind(), format!("cannot watch {}: {e}", path.display())),
    )
}

/// What a watch hears, as the reactor thread is told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Modified,
    Moved,
    Deleted,
    Created,
}

/// The verb for an event of `kind` about the watched path itself
/// (`entry` false) or about an entry of it (a watched directory's); `None`
/// for what a watch does not report. For inotify (notify's mapping in
/// brackets):
///
/// * `IN_MODIFY` [`Modify(Data)`] → modified;
/// * `IN_MOVE_SELF` [`Modify(Name(From))`, no entry] → moved;
/// * `IN_DELETE_SELF` [`Remove`, no entry] → deleted;
/// * `IN_CREATE` [`Create`] → created;
/// * `IN_DELETE` [`Remove`] → deleted (the entry);
/// * `IN_MOVED_FROM` [`Modify(Name(From))`] → moved (the entry, away);
/// * `IN_MOVED_TO` [`Modify(Name(To))`] → created (the entry, moved in);
/// * notify's `Modify(Name(Both))`, which repeats a `From` and a `To`,
///   `IN_ATTRIB` [`Modify(Metadata)`], `IN_OPEN` and `IN_CLOSE_*`
///   [`Access`]: not reported. `IN_CLOSE_WRITE` follows every write's
///   `IN_MODIFY`, and opens and attribute changes are not changes of
///   content (an unlink changes the link count: it would report a
///   modification before every deletion).
fn verb(kind: &EventKind, entry: bool) -> Option<Verb> {
    match kind {
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => Some(Verb::Modified),
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => None,
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) if entry => Some(Verb::Created),
        EventKind::Modify(ModifyKind::Name(_)) => Some(Verb::Moved),
        EventKind::Remove(_) => Some(Verb::Deleted),
        EventKind::Create(_) if entry => Some(Verb::Created),
        _ => None,
    }
}

/// A file's identity: its device and inode numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

impl FileId {
    fn of(meta: &std::fs::Metadata) -> Self {
        FileId(meta.dev(), meta.ino())
    }
}

/// The labels a lane's thread routes, to the number of their watch.
type Routes = Arc<Mutex<HashMap<PathBuf, u64>>>;

/// The file watchers of one reactor: its lanes.
struct Router {
    /// For the lanes' threads.
    handle: Handle,
    /// A slot per lane; an empty one is dropped.
    lanes: std::cell::RefCell<Vec<Option<Lane>>>,
}

/// One notify watcher and what it watches.
struct Lane {
    watcher: RecommendedWatcher,
    routes: Routes,
    /// Each watch's label and file, by watch number.
    watched: HashMap<u64, (PathBuf, FileId)>,
}

impl Lane {
    /// Whether watch `label` (the file `file`) would be mixed up with one
    /// of this lane's (see the module's design notes).
    fn clashes(&self, label: &Path, file: FileId) -> bool {
        self.watched
            .values()
            .any(|(l, f)| *f == file || l.starts_with(label) || label.starts_with(l))
    }
}

impl Router {
    fn new(handle: Handle) -> Self {
        Router {
            handle,
            lanes: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Watches `label` (the file `file`) for watch `id` on the first lane
    /// where it clashes with nothing, starting a lane if none fits;
    /// returns the lane's index once notify watches it.
    fn add(&self, id: u64, label: &Path, file: FileId) -> io::Result<usize> {
        let mut lanes = self.lanes.borrow_mut();
        let index = lanes
            .iter()
            .position(|lane| lane.as_ref().is_some_and(|l| !l.clashes(label, file)))
            .or_else(|| lanes.iter().position(Option::is_none))
            .unwrap_or(lanes.len());
        if index == lanes.len() {
            lanes.push(None);
        }
        if lanes[index].is_none() {
            lanes[index] = Some(self.start_lane()?);
        }
        let lane = lanes[index].as_mut().expect("the lane was just made");
        // Routed before notify watches it, so that no event goes astray.
        lock(&lane.routes).insert(label.to_path_buf(), id);
        if let Err(e) = lane.watcher.watch(label, RecursiveMode::NonRecursive) {
            lock(&lane.routes).remove(label);
            if lane.watched.is_empty() {
                lanes[index] = None;
            }
            return Err(notify_error(e));
        }
        lane.watched.insert(id, (label.to_path_buf(), file));
        Ok(index)
    }

    /// Stops routing the events of watch `id`, from `source`, and has
    /// notify stop watching its label; drops the lane if it is left empty.
    fn remove(&self, id: u64, source: &Source) {
        let mut lanes = self.lanes.borrow_mut();
        let Some(Some(lane)) = lanes.get_mut(source.lane) else {
            return;
        };
        if lane.watched.remove(&id).is_none() {
            return;
        }
        lock(&lane.routes).remove(&source.label);
        if lane.watched.is_empty() {
            // Dropping notify's watcher ends its thread and its inotify
            // instance, with every watch in it.
            let lane = lanes[source.lane].take();
            drop(lanes);
            drop(lane);
        } else if let Err(e) = lane.watcher.unwatch(&source.label) {
            // notify forgets a deleted file's watch by itself.
            tracing::trace!(path = %source.label.display(), error = %e, "unwatch");
        }
    }

    /// A new notify watcher whose thread routes its events to this
    /// reactor.
    fn start_lane(&self) -> io::Result<Lane> {
        let routes = Routes::default();
        let handle = self.handle.clone();
        let lane_routes = routes.clone();
        let watcher = notify::recommended_watcher(move |event| {
            on_event(&handle, &lane_routes, event);
        })
        .map_err(|e| {
            let e = notify_error(e);
            io::Error::new(e.kind(), format!("cannot start a file watcher: {e}"))
        })?;
        Ok(Lane {
            watcher,
            routes,
            watched: HashMap::new(),
        })
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("lanes", &self.lanes.borrow().len())
            .finish()
    }
}

fn lock(routes: &Routes) -> std::sync::MutexGuard<'_, HashMap<PathBuf, u64>> {
    // Nothing panics under the lock, so a poisoned map is consistent.
    routes.lock().unwrap_or_else(PoisonError::into_inner)
}

/// notify's error as an `io::Error`, keeping the system's error kind.
fn notify_error(e: notify::Error) -> io::Error {
    match e.kind {
        notify::ErrorKind::Io(e) => e,
        notify::ErrorKind::PathNotFound => io::Error::from(io::ErrorKind::NotFound),
        notify::ErrorKind::MaxFilesWatch => io::Error::new(
            io::ErrorKind::QuotaExceeded,
            "the system's limit of watched files is reached (fs.inotify.max_user_watches on Linux)",
        ),
        other => io::Error::other(notify::Error::new(other).to_string()),
    }
}

/// Routes one event of a lane, on the lane's thread: to the watch of the
/// path it is about, as a verb, through the reactor's queue.
fn on_event(handle: &Handle, routes: &Routes, event: notify::Result<notify::Event>) {
    let event = match event {
        Ok(event) => event,
        Err(e) => {
            tracing::warn!(error = %e, "file watcher error");
            return;
        }
    };
    if event.need_rescan() {
        // The kernel's queue overflowed: events were lost. Anything may
        // have changed, so every watch of the lane hears so.
        tracing::warn!("file events were lost (the system's queue overflowed); every watch is told its file was modified");
        let ids: Vec<u64> = lock(routes).values().copied().collect();
        for id in ids {
            send(handle, id, Verb::Modified, None);
        }
        return;
    }
    let Some(path) = event.paths.first() else {
        return;
    };
    let Some((id, entry)) = route(&lock(routes), path) else {
        return;
    };
    if let Some(verb) = verb(&event.kind, entry.is_some()) {
        send(handle, id, verb, entry);
    }
}

/// The watch an event about `path` is for, and the entry it is about
/// (for a watched directory); `None` for a path no watch of the lane
/// knows (an event that raced the end of its watch).
fn route(routes: &HashMap<PathBuf, u64>, path: &Path) -> Option<(u64, Option<PathBuf>)> {
    if let Some(&id) = routes.get(path) {
        return Some((id, None));
    }
    let (dir, name) = (path.parent()?, path.file_name()?);
    routes.get(dir).map(|&id| (id, Some(PathBuf::from(name))))
}

/// Queues the verb for watch `id` on the reactor thread. Refused only once
/// the reactor stops, when every watch gets its `unbind` anyway.
fn send(handle: &Handle, id: u64, verb: Verb, entry: Option<PathBuf>) {
    let _ = handle.schedule(move || dispatch(id, verb, entry));
}

/// Runs the callback for `verb` of watch `id`, if it still watches. On the
/// reactor thread.
fn dispatch(id: u64, verb: Verb, entry: Option<PathBuf>) {
    let Ok(core) = Core::current("watch_file") else {
        return;
    };
    let Some(watch) = Live::<FileWatch>::of(&core).get(id) else {
        return;
    };
    let entry = entry.as_deref();
    match verb {
        Verb::Modified => watcher::deliver(&watch, "file_modified", false, |h, w| {
            h.file_modified(w, entry)
        }),
        Verb::Moved => watcher::deliver(&watch, "file_moved", false, |h, w| h.file_moved(w, entry)),
        // The watched path itself deleted ends the watch (FW1).
        Verb::Deleted => watcher::deliver(&watch, "file_deleted", entry.is_none(), |h, w| {
            h.file_deleted(w, entry)
        }),
        Verb::Created => {
            if let Some(entry) = entry {
                watcher::deliver(&watch, "file_created", false, |h, w| {
                    h.file_created(w, entry)
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, RemoveKind};

    #[test]
    fn verbs_for_the_watched_path_itself() {
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let moved = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        let deleted = EventKind::Remove(RemoveKind::File);
        assert_eq!(verb(&data, false), Some(Verb::Modified));
        assert_eq!(verb(&moved, false), Some(Verb::Moved));
        assert_eq!(verb(&deleted, false), Some(Verb::Deleted));
        assert_eq!(
            verb(&EventKind::Remove(RemoveKind::Folder), false),
            Some(Verb::Deleted)
        );
        for ignored in [
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            EventKind::Create(CreateKind::File),
            EventKind::Other,
        ] {
            assert_eq!(verb(&ignored, false), None, "{ignored:?}");
        }
    }

    #[test]
    fn verbs_for_a_directory_entry() {
        let name = |mode| EventKind::Modify(ModifyKind::Name(mode));
        assert_eq!(
            verb(&EventKind::Create(CreateKind::File), true),
            Some(Verb::Created)
        );
        assert_eq!(
            verb(&EventKind::Create(CreateKind::Folder), true),
            Some(Verb::Created)
        );
        assert_eq!(
            verb(&EventKind::Remove(RemoveKind::File), true),
            Some(Verb::Deleted)
        );
        assert_eq!(verb(&name(RenameMode::From), true), Some(Verb::Moved));
        assert_eq!(verb(&name(RenameMode::To), true), Some(Verb::Created));
        assert_eq!(verb(&name(RenameMode::Both), true), None);
        assert_eq!(
            verb(&EventKind::Modify(ModifyKind::Data(DataChange::Any)), true),
            Some(Verb::Modified)
        );
        assert_eq!(
            verb(
                &EventKind::Access(AccessKind::Close(AccessMode::Write)),
                true
            ),
            None
        );
    }

    #[test]
    fn routes_by_label_then_by_parent_directory() {
        let routes = HashMap::from([(PathBuf::from("/d"), 1), (PathBuf::from("/x/f"), 2)]);
        assert_eq!(route(&routes, Path::new("/d")), Some((1, None)));
        assert_eq!(
            route(&routes, Path::new("/d/a.log")),
            Some((1, Some(PathBuf::from("a.log"))))
        );
        assert_eq!(route(&routes, Path::new("/x/f")), Some((2, None)));
        assert_eq!(route(&routes, Path::new("/x/g")), None);
        assert_eq!(route(&routes, Path::new("/d/sub/deeper")), None);
        assert_eq!(route(&routes, Path::new("/")), None);
    }
}
