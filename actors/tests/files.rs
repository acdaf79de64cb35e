//! Atomic writes, run folders and checkpoint rotation.

use std::path::Path;

use anyhow::anyhow;
use grrm_actors::atomic::{write_atomic, write_atomic_with, write_json_atomic};
use grrm_actors::checkpoints::CheckpointDir;
use grrm_actors::run_dir::RunDir;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn atomic_write_replaces_and_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.json");
    write_atomic(&p, b"one").unwrap();
    write_json_atomic(&p, &serde_json::json!({"k": 2})).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    assert_eq!(v["k"], 2);
    assert_eq!(names(dir.path()), vec!["a.json"]);
}

#[test]
fn failed_serialisation_keeps_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("state.json");
    write_atomic(&p, b"old").unwrap();
    let err = write_atomic_with(&p, |w| {
        w.write_all(b"half of the new")?;
        Err(anyhow!("serialiser failed"))
    })
    .unwrap_err();
    assert!(format!("{err:#}").contains("serialiser failed"));
    assert_eq!(std::fs::read(&p).unwrap(), b"old");
    assert_eq!(names(dir.path()), vec!["state.json"]);
    // A value serde_json refuses (a map with non-string keys) fails the same way.
    let mut bad = std::collections::HashMap::new();
    bad.insert(vec![1u8], 1);
    assert!(write_json_atomic(&p, &bad).is_err());
    assert_eq!(std::fs::read(&p).unwrap(), b"old");
    assert_eq!(names(dir.path()), vec!["state.json"]);
}

fn save(ck: &CheckpointDir, step: u64, keep: Option<usize>) {
    ck.save(step, keep, |dir| {
        std::fs::write(dir.join("weights.bin"), step.to_le_bytes())?;
        std::fs::create_dir(dir.join("sub"))?;
        std::fs::write(dir.join("sub/state.json"), "{}")?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn checkpoints_rotate_and_latest_follows() {
    let dir = tempfile::tempdir().unwrap();
    let ck = CheckpointDir::new(dir.path().join("checkpoints")).unwrap();
    assert_eq!(ck.latest().unwrap(), None);
    for step in [10, 20, 30, 40] {
        save(&ck, step, Some(2));
    }
    assert_eq!(names(ck.path()), vec!["latest", "step-30", "step-40"]);
    assert_eq!(
        std::fs::read_to_string(ck.path().join("latest")).unwrap(),
        "step-40\n"
    );
    let latest = ck.latest().unwrap().unwrap();
    assert_eq!(latest.step, 40);
    assert_eq!(
        std::fs::read(latest.path.join("weights.bin")).unwrap(),
        40u64.to_le_bytes()
    );
    // Steps sort numerically, not as text.
    save(&ck, 100, Some(2));
    assert_eq!(names(ck.path()), vec!["latest", "step-100", "step-40"]);
}

#[test]
fn failed_or_interrupted_saves_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ck = CheckpointDir::new(dir.path()).unwrap();
    save(&ck, 1, None);
    let err = ck.save(2, None, |d| {
        std::fs::write(d.join("w"), "partial")?;
        Err(anyhow!("disk full"))
    });
    assert!(err.is_err());
    assert_eq!(names(ck.path()), vec!["latest", "step-1"]);
    // A kill -9 mid-save leaves a temp folder; it is never taken for a checkpoint.
    let pending = ck.begin(3).unwrap();
    std::fs::write(pending.path().join("w"), "partial").unwrap();
    std::mem::forget(pending);
    assert_eq!(ck.latest().unwrap().unwrap().step, 1);
    assert_eq!(ck.remove_stale_temps().unwrap(), 1);
    assert_eq!(names(ck.path()), vec!["latest", "step-1"]);
}

#[test]
fn resaving_a_step_replaces_it_and_stale_pointer_is_corrected() {
    let dir = tempfile::tempdir().unwrap();
    let ck = CheckpointDir::new(dir.path()).unwrap();
    save(&ck, 5, None);
    ck.save(5, None, |d| Ok(std::fs::write(d.join("v2"), "x")?))
        .unwrap();
    assert_eq!(names(&dir.path().join("step-5")), vec!["v2"]);
    // Crash between the rename and the pointer update: the complete folder wins.
    save(&ck, 6, None);
    std::fs::write(dir.path().join("latest"), "step-5\n").unwrap();
    assert_eq!(ck.latest().unwrap().unwrap().step, 6);
}

#[test]
fn run_dir_layout_and_reopen() {
    let root = tempfile::tempdir().unwrap();
    let a = RunDir::create(root.path(), "demo run", "x = 1\n").unwrap();
    let b = RunDir::create(root.path(), "demo run", "x = 2\n").unwrap();
    assert_ne!(a.path(), b.path());
    let name = a.path().file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("demo_run-"), "{name}");
    assert_eq!(
        names(a.path()),
        vec!["checkpoints", "config.resolved.toml", "logs"]
    );
    let reopened = RunDir::open_existing(a.path()).unwrap();
    assert_eq!(reopened.read_config().unwrap(), "x = 1\n");
    assert!(RunDir::open_existing(root.path()).is_err());

    let at = root.path().join("given");
    RunDir::create_at(&at, "y = 1\n").unwrap();
    assert!(RunDir::create_at(&at, "y = 1\n").is_err());
}
