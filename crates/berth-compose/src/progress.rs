//! Progress output on stderr, in docker compose v2's two shapes.
//!
//! Plain (stderr is not a terminal, or `--progress plain`): one line per step, as compose
//! prints them (` Container p-web-1  Started`). TTY: a block that is redrawn in place on
//! every step, headed `[+] Running 3/3`, one line per object with a spinner while it is in
//! flight, a green ✔ once it is done, and the elapsed seconds on the right.
//!
//! The board lives in a process-wide mutex rather than in [`Progress`]: stderr itself is
//! process-wide, every command prints at most one board at a time, and keeping
//! [`Progress`] a small `Copy` value lets the runner and the CLI pass it around freely.
//! Anything else written to stderr between two redraws (a warning, build output) calls
//! [`Progress::finish`] first so the board is never drawn over it.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

/// How progress is shown.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub tty: bool,
    pub quiet: bool,
}

/// One line of the TTY board.
struct Line {
    key: String,
    status: String,
    done: bool,
    error: bool,
    started: Instant,
    ended: Option<Instant>,
}

/// The TTY board: its lines and how many terminal rows the last draw used.
struct Board {
    title: String,
    lines: Vec<Line>,
    drawn: usize,
}

static BOARD: Mutex<Board> = Mutex::new(Board {
    title: String::new(),
    lines: Vec::new(),
    drawn: 0,
});

const SPINNER: &[char] = &['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Statuses after which an object needs nothing more (compose's "done" states).
pub fn is_done(status: &str) -> bool {
    matches!(
        status,
        "Created"
            | "Started"
            | "Running"
            | "Stopped"
            | "Removed"
            | "Recreated"
            | "Healthy"
            | "Pulled"
            | "Built"
            | "Pushed"
            | "Killed"
            | "Paused"
            | "Unpaused"
            | "Restarted"
            | "Exited"
            | "Skipped"
    )
}

impl Progress {
    /// Report that object `name` of `kind` (`Container`, `Network`, ... or `""` for a
    /// service) reached `status`.
    pub fn event(&self, kind: &str, name: &str, status: &str) {
        if self.quiet {
            return;
        }
        let key = if kind.is_empty() {
            name.to_string()
        } else {
            format!("{kind} {name}")
        };
        if !self.tty {
            let _ = writeln!(std::io::stderr(), " {key}  {status}");
            return;
        }
        let mut b = BOARD.lock().unwrap_or_else(|p| p.into_inner());
        let error = status.starts_with("Error");
        let now = Instant::now();
        match b.lines.iter_mut().find(|l| l.key == key) {
            Some(l) => {
                l.status = status.to_string();
                l.done = is_done(status);
                l.error = error;
                l.ended = (l.done || error).then_some(now);
            }
            None => {
                let done = is_done(status);
                b.lines.push(Line {
                    key,
                    status: status.to_string(),
                    done,
                    error,
                    started: now,
                    ended: (done || error).then_some(now),
                });
            }
        }
        b.draw();
    }

    /// Set the verb of the TTY header (`Running` unless told otherwise).
    pub fn title(&self, title: &str) {
        if self.tty && !self.quiet {
            let mut b = BOARD.lock().unwrap_or_else(|p| p.into_inner());
            b.title = title.to_string();
        }
    }

    /// End the current TTY board: later events start a new one below it, so that other
    /// output (container logs, warnings) is never drawn over.
    pub fn finish(&self) {
        let mut b = BOARD.lock().unwrap_or_else(|p| p.into_inner());
        b.lines.clear();
        b.drawn = 0;
    }
}

impl Board {
    fn draw(&mut self) {
        let out = self.render(Instant::now());
        self.drawn = self.lines.len() + 1;
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(out.as_bytes());
        let _ = err.flush();
    }

    /// The escape sequences that redraw the board over its previous draw.
    fn render(&self, now: Instant) -> String {
        let total = self.lines.len();
        let done = self.lines.iter().filter(|l| l.done).count();
        let title = if self.title.is_empty() {
            "Running"
        } else {
            self.title.as_str()
        };
        let width = self.lines.iter().map(|l| l.key.len()).max().unwrap_or(0);
        let mut out = String::new();
        if self.drawn > 0 {
            // Back to the top of the previous draw.
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        out.push_str(&format!("\r\x1b[2K[+] {title} {done}/{total}\n"));
        for (i, l) in self.lines.iter().enumerate() {
            let secs = l
                .ended
                .unwrap_or(now)
                .duration_since(l.started)
                .as_secs_f64();
            let mark = if l.error {
                "\x1b[31m✘\x1b[0m".to_string()
            } else if l.done {
                "\x1b[32m✔\x1b[0m".to_string()
            } else {
                SPINNER[i % SPINNER.len()].to_string()
            };
            out.push_str(&format!(
                "\r\x1b[2K {mark} {:<width$} {:<10} \x1b[34m{secs:.1}s\x1b[0m\n",
                l.key, l.status
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_states() {
        assert!(is_done("Started"));
        assert!(is_done("Healthy"));
        assert!(!is_done("Starting"));
        assert!(!is_done("Waiting"));
    }

    #[test]
    fn board_renders_header_marks_and_redraws_in_place() {
        let t = Instant::now();
        let line = |key: &str, status: &str| Line {
            key: key.into(),
            status: status.into(),
            done: is_done(status),
            error: false,
            started: t,
            ended: None,
        };
        let mut b = Board {
            title: String::new(),
            lines: vec![
                line("Network p_default", "Created"),
                line("Container p-web-1", "Starting"),
            ],
            drawn: 0,
        };
        let first = b.render(t);
        assert!(first.contains("[+] Running 1/2\n"), "{first:?}");
        assert!(first.contains("✔\x1b[0m Network p_default"), "{first:?}");
        assert!(first.contains("⠙ Container p-web-1 Starting"), "{first:?}");
        assert!(!first.contains("\x1b[3A"));
        b.drawn = 3;
        b.title = "Stopping".into();
        let again = b.render(t);
        assert!(again.starts_with("\x1b[3A"), "{again:?}");
        assert!(again.contains("[+] Stopping 1/2"), "{again:?}");
    }
}
