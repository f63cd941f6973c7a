//! Compare this crate with Qdrant's own engine: `fixtures/bm25.json` holds sparse vectors that
//! `qdrant-edge-py` computed (see `make_fixtures.py`). Indices must be identical and document weights equal
//! within 1e-6 relative. `QD_BM25_FIXTURE=path` checks another fixture file of the same form instead (the
//! script's `--fuzz` output).

use std::path::PathBuf;

use qd_inference::{Bm25, Bm25Config};
use serde_json::Value;

fn fixture() -> (PathBuf, Value) {
    let path = std::env::var_os("QD_BM25_FIXTURE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bm25.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    (path, json)
}

fn u32s(value: &Value) -> Vec<u32> {
    value.as_array().expect("array").iter().map(|v| v.as_u64().expect("index") as u32).collect()
}

fn f32s(value: &Value) -> Vec<f32> {
    value.as_array().expect("array").iter().map(|v| v.as_f64().expect("value") as f32).collect()
}

#[test]
fn matches_qdrant_engine() {
    let (path, fixture) = fixture();
    let mut checked = 0;
    let mut failures = Vec::new();
    for group in fixture["groups"].as_array().expect("groups") {
        let options = &group["options"];
        let config =
            Bm25Config::from_options(Some(options)).unwrap_or_else(|e| panic!("options {options} rejected: {e}"));
        let model = Bm25::new(config).unwrap_or_else(|e| panic!("options {options} rejected: {e}"));
        for case in group["cases"].as_array().expect("cases") {
            let text = case["text"].as_str().expect("text");
            let want_doc = (u32s(&case["document"][0]), f32s(&case["document"][1]));
            let want_query = u32s(&case["query"]);
            let (doc_indices, doc_values) = model.embed_document(text);
            let (query_indices, query_values) = model.embed_query(text);
            let values_close = doc_values.len() == want_doc.1.len()
                && doc_values.iter().zip(&want_doc.1).all(|(got, want)| (got - want).abs() <= 1e-6 * want.abs());
            let ok = doc_indices == want_doc.0
                && values_close
                && query_indices == want_query
                && query_values.iter().all(|v| *v == 1.0);
            if !ok {
                failures.push(format!(
                    "options {options} text {text:?}\n  document want {:?}\n           got  {:?}\n  query want {:?}\n        got  {:?}\n  tokens {:?}",
                    want_doc,
                    (doc_indices, doc_values),
                    want_query,
                    query_indices,
                    model.document_tokens(text),
                ));
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no cases in {}", path.display());
    let shown: Vec<&String> = failures.iter().take(15).collect();
    assert!(
        failures.is_empty(),
        "{} of {checked} texts differ from Qdrant's engine ({}):\n{}",
        failures.len(),
        path.display(),
        shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    eprintln!("{checked} texts match ({})", path.display());
}
