//! metrics.jsonl: append, torn last line, series.

use std::io::Write;

use grrm_actors::metrics_log::{names, MetricsLog, MetricsWriter, Record, TailRepair};

#[test]
fn records_round_trip_as_series() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("metrics.jsonl");
    let (mut w, repair) = MetricsWriter::open(&p).unwrap();
    assert_eq!(repair, TailRepair::Clean);
    for step in 0..3 {
        w.log(step, "sft", &[(names::LOSS, 2.0 - step as f64)])
            .unwrap();
    }
    for step in 0..2 {
        w.append(
            &Record::new(step, "rl")
                .with(names::LOSS, 0.5)
                .with(names::REWARD_MEAN, 0.1 * step as f64)
                .with(names::KL, f64::NAN),
        )
        .unwrap();
    }
    let text = std::fs::read_to_string(&p).unwrap();
    assert_eq!(text.lines().count(), 5);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["step"], 0);
    assert_eq!(first["phase"], "sft");
    assert!(first["time"].as_f64().unwrap() > 1.0e9);
    assert_eq!(first["loss"], 2.0);

    let log = MetricsLog::read(&p).unwrap();
    assert_eq!(log.records.len(), 5);
    let loss = log.series(names::LOSS);
    assert_eq!(loss.len(), 2);
    assert_eq!(loss[0].phase, "sft");
    assert_eq!(loss[0].points, vec![(0, 2.0), (1, 1.0), (2, 0.0)]);
    assert_eq!(loss[1].phase, "rl");
    assert!(log.series(names::KL)[0].points[0].1.is_nan());
    assert_eq!(log.metric_names(), vec!["loss", "kl", "reward_mean"]);
}

#[test]
fn reserved_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _) = MetricsWriter::open(&dir.path().join("m.jsonl")).unwrap();
    assert!(w.log(0, "rl", &[("step", 1.0)]).is_err());
}

#[test]
fn torn_last_line_is_skipped_then_cut_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("metrics.jsonl");
    {
        let (mut w, _) = MetricsWriter::open(&p).unwrap();
        w.log(1, "rl", &[("reward_mean", 0.2)]).unwrap();
        w.log(2, "rl", &[("reward_mean", 0.3)]).unwrap();
    }
    // A kill mid-write: half a record, no newline.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .unwrap()
        .write_all(br#"{"step":3,"phase":"rl","rew"#)
        .unwrap();

    let log = MetricsLog::read(&p).unwrap();
    assert_eq!(log.records.len(), 2);
    assert_eq!(
        log.torn_tail.as_deref(),
        Some(r#"{"step":3,"phase":"rl","rew"#)
    );
    assert!(log.bad_lines.is_empty());

    let (mut w, repair) = MetricsWriter::open(&p).unwrap();
    assert!(
        matches!(repair, TailRepair::Truncated { bytes: 27, .. }),
        "{repair:?}"
    );
    w.log(3, "rl", &[("reward_mean", 0.4)]).unwrap();
    let log = MetricsLog::read(&p).unwrap();
    assert!(log.torn_tail.is_none());
    let steps: Vec<u64> = log.records.iter().map(|r| r.step).collect();
    assert_eq!(steps, vec![1, 2, 3]);
}

#[test]
fn whole_last_record_without_newline_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("metrics.jsonl");
    std::fs::write(&p, "{\"step\":1,\"phase\":\"sft\",\"loss\":1.5}").unwrap();
    assert_eq!(MetricsLog::read(&p).unwrap().records.len(), 1);
    let (mut w, repair) = MetricsWriter::open(&p).unwrap();
    assert_eq!(repair, TailRepair::AddedNewline);
    w.log(2, "sft", &[("loss", 1.0)]).unwrap();
    assert_eq!(MetricsLog::read(&p).unwrap().records.len(), 2);
}

#[test]
fn corrupt_middle_lines_are_reported_not_fatal() {
    let log = MetricsLog::parse(
        "{\"step\":1,\"phase\":\"rl\",\"kl\":0.1}\nnot json\n{\"phase\":\"rl\"}\n\
         {\"step\":2,\"phase\":\"rl\",\"kl\":0.2,\"note\":\"text\"}\n",
    );
    assert_eq!(log.records.len(), 2);
    assert_eq!(
        log.bad_lines.iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert!(log.torn_tail.is_none());
    assert_eq!(log.metric_names(), vec!["kl"]);
}
