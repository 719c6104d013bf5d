//! The one adapter between Wayside and tract: load an ONNX file with concrete
//! input shapes, optimise it once, and run it many times from reusable
//! per-thread sessions.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use thiserror::Error;
use tract_onnx::prelude::*;
use wayside_arena::Arena;

pub use tract_onnx::prelude::{Tensor, TractError};

pub mod cpu;

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("loading model {path}: {source}")]
    Load { path: String, source: TractError },
    #[error("running model {name}: {source}")]
    Run { name: String, source: TractError },
    #[error("model {name}: input of shape {shape:?} given {got} values")]
    InputSize {
        name: String,
        shape: Vec<usize>,
        got: usize,
    },
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
    /// What the last sessions dropped left for the next: see [`Spare`].
    spares: Arc<Mutex<Vec<Spare>>>,
}

/// A dropped session's arena, with the plan its runs made, and its input
/// tensor. A session made per request or per plate (`/face-detect`, the
/// recogniser) takes them over and replays from its first run: each new
/// session would otherwise record its one run, every tensor of it mapped
/// and faulted in afresh (a photo's face work 94–109 ms against 63–73,
/// docs/BENCHMARKS.md).
/// Up to one per core for each model: a video job's detection workers, one
/// per core, leave theirs to the next job's, which then records nothing.
/// Idle, they hold what those sessions held while they ran.
struct Spare {
    arena: Arena,
    input: Option<Arc<Tensor>>,
}

/// Spares kept per model: one per core.
static SPARES: LazyLock<usize> =
    LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

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
    /// Load `path`, fixing input `i` to `input_shapes[i]` (f32), and
    /// optimise it into the plan every session runs.
    pub fn load(path: &Path, input_shapes: &[Vec<usize>]) -> Result<Self, RuntimeError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let plan = typed(path, input_shapes)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|source| load_error(path, source))?;
        Ok(Self {
            name,
            plan,
            spares: Arc::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a session still runs this plan.
    fn in_use(&self) -> bool {
        Arc::strong_count(&self.plan) > 1
    }

    /// A session owns the scratch state of one inference thread. Its tract
    /// state is always new; its arena may be a dropped session's.
    pub fn session(&self) -> Result<Session, RuntimeError> {
        let state = TypedSimpleState::new(&self.plan).map_err(|source| RuntimeError::Run {
            name: self.name.clone(),
            source,
        })?;
        let spare = self
            .spares
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let (arena, input) = spare.map_or_else(Default::default, |s| (s.arena, s.input));
        Ok(Session {
            name: self.name.clone(),
            state,
            arena,
            input,
            home: Arc::clone(&self.spares),
        })
    }
}

/// `path` parsed and typed with input `i` fixed to `input_shapes[i]` (f32):
/// where a model whose operators or shapes tract cannot handle fails, before
/// the optimisation that makes a plan of it. Concrete shapes let tract fold
/// every shape computation at load time; models exported with symbolic batch
/// sizes do not load without them.
fn typed(path: &Path, input_shapes: &[Vec<usize>]) -> TractResult<TypedModel> {
    let mut model = tract_onnx::onnx().model_for_path(path)?;
    for (i, shape) in input_shapes.iter().enumerate() {
        model = model.with_input_fact(i, f32::fact(shape.as_slice()).into())?;
    }
    model.into_typed()
}

fn load_error(path: &Path, source: TractError) -> RuntimeError {
    RuntimeError::Load {
        path: path.display().to_string(),
        source,
    }
}

/// One model file run at several input shapes: a fully convolutional
/// detector fed inputs that fit each stream's frames. tract optimises a plan
/// for concrete shapes only, so each shape gets its own plan, made on first
/// use. Plans no session runs are dropped when a session starts, except for
/// a small model (YuNet, 0.2 MB), which keeps its most recently used ones:
/// photos of mixed shapes would otherwise make a plan each (50 ms of a 100 ms
/// request); a big one's (the detector's 15 MB of weights) would cost a box's memory.
pub struct Plans {
    path: PathBuf,
    keep_idle: usize,
    /// Least recently used first.
    plans: Mutex<Vec<(Vec<usize>, Model)>>,
}

/// A model file this small keeps [`SMALL_MODEL_IDLE_PLANS`] idle plans.
const SMALL_MODEL_BYTES: u64 = 1 << 20;
const SMALL_MODEL_IDLE_PLANS: usize = 4;

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
        Ok(Self::with(path, vec![(shape, model)]))
    }

    /// Check that `path` loads at its full input `shape`, as [`load`](Self::load)
    /// does, but make no plan: each session's first frame makes the one its
    /// input needs. For a model whose inputs are trimmed to the frame: a plan
    /// of the full input (100–115 ms for the detector) would be dropped
    /// unused at the first 16:9 frame, while parsing and typing the model,
    /// where one that tract cannot run fails, take 15–20.
    pub fn checked(path: &Path, shape: Vec<usize>) -> Result<Self, RuntimeError> {
        typed(path, &[shape]).map_err(|source| load_error(path, source))?;
        Ok(Self::with(path, Vec::new()))
    }

    fn with(path: &Path, plans: Vec<(Vec<usize>, Model)>) -> Self {
        let small = std::fs::metadata(path).is_ok_and(|m| m.len() <= SMALL_MODEL_BYTES);
        Self {
            path: path.to_path_buf(),
            keep_idle: if small { SMALL_MODEL_IDLE_PLANS } else { 0 },
            plans: Mutex::new(plans),
        }
    }

    /// A session of the plan for `shape`, made if there is none.
    pub fn session(&self, shape: &[usize]) -> Result<Session, RuntimeError> {
        // A panic elsewhere cannot leave the list half-changed: the lock
        // guards whole moves, pushes and retains.
        let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = plans.iter().position(|(s, _)| s == shape) {
            let used = plans.remove(i);
            plans.push(used);
        }
        drop_idle(&mut plans, self.keep_idle, |(s, m)| {
            s != shape && !m.in_use()
        });
        if let Some((_, model)) = plans.last().filter(|(s, _)| s == shape) {
            return model.session();
        }
        let model = Model::load(&self.path, &[shape.to_vec()])?;
        let session = model.session()?;
        plans.push((shape.to_vec(), model));
        Ok(session)
    }
}

