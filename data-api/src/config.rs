//! Service configuration: one typed tree with serde defaults, read from a TOML
//! file, overridden by CLI flags / environment in `main`, and validated once at
//! start with errors that name the offending field.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Length of a face embedding (the vision crate's ArcFace-style output).
pub const FACE_DIMS: usize = 512;

/// Default `search.rescore`: the smallest count reaching recall@10 ≥ 0.98
/// at 1M vectors in the bench (docs/DATA_API.md, Benchmark).
const RESCORE_DEFAULT: usize = 8_000;
/// Past this the rescore alone reads 400 MB of vectors per search: more
/// likely a typo than a tuning.
const RESCORE_MAX: usize = 200_000;

/// A configuration value that cannot be used, naming the field.
#[derive(Debug, thiserror::Error)]
#[error("config field `{field}`: {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: String,
}

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        reason: reason.into(),
    }
}

/// Which store answers searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// SQLite on disk + in-memory vector index; zero set-up, one site.
    Embedded,
    /// An Elasticsearch 8.x cluster; several service instances may share it.
    Elasticsearch,
}

/// How the Elasticsearch backend asks for face similarity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaceQueryMode {
    /// Approximate kNN on the indexed `dense_vector` (`num_candidates`).
    Knn,
    /// The seed's exact `script_score` query, `cosineSimilarity(...) + 1.0`.
    ScriptScore,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: String,
    /// Directory holding the embedded database and the media blobs.
    pub data_dir: PathBuf,
    /// Base URL put in front of `/media/...` links; when unset, derived from
    /// the request's `Host` header.
    pub public_url: Option<String>,
    pub backend: BackendKind,
    /// Bearer tokens accepted on every endpoint but `/healthz`; empty = no auth.
    pub auth_tokens: Vec<String>,
    /// HTTPS: the certificate chain (PEM) and its private key (PEM). Both
    /// or neither; without them the API speaks plain HTTP.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub limits: Limits,
    pub search: SearchConfig,
    pub elasticsearch: ElasticConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest JSON body accepted (search and ingest), bytes.
    pub json_body_bytes: usize,
    /// Largest media upload accepted, bytes.
    pub media_body_bytes: usize,
    /// Largest number of records in one batch ingest request.
    pub max_batch: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Results returned when the request does not give `k`.
    pub default_k: usize,
    /// Upper bound on `k`; larger requests are capped.
    pub max_k: usize,
    /// Below this many face vectors the embedded store searches exactly
    /// (brute force); at or above it, by binary codes + exact rescore.
    pub exact_below: usize,
    /// Candidates picked by the binary-code scan and re-ranked exactly; more
    /// means higher recall and more latency (see DATA_API.md, Benchmark).
    pub rescore: usize,
    /// Largest edit distance (after OCR-confusion normalisation) for a plate
    /// to count as a match.
    pub plate_max_distance: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticConfig {
    pub url: String,
    /// Indices are `<prefix>-faces` and `<prefix>-plates`.
    pub index_prefix: String,
    /// Bound on every Elasticsearch request; past it the API answers 504.
    pub timeout_ms: u64,
    pub face_query: FaceQueryMode,
    /// kNN `num_candidates` (raised to `k` if smaller).
    pub num_candidates: usize,
    /// Ingest waits until the documents are searchable (`refresh=wait_for`),
    /// so both backends answer a search right after an ingest the same way.
    pub refresh_on_ingest: bool,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8090".into(),
            data_dir: PathBuf::from("var/wayside-data"),
            public_url: None,
            backend: BackendKind::Embedded,
            auth_tokens: Vec::new(),
            tls_cert: None,
            tls_key: None,
            limits: Limits::default(),
            search: SearchConfig::default(),
            elasticsearch: ElasticConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            json_body_bytes: 4 * 1024 * 1024,
            media_body_bytes: 256 * 1024 * 1024,
            max_batch: 1000,
        }
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            default_k: 20,
            max_k: 200,
            exact_below: 20_000,
            rescore: RESCORE_DEFAULT,
            plate_max_distance: 2,
        }
    }
}

