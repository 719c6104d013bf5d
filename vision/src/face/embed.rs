//! The face embedder: an aligned crop in, a unit-length 512-d vector out,
//! compared by cosine similarity (a dot product, since both are unit length).
//!
//! Every embedding is [`EMBEDDING_DIM`] long, the width of the data API's
//! index: a smaller model's vector (SFace's 128) is zero-padded, which leaves
//! cosines between vectors of the same model unchanged.

use std::path::Path;

use image::RgbImage;
use serde::Serialize;

use super::FaceError;
use crate::RgbFrame;
use crate::detect::decode::{DecodeError, DecodeSpec};
use crate::detect::letterbox::Preprocess;
use crate::detect::letterboxed::{LetterboxedModel, LetterboxedSession};
use crate::runtime;

/// Length of every embedding (API.md: `face_vector` is 512 floats).
pub const EMBEDDING_DIM: usize = 512;

/// A unit-length, finite, [`EMBEDDING_DIM`]-long face vector.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Embedding(Vec<f32>);

impl Embedding {
    /// Zero-pad `raw` to [`EMBEDDING_DIM`] and scale it to unit length.
    /// NaN or infinite values, a zero vector or one longer than
    /// [`EMBEDDING_DIM`] are errors: a bad vector in the index would match
    /// nothing, or everything.
    pub fn from_raw(raw: &[f32]) -> Result<Self, FaceError> {
        if raw.len() > EMBEDDING_DIM {
            return Err(FaceError::EmbeddingSize(raw.len()));
        }
        if raw.iter().any(|v| !v.is_finite()) {
            return Err(FaceError::NotFinite);
        }
        let norm = raw.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
        if norm < 1e-12 {
            return Err(FaceError::NotFinite);
        }
        let mut v: Vec<f32> = raw.iter().map(|x| (*x as f64 / norm) as f32).collect();
        v.resize(EMBEDDING_DIM, 0.0);
        Ok(Self(v))
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<f32> {
        self.0
    }

    /// Cosine similarity, −1..1.
    pub fn cosine(&self, other: &Embedding) -> f32 {
        self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum()
    }
}

/// A loaded embedder with its pre-processing; shared read-only, each
/// inference thread takes its own [`EmbedderSession`].
#[derive(Debug, Clone)]
pub struct Embedder {
    model: LetterboxedModel,
    dim: usize,
}

impl Embedder {
    /// `preprocess` and `decode` are the manifest's `[model.input]` and
    /// `[model.output]`; `decode` must be `embedding`.
    pub fn load(
        path: &Path,
        preprocess: Preprocess,
        decode: DecodeSpec,
    ) -> Result<Self, FaceError> {
        let DecodeSpec::Embedding { dim } = decode else {
            return Err(DecodeError::Mismatch {
                expected: "a face embedder (embedding)",
                got: decode.name(),
            }
            .into());
        };
        if dim > EMBEDDING_DIM {
            return Err(FaceError::EmbeddingSize(dim));
        }
        Ok(Self {
            model: LetterboxedModel::load(path, preprocess)?,
            dim,
        })
    }

    /// The model's `[model.input]`, which also says how to align for it.
    pub fn preprocess(&self) -> &Preprocess {
        self.model.preprocess()
    }

    pub fn session(&self) -> EmbedderSession<'_> {
        EmbedderSession {
            embedder: self,
            session: self.model.session(),
        }
    }
}

/// Per-thread state: tract's run state and the input buffer.
pub struct EmbedderSession<'a> {
    embedder: &'a Embedder,
    session: LetterboxedSession,
}

impl EmbedderSession<'_> {
    /// The embedding of an aligned crop ([`super::align::Aligner::align`]).
    pub fn embed(&mut self, aligned: &RgbImage) -> Result<Embedding, FaceError> {
        let frame = RgbFrame::from_image(aligned)?;
        // The crop already has the input size, so the letterbox is the
        // identity resize followed by the manifest's channel order and
        // normalisation: one implementation of those for every model.
        let ran = self.session.run(frame)?;
        let raw = ran
            .outputs
            .first()
            .map(|t| runtime::f32s(t))
            .transpose()
            .map_err(|err| FaceError::Tensor(err.to_string()))?
            .unwrap_or_default();
        if raw.len() != self.embedder.dim {
            return Err(FaceError::EmbeddingSize(raw.len()));
        }
        Embedding::from_raw(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_vectors_are_padded_and_normalised() {
        let e = Embedding::from_raw(&[3.0, 4.0]).unwrap();
        assert_eq!(e.as_slice().len(), EMBEDDING_DIM);
        assert_eq!(&e.as_slice()[..3], &[0.6, 0.8, 0.0]);
        assert!((e.cosine(&e) - 1.0).abs() < 1e-6);
        let other = Embedding::from_raw(&[4.0, -3.0]).unwrap();
        assert!(e.cosine(&other).abs() < 1e-6);
    }

    #[test]
    fn bad_vectors_are_refused() {
        assert!(matches!(
            Embedding::from_raw(&[1.0, f32::NAN]),
            Err(FaceError::NotFinite)
        ));
        assert!(matches!(
            Embedding::from_raw(&[f32::INFINITY]),
            Err(FaceError::NotFinite)
        ));
        assert!(matches!(
            Embedding::from_raw(&[0.0; 8]),
            Err(FaceError::NotFinite)
        ));
        assert!(matches!(
            Embedding::from_raw(&[1.0; 513]),
            Err(FaceError::EmbeddingSize(513))
        ));
    }
}