/// Drop the idle entries of `plans` (least recently used first) beyond the
/// `keep` most recent.
fn drop_idle<T>(plans: &mut Vec<T>, keep: usize, idle: impl Fn(&T) -> bool) {
    let mut surplus = plans
        .iter()
        .filter(|p| idle(p))
        .count()
        .saturating_sub(keep);
    plans.retain(|p| {
        let drop = surplus > 0 && idle(p);
        surplus -= usize::from(drop);
        !drop
    });
}

/// Reusable run state: tract's `plan.run()` would build a fresh one per call.
/// Its arena holds the run's intermediate tensors from the second run on,
/// where the binary's global allocator is `wayside_arena::Replaying`.
pub struct Session {
    name: String,
    state: TypedSimpleState,
    arena: Arena,
    /// The input tensor of [`run_f32`](Self::run_f32), kept for the next run.
    input: Option<Arc<Tensor>>,
    /// Where the arena and the input go when the session is dropped.
    home: Arc<Mutex<Vec<Spare>>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        let mut spares = self.home.lock().unwrap_or_else(PoisonError::into_inner);
        if spares.len() < *SPARES {
            spares.push(Spare {
                arena: std::mem::take(&mut self.arena),
                input: self.input.take(),
            });
        }
    }
}

impl Session {
    /// Run on f32 inputs; outputs come back as f32 tensors in model order.
    pub fn run(&mut self, inputs: Vec<Tensor>) -> Result<Vec<Arc<Tensor>>, RuntimeError> {
        let state = &mut self.state;
        let outputs = self.arena.run(|| state.run(values(inputs)));
        self.f32_outputs(outputs)
    }

    /// Run on one f32 input of `shape`, copied from `data` into a tensor
    /// the session keeps: tract takes its inputs in its own aligned storage,
    /// so a tensor made per frame (`tensor`) is an allocation and a copy of
    /// the frame's input each time, 1.4 MB for the detector at 720p.
    pub fn run_f32(
        &mut self,
        shape: &[usize],
        data: &[f32],
    ) -> Result<Vec<Arc<Tensor>>, RuntimeError> {
        if shape.iter().product::<usize>() != data.len() {
            return Err(RuntimeError::InputSize {
                name: self.name.clone(),
                shape: shape.to_vec(),
                got: data.len(),
            });
        }
        // Ours alone again once the last run's state let go of it.
        let reusable = self
            .input
            .as_mut()
            .and_then(Arc::get_mut)
            .is_some_and(|t| t.shape() == shape);
        if !reusable {
            let t = Tensor::zero::<f32>(shape).map_err(|e| self.failed(e))?;
            self.input = Some(Arc::new(t));
        }
        let tensor = self
            .input
            .as_mut()
            .and_then(Arc::get_mut)
            .expect("ours alone: checked, or just made");
        let name = &self.name;
        tensor
            .try_as_plain_ram_mut()
            .and_then(|mut v| v.as_slice_mut::<f32>().map(|s| s.copy_from_slice(data)))
            .map_err(|source| RuntimeError::Run {
                name: name.clone(),
                source,
            })?;
        let input = TValue::from_const(Arc::clone(self.input.as_ref().expect("set above")));
        let state = &mut self.state;
        let outputs = self.arena.run(|| state.run(tvec![input]));
        self.f32_outputs(outputs)
    }

