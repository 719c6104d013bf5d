//! Licence-plate text: canonical form, OCR-confusion normalisation and match
//! scoring. Pure functions, shared by both backends so they rank alike.
//!
//! - `canonical`: uppercase, full-width ASCII folded, spaces and punctuation
//!   stripped; CJK province characters (京, 粤, …) kept.
//! - `normalise`: `canonical` with each OCR confusion class mapped to one
//!   representative: 0/O/D/Q→0, 1/I/L→1, 8/B→8, 5/S→5, 2/Z→2, 6/G→6.
//! - `score`: 1.0 for the same canonical plate, 0.95 for the same normalised
//!   plate, then decreasing with edit distance on normalised text, and a lower
//!   band for partial plates (the query contained in a longer read).

/// Folds a full-width ASCII character (U+FF01..U+FF5E) to ASCII.
fn fold_width(c: char) -> char {
    let u = c as u32;
    if (0xFF01..=0xFF5E).contains(&u) {
        char::from_u32(u - 0xFEE0).unwrap_or(c)
    } else {
        c
    }
}

/// Longest plate text accepted, in characters: real plates have at most
/// ten, and matching costs the query's length times each stored read's, for
/// every read, so a megabyte of "plate" would be a denial of service.
pub const MAX_CHARS: usize = 32;

/// The client's error for plate text longer than [`MAX_CHARS`].
pub fn too_long(raw: &str) -> Option<String> {
    (raw.chars().count() > MAX_CHARS)
        .then(|| format!("Licence plate must be at most {MAX_CHARS} characters"))
}

/// Uppercase, letters and digits only (CJK kept), everything else dropped.
///
/// Filtered again after upper-casing: a few letters upper-case into a
/// letter and a combining mark (`ǰ` → `J` + U+030C), and the mark, kept,
/// made `canonical` not idempotent and a plate typed decomposed differ from
/// the same plate typed composed (found by the `plate` fuzz target).
pub fn canonical(raw: &str) -> String {
    raw.chars()
        .map(fold_width)
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// Maps one canonical character to its confusion-class representative.
fn confusion_class(c: char) -> char {
    match c {
        'O' | 'D' | 'Q' => '0',
        'I' | 'L' => '1',
        'B' => '8',
        'S' => '5',
        'Z' => '2',
        'G' => '6',
        other => other,
    }
}

/// The confusion-normalised key: two reads of the same plate that differ only
/// by OCR confusions have the same key.
pub fn normalise(raw: &str) -> String {
    canonical(raw).chars().map(confusion_class).collect()
}

/// Levenshtein distance over chars (two-row dynamic programming).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// A query prepared once and scored against many stored reads.
#[derive(Debug, Clone)]
pub struct PlateQuery {
    pub canonical: String,
    pub normalised: String,
    /// Largest edit distance still accepted for this query (shorter queries
    /// get less slack so "A1" does not match half the table).
    pub max_distance: usize,
}

impl PlateQuery {
    /// `None` when the text has no letters or digits.
    pub fn new(raw: &str, max_distance: usize) -> Option<Self> {
        let canonical = canonical(raw);
        if canonical.is_empty() {
            return None;
        }
        let normalised: String = canonical.chars().map(confusion_class).collect();
        let len = normalised.chars().count();
        Some(Self {
            canonical,
            normalised,
            max_distance: max_distance.min(len / 3),
        })
    }

    /// Match score in (0, 1] of a stored read given as (canonical, normalised),
    /// or `None` when it does not match.
    pub fn score(&self, canonical: &str, normalised: &str) -> Option<f32> {
        if canonical == self.canonical {
            return Some(1.0);
        }
        if normalised == self.normalised {
            return Some(0.95);
        }
        let qlen = self.normalised.chars().count();
        let clen = normalised.chars().count();
        let longest = qlen.max(clen).max(1);
        let d = edit_distance(&self.normalised, normalised);
        if d <= self.max_distance {
            return Some(0.9 * (1.0 - d as f32 / longest as f32));
        }
        // Partial plate: at least 3 characters of a longer read, in order.
        if qlen >= 3 && normalised.contains(&self.normalised) {
            return Some(0.5 * qlen as f32 / clen.max(1) as f32);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_strips_and_uppercases() {
        assert_eq!(canonical(" abc-123 "), "ABC123");
        assert_eq!(canonical("京A·12345"), "京A12345");
        assert_eq!(canonical("ＡＢＣ１２３"), "ABC123");
        assert_eq!(canonical("--"), "");
    }

    /// Regression (fuzzing): upper-casing can add a combining mark.
    #[test]
    fn canonical_is_idempotent_where_upper_case_adds_marks() {
        for raw in ["ǰ", "ΐ", "ΰ", "ab ǰ 12"] {
            let c = canonical(raw);
            assert_eq!(canonical(&c), c, "{raw}");
            assert!(c.chars().all(char::is_alphanumeric), "{raw}: {c:?}");
        }
        assert_eq!(canonical("ǰ"), canonical("J\u{30C}"));
    }

    #[test]
    fn confusion_classes_collapse() {
        assert_eq!(normalise("0ODQ"), "0000");
        assert_eq!(normalise("1il"), "111");
        assert_eq!(normalise("8B"), "88");
        assert_eq!(normalise("5s"), "55");
        assert_eq!(normalise("2z"), "22");
        assert_eq!(normalise("6g"), "66");
        assert_eq!(normalise("ABC123"), normalise("A8C-I23"));
        assert_eq!(normalise("粤B 5O1"), "粤8501");
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("ABC", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("京A1", "京A2"), 1);
    }

    #[test]
    fn exact_ranks_above_confusion_above_fuzzy() {
        let q = PlateQuery::new("ABC123", 2).expect("query");
        let exact = q.score("ABC123", &normalise("ABC123")).expect("exact");
        let confused = q.score("A8C123", &normalise("A8C123")).expect("confused");
        let fuzzy = q.score("ABC124", &normalise("ABC124")).expect("fuzzy");
        assert!(
            exact > confused && confused > fuzzy,
            "{exact} {confused} {fuzzy}"
        );
        assert!(q.score("XYZ999", &normalise("XYZ999")).is_none());
    }

    #[test]
    fn short_queries_get_less_slack() {
        let q = PlateQuery::new("A1", 2).expect("query");
        assert_eq!(q.max_distance, 0);
        assert!(q.score("B7", "87").is_none());
    }

    #[test]
    fn partial_plates_match_below_full_ones() {
        let q = PlateQuery::new("C123", 2).expect("query");
        let partial = q
            .score("ABC12345", &normalise("ABC12345"))
            .expect("partial");
        assert!(partial < 0.5);
        assert!(PlateQuery::new(" - ", 2).is_none());
    }
}
