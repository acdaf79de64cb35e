//! The HTTP plug-in against a tiny server on 127.0.0.1 (ephemeral port, one thread per
//! connection). The server's behaviour is picked by the response text, as in the process tests.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use grrm_rewards::*;
use serde_json::{json, Value};

fn handle(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let (mut line, mut len, mut auth) = (String::new(), 0usize, String::new());
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("POST /score "), "{line}");
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        if let Some(v) = l.strip_prefix("authorization:") {
            auth = v.trim().to_string();
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let req: Value = serde_json::from_slice(&body).unwrap();
    let (id, text) = (
        req["id"].as_str().unwrap(),
        req["response"].as_str().unwrap(),
    );
    let (status, reply) = if text.contains("SLOW") {
        std::thread::sleep(Duration::from_secs(3));
        (200, String::new())
    } else if text.contains("STATUS500") {
        (500, "internal trouble".to_string())
    } else if text.contains("NAN") {
        (200, format!(r#"{{"id":"{id}","score":NaN}}"#))
    } else if text.contains("GARBAGE") {
        (200, "<html>oops</html>".to_string())
    } else {
        let target_len = req["metadata"]["target"].as_array().unwrap().len();
        let reply = json!({"id": id, "score": text.len() as f64 / 100.0,
            "components": {"target_len": target_len, "authorised": (auth == "bearer s3cret") as u8}});
        (200, reply.to_string())
    };
    let mut out = stream;
    let _ = write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

fn server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || handle(s));
        }
    });
    format!("http://{addr}/score")
}

fn reward(url: &str, timeout_ms: u64) -> HttpReward {
    let mut o = HttpOptions::new(url);
    o.timeout_ms = timeout_ms;
    o.proxy_from_env = false;
    o.headers
        .insert("Authorization".into(), "Bearer s3cret".into());
    HttpReward::new("remote", o).unwrap()
}

#[test]
fn scores_and_components_come_back() {
    let r = reward(&server(), 5_000);
    let out = r.score(&input("u1/r0", "p", "abcdef", &T5)).unwrap();
    assert_eq!(out.score, 0.06);
    assert_eq!(out.components["target_len"], 5.0);
    assert_eq!(out.components["authorised"], 1.0);
}

#[test]
fn timeout_status_nan_and_garbage_are_typed_errors_naming_the_sample() {
    let url = server();
    let r = reward(&url, 500);
    let t0 = Instant::now();
    let e = r.score(&input("slow", "p", "SLOW", &T4)).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(
        (e.reward.as_str(), e.sample_id.as_str()),
        ("remote", "slow")
    );
    assert!(matches!(e.kind, RewardErrorKind::Timeout { .. }), "{e}");

    let kind = |t: &str| r.score(&input("s", "p", t, &T4)).unwrap_err().kind;
    match kind("STATUS500") {
        RewardErrorKind::Http { detail } => {
            assert!(detail.contains("500") && detail.contains("internal trouble"))
        }
        k => panic!("{k}"),
    }
    assert!(matches!(
        kind("NAN"),
        RewardErrorKind::NonFiniteScore { .. }
    ));
    assert!(matches!(
        kind("GARBAGE"),
        RewardErrorKind::MalformedReply { .. }
    ));
    // The endpoint still works after all that.
    assert_eq!(r.score(&input("s", "p", "ab", &T4)).unwrap().score, 0.02);
}

#[test]
fn connection_refused_is_an_http_error() {
    // Bind then drop to get a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = reward(&format!("http://127.0.0.1:{port}/score"), 2_000);
    let e = r.score(&input("s9", "p", "x", &T4)).unwrap_err();
    assert!(matches!(e.kind, RewardErrorKind::Http { .. }), "{e}");
    assert_eq!(e.sample_id, "s9");
}

#[test]
fn bad_urls_and_https_without_the_feature_are_config_errors() {
    for url in ["not a url", "ftp://host/x"] {
        let e = HttpReward::new("h", HttpOptions::new(url)).err().unwrap();
        assert!(e.to_string().contains("field `url`"), "{e}");
    }
    let https = HttpReward::new("h", HttpOptions::new("https://example.invalid/score"));
    assert_eq!(https.is_ok(), cfg!(feature = "https"));
}
