//! Faces: find them, align them, judge them, embed them, and keep the best
//! one per tracked person per period for the data API.
//!
//! The flow of one face, module by module: [`detect`] (YuNet on the
//! letterboxed frame; [`decode`] turns its outputs into boxes and five
//! landmarks) → [`align`] (similarity warp onto the embedder's 112 × 112
//! template) → [`quality`] (size, score, pose, sharpness: a gate and a value
//! to rank by) → [`embed`] (unit-length 512-d vector).
//!
//! In a video, faces are tracked with the ordinary [`crate::track::Tracker`]
//! on face boxes ([`detect::as_detections`]), one tracker per stream kept
//! apart from the object tracker. Face boxes move like any other box, and
//! ByteTrack's low-score second stage holds a track through a turned head;
//! matching faces to person tracks would need a second association for no
//! gain. [`keeper`] then keeps one face per track per period, so only kept
//! faces are embedded. [`FaceEngine`] bundles detector, aligner, gate and
//! embedder for callers that want everything at once (`/face-detect`).

pub mod align;
pub mod decode;
pub mod detect;
pub mod embed;
mod engine;
pub mod keeper;
pub mod quality;

use thiserror::Error;

use crate::detect::DetectError;
use crate::detect::decode::DecodeError;
use crate::frame::FrameError;

pub use decode::{FaceDetection, Landmarks};
pub use embed::{EMBEDDING_DIM, Embedding};
pub use engine::{Face, FaceEngine, FaceSession};
pub use quality::{Quality, QualityConfig};

#[derive(Debug, Error)]
pub enum FaceError {
    /// Loading, letterboxing or running a model.
    #[error(transparent)]
    Model(#[from] DetectError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("reading the embedder's output: {0}")]
    Tensor(String),
    #[error("the embedder's [model.input] needs resize = \"align-arcface\" and a 5-point template")]
    Template,
    #[error("the face's landmarks coincide: no alignment")]
    Degenerate,
    #[error("the embedder gave {0} values, expected its manifest `dim` (at most 512)")]
    EmbeddingSize(usize),
    #[error("the embedder gave a NaN, infinite or zero vector")]
    NotFinite,
}
