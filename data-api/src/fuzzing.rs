//! The properties the fuzz targets check. Each function takes the fuzzer's
//! bytes, runs one piece of client or operator input handling on them and
//! panics if a property fails (or the code under test panics by itself).
//!
//! The cargo-fuzz targets in `fuzz/` call these functions, and
//! `tests/fuzz_corpus.rs` replays the kept corpora (`fuzz/corpus/<target>/`)
//! through the same functions under `cargo test`, so a crash once found stays
//! fixed. docs/RELIABILITY.md ("Fuzzing") says how to run them.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::{Config, FACE_DIMS};
use crate::error::AppError;
use crate::plate::{self, PlateQuery};
use crate::routes::ingest::{parse_faces, parse_plates};
use crate::store::Meta;
use crate::vector::{self, VectorError};

/// Plate text (`plate`): the bytes are a query and a stored read, split at
/// the first newline.
///
/// - `canonical` and `normalise` are idempotent and keep letters and digits
///   only, in upper case;
/// - the edit distance is a metric's lower and upper bounds;
/// - a query matches its own text at 1.0, and every score is in (0, 1].
pub fn plate(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (query, stored) = text.split_once('\n').unwrap_or((&text, ""));
    for s in [query, stored] {
        let c = plate::canonical(s);
        assert_eq!(plate::canonical(&c), c, "canonical is idempotent");
        assert!(
            c.chars()
                .all(|ch| ch.is_alphanumeric() && ch.to_uppercase().eq([ch])),
            "canonical keeps upper-case letters and digits: {c:?}"
        );
        let n = plate::normalise(s);
        assert_eq!(plate::normalise(&n), n, "normalise is idempotent");
        assert_eq!(plate::normalise(&c), n, "normalise goes through canonical");
        assert_eq!(n.chars().count(), c.chars().count());
    }

    // Bounded so a long input costs the fuzzer no more than the API's own
    // limits would (plates are short; the distance is quadratic).
    let a: String = plate::normalise(query).chars().take(64).collect();
    let b: String = plate::normalise(stored).chars().take(64).collect();
    let d = plate::edit_distance(&a, &b);
    let (la, lb) = (a.chars().count(), b.chars().count());
    assert_eq!(d, plate::edit_distance(&b, &a), "symmetric");
    assert!(d <= la.max(lb) && d >= la.abs_diff(lb), "bounds: {d}");
    assert_eq!(plate::edit_distance(&a, &a), 0);

    let query: String = query.chars().take(64).collect();
    let stored: String = stored.chars().take(64).collect();
    for max_distance in 0..=4 {
        let Some(q) = PlateQuery::new(&query, max_distance) else {
            assert!(
                plate::canonical(&query).is_empty(),
                "only empty queries refused"
            );
            continue;
        };
        assert!(q.max_distance <= max_distance);
        let own = q.score(&plate::canonical(&query), &plate::normalise(&query));
        assert_eq!(own, Some(1.0), "a plate matches itself exactly");
        if let Some(s) = q.score(&plate::canonical(&stored), &plate::normalise(&stored)) {
            assert!(s > 0.0 && s <= 1.0, "score {s} out of (0, 1]");
        }
    }
}

