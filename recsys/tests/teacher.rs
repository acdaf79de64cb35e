//! The teacher client against a loopback HTTP server started here: retries on 500, the cache
//! on rerun, and the rejection of replies that leak the target.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use grrm_recsys::tasks::reasoning::think_block;
use grrm_recsys::tasks::teacher::{Teacher, TeacherConfig};
use grrm_recsys::tasks::title_of;
use grrm_recsys::{build_sft, ReasoningConfig, SftConfig, Split};

/// Serves `reply(n, body)` for the n-th request (0-based): (status, content).
fn serve(
    reply: impl Fn(usize, &str) -> (u16, String) + Send + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                let lower = line.to_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let n = c.fetch_add(1, Ordering::SeqCst);
            assert!(first.starts_with("POST /v1/chat/completions"), "{first}");
            let (status, content) = reply(n, std::str::from_utf8(&body).unwrap());
            let payload = if status == 200 {
                serde_json::json!({"choices": [{"message": {"role": "assistant", "content": content}}]})
                    .to_string()
            } else {
                content
            };
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
                payload.len()
            );
            stream.write_all(resp.as_bytes()).unwrap();
        }
    });
    (url, count)
}

const GOOD: &str = "Step 1: the user buys gear.\nStep 2: likes quality.\nStep 3: wants more gear.\nStep 4: the answer is X";

#[test]
fn retries_on_500_and_caches_replies() {
    let ds = common::indexed(60);
    let ids: Vec<String> = ds
        .index
        .as_ref()
        .unwrap()
        .iter()
        .map(|t| t.concat())
        .collect();
    let split = Split::new(&ds).unwrap();
    let e = split
        .train_examples()
        .into_iter()
        .find(|e| e.history.len() >= 3)
        .unwrap();
    let (url, count) = serve(|n, _| {
        if n < 2 {
            (500, "busy".into())
        } else {
            (200, GOOD.into())
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = TeacherConfig {
        url,
        backoff_ms: 1,
        cache: Some(dir.path().join("cache.jsonl")),
        ..Default::default()
    };
    let mut t = Teacher::new(&cfg).unwrap();
    let r = t
        .rationale(&ds, &e.history, e.target, &ids[e.target as usize])
        .unwrap();
    let steps = r.expect("an acceptable reply");
    assert!(
        steps.ends_with("wants more gear."),
        "Step 4 is cut: {steps}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert_eq!(t.stats.retries, 2);
    // A new client (a rerun) answers from the cache file without a request.
    let mut t2 = Teacher::new(&cfg).unwrap();
    let again = t2
        .rationale(&ds, &e.history, e.target, &ids[e.target as usize])
        .unwrap();
    assert_eq!(again.as_deref(), Some(steps.as_str()));
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert_eq!((t2.stats.cache_hits, t2.stats.requests), (1, 0));

    // Giving up after the retry budget is an error naming the endpoint.
    let (url, _) = serve(|_, _| (503, "down".into()));
    let mut t3 = Teacher::new(&TeacherConfig {
        url: url.clone(),
        retries: 1,
        backoff_ms: 1,
        ..Default::default()
    })
    .unwrap();
    let err = t3
        .rationale(&ds, &e.history, e.target, &ids[e.target as usize])
        .unwrap_err();
    assert!(
        err.to_string().contains(&url) && err.to_string().contains("503"),
        "{err}"
    );
}

#[test]
fn leaking_replies_are_rejected_and_fall_back() {
    let ds = common::indexed(60);
    // The server leaks the target's title on the first attempt (seed 0) of every example,
    // then answers cleanly; for one chosen user it always leaks.
    let titles: Vec<String> = (0..ds.n_items() as u32).map(|i| title_of(&ds, i)).collect();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let (url, _) = serve(move |_, body| {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        let user = v["messages"][1]["content"].as_str().unwrap().to_string();
        // The request names the target after "bought next is"; echo it back as a leak.
        let next = user.split("bought next is ").nth(1).unwrap();
        let title = next.split('"').nth(1).unwrap().to_string();
        s2.lock().unwrap().push(title.clone());
        if v["seed"] == 0 {
            (
                200,
                format!("Step 1: history.\nStep 2: taste.\nStep 3: they want {title}."),
            )
        } else {
            (
                200,
                "Step 1: history.\nStep 2: taste.\nStep 3: more of the same.".into(),
            )
        }
    });
    let cfg = SftConfig {
        tasks: vec![],
        reasoning: ReasoningConfig {
            examples: 20,
            teacher: Some(TeacherConfig {
                url,
                backoff_ms: 1,
                leak_attempts: 2,
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let (samples, report) = build_sft(&ds, &cfg).unwrap();
    let stats = report.teacher.clone().unwrap();
    assert_eq!(stats.rejected, 20, "every first attempt leaked");
    assert_eq!(report.rationale_teacher, 20);
    assert_eq!(stats.gave_up, 0);
    for s in samples.iter().filter(|s| s.task == "reasoning") {
        let think = think_block(&s.messages[2].content).unwrap();
        let target = s.meta["target"].as_u64().unwrap() as usize;
        assert!(!think.contains(&titles[target]), "{think}");
        assert_eq!(s.meta["rationale"], "teacher");
    }
    assert!(!seen.lock().unwrap().is_empty());

    // A teacher that always leaks: the offline rationale takes over.
    let (url, _) = serve(move |_, body| {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        let user = v["messages"][1]["content"].as_str().unwrap().to_string();
        let title = user
            .split("bought next is ")
            .nth(1)
            .unwrap()
            .split('"')
            .nth(1)
            .unwrap()
            .to_string();
        (200, format!("Step 1: a.\nStep 2: b.\nStep 3: buy {title}."))
    });
    let mut cfg = cfg;
    cfg.reasoning.teacher.as_mut().unwrap().url = url;
    cfg.reasoning.examples = 5;
    let (_, report) = build_sft(&ds, &cfg).unwrap();
    assert_eq!(report.rationale_offline, 5);
    assert_eq!(report.teacher.unwrap().gave_up, 5);
}
