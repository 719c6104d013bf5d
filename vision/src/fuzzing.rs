//! The properties the fuzz targets check. Each function takes the fuzzer's
//! bytes, runs one piece of input handling on them and panics if a property
//! fails (or the code under test panics by itself).
//!
//! The cargo-fuzz targets in `fuzz/` call these functions, and
//! `tests/fuzz_corpus.rs` replays the kept corpora (`fuzz/corpus/<target>/`)
//! through the same functions under `cargo test`.

use crate::plate::grammar::{self, GenericConfig, GrammarConfig, PlateFormat};
use crate::plate::{Dictionary, PlateChar, Reading};

/// Plate grammar (`plate_grammar`): the bytes are a reading.
///
/// - `normalise` is idempotent, leaves no whitespace, separators or ASCII
///   lower case, and `normalise_reading` agrees with it character for
///   character;
/// - a reading is a Chinese plate exactly when it fits one of the grammar's
///   shapes (the repair step relies on that), in the shape's format;
/// - a generic plate has the configured length and ASCII letters and digits.
/// - a dictionary file's text either parses into one symbol per line or is
///   refused, never panics.
pub fn plate_grammar(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let n = grammar::normalise(&text);
    assert_eq!(grammar::normalise(&n), n, "normalise is idempotent");
    assert!(
        !n.chars()
            .any(|c| c.is_whitespace() || c.is_ascii_lowercase() || "·•・‧.-_/".contains(c)),
        "normalised: {n:?}"
    );
    let reading = Reading::from_chars(
        text.chars()
            .zip(data.iter().cycle())
            .map(|(ch, &b)| PlateChar {
                ch,
                conf: f32::from(b) / 255.0,
            })
            .collect(),
    );
    let normal = grammar::normalise_reading(&reading);
    assert_eq!(normal.text, n, "normalise_reading agrees with normalise");
    assert_eq!(normal.chars.len(), n.chars().count());
    assert!((0.0..=1.0).contains(&normal.score));

    let chinese = GrammarConfig::default();
    let formats = [
        PlateFormat::ChineseStandard,
        PlateFormat::ChineseNewEnergy,
        PlateFormat::ChineseNewEnergy,
        PlateFormat::ChineseSpecial,
        PlateFormat::ChineseSpecial,
    ];
    let chars: Vec<char> = n.chars().collect();
    let fits = chinese
        .shapes()
        .iter()
        .zip(formats)
        .find_map(|(shape, format)| {
            let fit = shape.len() == chars.len()
                && shape
                    .iter()
                    .zip(&chars)
                    .all(|(allowed, c)| allowed.contains(c));
            fit.then_some(format)
        });
    assert_eq!(chinese.check(&n), fits, "grammar and shapes agree on {n:?}");

    let generic = GrammarConfig {
        chinese: false,
        generic: GenericConfig {
            enabled: true,
            min_len: 1 + usize::from(data.first().copied().unwrap_or(0) % 8),
            max_len: 16,
            require_digit: data.len().is_multiple_of(2),
        },
        ..Default::default()
    };
    generic.validate().expect("a valid grammar");
    if let Some(format) = generic.check(&n) {
        let g = &generic.generic;
        assert_eq!(format, PlateFormat::Generic);
        assert!((g.min_len..=g.max_len).contains(&chars.len()));
        assert!(chars.iter().all(char::is_ascii_alphanumeric));
        assert!(!g.require_digit || chars.iter().any(char::is_ascii_digit));
    }

    if let Ok(dict) = Dictionary::parse(&text) {
        assert!(!dict.is_empty());
        let lines = text
            .strip_prefix('\u{feff}')
            .unwrap_or(&text)
            .trim_end_matches('\n')
            .split('\n')
            .count();
        assert!(dict.len() <= lines.max(1));
    }
}
