//! Where the command line's log lines go: stderr, with the routine ones held briefly.
//!
//! `stacdb serve` logs a line for every request (at `info`). Writing each line to stderr as it
//! is made cost a system call per request, about 6% of the time of serving one item, so lines
//! at `info` and below are held in memory and written together: at most [`HOLD_FOR`] later,
//! as soon as [`HOLD_AT_MOST`] bytes are held, before any warning or error (which is written at
//! once, so the order of lines is kept), and when the command ends ([`flush`]). A process
//! killed outright (SIGKILL) loses at most the last [`HOLD_FOR`] of routine lines.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// The longest a routine line waits before it is written.
pub const HOLD_FOR: Duration = Duration::from_millis(100);

/// The most bytes of routine lines held before they are written.
pub const HOLD_AT_MOST: usize = 64 * 1024;

/// The routine lines not yet written.
static HELD: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Starts the thread that writes held lines every [`HOLD_FOR`], once, when a first line is held.
static WRITER: Once = Once::new();

/// Set when that thread could not be started: then no line is held.
static NO_WRITER: AtomicBool = AtomicBool::new(false);

/// Sends tracing's output to stderr, filtered by `STACDB_LOG` (default: warnings, and the
/// server's line per request).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STACDB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,stacdb::server=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stderr)
        .with_ansi(io::stderr().is_terminal())
        .try_init();
}

/// Writes out every held line. The command line calls it before it exits.
pub fn flush() {
    write_out(&mut held());
}

fn held() -> MutexGuard<'static, Vec<u8>> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

fn write_out(held: &mut Vec<u8>) {
    if !held.is_empty() {
        // Nowhere to report a failure to write the log to.
        let _ = io::stderr().lock().write_all(held);
        held.clear();
    }
}

/// Makes a [`Line`] per event, held or not by the event's level.
struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { text: Vec::new(), hold: false }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        // tracing orders levels by verbosity: INFO and above are INFO, DEBUG and TRACE.
        let hold = *meta.level() >= Level::INFO && !NO_WRITER.load(Ordering::Relaxed);
        Line { text: Vec::new(), hold }
    }
}

/// One event's text, written or held when the event is done with it.
struct Line {
    text: Vec<u8>,
    hold: bool,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.text.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.text.is_empty() {
            return;
        }
        let mut held = held();
        // Written while the lock is held, so that lines from several threads keep their order.
        let due = due(&mut held, &self.text, self.hold);
        if !due.is_empty() {
            let _ = io::stderr().lock().write_all(&due);
        }
        drop(held);
        if self.hold {
            WRITER.call_once(|| {
                let started = std::thread::Builder::new().name("stacdb-log".into()).spawn(|| {
                    loop {
                        std::thread::sleep(HOLD_FOR);
                        flush();
                    }
                });
                if started.is_err() {
                    // No thread: write every line at once from now on.
                    NO_WRITER.store(true, Ordering::Relaxed);
                    flush();
                }
            });
        }
    }
}

/// Takes a line into `held` (or not) and returns what must be written now, in order: nothing
/// while a routine line fits; everything held once [`HOLD_AT_MOST`] is reached; everything held
/// and then the line itself for a line that is not held.
fn due(held: &mut Vec<u8>, line: &[u8], hold: bool) -> Vec<u8> {
    if hold {
        held.extend_from_slice(line);
        if held.len() >= HOLD_AT_MOST { std::mem::take(held) } else { Vec::new() }
    } else {
        let mut out = std::mem::take(held);
        out.extend_from_slice(line);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_writes_out_the_lines_held_before_it() {
        let mut held = Vec::new();
        assert!(due(&mut held, b"routine\n", true).is_empty());
        assert_eq!(held, b"routine\n");
        assert_eq!(due(&mut held, b"warning\n", false), b"routine\nwarning\n");
        assert!(held.is_empty());
    }

    #[test]
    fn held_lines_are_written_once_enough_are_held() {
        let mut held = vec![b'x'; HOLD_AT_MOST - 2];
        assert!(due(&mut held, b"\n", true).is_empty());
        let out = due(&mut held, b"\n", true);
        assert_eq!(out.len(), HOLD_AT_MOST);
        assert!(held.is_empty());
    }
}