impl Default for ElasticConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:9200".into(),
            index_prefix: "wayside".into(),
            timeout_ms: 5_000,
            face_query: FaceQueryMode::Knn,
            num_candidates: 200,
            refresh_on_ingest: true,
            username: None,
            password: None,
        }
    }
}

impl Config {
    /// Parses a TOML document; unknown keys are errors (typos must not be
    /// silently ignored on a box nobody watches).
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The bind address, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|e| {
            invalid(
                "listen",
                format!("{e} (want host:port, e.g. 127.0.0.1:8090)"),
            )
        })
    }

    /// Checks every field that could make the service misbehave later.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid("public_url", "must start with http:// or https://"));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return Err(invalid("tls_key", "tls_cert needs tls_key")),
            (None, Some(_)) => return Err(invalid("tls_cert", "tls_key needs tls_cert")),
            _ => {}
        }
        for (field, path) in [("tls_cert", &self.tls_cert), ("tls_key", &self.tls_key)] {
            if let Some(p) = path
                && !p.is_file()
            {
                return Err(invalid(
                    field,
                    format!("{} is not a readable file", p.display()),
                ));
            }
        }
        if wayside_service::auth::too_short(&self.auth_tokens).is_some() {
            return Err(invalid(
                "auth_tokens",
                "each token needs at least 8 characters",
            ));
        }
        let l = &self.limits;
        if l.json_body_bytes < 16 * 1024 {
            return Err(invalid(
                "limits.json_body_bytes",
                "must be at least 16384 (one 512-float vector is ~10 KiB of JSON)",
            ));
        }
        if l.media_body_bytes < 1024 {
            return Err(invalid("limits.media_body_bytes", "must be at least 1024"));
        }
        if l.max_batch == 0 {
            return Err(invalid("limits.max_batch", "must be at least 1"));
        }
        let s = &self.search;
        if s.default_k == 0 {
            return Err(invalid("search.default_k", "must be at least 1"));
        }
        if s.max_k < s.default_k {
            return Err(invalid("search.max_k", "must be >= search.default_k"));
        }
        if s.rescore < s.max_k || s.rescore > RESCORE_MAX {
            return Err(invalid(
                "search.rescore",
                format!("must be in search.max_k ({})..={RESCORE_MAX}", s.max_k),
            ));
        }
        if s.plate_max_distance > 4 {
            return Err(invalid("search.plate_max_distance", "must be at most 4"));
        }
        if self.backend == BackendKind::Elasticsearch {
            let e = &self.elasticsearch;
            if !(e.url.starts_with("http://") || e.url.starts_with("https://")) {
                return Err(invalid(
                    "elasticsearch.url",
                    "must start with http:// or https://",
                ));
            }
            if e.index_prefix.is_empty()
                || !e
                    .index_prefix
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                return Err(invalid(
                    "elasticsearch.index_prefix",
                    "must be non-empty lowercase letters, digits, '-' or '_'",
                ));
            }
            if !(100..=120_000).contains(&e.timeout_ms) {
                return Err(invalid(
                    "elasticsearch.timeout_ms",
                    "must be in 100..=120000",
                ));
            }
            if e.num_candidates == 0 || e.num_candidates > 10_000 {
                return Err(invalid(
                    "elasticsearch.num_candidates",
                    "must be in 1..=10000",
                ));
            }
            if e.username.is_some() != e.password.is_some() {
                return Err(invalid(
                    "elasticsearch.password",
                    "username and password must be given together",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().expect("defaults validate");
    }

    #[test]
    fn errors_name_the_field() {
        let cfg = Config::from_toml("listen = \"nope\"").expect("parses");
        let err = cfg.validate().expect_err("bad listen");
        assert_eq!(err.field, "listen");

        let cfg = Config::from_toml("[search]\nmax_k = 1\ndefault_k = 5").expect("parses");
        assert_eq!(cfg.validate().expect_err("max_k").field, "search.max_k");

        let cfg = Config::from_toml("[search]\nrescore = 100").expect("parses");
        assert_eq!(cfg.validate().expect_err("rescore").field, "search.rescore");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(Config::from_toml("listne = \"x\"").is_err());
    }
}
