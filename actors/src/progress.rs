//! Progress for long phases: an indicatif bar on a terminal, periodic log lines elsewhere (CI,
//! redirected output), so logs stay readable and still show that the run is alive.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    Bar,
    /// A line at most every `every`, plus one at the end.
    Lines {
        every: Duration,
    },
    Hidden,
}

impl ProgressMode {
    /// A bar when stderr is a terminal, else a line every 10 s.
    pub fn detect() -> Self {
        if std::io::stderr().is_terminal() {
            Self::Bar
        } else {
            Self::Lines {
                every: Duration::from_secs(10),
            }
        }
    }
}

/// Cheap to clone; clones share the same bar or line state.
#[derive(Clone)]
pub struct Progress {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Bar(ProgressBar),
    Lines(Arc<Mutex<LineState>>),
    Hidden,
}

struct LineState {
    label: String,
    total: u64,
    pos: u64,
    message: String,
    start: Instant,
    last: Option<Instant>,
    every: Duration,
    out: Box<dyn Write + Send>,
}

impl Progress {
    /// `total` units of work labelled `label`, shown as `ProgressMode::detect()` says.
    pub fn new(label: &str, total: u64) -> Self {
        Self::with_mode(label, total, ProgressMode::detect())
    }

    pub fn with_mode(label: &str, total: u64, mode: ProgressMode) -> Self {
        match mode {
            ProgressMode::Bar => {
                let bar = ProgressBar::new(total);
                let style = ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} eta {eta} {msg}",
                )
                .expect("static template is valid");
                bar.set_style(style);
                bar.set_prefix(label.to_string());
                Self {
                    inner: Inner::Bar(bar),
                }
            }
            ProgressMode::Lines { every } => {
                Self::lines_to(label, total, every, Box::new(std::io::stderr()))
            }
            ProgressMode::Hidden => Self {
                inner: Inner::Hidden,
            },
        }
    }

    /// Line mode writing to `out` (tests, log files).
    pub fn lines_to(label: &str, total: u64, every: Duration, out: Box<dyn Write + Send>) -> Self {
        Self {
            inner: Inner::Lines(Arc::new(Mutex::new(LineState {
                label: label.to_string(),
                total,
                pos: 0,
                message: String::new(),
                start: Instant::now(),
                last: None,
                every,
                out,
            }))),
        }
    }

    pub fn inc(&self, n: u64) {
        match &self.inner {
            Inner::Bar(b) => b.inc(n),
            Inner::Lines(s) => lock(s).advance_to(None, n, false),
            Inner::Hidden => {}
        }
    }

    pub fn set_position(&self, pos: u64) {
        match &self.inner {
            Inner::Bar(b) => b.set_position(pos),
            Inner::Lines(s) => lock(s).advance_to(Some(pos), 0, false),
            Inner::Hidden => {}
        }
    }

    /// Text after the counter, e.g. the latest step summary.
    pub fn set_message(&self, msg: impl Into<String>) {
        let msg = msg.into();
        match &self.inner {
            Inner::Bar(b) => b.set_message(msg),
            Inner::Lines(s) => lock(s).message = msg,
            Inner::Hidden => {}
        }
    }

    /// Prints a line without tearing the bar.
    pub fn println(&self, line: impl AsRef<str>) {
        match &self.inner {
            Inner::Bar(b) => b.println(line.as_ref()),
            Inner::Lines(s) => {
                let mut s = lock(s);
                let _ = writeln!(s.out, "{}", line.as_ref());
            }
            Inner::Hidden => {}
        }
    }

    pub fn finish(&self) {
        match &self.inner {
            Inner::Bar(b) => b.finish(),
            Inner::Lines(s) => lock(s).advance_to(None, 0, true),
            Inner::Hidden => {}
        }
    }
}

fn lock(s: &Mutex<LineState>) -> std::sync::MutexGuard<'_, LineState> {
    // A panic elsewhere while printing must not silence progress for the rest of the run.
    s.lock().unwrap_or_else(|e| e.into_inner())
}

impl LineState {
    fn advance_to(&mut self, pos: Option<u64>, inc: u64, force: bool) {
        self.pos = pos.unwrap_or(self.pos) + inc;
        let now = Instant::now();
        let due = self
            .last
            .is_none_or(|t| now.duration_since(t) >= self.every);
        if force || due {
            self.last = Some(now);
            let line = self.render(now);
            let _ = writeln!(self.out, "{line}");
            let _ = self.out.flush();
        }
    }

    fn render(&self, now: Instant) -> String {
        let elapsed = now.duration_since(self.start).as_secs_f64();
        let mut line = format!("{} {}/{}", self.label, self.pos, self.total);
        if self.total > 0 {
            let frac = self.pos as f64 / self.total as f64;
            line += &format!(" ({:.0}%)", 100.0 * frac);
            line += &format!(" | {}", format_duration(elapsed));
            if self.pos > 0 && self.pos < self.total {
                let eta = elapsed * (self.total - self.pos) as f64 / self.pos as f64;
                line += &format!(" eta {}", format_duration(eta));
            }
        }
        if !self.message.is_empty() {
            line += &format!(" | {}", self.message);
        }
        line
    }
}

/// `3.1 s`, `2m05s`, `1h02m`.
pub fn format_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "? s".into();
    }
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    let s = secs.round() as u64;
    if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    }
}
