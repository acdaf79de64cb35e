//! Importers on the small fixtures under tests/fixtures (hand-written; the expected sequences
//! below are worked out from the files' timestamps).

use std::io::Write;
use std::path::{Path, PathBuf};

use grrm_recsys::{
    import_amazon, import_gream, import_recbole, io, AmazonConfig, DataError, GreamConfig,
    OnMalformed, PreprocessConfig, RecboleConfig,
};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

fn gzip_into(src: &Path, dir: &Path) -> PathBuf {
    let dst = dir.join(format!("{}.gz", src.file_name().unwrap().to_str().unwrap()));
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&dst).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&std::fs::read(src).unwrap()).unwrap();
    enc.finish().unwrap();
    dst
}

fn check_amazon_2014(cfg: &AmazonConfig) {
    let (ds, rep) = import_amazon(cfg).unwrap();
    assert_eq!(ds.name, "Toy");
    // U1..U6 -> 0..5, A1..A6 -> 0..5; user u saw the items rotated by u-1.
    let expect: Vec<Vec<u32>> = (0..6)
        .map(|u| (0..6).map(|k| (u + k) % 6).collect())
        .collect();
    assert_eq!(ds.sequences, expect);
    let p = &rep.preprocess;
    assert_eq!(
        (
            p.raw_interactions,
            p.dropped_without_metadata,
            p.dropped_duplicates,
            p.dropped_by_k_core
        ),
        (40, 1, 1, 2)
    );
    assert_eq!((p.users, p.items, p.interactions), (6, 6, 36));
    assert_eq!(ds.items[0].title.as_deref(), Some("Girls' Ballet Tutu"));
    assert_eq!(ds.items[0].categories, ["Clothing", "Girls", "Dance"]);
    assert_eq!(ds.items[1].title.as_deref(), Some("Pink \"Sparkle\" Shoes"));
    assert_eq!(
        ds.items[1].description.as_deref(),
        Some("Size 3. Soft sole.")
    );
    assert_eq!(ds.items[2].title.as_deref(), Some("It's a Hat"));
    assert_eq!(ds.items[3].title.as_deref(), Some("Café Mug"));
    assert_eq!(ds.items[3].price, Some(7.0));
    // The first review of a duplicated pair is the one kept.
    assert_eq!(ds.reviews.len(), 36);
    assert_eq!(
        ds.reviews[&(0, 0)].review.as_deref(),
        Some("review of A1 by U1")
    );
    assert_eq!(rep.malformed_skipped, 0);
}

#[test]
fn amazon_2014_plain_and_gz() {
    let cfg = AmazonConfig::new(
        fixture("amazon2014/reviews_Toy_5.json"),
        fixture("amazon2014/meta_Toy.json"),
    );
    check_amazon_2014(&cfg);
    let tmp = tempfile::tempdir().unwrap();
    let gz = AmazonConfig::new(
        gzip_into(&cfg.reviews, tmp.path()),
        gzip_into(&cfg.meta, tmp.path()),
    );
    check_amazon_2014(&gz);
}

#[test]
fn amazon_2018_json_meta() {
    let mut cfg = AmazonConfig::new(
        fixture("amazon2018/Toy18_5.json"),
        fixture("amazon2018/meta_Toy18.json"),
    );
    cfg.preprocess.k_core = 3;
    let (ds, rep) = import_amazon(&cfg).unwrap();
    assert_eq!(ds.name, "Toy18");
    // V_u saw B((u+k)%3+1) for k = 0, 1, 2 in time order.
    let expect: Vec<Vec<u32>> = (1..5u32)
        .map(|u| (0..3).map(|k| (u + k) % 3).collect())
        .collect();
    assert_eq!(ds.sequences, expect);
    assert_eq!(rep.preprocess.interactions, 12);
    assert_eq!(ds.items[0].title.as_deref(), Some("Guitar Strings & Picks"));
    assert_eq!(
        ds.items[0].description.as_deref(),
        Some("Bright tone. Lasts long.")
    );
    assert_eq!(ds.items[0].price, Some(12.99));
    assert_eq!(ds.items[1].title.as_deref(), Some("Capo")); // the repeated asin's first line
    assert_eq!(
        (ds.items[1].price, ds.items[1].description.as_deref()),
        (None, None)
    );
    assert_eq!(ds.items[2].title.as_deref(), Some("Tuner Clip"));
    assert_eq!(ds.items[2].price, Some(1024.0));
}

