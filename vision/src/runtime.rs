//! The one adapter between Wayside and tract: load an ONNX file with concrete
//! input shapes, optimise it once, and run it many times from reusable
//! per-thread sessions.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use thiserror::Error;
use tract_onnx::prelude::*;

pub use tract_onnx::prelude::{Tensor, TractError};

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("loading model {path}: {source}")]
    Load { path: String, source: TractError },
    #[error("running model {name}: {source}")]
    Run { name: String, source: TractError },
    #[error("model {name} gave output {index} as {got}, expected f32")]
    OutputType {
        name: String,
        index: usize,
        got: String,
    },
}

/// An optimised model with fixed input shapes, shared by every session.
#[derive(Clone)]
pub struct Model {
    name: String,
    plan: Arc<TypedRunnableModel>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("name", &self.name).finish()
    }
}

/// Use up to `threads` cores inside matrix products (tract's rayon executor).
/// Process-wide; 1 keeps inference on the calling thread.
pub fn set_threads(threads: usize) {
    use tract_linalg::multithread::{Executor, set_default_executor};
    set_default_executor(if threads <= 1 {
        Executor::SingleThread
    } else {
        Executor::multithread_with_name(threads, "wayside-infer")
    });
}

impl Model {
    /// Load `path`, fixing input `i` to `input_shapes[i]` (f32). Concrete
    /// shapes let tract fold every shape computation at load time; models
    /// exported with symbolic batch sizes do not load without them.
    pub fn load(path: &Path, input_shapes: &[Vec<usize>]) -> Result<Self, RuntimeError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let err = |source| RuntimeError::Load {
            path: path.display().to_string(),
            source,
        };
        let mut model = tract_onnx::onnx().model_for_path(path).map_err(err)?;
        for (i, shape) in input_shapes.iter().enumerate() {
            model = model
                .with_input_fact(i, f32::fact(shape.as_slice()).into())
                .map_err(err)?;
        }
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(err)?;
        Ok(Self { name, plan })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a session still runs this plan.
    fn in_use(&self) -> bool {
        Arc::strong_count(&self.plan) > 1
    }

    /// A session owns the scratch state of one inference thread.
    pub fn session(&self) -> Result<Session, RuntimeError> {
        let state = TypedSimpleState::new(&self.plan).map_err(|source| RuntimeError::Run {
            name: self.name.clone(),
            source,
        })?;
        Ok(Session {
            name: self.name.clone(),
            state,
        })
    }
}

/// One model file run at several input shapes: a fully convolutional
/// detector fed inputs that fit each stream's frames. tract optimises a plan
/// for concrete shapes only, so each shape gets its own plan, made on first
/// use. A plan no session runs is dropped when a session asks for another:
/// a box sees few frame shapes, and its memory is short.
pub struct Plans {
    path: PathBuf,
    plans: Mutex<Vec<(Vec<usize>, Model)>>,
}

impl std::fmt::Debug for Plans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plans").field("path", &self.path).finish()
    }
}

impl Plans {
    /// Load `path` at its full input `shape` now, so that a model that does
    /// not load fails at start, not on the first frame.
    pub fn load(path: &Path, shape: Vec<usize>) -> Result<Self, RuntimeError> {
        let model = Model::load(path, std::slice::from_ref(&shape))?;
        Ok(Self {
            path: path.to_path_buf(),
            plans: Mutex::new(vec![(shape, model)]),
        })
    }

    /// A session of the plan for `shape`, made if there is none.
    pub fn session(&self, shape: &[usize]) -> Result<Session, RuntimeError> {
        // A panic elsewhere cannot leave the list half-changed: the lock
        // guards whole pushes and retains.
        let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        plans.retain(|(s, m)| s == shape || m.in_use());
        if let Some((_, model)) = plans.iter().find(|(s, _)| s == shape) {
            return model.session();
        }
        let model = Model::load(&self.path, &[shape.to_vec()])?;
        let session = model.session()?;
        plans.push((shape.to_vec(), model));
        Ok(session)
    }
}

/// Reusable run state: tract's `plan.run()` would build a fresh one per call.
pub struct Session {
    name: String,
    state: TypedSimpleState,
}

impl Session {
    /// Run on f32 inputs; outputs come back as f32 tensors in model order.
    pub fn run(&mut self, inputs: Vec<Tensor>) -> Result<Vec<Arc<Tensor>>, RuntimeError> {
        let outputs = self
            .state
            .run(inputs.into_iter().map(TValue::from).collect())
            .map_err(|source| RuntimeError::Run {
                name: self.name.clone(),
                source,
            })?;
        outputs
            .into_iter()
            .enumerate()
            .map(|(index, v)| {
                let t = v.into_arc_tensor();
                if t.datum_type() == f32::datum_type() {
                    Ok(t)
                } else {
                    Err(RuntimeError::OutputType {
                        name: self.name.clone(),
                        index,
                        got: format!("{:?}", t.datum_type()),
                    })
                }
            })
            .collect()
    }
}

/// The f32 values of an output tensor returned by [`Session::run`].
pub fn f32s(t: &Tensor) -> Result<&[f32], TractError> {
    t.try_as_plain_ram()?.as_slice::<f32>()
}

/// An f32 tensor of `shape` that takes ownership of `data` (row-major), no copy.
pub fn tensor(shape: &[usize], data: Vec<f32>) -> Result<Tensor, TractError> {
    Ok(tract_ndarray::ArrayD::from_shape_vec(shape, data)?.into())
}
