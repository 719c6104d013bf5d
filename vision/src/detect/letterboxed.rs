//! A model fed whole frames through a letterbox: loaded once; per frame,
//! letterbox, run, and hand back the raw outputs with the transform that maps
//! them back to the frame. The object detector, the face detector and the
//! face embedder all start this way.

use std::path::Path;
use std::sync::Arc;

use super::DetectError;
use super::decode::Output;
use super::letterbox::{Letterbox, Letterboxer, Preprocess, Window};
use crate::frame::Picture;
use crate::runtime::{Plans, Session, Tensor};

/// The model and its `[model.input]`; shared read-only.
#[derive(Debug, Clone)]
pub struct LetterboxedModel {
    plans: Arc<Plans>,
    preprocess: Preprocess,
}

impl LetterboxedModel {
    pub fn load(path: &Path, preprocess: Preprocess) -> Result<Self, DetectError> {
        preprocess.validate()?;
        let shape = preprocess.input_shape();
        // A trimmed input takes the shape of each frame's letterbox, rarely
        // the full one: its plans wait for the frames.
        let plans = Arc::new(match preprocess.trim_padding {
            Some(_) => Plans::checked(path, shape)?,
            None => Plans::load(path, shape)?,
        });
        Ok(Self { plans, preprocess })
    }

    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// Per-thread state; tract's run state is made on the first frame, for
    /// the input shape that frame fits.
    pub fn session(&self) -> LetterboxedSession {
        LetterboxedSession {
            plans: Arc::clone(&self.plans),
            session: None,
            letterbox: Letterboxer::new(self.preprocess.clone()),
            input: Vec::new(),
            input_size: None,
        }
    }
}

/// Per-thread state: tract's run state for the current input shape and the
/// letterbox buffers.
pub struct LetterboxedSession {
    plans: Arc<Plans>,
    session: Option<(Vec<usize>, Session)>,
    letterbox: Letterboxer,
    input: Vec<f32>,
    input_size: Option<[u32; 2]>,
}

/// One run's raw outputs and how the frame was fitted into the input.
pub struct Ran {
    pub transform: Letterbox,
    pub outputs: Vec<Arc<Tensor>>,
}

impl Ran {
    pub fn views(&self) -> Result<Vec<Output<'_>>, DetectError> {
        Output::all(&self.outputs).map_err(|e| DetectError::Tensor(e.to_string()))
    }
}

impl LetterboxedSession {
    /// Width and height of the input the last frame was fitted into: the
    /// model's declared size, or less where `trim_padding` cut the padding.
    pub fn input_size(&self) -> Option<[u32; 2]> {
        self.input_size
    }

    pub fn run<'f>(&mut self, frame: impl Into<Picture<'f>>) -> Result<Ran, DetectError> {
        self.run_in(frame, None)
    }

    /// [`run`](Self::run) on `window` of the input only
    /// ([`Letterboxer::run_in`]); each window size has a plan of its own.
    pub fn run_in<'f>(
        &mut self,
        frame: impl Into<Picture<'f>>,
        window: Option<Window>,
    ) -> Result<Ran, DetectError> {
        let transform = self.letterbox.run_in(frame, window, &mut self.input)?;
        self.input_size = Some([transform.input_width, transform.input_height]);
        let shape = self
            .letterbox
            .spec()
            .shape(transform.input_width, transform.input_height);
        let session = match &mut self.session {
            Some((s, session)) if *s == shape => session,
            slot => {
                // Let go of the old shape's plan first, so it can be dropped.
                *slot = None;
                let session = self.plans.session(&shape)?;
                &mut slot.insert((shape.clone(), session)).1
            }
        };
        let outputs = session.run_f32(&shape, &self.input)?;
        Ok(Ran { transform, outputs })
    }
}