    /// [`run`](Self::run), handing `node_took` each node's operator name
    /// and wall time as it finishes: where a model's time goes (the models
    /// bench's `--profile`).
    pub fn run_profiled(
        &mut self,
        inputs: Vec<Tensor>,
        mut node_took: impl FnMut(&str, Duration),
    ) -> Result<Vec<Arc<Tensor>>, RuntimeError> {
        let state = &mut self.state;
        let outputs = self.arena.run(|| {
            state.run_plan_with_eval(values(inputs), |ctx, op_state, node, inputs| {
                let started = Instant::now();
                let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                node_took(&node.op().name(), started.elapsed());
                out
            })
        });
        self.f32_outputs(outputs)
    }

    /// How the session's tensor arena has done.
    pub fn arena_stats(&self) -> wayside_arena::Stats {
        self.arena.stats()
    }

    fn failed(&self, source: TractError) -> RuntimeError {
        RuntimeError::Run {
            name: self.name.clone(),
            source,
        }
    }

    fn f32_outputs(
        &self,
        outputs: TractResult<TVec<TValue>>,
    ) -> Result<Vec<Arc<Tensor>>, RuntimeError> {
        let outputs = outputs.map_err(|e| self.failed(e))?;
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

fn values(inputs: Vec<Tensor>) -> TVec<TValue> {
    inputs.into_iter().map(TValue::from).collect()
}

/// The f32 values of an output tensor returned by [`Session::run`].
pub fn f32s(t: &Tensor) -> Result<&[f32], TractError> {
    t.try_as_plain_ram()?.as_slice::<f32>()
}

/// An f32 tensor of `shape` holding `data` (row-major). tract copies it into
/// storage aligned for its kernels; a session fed frame after frame reuses
/// one instead ([`Session::run_f32`]).
pub fn tensor(shape: &[usize], data: Vec<f32>) -> Result<Tensor, TractError> {
    Ok(tract_ndarray::ArrayD::from_shape_vec(shape, data)?.into())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{Plans, RuntimeError, drop_idle};

    /// YuNet (0.2 MB): fully convolutional and quick to plan, under qemu too.
    fn face_detector() -> PathBuf {
        std::env::var_os("WAYSIDE_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/cache"))
            .join("face-detector.onnx")
    }

    fn planned(plans: &Plans) -> Vec<Vec<usize>> {
        let plans = plans.plans.lock().unwrap();
        plans.iter().map(|(shape, _)| shape.clone()).collect()
    }

    #[test]
    fn a_checked_model_makes_a_plan_only_for_the_shape_a_session_asks_for() {
        let plans = Plans::checked(&face_detector(), vec![1, 3, 640, 640]).unwrap();
        assert!(planned(&plans).is_empty());
        let wide = [1, 3, 384, 640];
        let mut session = plans.session(&wide).unwrap();
        let outputs = session.run_f32(&wide, &vec![0.5; 3 * 384 * 640]).unwrap();
        assert_eq!(outputs.len(), 12, "cls, obj, bbox and kps at three strides");
        assert_eq!(planned(&plans), [wide]);
    }

    #[test]
    fn what_tract_cannot_type_fails_the_check_not_the_first_frame() {
        let path = face_detector();
        // One channel where the first convolution takes three.
        let err = Plans::checked(&path, vec![1, 1, 640, 640]).unwrap_err();
        assert!(matches!(err, RuntimeError::Load { .. }), "{err}");
        let not_onnx = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let err = Plans::checked(&not_onnx, vec![1, 3, 640, 640]).unwrap_err();
        assert!(matches!(err, RuntimeError::Load { .. }), "{err}");
    }

    #[test]
    fn idle_plans_go_least_recently_used_first() {
        // (shape, in use), least recently used first.
        let plans = vec![(1, false), (2, true), (3, false), (4, false), (5, true)];
        let idle = |p: &(i32, bool)| !p.1;
        let mut kept = plans.clone();
        drop_idle(&mut kept, 0, idle);
        assert_eq!(kept, [(2, true), (5, true)]);
        let mut kept = plans.clone();
        drop_idle(&mut kept, 2, idle);
        assert_eq!(kept, [(2, true), (3, false), (4, false), (5, true)]);
        let mut kept = plans;
        drop_idle(&mut kept, 4, idle);
        assert_eq!(kept.len(), 5);
    }
}