#[test]
fn amazon_malformed_lines_name_file_and_line() {
    let mut cfg = AmazonConfig::new(
        fixture("amazon2018/reviews_bad.json"),
        fixture("amazon2018/meta_Toy18.json"),
    );
    cfg.preprocess.k_core = 1;
    let e = import_amazon(&cfg).unwrap_err();
    assert!(matches!(e, DataError::Line { line: 3, .. }), "{e}");
    assert!(
        e.to_string()
            .contains("reviews_bad.json: line 3: invalid JSON"),
        "{e}"
    );

    let e = import_amazon(&AmazonConfig::new(
        fixture("amazon2014/reviews_Toy_5.json"),
        fixture("amazon2014/meta_bad.json"),
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("meta_bad.json: line 2: neither JSON nor a Python literal"),
        "{e}"
    );

    // Skipping: the bad line is counted; the remaining 3 interactions of V1, V2 remain.
    cfg.on_malformed = OnMalformed::Skip;
    let (ds, rep) = import_amazon(&cfg).unwrap();
    assert_eq!(rep.malformed_skipped, 1);
    assert!(rep.malformed_examples[0].contains("line 3"));
    assert_eq!(ds.n_interactions(), 3);
}

#[test]
fn amazon_everything_filtered_is_an_error() {
    let mut cfg = AmazonConfig::new(
        fixture("amazon2018/Toy18_5.json"),
        fixture("amazon2018/meta_Toy18.json"),
    );
    cfg.preprocess.k_core = 5;
    let e = import_amazon(&cfg).unwrap_err();
    assert!(matches!(e, DataError::Empty { .. }), "{e}");
}

#[test]
fn recbole_atomic_files() {
    let (ds, rep) = import_recbole(&RecboleConfig::new(fixture("recbole"))).unwrap();
    assert_eq!(ds.name, "toy");
    // Times decrease down the file, so each user's sequence is the file order reversed.
    assert_eq!(ds.sequences[0], [0, 4, 3, 2, 1]);
    assert_eq!(ds.sequences[1], [1, 0, 4, 3, 2]);
    assert_eq!(ds.n_interactions(), 25);
    assert_eq!(
        (
            rep.preprocess.dropped_without_metadata,
            rep.preprocess.dropped_duplicates
        ),
        (1, 1)
    );
    assert_eq!(ds.items[0].title.as_deref(), Some("Red Guitar Pick"));
    assert_eq!(ds.items[0].categories, ["Instruments", "Picks"]);
    assert_eq!(ds.items[0].price, Some(0.99));
    assert_eq!(ds.items[1].categories, ["Instruments", "Accessories"]);
    assert_eq!(
        (ds.items[2].brand.as_deref(), ds.items[2].price),
        (None, None)
    );
    assert_eq!(ds.items[3].brand.as_deref(), Some("Levy's"));
}

#[test]
fn recbole_malformed_line() {
    let e = import_recbole(&RecboleConfig::new(fixture("recbole_bad")))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("toy.inter: line 4: 3 columns, the header has 4"),
        "{e}"
    );
    let mut cfg = RecboleConfig::new(fixture("recbole_bad"));
    cfg.on_malformed = OnMalformed::Skip;
    cfg.preprocess = PreprocessConfig {
        k_core: 1,
        ..Default::default()
    };
    let (_, rep) = import_recbole(&cfg).unwrap();
    assert_eq!(rep.malformed_skipped, 1);
}

#[test]
fn gream_folder_with_gaps_and_unknown_items() {
    let (ds, rep) = import_gream(&GreamConfig::new(fixture("gream"))).unwrap();
    assert_eq!(ds.name, "Toy");
    assert_eq!(rep.preprocess.user_ids, ["0", "1", "2", "3", "5"]);
    assert_eq!(rep.preprocess.dropped_without_metadata, 1);
    assert_eq!(ds.sequences[3], [3, 4, 0, 1, 2]);
    assert_eq!(ds.sequences[4], [4, 0, 1, 2, 3]);
    assert_eq!(ds.items[0].categories, ["Instruments", "Picks"]);
    assert_eq!(ds.items[4].price, Some(9.75));
    assert_eq!(
        ds.reviews.keys().copied().collect::<Vec<_>>(),
        [(0, 1), (4, 4)]
    );

    // Written and read back through the strict loader unchanged.
    let tmp = tempfile::tempdir().unwrap();
    io::save(&ds, tmp.path()).unwrap();
    assert_eq!(io::load(tmp.path()).unwrap(), ds);
    // The strict loader refuses the source folder: its user keys have a gap.
    let e = io::load(&fixture("gream")).unwrap_err().to_string();
    assert!(
        e.contains("Toy.inter.json") && e.contains("4 is missing"),
        "{e}"
    );
}

#[test]
fn gream_keeps_index_only_when_items_do_not_move() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut ds, _) = import_gream(&GreamConfig::new(fixture("gream"))).unwrap();
    ds.index = Some(
        (0..5)
            .map(|i| vec![format!("<|a_{}|>", i + 1), "<|b_1|>".into()])
            .collect(),
    );
    io::save(&ds, tmp.path()).unwrap();
    let (again, _) = import_gream(&GreamConfig::new(tmp.path())).unwrap();
    assert_eq!(again.index, ds.index);
    let mut cfg = GreamConfig::new(tmp.path());
    cfg.preprocess.k_core = 6; // removes everything
    assert!(matches!(
        import_gream(&cfg).unwrap_err(),
        DataError::Empty { .. }
    ));
}

#[test]
fn gream_bad_json_names_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("X.inter.json"),
        "{\n  \"0\": [0, 1, 2],\n  \"1\": [0 1]\n}\n",
    )
    .unwrap();
    std::fs::write(tmp.path().join("X.item.json"), "{}").unwrap();
    let e = import_gream(&GreamConfig::new(tmp.path())).unwrap_err();
    assert!(matches!(e, DataError::Json { line: 3, .. }), "{e}");
    assert!(e.to_string().contains("X.inter.json: line 3"), "{e}");
}