/// Face vectors (`vector`): the bytes are numbers of three bytes each, an
/// `i16` mantissa and a power of two in -160..=160, which reaches f32's
/// overflow and its subnormals as well as ordinary values.
///
/// A vector is accepted exactly when its numbers are finite as f32 and not
/// all zero, and an accepted vector is finite and of unit length.
pub fn vector(data: &[u8]) {
    let raw: Vec<f64> = data
        .chunks_exact(3)
        .map(|b| {
            let mantissa = f64::from(i16::from_le_bytes([b[0], b[1]]));
            let exp = i32::from(b[2] as i8) * 160 / 127;
            mantissa * 2f64.powi(exp)
        })
        .collect();
    let dims = raw.len();
    match vector::validate(&raw, dims) {
        Ok(v) => {
            assert_eq!(v.len(), dims);
            assert!(v.iter().all(|x| x.is_finite()), "finite: {v:?}");
            let norm = v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
            assert!(
                (norm - 1.0).abs() < 1e-4,
                "unit length, got {norm} for {raw:?}"
            );
        }
        Err(VectorError::WrongLength { .. }) => panic!("the length was right"),
        Err(VectorError::NotFinite { index }) => {
            assert!(!(raw[index] as f32).is_finite(), "index {index} is finite");
        }
        Err(VectorError::Zero) => {
            assert!(
                raw.iter().all(|&x| x as f32 == 0.0),
                "not all zero: {raw:?}"
            );
        }
    }
    if dims > 0 {
        assert!(matches!(
            vector::validate(&raw, dims + 1),
            Err(VectorError::WrongLength { .. })
        ));
    }
}

/// Ingest bodies (`ingest`): the bytes are a `POST /faces` and a
/// `POST /plates` body. Bad input is a 400 or 413, never a 500; accepted
/// records hold what the store relies on.
pub fn ingest(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let mut cfg = Config::default();
    cfg.limits.max_batch = 8;

    match parse_faces(&cfg, body.clone()) {
        Ok((records, batch)) => {
            assert!(!records.is_empty() && records.len() <= cfg.limits.max_batch);
            assert!(batch || records.len() == 1);
            for r in &records {
                check_meta(&r.meta);
                assert_eq!(r.vector.len(), FACE_DIMS);
                let norm = vector::dot(&r.vector, &r.vector);
                assert!((norm - 1.0).abs() < 1e-3, "unit length, got {norm}");
            }
        }
        Err(e) => check_refusal(&e),
    }
    match parse_plates(&cfg, body) {
        Ok((records, batch)) => {
            assert!(!records.is_empty() && records.len() <= cfg.limits.max_batch);
            assert!(batch || records.len() == 1);
            for r in &records {
                check_meta(&r.meta);
                assert!(!plate::canonical(&r.licence_plate).is_empty());
                if let Some(c) = r.confidence {
                    assert!((0.0..=1.0).contains(&c), "confidence {c}");
                }
            }
        }
        Err(e) => check_refusal(&e),
    }
}

fn check_meta(m: &Meta) {
    assert!(
        !m.id.trim().is_empty() && m.id.len() <= 256,
        "id {:?}",
        m.id
    );
    assert!(!m.pic.trim().is_empty());
    let at = OffsetDateTime::parse(&m.captured_at, &Rfc3339)
        .unwrap_or_else(|e| panic!("captured_at {:?} does not parse: {e}", m.captured_at));
    assert_eq!(at.offset(), time::UtcOffset::UTC, "captured_at is UTC");
    assert_eq!(
        i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok(),
        Some(m.captured_at_ms),
        "captured_at_ms agrees with captured_at"
    );
}

fn check_refusal(e: &AppError) {
    assert!(
        matches!(e, AppError::BadRequest(_) | AppError::PayloadTooLarge(_)),
        "client input answered with {e:?}"
    );
}

/// The service config (`config`): the bytes are a TOML file. Parsing and
/// validation never panic, and a config that parses survives being written
/// back and read again, with the same verdict from `validate`.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = Config::from_toml(text) else {
        return;
    };
    let verdict = cfg.validate().map_err(|e| e.field);
    let written = toml::to_string(&cfg)
        .unwrap_or_else(|e| panic!("a parsed config does not serialise: {e}\n{cfg:?}"));
    let again = Config::from_toml(&written)
        .unwrap_or_else(|e| panic!("a written config does not parse: {e}\n{written}"));
    assert_eq!(format!("{again:?}"), format!("{cfg:?}"), "round trip");
    assert_eq!(again.validate().map_err(|e| e.field), verdict);
}
