//! The outbox's part of the configuration tree (`[outbox]` in the daemon's
//! TOML): serde defaults, validated once at start, errors name the field.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// Holds `outbox.db` (SQLite, WAL). Created when missing.
    pub dir: PathBuf,
    /// Records kept at most (pending and dead letters); past it the oldest
    /// go first (dead letters before pending records).
    pub max_records: u64,
    /// Bytes kept at most (JSON bodies + images), same drop policy.
    pub max_bytes: u64,
    /// Bound on each HTTP request to the data API, connect to last byte.
    pub request_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// First retry delay; doubles per failed attempt of the same record.
    pub retry_min_ms: u64,
    /// Cap on the doubling. Jitter adds up to 100% on top of each delay, so
    /// boxes that lost the data API together do not retry together.
    pub retry_max_ms: u64,
    /// Bearer token for the data API, when it requires one.
    pub auth_token: Option<String>,
    /// PEM file of the CA(s) that sign an `https://` data API's
    /// certificate, when it is not in the public roots (a private CA).
    pub ca_file: Option<PathBuf>,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("var/outbox"),
            max_records: 100_000,
            max_bytes: 1 << 30,
            request_timeout_ms: 10_000,
            connect_timeout_ms: 3_000,
            retry_min_ms: 500,
            retry_max_ms: 60_000,
            auth_token: None,
            ca_file: None,
        }
    }
}

/// A config value out of range; `Display` starts with the field's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("outbox.{field}: {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: String,
}

fn fail(field: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError {
        field,
        reason: reason.into(),
    })
}

impl OutboxConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.dir.as_os_str().is_empty() {
            return fail("dir", "must not be empty");
        }
        if self.max_records < 1 {
            return fail("max_records", "must be at least 1");
        }
        // Below this the bound would drop most records before they are sent.
        if self.max_bytes < 1 << 20 {
            return fail(
                "max_bytes",
                format!("must be at least 1 MiB, got {}", self.max_bytes),
            );
        }
        if !(100..=600_000).contains(&self.request_timeout_ms) {
            return fail(
                "request_timeout_ms",
                format!("must be 100..=600000, got {}", self.request_timeout_ms),
            );
        }
        if !(10..=self.request_timeout_ms).contains(&self.connect_timeout_ms) {
            return fail(
                "connect_timeout_ms",
                format!(
                    "must be 10..=request_timeout_ms ({}), got {}",
                    self.request_timeout_ms, self.connect_timeout_ms
                ),
            );
        }
        if self.retry_min_ms < 1 {
            return fail("retry_min_ms", "must be at least 1");
        }
        if self.retry_max_ms < self.retry_min_ms || self.retry_max_ms > 3_600_000 {
            return fail(
                "retry_max_ms",
                format!(
                    "must be retry_min_ms ({})..=3600000, got {}",
                    self.retry_min_ms, self.retry_max_ms
                ),
            );
        }
        if let Some(t) = &self.auth_token
            && (t.is_empty() || t.chars().any(|c| c.is_control() || c == ' '))
        {
            return fail(
                "auth_token",
                "must be non-empty, without spaces or control characters",
            );
        }
        Ok(())
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<OutboxConfig, String> {
        let c: OutboxConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn defaults_are_valid() {
        let c = parse("").expect("defaults");
        assert_eq!(c.max_records, 100_000);
    }

    #[test]
    fn errors_name_the_field() {
        for (text, field) in [
            ("max_records = 0", "outbox.max_records"),
            ("max_bytes = 10", "outbox.max_bytes"),
            ("request_timeout_ms = 5", "outbox.request_timeout_ms"),
            ("connect_timeout_ms = 20000", "outbox.connect_timeout_ms"),
            ("retry_min_ms = 0", "outbox.retry_min_ms"),
            (
                "retry_min_ms = 1000\nretry_max_ms = 10",
                "outbox.retry_max_ms",
            ),
            ("auth_token = \"a b\"", "outbox.auth_token"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with(field), "{text:?}: {e}");
        }
        let e = parse("max_record = 3").unwrap_err();
        assert!(e.contains("unknown field `max_record`"), "{e}");
    }
}
