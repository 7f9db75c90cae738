//! The watch pump: how a watched descriptor (`em::watch`) is served while
//! it is watched. em neither reads nor writes it; the pump calls
//! `notify_readable` and `notify_writable` while the descriptor is readable
//! or writable and the handler has switched that notification on. The
//! lifecycle around it (`mod.rs`) ends the watch (close, detach, panic,
//! reactor stop) and runs `unbind`.
//!
//! Level-triggered, as EventMachine's notifications are: while a switched-on
//! direction stays ready (the handler did not consume the input, or the
//! descriptor stays writable), the notification runs again on the
//! reactor's next turn. Between two turns the pump yields (tokio's
//! `yield_now`, whose wake-up comes after the I/O driver has been polled),
//! so other connections, timers and ticks run in between. A direction that
//! is switched off, or not ready, costs nothing: the pump parks until
//! tokio reports an edge on a direction it waits for, or a switch changes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{Pump, Session};
use crate::net::connection::{Connection, UnbindReason};
use crate::net::transport::Directions;

/// The state of one watched descriptor, beneath its lifecycle.
#[derive(Default)]
pub(crate) struct WatchPump {
    /// A notification ran and its direction may still be ready: the pump
    /// looks again once this yield to the reactor's next turn completes.
    next_turn: Option<Pin<Box<dyn Future<Output = ()>>>>,
    /// A notification ran since the lifecycle last asked (for the
    /// inactivity timeout).
    active: bool,
}

impl std::fmt::Debug for WatchPump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchPump")
            .field("yielding", &self.next_turn.is_some())
            .field("active", &self.active)
            .finish()
    }
}

impl<H: Connection> Pump<H> for WatchPump {
    fn poll_io(&mut self, s: &mut Session<'_, H>, cx: &mut Context<'_>) -> Poll<UnbindReason> {
        if let Some(next_turn) = &mut self.next_turn {
            if next_turn.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.next_turn = None;
        }
        let switches = s.conn.state().watch();
        let wanted = Directions {
            readable: switches.readable,
            writable: switches.writable,
        };
        if wanted.none() {
            // Parked until a switch is turned on (which wakes the driver).
            return Poll::Pending;
        }
        let level = {
            let transport = s.conn.state().transport.borrow();
            match transport.as_ref().and_then(|t| t.watched()) {
                Some(watched) => watched.poll_level(cx, wanted),
                // Detached: the lifecycle ends it.
                None => return Poll::Pending,
            }
        };
        let ready = match level {
            Ok(ready) => ready,
            Err(e) => return Poll::Ready(UnbindReason::Io(e)),
        };
        if ready.none() {
            return Poll::Pending;
        }
        if ready.readable {
            s.call("notify_readable", |h, c| h.notify_readable(c));
        }
        // The first callback may have closed, detached, panicked, stopped
        // the reactor, or switched this notification off.
        if ready.writable && !s.interrupted() && s.conn.state().watch().writable {
            s.call("notify_writable", |h, c| h.notify_writable(c));
        }
        self.active = true;
        if s.core.stopping() {
            // No callback of ours runs any more; the teardown wakes us.
            return Poll::Pending;
        }
        if let Some(reason) = s.must_end() {
            return Poll::Ready(reason);
        }
        // Level-triggered: look again on the next turn, after the I/O
        // driver has run (and so after every other task had its turn).
        let mut next_turn: Pin<Box<dyn Future<Output = ()>>> = Box::pin(tokio::task::yield_now());
        let yielded = next_turn.as_mut().poll(cx);
        debug_assert!(yielded.is_pending(), "yield_now yields once");
        self.next_turn = Some(next_turn);
        Poll::Pending
    }

    fn poll_flush_only(&mut self, _: &mut Session<'_, H>, _: &mut Context<'_>) -> Poll<()> {
        // Nothing is ever queued on a watched descriptor.
        Poll::Ready(())
    }

    fn take_activity(&mut self) -> bool {
        std::mem::take(&mut self.active)
    }

    fn reset(&mut self) {
        *self = WatchPump::default();
    }
}
