//! Signals: [`Signal`], the number and name of one, used to send one to a
//! child ([`Conn::kill`](crate::Conn::kill)), to read how a child ended,
//! and to trap one.

use std::fmt;

/// A Unix signal: its number, with a name for the common ones. Plain data:
/// any thread.
///
/// ```
/// use em_core::Signal;
///
/// assert_eq!(Signal::TERM.to_string(), "SIGTERM");
/// assert_eq!(Signal::from_raw(Signal::USR1.as_raw()), Signal::USR1);
/// assert_eq!(Signal::from_raw(64).to_string(), "signal 64");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(i32);

macro_rules! signals {
    ($($name:ident = $libc:ident, $doc:literal;)*) => {
        impl Signal {
            $(
                #[doc = $doc]
                pub const $name: Signal = Signal(libc::$libc);
            )*
        }

        /// The name of a signal with one (`"SIGTERM"`).
        fn name(raw: i32) -> Option<&'static str> {
            match raw {
                $(libc::$libc => Some(stringify!($libc)),)*
                _ => None,
            }
        }
    };
}

signals! {
    HUP = SIGHUP, "`SIGHUP`: the terminal hung up; by convention, reload the configuration.";
    INT = SIGINT, "`SIGINT`: interrupt (Ctrl-C).";
    QUIT = SIGQUIT, "`SIGQUIT`: quit (Ctrl-\\).";
    ABRT = SIGABRT, "`SIGABRT`: abort.";
    KILL = SIGKILL, "`SIGKILL`: kill; cannot be trapped.";
    USR1 = SIGUSR1, "`SIGUSR1`: user-defined signal 1.";
    USR2 = SIGUSR2, "`SIGUSR2`: user-defined signal 2.";
    PIPE = SIGPIPE, "`SIGPIPE`: write to a pipe with no reader.";
    ALRM = SIGALRM, "`SIGALRM`: an alarm clock expired.";
    TERM = SIGTERM, "`SIGTERM`: terminate, politely.";
    CHLD = SIGCHLD, "`SIGCHLD`: a child stopped or exited.";
    CONT = SIGCONT, "`SIGCONT`: continue if stopped.";
    STOP = SIGSTOP, "`SIGSTOP`: stop; cannot be trapped.";
    TSTP = SIGTSTP, "`SIGTSTP`: stop typed at the terminal (Ctrl-Z).";
    WINCH = SIGWINCH, "`SIGWINCH`: the terminal's window changed size.";
}

impl Signal {
    /// The signal numbered `raw` (`SIGRTMIN + 1`, or a number this type
    /// has no name for). Not checked: sending or trapping a number the
    /// system does not know is an error then.
    pub const fn from_raw(raw: i32) -> Signal {
        Signal(raw)
    }

    /// Its number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    /// Its name (`"SIGTERM"`), where it has one.
    pub fn name(self) -> Option<&'static str> {
        name(self.0)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "signal {}", self.0),
        }
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signal({self} = {})", self.0)
    }
}
