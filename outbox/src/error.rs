//! The one error type of the outbox's public API.

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// `shutdown()` was called, or the storage thread has stopped.
    #[error("outbox is shut down")]
    Closed,
    #[error("invalid record {0}")]
    InvalidRecord(String),
    /// Larger than `outbox.max_bytes` on its own: it could never be kept.
    #[error("record {id} is {size} bytes, more than outbox.max_bytes ({max})")]
    TooLarge { id: String, size: u64, max: u64 },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("data API URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("outbox directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    /// SQLite failed (disk full, I/O error, locked by another process).
    #[error("outbox storage: {0}")]
    Storage(String),
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl From<rusqlite::Error> for OutboxError {
    fn from(e: rusqlite::Error) -> Self {
        OutboxError::Storage(e.to_string())
    }
}
