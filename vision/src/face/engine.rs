//! Detector, aligner, quality gate and embedder together, for callers that
//! want every face of a frame finished (the daemon's `/face-detect`, the
//! CLI). The video pipeline uses the steps one by one instead, to embed only
//! the faces the [`super::keeper`] keeps.

use serde::Serialize;

use super::align::Aligner;
use super::detect::{FaceDetector, FaceDetectorSession};
use super::embed::{Embedder, EmbedderSession};
use super::{Embedding, FaceDetection, FaceError, Landmarks, Quality, QualityConfig};
use crate::frame::Picture;
use crate::{BBox, RgbFrame};

/// One face of a frame, finished: where it is, how good it is, who it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Face {
    /// Frame pixels.
    pub bbox: BBox,
    /// Detector score, 0..1.
    pub score: f32,
    /// Frame pixels: eyes, nose tip, mouth corners, image-left first.
    pub landmarks: Landmarks,
    pub quality: Quality,
    pub embedding: Embedding,
}

/// The loaded face models; shared read-only (clone it or share it by
/// reference), each inference thread takes its own [`FaceSession`].
#[derive(Debug, Clone)]
pub struct FaceEngine {
    detector: FaceDetector,
    embedder: Embedder,
    aligner: Aligner,
    quality: QualityConfig,
}

impl FaceEngine {
    /// The aligner is built from the embedder's `[model.input]`, so crops
    /// always fit the embedder they are made for.
    pub fn new(
        detector: FaceDetector,
        embedder: Embedder,
        quality: QualityConfig,
    ) -> Result<Self, FaceError> {
        let aligner = Aligner::new(embedder.preprocess())?;
        Ok(Self {
            detector,
            embedder,
            aligner,
            quality,
        })
    }

    pub fn session(&self) -> FaceSession<'_> {
        FaceSession {
            engine: self,
            detect: self.detector.session(),
            embed: self.embedder.session(),
        }
    }

    pub fn aligner(&self) -> &Aligner {
        &self.aligner
    }

    pub fn quality_config(&self) -> &QualityConfig {
        &self.quality
    }
}

/// Per-thread state of both models.
pub struct FaceSession<'a> {
    engine: &'a FaceEngine,
    detect: FaceDetectorSession<'a>,
    embed: EmbedderSession<'a>,
}

impl FaceSession<'_> {
    /// Faces in `frame`, best score first, not yet aligned or embedded.
    pub fn detect<'f>(
        &mut self,
        frame: impl Into<Picture<'f>>,
    ) -> Result<Vec<FaceDetection>, FaceError> {
        self.detect.detect(frame)
    }

    /// Faces in and around `region` of `frame`, found on that part of the
    /// frame only ([`FaceDetectorSession::detect_near`]).
    pub fn detect_near<'f>(
        &mut self,
        frame: impl Into<Picture<'f>>,
        region: BBox,
    ) -> Result<Vec<FaceDetection>, FaceError> {
        self.detect.detect_near(frame, region)
    }

    /// The embedder's aligned crop of `face`.
    pub fn align(
        &self,
        frame: &RgbFrame,
        face: &FaceDetection,
    ) -> Result<image::RgbImage, FaceError> {
        self.engine.aligner.align(frame, &face.landmarks)
    }

    /// Gate and rank `face` by its detection and aligned crop.
    pub fn quality(&self, face: &FaceDetection, aligned: &image::RgbImage) -> Quality {
        self.engine.quality.assess(face, aligned)
    }

    pub fn embed(&mut self, aligned: &image::RgbImage) -> Result<Embedding, FaceError> {
        self.embed.embed(aligned)
    }

    /// Every face in `frame`, aligned, assessed and embedded, best score
    /// first. Faces the gate refuses are included (see
    /// [`Quality::rejected`]): whether to use them is the caller's call.
    pub fn faces(&mut self, frame: &RgbFrame) -> Result<Vec<Face>, FaceError> {
        let detections = self.detect(frame)?;
        detections
            .into_iter()
            .map(|d| self.finish(frame, d))
            .collect()
    }

    /// The largest face (by box area), finished; `None` when there is none.
    /// Only that face is aligned and embedded. `/face-detect` uses it: the
    /// user chose the photo, so the quality gate is reported, not applied.
    pub fn largest_face(&mut self, frame: &RgbFrame) -> Result<Option<Face>, FaceError> {
        let largest = self
            .detect(frame)?
            .into_iter()
            .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()));
        largest.map(|d| self.finish(frame, d)).transpose()
    }

    fn finish(&mut self, frame: &RgbFrame, d: FaceDetection) -> Result<Face, FaceError> {
        let aligned = self.align(frame, &d)?;
        Ok(Face {
            bbox: d.bbox,
            score: d.score,
            landmarks: d.landmarks,
            quality: self.quality(&d, &aligned),
            embedding: self.embed(&aligned)?,
        })
    }
}
