//! Recorded contracts: a test's normalised output, a list of entries, compared with a file in
//! `tests/golden/`, or written there when `BAC_RECORD_GOLDEN=1` (then review the diff).
use std::path::PathBuf;

use serde_json::Value;

/// Compares `got` with `tests/golden/<file>` entry by entry (`what` names an entry in the
/// failure message), then their counts; records it instead under `BAC_RECORD_GOLDEN=1`.
pub fn check(file: &str, got: Vec<Value>, what: impl Fn(&Value) -> String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(file);
    if std::env::var("BAC_RECORD_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let text = serde_json::to_string_pretty(&Value::Array(got)).unwrap();
        std::fs::write(&path, text + "\n").unwrap();
        return;
    }
    let want: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .expect("the golden file (record it with BAC_RECORD_GOLDEN=1)"),
    )
    .unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(
            g,
            w,
            "{} differs from the recorded contract:\n got: {}\nwant: {}",
            what(w),
            serde_json::to_string_pretty(g).unwrap(),
            serde_json::to_string_pretty(w).unwrap()
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "a different number of entries than recorded; record it again if that is meant"
    );
}
