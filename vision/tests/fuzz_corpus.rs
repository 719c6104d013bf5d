//! Replays the fuzz corpus kept in `fuzz/corpus/plate_grammar/` through the
//! check the cargo-fuzz target runs (`wayside_vision::fuzzing`), on stable.

use std::path::PathBuf;

#[test]
fn plate_grammar() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/plate_grammar");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    for file in files {
        let data = std::fs::read(&file).expect("corpus file");
        if std::panic::catch_unwind(|| wayside_vision::fuzzing::plate_grammar(&data)).is_err() {
            panic!("plate_grammar: {} fails", file.display());
        }
    }
}
