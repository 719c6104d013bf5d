//! What a plate reading may look like. The recogniser reads any sequence of
//! its symbols, including half a plate, a sticker or a shop sign; only
//! readings shaped like a plate are worth voting on and forwarding.
//!
//! Readings are first normalised ([`normalise`]): upper case, full-width
//! forms folded to ASCII, spaces and separators (the dot of Chinese plates,
//! hyphens) removed, so `"京A·12345"`, `"京a 12345"` and `"京Ａ12345"` are one
//! plate. Then:
//! - **Chinese plates** (GA 36): a province character, the issuing
//!   authority's letter, then
//!   - 5 letters or digits (ordinary plates);
//!   - 6 for new-energy plates: `D`/`F` then a letter or digit then 4
//!     digits (small vehicles), or 5 digits then `D`/`F` (large vehicles);
//!   - 4 letters or digits and a final 学 (learner), 警 (police), 挂
//!     (trailer), 港/澳 (Hong Kong/Macau crossing) or 领 (consulate);
//!
//!   or 使 (embassy) and 6 digits. Letters never include I or O, which
//!   Chinese plates do not use (they read as 1 and 0).
//! - **Elsewhere** ([`GenericConfig`], off by default): letters and digits
//!   only, a length between `min_len` and `max_len`, and (by default) at
//!   least one digit, which keeps out words such as `TAXI` or `BUS`.

use serde::{Deserialize, Serialize};

use super::recognize::{PlateChar, Reading};
use super::{PlateConfigError, check_unit};

/// Which rule a reading satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateFormat {
    /// Province, letter, 5 letters or digits.
    ChineseStandard,
    /// Province, letter, 6 letters or digits with `D`/`F`.
    ChineseNewEnergy,
    /// Learner, police, trailer, Hong Kong/Macau, consulate or embassy.
    ChineseSpecial,
    /// The configured alphanumeric fallback.
    Generic,
}

/// The provinces, autonomous regions and municipalities of mainland China,
/// as the first character of their plates.
pub const PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";

/// Last characters of special-purpose plates.
const SPECIAL_SUFFIXES: &str = "学警挂港澳领";

/// Which readings count as plates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrammarConfig {
    /// Accept Chinese plates (the shipped models read nothing else well).
    pub chinese: bool,
    pub generic: GenericConfig,
    /// When the recogniser's best reading is no plate, take its best reading
    /// that has the shape of a Chinese plate ([`GrammarConfig::shapes`])
    /// instead, if that is at least `repair_min_ratio` times as probable.
    /// The recogniser often gives the authority letter after the province
    /// character less probability than the blank (0.2–0.45 against
    /// 0.55–0.8), so the best reading drops it. On the synthetic test plates
    /// repair turned 6 refused readings of 60 into exact ones, all at ratios
    /// of at least 0.53; repairs that would have put in a wrong character
    /// had ratios of at most 0.46 (docs/PLATES.md).
    pub repair: bool,
    pub repair_min_ratio: f32,
}

impl Default for GrammarConfig {
    fn default() -> Self {
        Self {
            chinese: true,
            generic: GenericConfig::default(),
            repair: true,
            repair_min_ratio: 0.5,
        }
    }
}

/// Plates of other countries: letters and digits of a bounded length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenericConfig {
    /// Off by default: the recogniser is trained on Chinese plates, and a
    /// Chinese plate whose province character was missed would otherwise
    /// pass as a "generic" reading.
    pub enabled: bool,
    pub min_len: usize,
    pub max_len: usize,
    /// Refuse readings without a digit (words on signs and liveries).
    pub require_digit: bool,
}

impl Default for GenericConfig {
    fn default() -> Self {
        // UK plates are 7 characters, German 5–8, US 2–8 (with vanity plates
        // the short end); 4..=8 keeps most real plates and drops fragments.
        Self {
            enabled: false,
            min_len: 4,
            max_len: 8,
            require_digit: true,
        }
    }
}

