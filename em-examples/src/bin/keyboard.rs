//! Echoes what is typed: `keyboard` reads standard input a line at a time
//! with `em::open_keyboard` and prints each line back on stdout, each time
//! after a `> ` prompt. A `quit` line stops it, even while standard input
//! stays open (a terminal, or a pipe whose writer keeps it open); so do end
//! of input (Ctrl-D) and SIGINT or SIGTERM. It exits 0 then, and 1 if the
//! input failed (a line longer than `--max-line`, a read error). Logs go to
//! stderr (`RUST_LOG=debug` says how standard input is read).

use std::cell::RefCell;
use std::io::{self, Write};
use std::rc::Rc;

use clap::Parser;
use em::prelude::*;

/// Echoes each line typed on standard input; `quit` stops.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The longest line accepted, in bytes; a longer one ends the program
    /// with an error.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    max_line: usize,
}

/// Writes `text` to stdout at once (a prompt has no newline to flush it).
fn say(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// The keyboard's handler: echoes lines, stops on `quit` and at the end of
/// the input; an input that failed is left in `failure`.
struct Echo {
    max_line: usize,
    failure: Rc<RefCell<Option<String>>>,
}

impl Echo {
    /// Writes `text`; stops the program if stdout is gone.
    fn say(&self, text: &str) {
        if let Err(e) = say(text) {
            tracing::warn!(error = %e, "cannot write to stdout; stopping");
            em::stop();
        }
    }
}

impl Connection for Echo {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(self.max_line)
    }

    fn post_init(&mut self, _: &Conn<LinesCodec>) {
        self.say("> ");
    }

    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        if line.trim() == "quit" {
            tracing::info!("quit");
            conn.close_connection();
            em::stop();
            return;
        }
        self.say(&format!("{line}\n> "));
    }

    fn unbind(&mut self, _: &Conn<LinesCodec>, reason: UnbindReason) {
        match reason {
            UnbindReason::PeerClosed => {
                tracing::info!("end of input");
                self.say("\n"); // after the last prompt
            }
            UnbindReason::Closed | UnbindReason::ReactorStopped => {}
            failed => {
                tracing::error!(reason = %failed, "the input failed");
                *self.failure.borrow_mut() = Some(failed.to_string());
            }
        }
        em::stop();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    let failure = Rc::new(RefCell::new(None));
    let echo = Echo {
        max_line: args.max_line,
        failure: failure.clone(),
    };
    em::run(move || {
        em_examples::stop_on_signal()?;
        em::open_keyboard(echo)?;
        Ok(())
    })?;
    // A copier thread still waiting for a line from a terminal ends with
    // the process.
    match failure.take() {
        Some(failure) => Err(failure.into()),
        None => Ok(()),
    }
}
