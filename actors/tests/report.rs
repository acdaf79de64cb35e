//! `generate_report`: SVG charts with the series drawn, and an HTML page linking them.

use grrm_actors::metrics_log::{names, Record};
use grrm_actors::report::generate_report;
use grrm_actors::run_dir::RunDir;

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// Text content of every `<text>` element.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

#[test]
fn report_draws_every_series() {
    let root = tempfile::tempdir().unwrap();
    let run = RunDir::create(root.path(), "rep", "[train]\nsteps = 20\n").unwrap();
    let (mut w, _) = run.metrics_writer().unwrap();
    for step in 0..20u64 {
        w.log(step, "sft", &[(names::LOSS, 3.0 / (1.0 + step as f64))])
            .unwrap();
    }
    for step in 0..40u64 {
        let s = step as f64;
        w.append(
            &Record::new(step, "rl")
                .with(names::LOSS, 0.3 - 0.001 * s)
                .with(names::REWARD_MEAN, 0.2 + 0.01 * s)
                .with(names::HIT_RATE, 0.05 + 0.002 * s)
                .with(names::KL, 0.001 * s)
                .with(names::CLIP_FRAC, 0.04)
                .with(names::ZERO_VAR_FRAC, 0.25)
                .with("custom_metric", s.sin()),
        )
        .unwrap();
    }
    // One evaluation: a single point.
    w.log(39, "eval", &[(names::RECALL_AT_10, 0.12)]).unwrap();
    drop(w);
    // Torn tail must not stop the report.
    std::fs::write(
        run.metrics_path(),
        std::fs::read_to_string(run.metrics_path()).unwrap() + "{\"step\":40,",
    )
    .unwrap();

    let rep = generate_report(run.path(), None).unwrap();
    assert!(rep.torn_tail);
    let files: Vec<&str> = rep.charts.iter().map(|c| c.file.as_str()).collect();
    assert_eq!(
        files,
        vec![
            "reward_mean.svg",
            "hit_rate.svg",
            "kl.svg",
            "clip_frac.svg",
            "zero_var_frac.svg",
            "loss.svg",
            "recall_10.svg",
            "custom_metric.svg"
        ]
    );
    for c in &rep.charts {
        let svg = std::fs::read_to_string(rep.out_dir.join(&c.file)).unwrap();
        assert!(svg.starts_with("<svg"), "{}", c.file);
        assert!(svg.trim_end().ends_with("</svg>"), "{}", c.file);
        let t = texts(&svg);
        assert!(
            t.iter().any(|s| s == &c.title),
            "{}: title missing in {t:?}",
            c.file
        );
        for s in &c.series {
            assert!(t.contains(&s.phase), "{}: legend lacks {}", c.file, s.phase);
        }
    }
    let loss = std::fs::read_to_string(rep.out_dir.join("loss.svg")).unwrap();
    let reward = std::fs::read_to_string(rep.out_dir.join("reward_mean.svg")).unwrap();
    let recall = std::fs::read_to_string(rep.out_dir.join("recall_10.svg")).unwrap();
    // Two phases of loss: two data polylines plus the legend's sample lines.
    assert!(count(&loss, "<polyline") >= 2, "{loss}");
    let long_line = |svg: &str, min_pts: usize| {
        svg.split("<polyline").skip(1).any(|p| {
            p.split("points=\"").nth(1).is_some_and(|pts| {
                pts[..pts.find('"').unwrap()].split_whitespace().count() >= min_pts
            })
        })
    };
    assert!(long_line(&loss, 20) && long_line(&reward, 40));
    // A single point is drawn as a marker.
    assert!(count(&recall, "<circle") >= 1, "{recall}");

    let html = std::fs::read_to_string(&rep.html).unwrap();
    for c in &rep.charts {
        assert!(html.contains(&format!("src=\"{}\"", c.file)));
    }
    assert!(html.contains("steps = 20"));
    assert!(html.contains("torn last line"));
}

#[test]
fn report_to_a_given_folder_and_errors() {
    let root = tempfile::tempdir().unwrap();
    assert!(generate_report(root.path(), None).is_err());
    let run = RunDir::create_at(&root.path().join("r"), "").unwrap();
    let (mut w, _) = run.metrics_writer().unwrap();
    w.log(0, "rl", &[("kl", 0.0)]).unwrap();
    let out = root.path().join("out");
    let rep = generate_report(run.path(), Some(&out)).unwrap();
    assert_eq!(rep.out_dir, out);
    assert!(out.join("kl.svg").is_file() && out.join("report.html").is_file());
}
