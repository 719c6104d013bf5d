//! Video jobs: a bounded number run at once, each on its own blocking
//! thread, and each outlives the request that started it, so a client that
//! disconnects loses nothing: `GET /jobs/{id}` has the result.

use std::collections::HashMap;
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

pub struct Jobs {
    permits: Arc<Semaphore>,
    max: usize,
    jobs: Mutex<HashMap<String, watch::Receiver<JobStatus>>>,
}

impl Jobs {
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            jobs: Mutex::new(HashMap::new()),
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
        self.jobs.lock().expect("jobs lock").insert(id.clone(), rx);
        (id, tx)
    }

    pub fn get(&self, id: &str) -> Option<watch::Receiver<JobStatus>> {
        self.jobs.lock().expect("jobs lock").get(id).cloned()
    }
}
