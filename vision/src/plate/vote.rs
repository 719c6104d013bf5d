//! One plate per tracked vehicle: every frame in which the vehicle's plate
//! was read casts a ballot, and the ballots are voted into one reading with
//! a confidence.
//!
//! **Per-position voting among the readings of the winning length.** A
//! plate's reading goes wrong one character at a time (a blurred 8 read as
//! B, a 1 lost to glare), and in each frame at a different position. Voting
//! per position, each character weighted by the recogniser's confidence in
//! it, recovers the plate from frames that each got one character wrong,
//! where voting whole strings needs two frames to agree on every character
//! (and with 7–8 characters and a 90 % per-frame exact-read rate, several
//! frames often do not). Positions only line up between readings of the
//! same length, so the length is voted first (by the readings' summed
//! scores); a reading that dropped or gained a character is outvoted as a
//! whole. A per-position result that mixes two formats into something no
//! plate looks like (new-energy `D` at both ends, say) is refused by the
//! grammar, and the heaviest whole reading is taken instead.
//!
//! ```text
//! per frame, per tracked vehicle with a valid plate read (format is Some):
//!     votes[track].offer(read.reading, format, payload)
//!     votes[track].settled() → stop reading this track's plate
//! when the track ends: votes.remove(track).finish() → Some(Voted) → forward
//! ```

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::grammar::{GrammarConfig, PlateFormat};
use super::recognize::{PlateChar, Reading};
use super::{PlateConfigError, check_unit};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoteConfig {
    /// Ballots kept per track; when full, a new reading replaces the
    /// lowest-scored one if it scores higher. Bounds memory per track.
    pub max_reads: usize,
    /// Fewest valid readings before a track's plate is reported: one frame's
    /// reading, confirmed by no other, is too easily a sticker or a misread.
    pub min_reads: usize,
    /// Lowest voted confidence reported (see [`Voted::confidence`]).
    pub min_confidence: f32,
    /// A track is [`PlateVote::settled`] once this many readings equal the
    /// voted plate: further reads would not change it, so the daemon can
    /// stop spending inference on that vehicle.
    pub settle_after: usize,
}

impl Default for VoteConfig {
    fn default() -> Self {
        Self {
            max_reads: 12,
            min_reads: 2,
            min_confidence: 0.5,
            settle_after: 4,
        }
    }
}

impl VoteConfig {
    pub fn validate(&self) -> Result<(), PlateConfigError> {
        if self.max_reads == 0 || self.max_reads > 1000 {
            return Err(PlateConfigError {
                field: "max_reads",
                reason: "must be 1..=1000",
            });
        }
        if self.min_reads == 0 || self.min_reads > self.max_reads {
            return Err(PlateConfigError {
                field: "min_reads",
                reason: "must be between 1 and max_reads",
            });
        }
        if self.settle_after == 0 {
            return Err(PlateConfigError {
                field: "settle_after",
                reason: "must be at least 1",
            });
        }
        check_unit("min_confidence", self.min_confidence, true)
    }
}

#[derive(Debug, Clone)]
struct Ballot<T> {
    reading: Reading,
    format: PlateFormat,
    payload: T,
}

/// The voted plate of one track.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Voted<P> {
    pub text: String,
    pub format: PlateFormat,
    /// Per position, the winning character's summed confidence over the
    /// number of ballots (of any length): 1 when every ballot read that
    /// character with certainty; a ballot that disagrees, or is of another
    /// length, lowers it.
    pub chars: Vec<PlateChar>,
    /// Mean of `chars`' confidences, 0..1.
    pub confidence: f32,
    /// Ballots voted.
    pub reads: usize,
    /// Ballots that read exactly `text`.
    pub agreeing: usize,
    /// The payload of the ballot closest to `text` (most equal positions,
    /// then the highest score): the picture to forward, say.
    pub payload: P,
}

/// The ballots of one track.
#[derive(Debug, Clone)]
pub struct PlateVote<T> {
    config: VoteConfig,
    grammar: GrammarConfig,
    ballots: Vec<Ballot<T>>,
}

