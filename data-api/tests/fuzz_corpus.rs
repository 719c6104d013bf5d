//! Replays the fuzz corpora kept in `fuzz/corpus/<target>/` (minimised
//! inputs, and every input that once crashed) through the same checks the
//! cargo-fuzz targets run (`wayside_data::fuzzing`), on stable, in CI.

use std::path::PathBuf;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    for file in files {
        let data = std::fs::read(&file).expect("corpus file");
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{target}: {} fails", file.display());
        }
    }
}

#[test]
fn plate() {
    replay("plate", wayside_data::fuzzing::plate);
}

#[test]
fn vector() {
    replay("vector", wayside_data::fuzzing::vector);
}

#[test]
fn ingest() {
    replay("ingest", wayside_data::fuzzing::ingest);
}

#[test]
fn config() {
    replay("config", wayside_data::fuzzing::config);
}
