//! How an [`SmtpHandler`](super::SmtpHandler)'s hook answers a command:
//! an [`SmtpAnswer`] now (accept, refuse, or an exact reply), or later
//! through an [`SmtpResponder`].

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use super::reply::SmtpReply;

/// What a hook decided, as the server applies it.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The command's usual positive reply.
    Accept,
    /// The command's usual negative reply.
    Refuse,
    /// Exactly this reply: a 2xx accepts, anything else refuses.
    SmtpReply(SmtpReply),
}

impl Verdict {
    /// Whether the command succeeded.
    pub(crate) fn accepted(&self) -> bool {
        match self {
            Verdict::Accept => true,
            Verdict::Refuse => false,
            Verdict::SmtpReply(r) => r.is_positive(),
        }
    }

    /// The reply to send: `accept` or `refuse` unless the hook gave one.
    pub(crate) fn into_reply(self, accept: SmtpReply, refuse: SmtpReply) -> SmtpReply {
        match self {
            Verdict::Accept => accept,
            Verdict::Refuse => refuse,
            Verdict::SmtpReply(r) => r,
        }
    }
}

/// The server's answer to one command, as a hook of an
/// [`SmtpHandler`](super::SmtpHandler) decides it.
///
/// * [`SmtpAnswer::accept`] (or `true.into()`): the command's usual positive
///   reply (`250 2.1.5 Recipient OK`…).
/// * [`SmtpAnswer::refuse`] (or `false.into()`): its usual negative reply
///   (`550 5.1.1 Recipient refused`…), EventMachine's `false`.
/// * [`SmtpAnswer::reply`] (or `SmtpReply::new(..).into()`): exactly this reply;
///   a 2xx accepts, anything else (a `451` to come back later, a `552`…)
///   refuses.
/// * [`SmtpAnswer::later`]: the decision is not known yet (a database, a
///   spam filter, a disk write on em's `defer` pool…): it returns an
///   [`SmtpResponder`] to answer with once it is. Meanwhile the connection is
///   paused ([`Conn::pause`](em_core::Conn::pause)): commands the client
///   pipelined behind this one wait, unread, so replies stay in order.
///   This is what EventMachine's hooks do by returning a Deferrable.
pub struct SmtpAnswer(pub(crate) Kind);

pub(crate) enum Kind {
    Now(Verdict),
    Later(Rc<Slot>),
}

impl SmtpAnswer {
    /// The command's usual positive reply.
    pub fn accept() -> SmtpAnswer {
        SmtpAnswer(Kind::Now(Verdict::Accept))
    }

    /// The command's usual negative reply.
    pub fn refuse() -> SmtpAnswer {
        SmtpAnswer(Kind::Now(Verdict::Refuse))
    }

    /// Exactly `reply`: accepted if it is a 2xx, refused otherwise.
    pub fn reply(reply: SmtpReply) -> SmtpAnswer {
        SmtpAnswer(Kind::Now(Verdict::SmtpReply(reply)))
    }

    /// An answer given later, through the [`SmtpResponder`] returned with it.
    /// The connection waits (paused) until the responder answers; a
    /// responder dropped without answering answers
    /// `451 4.3.0 No answer from the handler`. Answering from inside the
    /// hook, before returning, works too (and pauses nothing).
    ///
    /// ```
    /// use em_protocols::{SmtpAnswer, SmtpMessage, SmtpSession, SmtpHandler};
    ///
    /// /// Accepts each message once a (simulated) slow store has it.
    /// struct SlowStore;
    ///
    /// impl SmtpHandler for SlowStore {
    ///     fn receive_message(&mut self, _: &SmtpSession<'_>, message: SmtpMessage) -> SmtpAnswer {
    ///         let (answer, responder) = SmtpAnswer::later();
    ///         em_core::next_tick(move || {
    ///             // ... the message is stored ...
    ///             # let _ = message;
    ///             responder.accept();
    ///         });
    ///         answer
    ///     }
    /// }
    /// # let _ = SlowStore;
    /// ```
    pub fn later() -> (SmtpAnswer, SmtpResponder) {
        let slot = Rc::new(Slot::default());
        (
            SmtpAnswer(Kind::Later(slot.clone())),
            SmtpResponder { slot: Some(slot) },
        )
    }
}

impl From<bool> for SmtpAnswer {
    /// `true` accepts and `false` refuses, as in EventMachine.
    fn from(accept: bool) -> SmtpAnswer {
        if accept {
            SmtpAnswer::accept()
        } else {
            SmtpAnswer::refuse()
        }
    }
}

impl From<SmtpReply> for SmtpAnswer {
    fn from(reply: SmtpReply) -> SmtpAnswer {
        SmtpAnswer::reply(reply)
    }
}

impl fmt::Debug for SmtpAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Now(v) => f.debug_tuple("SmtpAnswer").field(v).finish(),
            Kind::Later(_) => f.write_str("SmtpAnswer(Later)"),
        }
    }
}

/// What the waiting server does with the answer.
pub(crate) type Resume = Box<dyn FnOnce(Verdict)>;

/// Where a later answer meets the server that waits for it.
#[derive(Default)]
pub(crate) struct Slot {
    /// An answer given before the server waited for it.
    early: Cell<Option<Verdict>>,
    /// The server, waiting.
    waiting: RefCell<Option<Resume>>,
}

impl Slot {
    /// The answer, if it was given already.
    pub(crate) fn take_early(&self) -> Option<Verdict> {
        self.early.take()
    }

    /// Waits: `resume` gets the answer when it comes.
    pub(crate) fn wait(&self, resume: Resume) {
        *self.waiting.borrow_mut() = Some(resume);
    }

    fn settle(&self, verdict: Verdict) {
        let waiting = self.waiting.borrow_mut().take();
        match waiting {
            Some(resume) => resume(verdict),
            None => self.early.set(Some(verdict)),
        }
    }
}

/// Answers a command later: returned by [`SmtpAnswer::later`], used once, on
/// the reactor thread (it is `!Send`), from any callback, timer or task.
/// If the connection ended meanwhile, the answer goes nowhere. Dropped
/// without answering, it answers `451 4.3.0 No answer from the handler`
/// (a transient failure the client may retry), so that the connection
/// never waits forever.
pub struct SmtpResponder {
    slot: Option<Rc<Slot>>,
}

impl SmtpResponder {
    /// The command's usual positive reply.
    pub fn accept(mut self) {
        self.settle(Verdict::Accept);
    }

    /// The command's usual negative reply.
    pub fn refuse(mut self) {
        self.settle(Verdict::Refuse);
    }

    /// Exactly `reply`: accepted if it is a 2xx, refused otherwise.
    pub fn reply(mut self, reply: SmtpReply) {
        self.settle(Verdict::SmtpReply(reply));
    }

    fn settle(&mut self, verdict: Verdict) {
        if let Some(slot) = self.slot.take() {
            slot.settle(verdict);
        }
    }
}

impl Drop for SmtpResponder {
    fn drop(&mut self) {
        self.settle(Verdict::SmtpReply(SmtpReply::new(
            451,
            "4.3.0 No answer from the handler",
        )));
    }
}

impl fmt::Debug for SmtpResponder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpResponder")
            .field("answered", &self.slot.is_none())
            .finish()
    }
}