impl<T> PlateVote<T> {
    /// `grammar` re-checks a per-position result (the readings offered
    /// were checked one by one, their mix was not).
    pub fn new(config: &VoteConfig, grammar: &GrammarConfig) -> Self {
        Self {
            config: config.clone(),
            grammar: grammar.clone(),
            ballots: Vec::new(),
        }
    }

    /// Offer a frame's reading of the track's plate, normalised, with the
    /// format the grammar gave it. Readings without a format are not
    /// plates and are refused. Returns whether the ballot was kept (and
    /// with it `payload`).
    pub fn offer(&mut self, reading: Reading, format: Option<PlateFormat>, payload: T) -> bool {
        let Some(format) = format else {
            return false;
        };
        if reading.chars.is_empty() {
            return false;
        }
        let ballot = Ballot {
            reading,
            format,
            payload,
        };
        if self.ballots.len() < self.config.max_reads {
            self.ballots.push(ballot);
            return true;
        }
        let weakest = self
            .ballots
            .iter_mut()
            .min_by(|a, b| a.reading.score.total_cmp(&b.reading.score));
        match weakest {
            Some(w) if ballot.reading.score > w.reading.score => {
                *w = ballot;
                true
            }
            _ => false,
        }
    }

    /// Ballots held.
    pub fn len(&self) -> usize {
        self.ballots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ballots.is_empty()
    }

    /// Whether enough readings agree that reading more frames of this
    /// vehicle would not change the result.
    pub fn settled(&self) -> bool {
        self.tally()
            .is_some_and(|t| t.agreeing >= self.config.settle_after)
    }

    /// The voted plate, if there are enough ballots and it is confident
    /// enough ([`VoteConfig`]); the payload borrowed.
    pub fn result(&self) -> Option<Voted<&T>> {
        let t = self.decided()?;
        let payload = &self.ballots[t.closest].payload;
        Some(t.into_voted(self.ballots.len(), payload))
    }

    /// [`Self::result`], the payload moved out: the track has ended.
    pub fn finish(mut self) -> Option<Voted<T>> {
        let t = self.decided()?;
        let reads = self.ballots.len();
        let payload = self.ballots.swap_remove(t.closest).payload;
        Some(t.into_voted(reads, payload))
    }

    fn decided(&self) -> Option<Tally> {
        let t = self.tally()?;
        (self.ballots.len() >= self.config.min_reads && t.confidence >= self.config.min_confidence)
            .then_some(t)
    }

    fn tally(&self) -> Option<Tally> {
        let n = self.ballots.len() as f32;
        // The winning length: the largest summed score, then the most
        // ballots, then the shorter (deterministic; ties are rare).
        let mut lengths: HashMap<usize, (f32, usize)> = HashMap::new();
        for b in &self.ballots {
            let e = lengths.entry(b.reading.chars.len()).or_default();
            e.0 += b.reading.score;
            e.1 += 1;
        }
        let (&len, _) = lengths
            .iter()
            .max_by(|(la, a), (lb, b)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(lb.cmp(la)))?;
        let same: Vec<&Ballot<T>> = self
            .ballots
            .iter()
            .filter(|b| b.reading.chars.len() == len)
            .collect();
        let mut chars = Vec::with_capacity(len);
        for i in 0..len {
            let mut weights: Vec<(char, f32)> = Vec::new();
            for b in &same {
                let c = b.reading.chars[i];
                match weights.iter_mut().find(|(ch, _)| *ch == c.ch) {
                    Some(w) => w.1 += c.conf,
                    None => weights.push((c.ch, c.conf)),
                }
            }
            let (ch, w) = weights
                .into_iter()
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))?;
            chars.push(PlateChar { ch, conf: w / n });
        }
        let text: String = chars.iter().map(|c| c.ch).collect();
        let format = match self.grammar.check(&text) {
            Some(f) => f,
            None => {
                // The mix is no plate: the heaviest whole reading instead.
                let mut whole: Vec<(&str, f32, PlateFormat)> = Vec::new();
                for b in &self.ballots {
                    match whole.iter_mut().find(|w| w.0 == b.reading.text) {
                        Some(w) => w.1 += b.reading.score,
                        None => whole.push((&b.reading.text, b.reading.score, b.format)),
                    }
                }
                let (text, _, format) = whole
                    .into_iter()
                    .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(a.0)))?;
                let agree: Vec<&Ballot<T>> = self
                    .ballots
                    .iter()
                    .filter(|b| b.reading.text == text)
                    .collect();
                chars = (0..text.chars().count())
                    .map(|i| PlateChar {
                        ch: agree[0].reading.chars[i].ch,
                        conf: agree.iter().map(|b| b.reading.chars[i].conf).sum::<f32>() / n,
                    })
                    .collect();
                format
            }
        };
        let text: String = chars.iter().map(|c| c.ch).collect();
        let confidence = chars.iter().map(|c| c.conf).sum::<f32>() / chars.len().max(1) as f32;
        let agreeing = self
            .ballots
            .iter()
            .filter(|b| b.reading.text == text)
            .count();
        // Closest: same length, then most equal positions, then the best
        // score, then the earliest.
        let key = |b: &Ballot<T>| {
            let equal = b.reading.chars.iter().zip(&chars);
            (
                b.reading.chars.len() == chars.len(),
                equal.filter(|(a, c)| a.ch == c.ch).count(),
            )
        };
        let closest = (0..self.ballots.len()).max_by(|&a, &b| {
            let (ba, bb) = (&self.ballots[a], &self.ballots[b]);
            key(ba)
                .cmp(&key(bb))
                .then(ba.reading.score.total_cmp(&bb.reading.score))
                .then(b.cmp(&a))
        })?;
        Some(Tally {
            chars,
            format,
            confidence,
            agreeing,
            closest,
        })
    }
}

