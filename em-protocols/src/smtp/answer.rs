//! How an [`SmtpHandler`](super::SmtpHandler)'s hook answers a command:
//! an [`Answer`] now (accept, refuse, or an exact reply), or later
//! through a [`Responder`].

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use super::reply::Reply;

/// What a hook decided, as the server applies it.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The command's usual positive reply.
    Accept,
    /// The command's usual negative reply.
    Refuse,
    /// Exactly this reply: a 2xx accepts, anything else refuses.
    Reply(Reply),
}

impl Verdict {
    /// Whether the command succeeded.
    pub(crate) fn accepted(&self) -> bool {
        match self {
            Verdict::Accept => true,
            Verdict::Refuse => false,
            Verdict::Reply(r) => r.is_positive(),
        }
    }

    /// The reply to send: `accept` or `refuse` unless the hook gave one.
    pub(crate) fn into_reply(self, accept: Reply, refuse: Reply) -> Reply {
        match self {
            Verdict::Accept => accept,
            Verdict::Refuse => refuse,
            Verdict::Reply(r) => r,
        }
    }
}

/// The server's answer to one command, as a hook of an
/// [`SmtpHandler`](super::SmtpHandler) decides it.
///
/// * [`Answer::accept`] (or `true.into()`): the command's usual positive
///   reply (`250 2.1.5 Recipient OK`…).
/// * [`Answer::refuse`] (or `false.into()`): its usual negative reply
///   (`550 5.1.1 Recipient refused`…), EventMachine's `false`.
/// * [`Answer::reply`] (or `Reply::new(..).into()`): exactly this reply;
///   a 2xx accepts, anything else (a `451` to come back later, a `552`…)
///   refuses.
/// * [`Answer::later`]: the decision is not known yet (a database, a
///   spam filter, a disk write on em's `defer` pool…): it returns a
///   [`Responder`] to answer with once it is. Meanwhile the connection is
///   paused ([`Conn::pause`](em_core::Conn::pause)): commands the client
///   pipelined behind this one wait, unread, so replies stay in order.
///   This is what EventMachine's hooks do by returning a Deferrable.
pub struct Answer(pub(crate) Kind);

pub(crate) enum Kind {
    Now(Verdict),
    Later(Rc<Slot>),
}

impl Answer {
    /// The command's usual positive reply.
    pub fn accept() -> Answer {
        Answer(Kind::Now(Verdict::Accept))
    }

    /// The command's usual negative reply.
    pub fn refuse() -> Answer {
        Answer(Kind::Now(Verdict::Refuse))
    }

    /// Exactly `reply`: accepted if it is a 2xx, refused otherwise.
    pub fn reply(reply: Reply) -> Answer {
        Answer(Kind::Now(Verdict::Reply(reply)))
    }

    /// An answer given later, through the [`Responder`] returned with it.
    /// The connection waits (paused) until the responder answers; a
    /// responder dropped without answering answers
    /// `451 4.3.0 No answer from the handler`. Answering from inside the
    /// hook, before returning, works too (and pauses nothing).
    ///
    /// ```
    /// use em_protocols::smtp::{Answer, Message, Session, SmtpHandler};
    ///
    /// /// Accepts each message once a (simulated) slow store has it.
    /// struct SlowStore;
    ///
    /// impl SmtpHandler for SlowStore {
    ///     fn receive_message(&mut self, _: &Session<'_>, message: Message) -> Answer {
    ///         let (answer, responder) = Answer::later();
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
    pub fn later() -> (Answer, Responder) {
        let slot = Rc::new(Slot::default());
        (
            Answer(Kind::Later(slot.clone())),
            Responder { slot: Some(slot) },
        )
    }
}

impl From<bool> for Answer {
    /// `true` accepts and `false` refuses, as in EventMachine.
    fn from(accept: bool) -> Answer {
        if accept {
            Answer::accept()
        } else {
            Answer::refuse()
        }
    }
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        Answer::reply(reply)
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Now(v) => f.debug_tuple("Answer").field(v).finish(),
            Kind::Later(_) => f.write_str("Answer(Later)"),
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

/// Answers a command later: returned by [`Answer::later`], used once, on
/// the reactor thread (it is `!Send`), from any callback, timer or task.
/// If the connection ended meanwhile, the answer goes nowhere. Dropped
/// without answering, it answers `451 4.3.0 No answer from the handler`
/// (a transient failure the client may retry), so that the connection
/// never waits forever.
pub struct Responder {
    slot: Option<Rc<Slot>>,
}

impl Responder {
    /// The command's usual positive reply.
    pub fn accept(mut self) {
        self.settle(Verdict::Accept);
    }

    /// The command's usual negative reply.
    pub fn refuse(mut self) {
        self.settle(Verdict::Refuse);
    }

    /// Exactly `reply`: accepted if it is a 2xx, refused otherwise.
    pub fn reply(mut self, reply: Reply) {
        self.settle(Verdict::Reply(reply));
    }

    fn settle(&mut self, verdict: Verdict) {
        if let Some(slot) = self.slot.take() {
            slot.settle(verdict);
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.settle(Verdict::Reply(Reply::new(
            451,
            "4.3.0 No answer from the handler",
        )));
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("answered", &self.slot.is_none())
            .finish()
    }
}
