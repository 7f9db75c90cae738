//! Header maps recycled from responses to requests: a response's map,
//! once written, is cleared and kept (its two allocations with it) for the
//! next request head parsed on the same reactor thread, as hyper does with
//! a connection's. A bounded pool per thread, so an idle connection keeps
//! none.

use std::cell::RefCell;

use http::HeaderMap;

/// The most spare maps a thread keeps.
const MAX_SPARE: usize = 64;
/// Larger maps are freed rather than kept.
const MAX_CAPACITY: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

/// An empty map, recycled if one is spare.
pub(crate) fn take() -> HeaderMap {
    SPARE
        .with(|spare| spare.borrow_mut().pop())
        .unwrap_or_default()
}

/// Keeps `map`, emptied, for a later [`take`].
pub(crate) fn give(mut map: HeaderMap) {
    if map.capacity() == 0 || map.capacity() > MAX_CAPACITY {
        return;
    }
    map.clear();
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < MAX_SPARE {
            spare.push(map);
        }
    });
}
