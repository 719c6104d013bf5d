//! Video jobs: a bounded number run at once, each on its own blocking
//! thread, and each outlives the request that started it, so a client that
//! disconnects loses nothing: `GET /jobs/{id}` has the result.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::error::AppError;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum JobStatus {
    Running { progress: f32 },
    Done { result: serde_json::Value },
    Failed { code: u16, error: String },
}

/// Finished jobs kept for `GET /jobs/{id}`; older ones are forgotten so a
/// box that runs for months does not grow without bound.
const KEEP_FINISHED: usize = 256;

pub struct Jobs {
    permits: Arc<Semaphore>,
    max: usize,
    /// Insertion order, so the oldest finished jobs go first.
    jobs: Mutex<Vec<(String, watch::Receiver<JobStatus>)>>,
}

impl Jobs {
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            jobs: Mutex::new(Vec::new()),
        }
    }

    /// A slot for one more job, or 503 with Retry-After when all are taken.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, AppError> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            AppError::busy(
                format!("all {} video job slots are busy; retry later", self.max),
                5,
            )
        })
    }

    /// Jobs running right now.
    pub fn running(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    pub fn register(&self) -> (String, watch::Sender<JobStatus>) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = watch::channel(JobStatus::Running { progress: 0.0 });
        let mut jobs = self.jobs.lock().expect("jobs lock");
        let finished =
            |rx: &watch::Receiver<JobStatus>| !matches!(*rx.borrow(), JobStatus::Running { .. });
        let mut excess = jobs
            .iter()
            .filter(|(_, rx)| finished(rx))
            .count()
            .saturating_sub(KEEP_FINISHED);
        jobs.retain(|(_, rx)| {
            let forget = excess > 0 && finished(rx);
            excess -= usize::from(forget);
            !forget
        });
        jobs.push((id.clone(), rx));
        (id, tx)
    }

    pub fn get(&self, id: &str) -> Option<watch::Receiver<JobStatus>> {
        let jobs = self.jobs.lock().expect("jobs lock");
        jobs.iter().find(|(j, _)| j == id).map(|(_, rx)| rx.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_jobs_are_forgotten_oldest_first_and_running_ones_never() {
        let jobs = Jobs::new(1);
        let (running, _keep) = jobs.register();
        let mut finished = Vec::new();
        for _ in 0..KEEP_FINISHED + 10 {
            let (id, tx) = jobs.register();
            tx.send_replace(JobStatus::Failed {
                code: 500,
                error: "x".into(),
            });
            finished.push(id);
        }
        jobs.register(); // pruning happens on register
        assert!(jobs.get(&running).is_some());
        assert!(jobs.get(&finished[0]).is_none());
        assert!(jobs.get(finished.last().unwrap()).is_some());
        assert!(jobs.jobs.lock().unwrap().len() <= KEEP_FINISHED + 2);
    }
}