impl GrammarConfig {
    pub fn validate(&self) -> Result<(), PlateConfigError> {
        let g = &self.generic;
        if g.min_len == 0 {
            return Err(PlateConfigError {
                field: "generic.min_len",
                reason: "must be at least 1",
            });
        }
        if g.max_len < g.min_len || g.max_len > 16 {
            return Err(PlateConfigError {
                field: "generic.max_len",
                reason: "must be between generic.min_len and 16",
            });
        }
        if !self.chinese && !g.enabled {
            return Err(PlateConfigError {
                field: "chinese",
                reason: "or generic.enabled must be on, or no reading is ever accepted",
            });
        }
        check_unit("repair_min_ratio", self.repair_min_ratio, true)
    }

    /// The shapes of the plates this grammar accepts that have a fixed
    /// length: per position, the characters allowed there. Used to repair
    /// readings ([`Self::repair`]); the generic fallback has no fixed shape
    /// and none here.
    pub fn shapes(&self) -> Vec<Vec<Vec<char>>> {
        if !self.chinese {
            return Vec::new();
        }
        let province: Vec<char> = PROVINCES.chars().collect();
        let letter: Vec<char> = ('A'..='Z').filter(|c| *c != 'I' && *c != 'O').collect();
        let digit: Vec<char> = ('0'..='9').collect();
        let alnum: Vec<char> = letter.iter().chain(&digit).copied().collect();
        let df = vec!['D', 'F'];
        let suffix: Vec<char> = SPECIAL_SUFFIXES.chars().collect();
        let head = || vec![province.clone(), letter.clone()];
        let with = |mut h: Vec<Vec<char>>, rest: &[&Vec<char>]| {
            h.extend(rest.iter().map(|r| (*r).clone()));
            h
        };
        let a = &alnum;
        let d = &digit;
        vec![
            with(head(), &[a, a, a, a, a]),
            with(head(), &[&df, a, d, d, d, d]),
            with(head(), &[d, d, d, d, d, &df]),
            with(head(), &[a, a, a, a, &suffix]),
            with(vec![vec!['使']], &[d, d, d, d, d, d]),
        ]
    }

    /// Whether `c` can be part of a plate this grammar accepts, once
    /// normalised ([`normalise`]): the recogniser's decoding keeps only such
    /// characters, so a general text recogniser reads `渝`, not the `游` it
    /// looks like, and `0`, not the `O` Chinese plates never use.
    pub fn allows(&self, c: char) -> bool {
        let Some(c) = normal_char(c) else {
            return false;
        };
        let chinese = c.is_ascii_digit()
            || (c.is_ascii_uppercase() && c != 'I' && c != 'O')
            || PROVINCES.contains(c)
            || SPECIAL_SUFFIXES.contains(c)
            || c == '使';
        (self.chinese && chinese) || (self.generic.enabled && c.is_ascii_alphanumeric())
    }

    /// The format `text` (already normalised) has, if any.
    pub fn check(&self, text: &str) -> Option<PlateFormat> {
        let chars: Vec<char> = text.chars().collect();
        if self.chinese
            && let Some(format) = chinese(&chars)
        {
            return Some(format);
        }
        let g = &self.generic;
        let generic = g.enabled
            && (g.min_len..=g.max_len).contains(&chars.len())
            && chars
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && (!g.require_digit || chars.iter().any(char::is_ascii_digit));
        generic.then_some(PlateFormat::Generic)
    }
}

fn chinese(c: &[char]) -> Option<PlateFormat> {
    let letter = |c: char| c.is_ascii_uppercase() && c != 'I' && c != 'O';
    let alnum = |c: char| letter(c) || c.is_ascii_digit();
    let digits = |s: &[char]| s.iter().all(char::is_ascii_digit);
    let df = |c: char| c == 'D' || c == 'F';
    if c.len() == 7 && c[0] == '使' && digits(&c[1..]) {
        return Some(PlateFormat::ChineseSpecial);
    }
    if c.len() < 2 || !PROVINCES.contains(c[0]) || !letter(c[1]) {
        return None;
    }
    let serial = &c[2..];
    match serial.len() {
        5 if serial.iter().all(|&c| alnum(c)) => Some(PlateFormat::ChineseStandard),
        5 if serial[..4].iter().all(|&c| alnum(c)) && SPECIAL_SUFFIXES.contains(serial[4]) => {
            Some(PlateFormat::ChineseSpecial)
        }
        6 if (df(serial[0]) && alnum(serial[1]) && digits(&serial[2..]))
            || (digits(&serial[..5]) && df(serial[5])) =>
        {
            Some(PlateFormat::ChineseNewEnergy)
        }
        _ => None,
    }
}

