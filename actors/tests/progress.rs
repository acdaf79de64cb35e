//! Line-mode progress (what CI sees).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grrm_actors::progress::{format_duration, Progress, ProgressMode};

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn lines_are_rate_limited_and_finish_prints() {
    let sink = Sink::default();
    let p = Progress::lines_to(
        "sft",
        100,
        Duration::from_secs(3600),
        Box::new(sink.clone()),
    );
    p.inc(1);
    p.set_message("step 1/100 | loss 2.3");
    for _ in 0..98 {
        p.inc(1);
    }
    p.println("a note");
    p.set_position(100);
    p.finish();
    let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("sft 1/100 (1%)"), "{out}");
    assert_eq!(lines[1], "a note");
    assert!(lines[2].starts_with("sft 100/100 (100%)"), "{out}");
    assert!(lines[2].ends_with("| step 1/100 | loss 2.3"), "{out}");
}

#[test]
fn hidden_mode_and_durations() {
    let p = Progress::with_mode("x", 3, ProgressMode::Hidden);
    p.inc(3);
    p.finish();
    assert_eq!(format_duration(3.12), "3.1 s");
    assert_eq!(format_duration(125.0), "2m05s");
    assert_eq!(format_duration(3720.0), "1h02m");
}