struct Tally {
    chars: Vec<PlateChar>,
    format: PlateFormat,
    confidence: f32,
    agreeing: usize,
    /// Index of the ballot closest to the result.
    closest: usize,
}

impl Tally {
    fn into_voted<P>(self, reads: usize, payload: P) -> Voted<P> {
        Voted {
            text: self.chars.iter().map(|c| c.ch).collect(),
            format: self.format,
            chars: self.chars,
            confidence: self.confidence,
            reads,
            agreeing: self.agreeing,
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plate::grammar::normalise;

    fn reading(text: &str, conf: f32) -> Reading {
        Reading::from_chars(text.chars().map(|ch| PlateChar { ch, conf }).collect())
    }

    fn vote(config: VoteConfig, ballots: &[(&str, f32)]) -> PlateVote<usize> {
        let grammar = GrammarConfig::default();
        let mut v = PlateVote::new(&config, &grammar);
        for (i, (text, conf)) in ballots.iter().enumerate() {
            let text = normalise(text);
            v.offer(reading(&text, *conf), grammar.check(&text), i);
        }
        v
    }

    fn one_read_is_enough() -> VoteConfig {
        VoteConfig {
            min_reads: 1,
            ..Default::default()
        }
    }

    #[test]
    fn one_reading_is_its_own_result_when_allowed() {
        let v = vote(one_read_is_enough(), &[("京A12345", 0.9)]);
        let r = v.result().unwrap();
        assert_eq!(r.text, "京A12345");
        assert_eq!(r.format, PlateFormat::ChineseStandard);
        assert!((r.confidence - 0.9).abs() < 1e-6);
        assert_eq!((r.reads, r.agreeing, *r.payload), (1, 1, 0));
        // By default one frame is not enough.
        assert!(
            vote(VoteConfig::default(), &[("京A12345", 0.9)])
                .result()
                .is_none()
        );
    }

    #[test]
    fn frames_that_each_misread_one_character_vote_the_right_plate() {
        // No two frames agree on the whole plate; every position has a
        // majority for the truth, 京A12345.
        let v = vote(
            VoteConfig::default(),
            &[("京A72345", 0.9), ("京A18345", 0.9), ("京A12385", 0.9)],
        );
        let r = v.result().unwrap();
        assert_eq!(r.text, "京A12345");
        assert_eq!((r.reads, r.agreeing), (3, 0));
        // Two thirds of the weight at three positions, all of it elsewhere.
        assert!((r.chars[2].conf - 0.6).abs() < 1e-6);
        assert!((r.chars[0].conf - 0.9).abs() < 1e-6);
        assert!((r.confidence - (4.0 * 0.9 + 3.0 * 0.6) / 7.0).abs() < 1e-5);
        // Whole-string voting would have had nothing to go on; the closest
        // ballot (6 of 7 right each, then score: the first) is the payload.
        assert_eq!(*r.payload, 0);
    }

    #[test]
    fn confidence_weighs_characters_not_ballots() {
        // One sure frame against two unsure ones at position 6.
        let v = vote(
            VoteConfig {
                min_confidence: 0.1,
                ..Default::default()
            },
            &[("京A12345", 0.95), ("京A12346", 0.3), ("京A12346", 0.3)],
        );
        assert_eq!(v.result().unwrap().text, "京A12345");
    }

    #[test]
    fn a_dropped_character_is_outvoted_by_length() {
        let v = vote(
            VoteConfig::default(),
            &[("京A12345", 0.8), ("京A12345", 0.8), ("京AD12345", 0.99)],
        );
        let r = v.result().unwrap();
        assert_eq!(r.text, "京A12345");
        assert_eq!((r.reads, r.agreeing), (3, 2));
        // The other-length ballot counts against every position.
        assert!((r.confidence - 1.6 / 3.0).abs() < 1e-5);
    }

    #[test]
    fn a_mix_that_is_no_plate_falls_back_to_the_heaviest_reading() {
        // Per position this gives 京AD2345D, which is no new-energy plate.
        let config = VoteConfig {
            min_confidence: 0.1,
            ..Default::default()
        };
        let v = vote(
            config,
            &[("京AD12345", 0.9), ("京A12345D", 0.8), ("京A22345D", 0.8)],
        );
        let r = v.result().unwrap();
        assert_eq!(r.text, "京AD12345");
        assert_eq!(r.format, PlateFormat::ChineseNewEnergy);
        assert_eq!(r.agreeing, 1);
        assert!((r.confidence - 0.3).abs() < 1e-5);
        assert_eq!(*r.payload, 0);
    }

    #[test]
    fn invalid_and_empty_readings_do_not_vote() {
        let v = vote(
            one_read_is_enough(),
            &[("A12345", 0.99), ("", 0.0), ("京A12345", 0.7)],
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v.result().unwrap().text, "京A12345");
        assert!(vote(one_read_is_enough(), &[]).result().is_none());
    }

    #[test]
    fn low_confidence_is_not_reported() {
        let v = vote(
            VoteConfig::default(),
            &[("京A12345", 0.4), ("京A12345", 0.4)],
        );
        assert!(v.result().is_none());
    }

    #[test]
    fn a_full_track_keeps_its_best_ballots_and_settles() {
        let config = VoteConfig {
            max_reads: 3,
            settle_after: 3,
            ..Default::default()
        };
        let grammar = GrammarConfig::default();
        let mut v = PlateVote::new(&config, &grammar);
        let check = |t: &str| grammar.check(t);
        assert!(v.offer(reading("京A12345", 0.6), check("京A12345"), "a"));
        assert!(v.offer(reading("京A12345", 0.7), check("京A12345"), "b"));
        assert!(!v.settled());
        assert!(v.offer(reading("京A12346", 0.5), check("京A12346"), "c"));
        // Full: a weaker reading is dropped, a stronger one replaces "c".
        assert!(!v.offer(reading("京A12346", 0.4), check("京A12346"), "d"));
        assert!(v.offer(reading("京A12345", 0.9), check("京A12345"), "e"));
        assert_eq!(v.len(), 3);
        assert!(v.settled());
        let r = v.finish().unwrap();
        assert_eq!(
            (r.text.as_str(), r.agreeing, r.payload),
            ("京A12345", 3, "e")
        );
    }

    #[test]
    fn config_is_validated_by_field() {
        assert!(VoteConfig::default().validate().is_ok());
        for (config, field) in [
            (
                VoteConfig {
                    max_reads: 0,
                    ..Default::default()
                },
                "max_reads",
            ),
            (
                VoteConfig {
                    min_reads: 20,
                    ..Default::default()
                },
                "min_reads",
            ),
            (
                VoteConfig {
                    min_confidence: 1.5,
                    ..Default::default()
                },
                "min_confidence",
            ),
            (
                VoteConfig {
                    settle_after: 0,
                    ..Default::default()
                },
                "settle_after",
            ),
        ] {
            assert_eq!(config.validate().unwrap_err().field, field);
        }
    }
}