/// The plate's characters in one canonical form: ASCII letters upper-cased,
/// full-width letters and digits folded to ASCII, whitespace and separators
/// (`·`, `•`, `.`, `-`, `_`, `/`) removed. Other characters are kept, so the
/// grammar can refuse them.
pub fn normalise(text: &str) -> String {
    text.chars().filter_map(normal_char).collect()
}

/// [`normalise`] applied to a reading, keeping each character's confidence.
pub fn normalise_reading(reading: &Reading) -> Reading {
    Reading::from_chars(
        reading
            .chars
            .iter()
            .filter_map(|c| normal_char(c.ch).map(|ch| PlateChar { ch, conf: c.conf }))
            .collect(),
    )
}

fn normal_char(c: char) -> Option<char> {
    // Full-width ASCII forms (U+FF01..U+FF5E) sit 0xFEE0 above ASCII.
    let c = match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    };
    if c.is_whitespace() || matches!(c, '·' | '•' | '・' | '‧' | '.' | '-' | '_' | '/') {
        return None;
    }
    Some(c.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Option<PlateFormat> {
        GrammarConfig::default().check(&normalise(text))
    }

    #[test]
    fn the_alphabet_is_what_some_accepted_plate_can_hold() {
        let chinese = GrammarConfig::default();
        for c in ['京', '琼', '使', '学', 'A', 'z', 'Ｑ', '7'] {
            assert!(chinese.allows(c), "{c}");
        }
        for c in ['游', '·', ' ', 'I', 'o', '中', '#'] {
            assert!(!chinese.allows(c), "{c}");
        }
        let both = GrammarConfig {
            generic: GenericConfig {
                enabled: true,
                ..GenericConfig::default()
            },
            ..GrammarConfig::default()
        };
        assert!(both.allows('I') && both.allows('o') && !both.allows('游'));
        let generic_only = GrammarConfig {
            chinese: false,
            ..both
        };
        assert!(generic_only.allows('O') && !generic_only.allows('京'));
    }

    #[test]
    fn normalising_folds_case_width_and_separators() {
        assert_eq!(normalise("京a·12345"), "京A12345");
        assert_eq!(normalise("\u{3000}京ａ－１２３４５ "), "京A12345");
        assert_eq!(normalise("ltz 1298"), "LTZ1298");
        assert_eq!(normalise("AB-12_3/4.5"), "AB12345");
        let r = Reading::from_chars(vec![
            PlateChar { ch: 'a', conf: 0.5 },
            PlateChar { ch: ' ', conf: 0.1 },
            PlateChar { ch: '1', conf: 1.0 },
        ]);
        let n = normalise_reading(&r);
        assert_eq!(n.text, "A1");
        assert_eq!(n.chars[0].conf, 0.5);
        assert!((n.score - 0.75).abs() < 1e-6);
    }

    #[test]
    fn chinese_plates_are_accepted() {
        assert_eq!(check("京A12345"), Some(PlateFormat::ChineseStandard));
        assert_eq!(check("粤B·8K2Z9"), Some(PlateFormat::ChineseStandard));
        assert_eq!(check("沪AD12345"), Some(PlateFormat::ChineseNewEnergy));
        assert_eq!(check("沪AFA1234"), Some(PlateFormat::ChineseNewEnergy));
        assert_eq!(check("苏E12345D"), Some(PlateFormat::ChineseNewEnergy));
        assert_eq!(check("京A1234学"), Some(PlateFormat::ChineseSpecial));
        assert_eq!(check("粤Z1A23港"), Some(PlateFormat::ChineseSpecial));
        assert_eq!(check("使123456"), Some(PlateFormat::ChineseSpecial));
    }

    #[test]
    fn malformed_chinese_readings_are_refused() {
        for bad in [
            "A12345",     // province missed
            "京12345",    // authority letter missed
            "京A1234",    // a character short
            "京A123456",  // 8 without D/F: not new-energy
            "京AD1234A",  // small new-energy ends in 4 digits
            "京A1O345",   // O is not used on Chinese plates
            "京I12345",   // nor I
            "港A12345",   // 港 is a suffix, not a province
            "京A12学45",  // suffix in the middle
            "京A123456D", // too long
            "",
        ] {
            assert_eq!(check(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_generic_fallback_is_configurable() {
        let mut g = GrammarConfig::default();
        // Off by default.
        assert_eq!(g.check("LTZ1298"), None);
        g.generic.enabled = true;
        assert_eq!(g.check("LTZ1298"), Some(PlateFormat::Generic));
        // Chinese rules still come first.
        assert_eq!(g.check("京A12345"), Some(PlateFormat::ChineseStandard));
        assert_eq!(g.check("TAXI"), None, "no digit");
        assert_eq!(g.check("A12"), None, "too short");
        assert_eq!(g.check("AB1234567"), None, "too long");
        assert_eq!(g.check("LTZ1298京"), None, "not alphanumeric");
        g.generic.require_digit = false;
        assert_eq!(g.check("TAXI"), Some(PlateFormat::Generic));
        g.chinese = false;
        assert_eq!(g.check("京A12345"), None);
    }

    /// Every reading that fits a shape is accepted, in the format the shape
    /// stands for, and the shapes cover every Chinese format.
    #[test]
    fn shapes_spell_exactly_the_chinese_formats() {
        let g = GrammarConfig::default();
        let shapes = g.shapes();
        assert_eq!(shapes.len(), 5);
        let first = |shape: &Vec<Vec<char>>| shape.iter().map(|s| s[0]).collect::<String>();
        let last =
            |shape: &Vec<Vec<char>>| shape.iter().map(|s| *s.last().unwrap()).collect::<String>();
        for shape in &shapes {
            assert!(g.check(&first(shape)).is_some(), "{}", first(shape));
            assert!(g.check(&last(shape)).is_some(), "{}", last(shape));
            assert!(shape.iter().flatten().all(|c| *c != 'I' && *c != 'O'));
        }
        let formats: Vec<_> = shapes.iter().map(|s| g.check(&first(s)).unwrap()).collect();
        assert_eq!(
            formats,
            [
                PlateFormat::ChineseStandard,
                PlateFormat::ChineseNewEnergy,
                PlateFormat::ChineseNewEnergy,
                PlateFormat::ChineseSpecial,
                PlateFormat::ChineseSpecial
            ]
        );
        let generic_only = GrammarConfig {
            chinese: false,
            generic: GenericConfig {
                enabled: true,
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(generic_only.shapes().is_empty());
    }

    #[test]
    fn config_is_validated_by_field() {
        assert!(GrammarConfig::default().validate().is_ok());
        let g = GrammarConfig {
            repair_min_ratio: 0.0,
            ..Default::default()
        };
        assert_eq!(g.validate().unwrap_err().field, "repair_min_ratio");
        let mut g = GrammarConfig::default();
        g.generic.min_len = 0;
        assert_eq!(g.validate().unwrap_err().field, "generic.min_len");
        let mut g = GrammarConfig::default();
        g.generic.max_len = 3;
        assert_eq!(g.validate().unwrap_err().field, "generic.max_len");
        let g = GrammarConfig {
            chinese: false,
            ..Default::default()
        };
        assert_eq!(g.validate().unwrap_err().field, "chinese");
        let g: GrammarConfig = toml::from_str("[generic]\nenabled = true\nmin_len = 5").unwrap();
        assert!(g.chinese && g.generic.enabled && g.generic.max_len == 8);
        assert!(toml::from_str::<GrammarConfig>("chinee = true").is_err());
    }
}
