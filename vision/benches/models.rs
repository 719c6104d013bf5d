//! Model latency: tract (through `wayside_vision::runtime`, as the daemon runs
//! it) against onnxruntime (`models/bench_ort.py`) on the same cross-check
//! input, in the same run, per model and thread count. tract runs the file
//! the daemon loads. onnxruntime runs it too, and the model as its exporter
//! wrote it where `models/fetch.py` rewrote it for tract, and keeps the
//! faster: the reference is onnxruntime at its best.
//!
//! Every measurement runs in its own child process so that peak RSS belongs to
//! one model: a tract child is this binary re-run with `--child`, an
//! onnxruntime child is `bench_ort.py --threads T ID` (which forks its own
//! child). The onnxruntime measurement for a (model, threads) pair follows the
//! tract one immediately, so drift from other load on the machine hits both
//! sides about equally. Progress goes to stderr; the markdown report (machine,
//! versions, one table) goes to stdout.
//!
//! ```text
//! scripts/bench.sh [--runs N] [--threads 1,2] [--tract-only] [--profile [--batch N]] [MODEL_ID ...]
//! scripts/bench.sh --against DIR [--rounds 8] [--runs N] [--threads 1] [MODEL_ID ...]
//! scripts/bench.sh --batch N [--runs N] [--threads 1] [--tract-only] [MODEL_ID ...]
//! cargo bench -p wayside-vision --bench models -- [same options]
//! ```
//!
//! `--profile` measures no onnxruntime and no memory: it prints, per model
//! and thread count, tract's time per operator (optimised plan, summed over
//! the runs), in this process: where a model's time goes. With `--batch N`,
//! at a batch of N.
//!
//! `--against DIR` compares two model caches instead, for a graph rewrite
//! made in `models/fetch.py`: tract only, one child per model and cache,
//! alternating between this cache and DIR for `--rounds` rounds (default 8)
//! so that load from elsewhere falls on both; it prints the median of the
//! children's medians and its range for each. DIR needs the model files and
//! their `crosscheck/` inputs.
//!
//! `--batch N` asks whether batching pays: per model, one inference over N
//! copies of the input against N inferences over one, alternating, in tract
//! (in this process) and in onnxruntime (`bench_ort.py --batch N`, which
//! frees the batch dimension the exporters fixed at 1). It prints the time
//! per input of each and their ratio.
//!
//! `--runs` defaults to `$WAYSIDE_BENCH_RUNS` or 30, after 3 warm-up runs (the
//! same defaults as `bench_ort.py`). `--panel-threshold`, `--mac-threshold` and
//! `--element-threshold` set tract-linalg's threading gates in the tract
//! children, to reproduce the experiments in docs/BENCHMARKS.md.
//! `--cpu-features SPEC` sets the instruction set tract may use, as the
//! daemon's `models.cpu_features` does, with the same default ("auto"):
//! `--cpu-features native` measures tract's own choice.
//!
//! `cargo test` never runs this (bench targets are not test targets); if a
//! `cargo test --benches` does run it, it exits at once because cargo did not
//! pass `--bench`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use ndarray_npy::ReadNpyExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tract_onnx::prelude::tract_ndarray::ArrayD;
use wayside_vision::runtime::cpu::{CpuFeatures, set_cpu_features};
use wayside_vision::runtime::{self, Model, Session};

/// tract runs as in the daemon: each session's tensors in its arena.
#[global_allocator]
static ALLOCATOR: wayside_arena::Replaying = wayside_arena::Replaying;

const DEFAULT_RUNS: usize = 30;
const WARMUP: usize = 3;

