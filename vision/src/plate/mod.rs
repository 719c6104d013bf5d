//! Licence plates: find them, straighten them, read them, check the reading
//! against what plates look like, and vote a track's readings into one.
//!
//! The flow of one plate, module by module: [`detect`] (the RetinaFace-style
//! plate detector on a letterboxed vehicle crop or frame; [`decode`] turns
//! its outputs into a box and four corners) → [`rectify`] (perspective warp
//! of the corners, trimmed to the text line, into the recogniser's
//! 32-pixel-high input) → [`recognize`] (CTC greedy decoding with the
//! model's dictionary, a confidence per character) → [`grammar`]
//! (normalise, accept only readings shaped like a plate, or repair one into
//! the most probable reading that is) → [`vote`] (one reading per tracked
//! vehicle from all of its frames' readings).
//!
//! Plates are looked for inside tracked vehicles, not in whole frames: a
//! plate is a few percent of a roadside frame, and letterboxing a 1080p
//! frame into the detector's 640² input shrinks it below what the detector
//! finds. [`PlateSession::read_region`] reads inside the lower part of a
//! vehicle box, where plates are, without copying the frame. [`PlateEngine`] bundles detector, rectifier and
//! recogniser; each inference thread takes its own [`PlateSession`].
//! docs/PLATES.md says how the daemon calls it and how well it reads.

pub mod decode;
pub mod detect;
mod engine;
pub mod grammar;
pub mod recognize;
pub mod rectify;
pub mod text_lines;
pub mod vote;

use thiserror::Error;

use crate::detect::DetectError;
use crate::detect::decode::DecodeError;
use crate::detect::letterbox::PreprocessError;
use crate::frame::FrameError;
use crate::runtime::RuntimeError;

pub use decode::{Corners, PlateDetection};
pub use detect::{PlateDetector, PlateDetectorConfig};
pub use engine::{PlateEngine, PlateRead, PlateSession, RegionConfig};
pub use grammar::{GrammarConfig, PlateFormat};
pub use recognize::{Dictionary, PlateChar, Reading, Recognizer};
pub use rectify::{Rectifier, RectifyConfig};
pub use vote::{PlateVote, VoteConfig, Voted};

#[derive(Debug, Error)]
pub enum PlateError {
    /// Loading, letterboxing or running a model.
    #[error(transparent)]
    Model(#[from] DetectError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Config(#[from] PlateConfigError),
    #[error("reading the recogniser's output: {0}")]
    Tensor(String),
    #[error("the detector's `steps` and `min_sizes` need one non-zero entry per level")]
    Levels,
    #[error(
        "the detector's steps and sizes give {got} priors at its input size, the manifest says {expected}"
    )]
    PriorCount { expected: usize, got: usize },
    #[error(
        "the plate {model} runs at its full input size only: its [model.input] cannot have trim_padding"
    )]
    TrimPadding { model: &'static str },
    #[error("the recogniser's [model.input] needs resize = \"fit-height\"")]
    NotFitHeight,
    #[error("dictionary line {line}: {reason}")]
    Dictionary { line: usize, reason: &'static str },
    #[error(
        "the recogniser has {classes} classes; the dictionary has {symbols} symbols plus the blank"
    )]
    ClassCount { classes: usize, symbols: usize },
    #[error("the CTC blank {blank} is not one of the {classes} classes")]
    Blank { blank: usize, classes: usize },
    #[error("the recogniser gave {len} values, not a multiple of its {classes} classes")]
    OutputSize { len: usize, classes: usize },
    #[error("the plate's corners enclose no area")]
    Degenerate,
}

/// A plate config field with a value the pipeline cannot work with.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("plate config: `{field}` {reason}")]
pub struct PlateConfigError {
    pub field: &'static str,
    pub reason: &'static str,
}

/// `Err` naming `field` unless `v` is in `0 < v < 1` (`upper_inclusive`:
/// `0 < v <= 1`). Shared by the configs of this module.
fn check_unit(field: &'static str, v: f32, upper_inclusive: bool) -> Result<(), PlateConfigError> {
    let ok = v > 0.0 && (v < 1.0 || (upper_inclusive && v == 1.0));
    if ok {
        Ok(())
    } else if upper_inclusive {
        Err(PlateConfigError {
            field,
            reason: "must be in (0, 1]",
        })
    } else {
        Err(PlateConfigError {
            field,
            reason: "must be between 0 and 1",
        })
    }
}
