//! Config loading: overrides, type inference, unknown keys, syntax errors, rendering.

use std::io::Write;

use grrm_actors::config::{
    load_config, render_config, show_config, show_untyped, ConfigError, ConfigSource, ResolvedToml,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Cfg {
    name: String,
    train: Train,
    #[serde(default)]
    rewards: Vec<Reward>,
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Train {
    lr: f64,
    steps: u64,
    #[serde(default)]
    bf16: bool,
    #[serde(default)]
    layers: Vec<u32>,
    optim: Optim,
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Optim {
    beta1: f64,
    #[serde(default)]
    schedule: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Reward {
    kind: String,
    weight: f64,
}

const BASE: &str = r#"
name = "demo"

[train]
lr = 0.001
steps = 10

[train.optim]
beta1 = 0.9

[[rewards]]
kind = "exact"
weight = 1.0
"#;

fn embedded() -> ConfigSource {
    ConfigSource::Embedded {
        name: "demo".into(),
        text: BASE,
    }
}

#[test]
fn overrides_nested_keys_with_inferred_types() {
    let cfg: Cfg = load_config(
        &embedded(),
        &[
            "train.steps=150",
            "train.lr=3e-4",
            "train.bf16=true",
            "train.layers=[1, 2, 3]",
            "train.optim.beta1=0.95",
            "train.optim.schedule=cosine",
            "name=2024",
            "rewards.0.weight=2",
        ],
    )
    .unwrap();
    assert_eq!(cfg.train.steps, 150);
    assert_eq!(cfg.train.lr, 3e-4);
    assert!(cfg.train.bf16);
    assert_eq!(cfg.train.layers, vec![1, 2, 3]);
    assert_eq!(cfg.train.optim.beta1, 0.95);
    // A bare word is a string; a number given for a string key stays a string.
    assert_eq!(cfg.train.optim.schedule.as_deref(), Some("cosine"));
    assert_eq!(cfg.name, "2024");
    assert_eq!(cfg.rewards[0].weight, 2.0);
}

#[test]
fn later_overrides_win_and_quoted_strings_work() {
    let cfg: Cfg = load_config(&embedded(), &["name=a", "name=\"b c\""]).unwrap();
    assert_eq!(cfg.name, "b c");
}

#[test]
fn unknown_key_is_rejected_with_its_path() {
    let err = load_config::<Cfg, _>(&embedded(), &["train.optim.beta3=0.1"]).unwrap_err();
    let ConfigError::Schema { path, origin, .. } = &err else {
        panic!("expected a schema error, got {err}");
    };
    assert_eq!(path, "train.optim.beta3");
    assert_eq!(origin, "<embedded demo>");
    assert!(err.to_string().contains("train.optim.beta3"), "{err}");
}

#[test]
fn unknown_key_in_a_file_names_the_file() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    write!(f, "{BASE}\n[extra]\nx = 1\n").unwrap();
    let err = load_config::<Cfg, &str>(&ConfigSource::File(f.path().into()), &[]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&f.path().display().to_string()), "{msg}");
    assert!(msg.contains("`extra`"), "{msg}");
}

#[test]
fn wrong_type_names_the_key() {
    let err = load_config::<Cfg, _>(&embedded(), &["train.steps=many"]).unwrap_err();
    let ConfigError::Schema { path, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(path, "train.steps");
}

#[test]
fn bad_toml_reports_line_and_column() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    write!(f, "name = \"x\"\n[train]\nlr = = 1\n").unwrap();
    let err = load_config::<Cfg, &str>(&ConfigSource::File(f.path().into()), &[]).unwrap_err();
    let ConfigError::Syntax { line, column, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*line, 3);
    assert!(*column >= 5, "column {column}");
    assert!(err.to_string().contains(":3:"), "{err}");
}

#[test]
fn malformed_overrides_are_rejected() {
    for bad in [
        "train.steps",
        "=1",
        "train..lr=1",
        "name.inner=1",
        "rewards.5.weight=1",
    ] {
        let err = ResolvedToml::from_str("t", BASE)
            .unwrap()
            .apply(&[bad])
            .unwrap_err();
        assert!(matches!(err, ConfigError::Override { .. }), "{bad}: {err}");
    }
}

#[test]
fn missing_file_names_it() {
    let err =
        show_untyped::<&str>(&ConfigSource::File("/nonexistent/x.toml".into()), &[]).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/x.toml"));
}

#[test]
fn rendering_round_trips() {
    let text = show_config::<Cfg, _>(&embedded(), &["train.optim.schedule=cosine"]).unwrap();
    let back: Cfg = load_config(
        &ConfigSource::Embedded {
            name: "rendered".into(),
            text: Box::leak(text.into_boxed_str()),
        },
        &[] as &[&str],
    )
    .unwrap();
    let direct: Cfg = load_config(&embedded(), &["train.optim.schedule=cosine"]).unwrap();
    assert_eq!(back, direct);
    assert!(render_config(&direct).unwrap().contains("[train.optim]"));
}

#[test]
fn untyped_show_keeps_file_order_and_applies_overrides() {
    let text = show_untyped(&embedded(), &["train.steps=7", "train.new_key=x"]).unwrap();
    let name = text.find("name").unwrap();
    let lr = text.find("lr").unwrap();
    assert!(name < lr, "{text}");
    assert!(text.contains("steps = 7"), "{text}");
    assert!(text.contains("new_key = \"x\""), "{text}");
}

#[test]
fn file_or_embedded_prefers_the_file() {
    let f = tempfile::NamedTempFile::new().unwrap();
    let src = ConfigSource::file_or_embedded(Some(f.path()), "demo", BASE);
    assert!(matches!(src, ConfigSource::File(_)));
    let src = ConfigSource::file_or_embedded(None, "demo", BASE);
    assert_eq!(src.origin(), "<embedded demo>");
}

#[test]
fn unknown_top_level_key_and_inline_arrays() {
    let err = load_config::<Cfg, _>(&embedded(), &["seed=3"]).unwrap_err();
    let ConfigError::Schema { path, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(path, "seed");
    let text = show_untyped(&embedded(), &["train.layers=[4, 5]"]).unwrap();
    assert!(text.contains("layers = [4, 5]"), "{text}");
}