fn main() -> ExitCode {
    wayside_arena::map_large_allocations();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..])
    } else if args.first().map(String::as_str) == Some("--child-baseline") {
        println!("{}", json!({ "rss_mb": peak_rss_mb() }));
        Ok(())
    } else if !args.iter().any(|a| a == "--bench") {
        eprintln!("models bench: not run outside `cargo bench` (scripts/bench.sh runs it)");
        Ok(())
    } else {
        Options::parse(&args).and_then(|o| match (&o.against, o.profile, o.batch) {
            (Some(dir), _, _) => against(&o, dir),
            (None, true, _) => profile(&o),
            (None, false, Some(n)) => batched(&o, n),
            (None, false, None) => parent(&o),
        })
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("models bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What to measure, from the command line.
struct Options {
    runs: usize,
    threads: Vec<usize>,
    models: Vec<String>,
    tract_only: bool,
    profile: bool,
    /// A second model cache to compare this one with, and how many rounds.
    against: Option<PathBuf>,
    rounds: usize,
    /// Inputs per inference to compare with one at a time.
    batch: Option<usize>,
    /// tract's settings, passed through to the tract children.
    knobs: Knobs,
}

/// tract-linalg's threading gates and the instruction set its kernels use.
#[derive(Default, Clone)]
struct Knobs {
    panel: Option<usize>,
    mac: Option<usize>,
    element: Option<usize>,
    cpu: CpuFeatures,
}

impl Knobs {
    fn args(&self) -> Vec<String> {
        let mut a = vec!["--cpu-features".to_string(), self.cpu.to_string()];
        for (flag, v) in [
            ("--panel-threshold", self.panel),
            ("--mac-threshold", self.mac),
            ("--element-threshold", self.element),
        ] {
            if let Some(v) = v {
                a.extend([flag.to_string(), v.to_string()]);
            }
        }
        a
    }

    /// Parse one of [`Self::args`]'s flags, if it is one.
    fn parse(&mut self, flag: &str, value: &str) -> Result<bool, String> {
        let n = || number(flag, value).map(Some);
        match flag {
            "--panel-threshold" => self.panel = n()?,
            "--mac-threshold" => self.mac = n()?,
            "--element-threshold" => self.element = n()?,
            "--cpu-features" => self.cpu = value.parse().map_err(|e| format!("{flag}: {e}"))?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The gates in force and the instruction set tract picks kernels from.
    /// Run in a process that loads no model: it fixes that process's set.
    fn describe(&self) -> Result<String, String> {
        use tract_linalg::multithread as mt;
        let cpu = set_cpu_features(&self.cpu).map_err(|e| e.to_string())?;
        Ok(format!(
            "panel threshold {}, MAC threshold {}, element threshold {}; kernels for {cpu}",
            self.panel
                .unwrap_or_else(mt::current_threading_panel_threshold),
            self.mac.unwrap_or_else(mt::current_threading_mac_threshold),
            self.element
                .unwrap_or_else(mt::current_threading_element_threshold),
        ))
    }

    fn apply(&self) -> Result<(), String> {
        use tract_linalg::multithread as mt;
        set_cpu_features(&self.cpu).map_err(|e| e.to_string())?;
        if let Some(v) = self.panel {
            mt::set_threading_panel_threshold(v);
        }
        if let Some(v) = self.mac {
            mt::set_threading_mac_threshold(v);
        }
        if let Some(v) = self.element {
            mt::set_threading_element_threshold(v);
        }
        Ok(())
    }
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let env_runs = std::env::var("WAYSIDE_BENCH_RUNS").ok();
        let mut o = Options {
            runs: match env_runs {
                Some(r) => number("WAYSIDE_BENCH_RUNS", &r)?,
                None => DEFAULT_RUNS,
            },
            threads: vec![1, 2],
            models: vec![],
            tract_only: false,
            profile: false,
            against: None,
            rounds: 8,
            batch: None,
            knobs: Knobs::default(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
            match a.as_str() {
                "--bench" => {}
                "--tract-only" => o.tract_only = true,
                "--profile" => o.profile = true,
                "--against" => o.against = Some(PathBuf::from(value(a)?)),
                "--rounds" => o.rounds = number(a, value(a)?)?,
                "--batch" => o.batch = Some(number(a, value(a)?)?),
                "--runs" => o.runs = number(a, value(a)?)?,
                "--threads" => {
                    o.threads = value(a)?
                        .split(',')
                        .map(|t| number("--threads", t))
                        .collect::<Result<_, _>>()?
                }
                "--panel-threshold"
                | "--mac-threshold"
                | "--element-threshold"
                | "--cpu-features" => {
                    o.knobs.parse(a, value(a)?)?;
                }
                flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
                id => o.models.push(id.to_string()),
            }
        }
        if o.runs == 0 || o.rounds == 0 || o.batch == Some(0) {
            return Err("--runs, --rounds and --batch must be at least 1".into());
        }
        if o.against.is_some() && o.batch.is_some() {
            return Err("--against compares files one input at a time: no --batch with it".into());
        }
        Ok(o)
    }
}

fn number(name: &str, s: &str) -> Result<usize, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{name}: {s:?} is not a number"))
}

// ------------------------------------------------------------------- child ---

/// `--child ID THREADS RUNS [knobs]`: time tract on one model, print one JSON line.
fn child(args: &[String]) -> Result<(), String> {
    let [id, threads, runs, rest @ ..] = args else {
        return Err("--child ID THREADS RUNS".into());
    };
    let threads = number("threads", threads)?;
    let runs = number("runs", runs)?;
    let mut knobs = Knobs::default();
    for pair in rest.chunks(2) {
        let (flag, value) = (&pair[0], pair.get(1).map_or("", String::as_str));
        if !knobs.parse(flag, value)? {
            return Err(format!("child: unknown option {flag}"));
        }
    }
    knobs.apply()?;
    runtime::set_threads(threads);

    let t0 = Instant::now();
    let (mut session, shape, data) = open(id, 1)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;

    let mut run = || -> Result<f64, String> {
        // The copy of the input is made outside the timed region, as
        // onnxruntime is handed a ready numpy array.
        let x = runtime::tensor(&shape, data.clone()).map_err(|e| e.to_string())?;
        let t = Instant::now();
        session.run(vec![x]).map_err(|e| e.to_string())?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    for _ in 0..WARMUP {
        run()?;
    }
    let mut times = (0..runs).map(|_| run()).collect::<Result<Vec<_>, _>>()?;
    times.sort_by(f64::total_cmp);
    let (median, p90) = percentiles(&times);
    println!(
        "{}",
        json!({
            "model": id, "threads": threads, "median_ms": round2(median), "p90_ms": round2(p90),
            "rss_mb": peak_rss_mb(), "runs": runs, "load_ms": round2(load_ms),
        })
    );
    Ok(())
}

/// Median and p90 of sorted samples, indexed exactly as `bench_ort.py` does.
fn percentiles(sorted: &[f64]) -> (f64, f64) {
    let n = sorted.len();
    (sorted[n / 2], sorted[(9 * n / 10).min(n - 1)])
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// This process's peak resident set (VmHWM), MB; the same quantity as the
/// `ru_maxrss` that `bench_ort.py` reports for its child.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    (kb / 1024.0 * 10.0).round() / 10.0
}

/// Model `id` loaded as the daemon loads it, one session of it, and its
/// cross-check input (shape and values).
/// A session on model `id` with its cross-check input, repeated `batch` times
/// along the first axis.
fn open(id: &str, batch: usize) -> Result<(Session, Vec<usize>, Vec<f32>), String> {
    let entry = manifest()?
        .model
        .into_iter()
        .find(|m| m.id == id)
        .ok_or(format!("no model {id} in the manifest"))?;
    let input = crosscheck_input(id)?;
    let mut shape = input.shape().to_vec();
    shape[0] *= batch;
    let data: Vec<f32> = input
        .iter()
        .copied()
        .cycle()
        .take(input.len() * batch)
        .collect();
    let model = Model::load(
        &models_dir().join(&entry.file),
        std::slice::from_ref(&shape),
    )
    .map_err(|e| e.to_string())?;
    let session = model.session().map_err(|e| e.to_string())?;
    Ok((session, shape, data))
}

// ----------------------------------------------------------------- profile ---

/// `--profile`: where tract's time goes, per model and thread count.
fn profile(o: &Options) -> Result<(), String> {
    o.knobs.apply()?;
    for id in model_ids(o)? {
        for &threads in &o.threads {
            runtime::set_threads(threads);
            let (mut session, shape, data) = open(&id, o.batch.unwrap_or(1))?;
            let input = || runtime::tensor(&shape, data.clone()).map_err(|e| e.to_string());
            for _ in 0..WARMUP {
                session.run(vec![input()?]).map_err(|e| e.to_string())?;
            }
            // Operator name → (time, nodes run), over all runs.
            let mut per_op = std::collections::BTreeMap::<String, (Duration, usize)>::new();
            for _ in 0..o.runs {
                session
                    .run_profiled(vec![input()?], |op, took| {
                        let entry = per_op.entry(op.to_string()).or_default();
                        entry.0 += took;
                        entry.1 += 1;
                    })
                    .map_err(|e| e.to_string())?;
            }
            let total: Duration = per_op.values().map(|(t, _)| *t).sum();
            let per_run = |t: Duration| t.as_secs_f64() * 1e3 / o.runs as f64;
            println!(
                "\n### `{id}`, {threads} thread(s), batch of {}: {:.1} ms a run in its nodes ({} runs after {WARMUP} warm-ups)\n",
                shape[0],
                per_run(total),
                o.runs
            );
            println!("| operator | nodes | ms a run | share |");
            println!("|---|---:|---:|---:|");
            let mut rows: Vec<_> = per_op.into_iter().collect();
            rows.sort_by_key(|(_, (took, _))| std::cmp::Reverse(*took));
            for (op, (took, nodes)) in rows {
                println!(
                    "| {op} | {} | {:.2} | {:.1} % |",
                    nodes / o.runs,
                    per_run(took),
                    100.0 * took.as_secs_f64() / total.as_secs_f64()
                );
            }
        }
    }
    Ok(())
}

// ----------------------------------------------------------------- against ---

/// `--against DIR`: tract on this cache's files and on DIR's, alternating.
fn against(o: &Options, dir: &Path) -> Result<(), String> {
    let here = models_dir();
    println!(
        "tract {}, {} rounds alternating, one child per model and cache, {} timed runs after \
         {WARMUP} warm-ups each; load average at start {}\n",
        locked_version("tract-onnx"),
        o.rounds,
        o.runs,
        first3(&std::fs::read_to_string("/proc/loadavg").unwrap_or_default())
    );
    println!(
        "| model | threads | `{}` ms, median (range) | `{}` ms, median (range) | second / first |",
        here.display(),
        dir.display()
    );
    println!("|---|---|---|---|---|");
    for id in model_ids(o)? {
        for &threads in &o.threads {
            eprintln!("[bench] {id}, {threads} thread(s): {} rounds", o.rounds);
            let mut medians = [vec![], vec![]];
            for round in 0..o.rounds {
                // Each cache goes first in every other round.
                for side in [round % 2, 1 - round % 2] {
                    let cache = if side == 0 { &here } else { dir };
                    let v =
                        json_line(tract_child(o, &id, threads)?.env("WAYSIDE_MODELS_DIR", cache))?;
                    medians[side].push(v["median_ms"].as_f64().unwrap_or(f64::NAN));
                }
            }
            let [a, b] = medians.map(|mut m| {
                m.sort_by(f64::total_cmp);
                (percentiles(&m).0, m[0], m[m.len() - 1])
            });
            println!(
                "| `{id}` | {threads} | {:.1} ({:.1}–{:.1}) | {:.1} ({:.1}–{:.1}) | {:.2}× |",
                a.0,
                a.1,
                a.2,
                b.0,
                b.1,
                b.2,
                b.0 / a.0
            );
        }
    }
    Ok(())
}

// ------------------------------------------------------------------- batch ---

/// `--batch N`: one inference over N inputs against N over one, per input.
fn batched(o: &Options, n: usize) -> Result<(), String> {
    o.knobs.apply()?;
    let python = (!o.tract_only).then(venv_python).transpose()?;
    println!(
        "tract {}, {n} inputs a round, {} rounds after {WARMUP} warm-ups, N runs of one and one \
         run of N alternating; ms per input, median; load average at start {}\n",
        locked_version("tract-onnx"),
        o.runs,
        first3(&std::fs::read_to_string("/proc/loadavg").unwrap_or_default())
    );
    println!(
        "| model | threads | tract, {n} × 1 | tract, 1 × {n} | ratio | onnxruntime, {n} × 1 | \
         onnxruntime, 1 × {n} | ratio |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let cells = |(one, whole): (f64, f64)| format!("{one:.1} | {whole:.1} | {:.2}×", whole / one);
    for id in model_ids(o)? {
        for &threads in &o.threads {
            eprintln!("[bench] {id}, {threads} thread(s): batches of {n}");
            runtime::set_threads(threads);
            // A graph that fixes its batch at 1 past the input may not load
            // at N: a row that says so, not the end of the report.
            let tract = tract_batched(&id, n, o.runs).map_or_else(
                |e| format!("— | {} | —", e.lines().next().unwrap_or_default()),
                cells,
            );
            let ort = match &python {
                Some(py) => {
                    let v = json_line(
                        bench_ort(py)
                            .args(["--runs", &o.runs.to_string(), "--batch", &n.to_string()])
                            .args(["--threads", &threads.to_string(), &id]),
                    )?;
                    let ms = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
                    cells((ms("single_ms"), ms("batch_ms")))
                }
                None => "— | — | —".into(),
            };
            println!("| `{id}` | {threads} | {tract} | {ort} |");
        }
    }
    Ok(())
}

/// tract's median ms per input: `n` runs of one input, and one run of `n`.
fn tract_batched(id: &str, n: usize, runs: usize) -> Result<(f64, f64), String> {
    let (mut single, single_shape, single_data) = open(id, 1)?;
    let (mut batch, batch_shape, batch_data) = open(id, n)?;
    let mut per_input = [vec![], vec![]];
    for round in 0..WARMUP + runs {
        // Inputs are copied outside the timed region.
        let singles = (0..n)
            .map(|_| runtime::tensor(&single_shape, single_data.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let whole = runtime::tensor(&batch_shape, batch_data.clone()).map_err(|e| e.to_string())?;
        let t = Instant::now();
        for x in singles {
            single.run(vec![x]).map_err(|e| e.to_string())?;
        }
        let took_singles = t.elapsed();
        let t = Instant::now();
        batch.run(vec![whole]).map_err(|e| e.to_string())?;
        let took_whole = t.elapsed();
        if round >= WARMUP {
            for (side, took) in [took_singles, took_whole].into_iter().enumerate() {
                per_input[side].push(took.as_secs_f64() * 1e3 / n as f64);
            }
        }
    }
    let [one, whole] = per_input.map(|mut v| {
        v.sort_by(f64::total_cmp);
        percentiles(&v).0
    });
    Ok((one, whole))
}

// ------------------------------------------------------------------ parent ---

/// One (model, threads) row of the table.
struct Row {
    model: String,
    threads: usize,
    tract: Value,
    ort: Option<Value>,
}

fn parent(o: &Options) -> Result<(), String> {
    let ids = model_ids(o)?;
    let python = (!o.tract_only).then(venv_python).transpose()?;
    let load_start = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let tract_base = json_line(Command::new(self_exe()?).arg("--child-baseline"))?;
    let ort_base = match &python {
        Some(py) => Some(json_line(
            Command::new(py)
                .arg("-c")
                .arg(PYTHON_BASELINE)
                .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models")),
        )?),
        None => None,
    };

    let mut rows = vec![];
    for id in &ids {
        crosscheck_input(id)?; // fail before spawning anything if it is missing
        for &threads in &o.threads {
            eprintln!("[bench] {id}, {threads} thread(s): tract");
            let tract = json_line(&mut tract_child(o, id, threads)?)?;
            let ort = match &python {
                Some(py) => {
                    eprintln!("[bench] {id}, {threads} thread(s): onnxruntime");
                    Some(json_line(
                        bench_ort(py)
                            .args([
                                "--runs",
                                &o.runs.to_string(),
                                "--warmup",
                                &WARMUP.to_string(),
                            ])
                            .args(["--threads", &threads.to_string(), id]),
                    )?)
                }
                None => None,
            };
            rows.push(Row {
                model: id.clone(),
                threads,
                tract,
                ort,
            });
        }
    }
    let load_end = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    print_report(
        o,
        &rows,
        &tract_base,
        ort_base.as_ref(),
        (&load_start, &load_end),
    );
    Ok(())
}

/// This binary as a `--child` timing tract on model `id`.
fn tract_child(o: &Options, id: &str, threads: usize) -> Result<Command, String> {
    let mut cmd = Command::new(self_exe()?);
    cmd.arg("--child")
        .args([id, &threads.to_string(), &o.runs.to_string()])
        .args(o.knobs.args());
    Ok(cmd)
}

/// The models asked for, or every model of the manifest.
fn model_ids(o: &Options) -> Result<Vec<String>, String> {
    let manifest = manifest()?;
    if o.models.is_empty() {
        return Ok(manifest.model.into_iter().map(|m| m.id).collect());
    }
    match o
        .models
        .iter()
        .find(|id| !manifest.model.iter().any(|m| &m.id == *id))
    {
        Some(id) => Err(format!("unknown model id {id}")),
        None => Ok(o.models.clone()),
    }
}

/// The bench_ort child's footprint without a model: the interpreter with
/// numpy, cv2 (via crosscheck) and onnxruntime imported.
const PYTHON_BASELINE: &str = "\
import json, resource, sys
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[1])
import crosscheck, numpy, onnxruntime
print(json.dumps({'rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  'version': onnxruntime.__version__}))
";

fn print_report(
    o: &Options,
    rows: &[Row],
    tract_base: &Value,
    ort_base: Option<&Value>,
    (load_start, load_end): (&str, &str),
) {
    let f = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let base_t = f(tract_base, "rss_mb");
    let base_o = ort_base.map_or(f64::NAN, |b| f(b, "rss_mb"));

    println!("### Machine\n");
    println!(
        "- CPU: {} ({} logical cores; {})",
        cpu_model(),
        cores(),
        cpu_flags()
    );
    println!(
        "- load average (1/5/15 min) at start: {}; at end: {}",
        first3(load_start),
        first3(load_end)
    );
    println!(
        "- tract {} (tract-linalg `multithread-mm`; {}), built with {}",
        locked_version("tract-onnx"),
        o.knobs.describe().unwrap_or_else(|e| e),
        build_flags()
    );
    if let Some(b) = ort_base {
        println!(
            "- onnxruntime {} (Python, CPUExecutionProvider, intra-op threads = T, sequential), \
             on the daemon's file and on the model as exported (the cache's `exported/`, \
             without the rewrites for tract), whichever is faster: \"exported\" marks where that \
             was the exported one",
            b.get("version").and_then(Value::as_str).unwrap_or("?")
        );
    }
    println!(
        "- {} timed runs after {WARMUP} warm-up runs, one process per row and runtime; \
         input = `crosscheck/<id>/input.npy`",
        o.runs
    );
    println!(
        "- RSS = peak resident set of that process, MB; in brackets, minus the same process \
         without a model (tract: this bench binary, {base_t:.1} MB; onnxruntime: Python with \
         numpy, cv2 and onnxruntime imported, {base_o:.1} MB)\n"
    );

    println!(
        "| model | threads | tract median / p90 ms | ORT median / p90 ms | tract / ORT | tract RSS MB | ORT RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut log_ratios: Vec<(usize, f64)> = vec![];
    for r in rows {
        let (tm, tp) = (f(&r.tract, "median_ms"), f(&r.tract, "p90_ms"));
        let trss = f(&r.tract, "rss_mb");
        let (ort, ratio, orss) = match &r.ort {
            Some(v) => {
                let (om, op) = (f(v, "median_ms"), f(v, "p90_ms"));
                let orss = f(v, "rss_mb");
                log_ratios.push((r.threads, (tm / om).ln()));
                let exported = v.get("graph").and_then(Value::as_str) == Some("exported");
                (
                    format!(
                        "{om:.1} / {op:.1}{}",
                        if exported { " (exported)" } else { "" }
                    ),
                    format!("{:.2}x", tm / om),
                    format!("{orss:.0} ({:.0})", orss - base_o),
                )
            }
            None => ("—".into(), "—".into(), "—".into()),
        };
        println!(
            "| `{}` | {} | {tm:.1} / {tp:.1} | {ort} | {ratio} | {trss:.0} ({:.0}) | {orss} |",
            r.model,
            r.threads,
            trss - base_t
        );
    }
    for &t in &o.threads {
        let l: Vec<f64> = log_ratios
            .iter()
            .filter(|(th, _)| *th == t)
            .map(|(_, l)| *l)
            .collect();
        if !l.is_empty() {
            println!(
                "\nGeometric mean of tract / ORT at {t} thread(s): **{:.2}x** over {} models.",
                (l.iter().sum::<f64>() / l.len() as f64).exp(),
                l.len()
            );
        }
    }
}

fn first3(loadavg: &str) -> String {
    loadavg
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The SIMD features tract's kernels pick from at run time.
fn cpu_flags() -> String {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> = flags
        .lines()
        .find(|l| l.starts_with("flags") || l.starts_with("Features"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let have: Vec<&str> = [
        "avx2",
        "fma",
        "avx512f",
        "avx512_vnni",
        "avx_vnni",
        "asimd",
        "asimddp",
    ]
    .into_iter()
    .filter(|f| flags.contains(f))
    .collect();
    if have.is_empty() {
        "no AVX2/NEON flags found".into()
    } else {
        have.join(", ")
    }
}

/// Whether this binary was compiled for the build machine's CPU.
fn build_flags() -> String {
    let native = cfg!(target_feature = "avx2") || cfg!(target_feature = "fma");
    format!(
        "the release profile{}",
        if native {
            " and AVX2/FMA enabled at compile time (e.g. -C target-cpu=native)"
        } else {
            " for the baseline target CPU"
        }
    )
}

/// The version of `package` pinned in the workspace's Cargo.lock.
fn locked_version(package: &str) -> String {
    let lock =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"))
            .unwrap_or_default();
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == format!("name = \"{package}\"")
            && let Some(v) = lines.next().and_then(|v| v.strip_prefix("version = "))
        {
            return v.trim_matches('"').to_string();
        }
    }
    "?".into()
}

// ------------------------------------------------------------------ shared ---

#[derive(Deserialize)]
struct Manifest {
    model: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    file: String,
}

fn manifest() -> Result<Manifest, String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/manifest.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The model cache filled by `scripts/setup-models.sh` (as the tests find it).
fn models_dir() -> PathBuf {
    std::env::var_os("WAYSIDE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/cache"))
}

/// The exact tensor `models/crosscheck.py` gave onnxruntime for model `id`.
fn crosscheck_input(id: &str) -> Result<ArrayD<f32>, String> {
    let path = models_dir().join("crosscheck").join(id).join("input.npy");
    let file = File::open(&path)
        .map_err(|e| format!("{}: {e} (run scripts/setup-models.sh)", path.display()))?;
    ArrayD::<f32>::read_npy(file).map_err(|e| format!("{}: {e}", path.display()))
}

/// The Python that `scripts/setup-models.sh` set up with onnxruntime.
fn venv_python() -> Result<PathBuf, String> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .ok_or("neither XDG_CACHE_HOME nor HOME is set")?;
    let python = cache.join("wayside/venv/bin/python");
    if python.is_file() {
        Ok(python)
    } else {
        Err(format!(
            "{} is missing: run scripts/setup-models.sh (or pass --tract-only)",
            python.display()
        ))
    }
}

/// `models/bench_ort.py` run by `python`, arguments to follow.
fn bench_ort(python: &Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/bench_ort.py"));
    cmd
}

fn self_exe() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("locating the bench binary: {e}"))
}

/// Run `cmd` to completion and parse the last line of its stdout as JSON.
fn json_line(cmd: &mut Command) -> Result<Value, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("starting {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{:?} {:?} failed ({}):\n{}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(|e| format!("{:?} printed {last:?}: {e}", cmd.get_program()))
}
