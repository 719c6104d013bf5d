//! The daemon's client for the data API's searches: `/face-detect` and
//! `/licence-plate` ask `wayside-data` and stream what it answers. Every
//! request is bounded by `data_api.timeout_ms`; failures are typed so the
//! HTTP edge can answer 502 (unreachable or broken) or 504 (too slow).

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use thiserror::Error;

use crate::config::DataApiConfig;

#[derive(Debug, Error)]
pub enum SearchError {
    #[error("the data API did not answer within {0} ms")]
    Timeout(u64),
    #[error("the data API is unreachable: {0}")]
    Unreachable(String),
    /// The data API answered with an error; `message` is its `error` field.
    #[error("the data API answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("the data API's answer is not the expected JSON: {0}")]
    BadAnswer(String),
}

#[derive(Clone)]
pub struct DataApi {
    http: reqwest::Client,
    base: String,
    timeout_ms: u64,
}

impl DataApi {
    pub fn new(config: &DataApiConfig) -> anyhow::Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &config.auth_token {
            let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| anyhow::anyhow!("data_api.auth_token: not a valid header value"))?;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .default_headers(headers);
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("data_api.ca_file: reading {}", path.display()))?;
            for ca in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("data_api.ca_file: {}", path.display()))?
            {
                http = http.add_root_certificate(ca);
            }
        }
        let http = http.build()?;
        Ok(Self {
            http,
            base: config.url.trim_end_matches('/').to_string(),
            timeout_ms: config.timeout_ms,
        })
    }

    /// POSTs `body` to `path` (`/search-face` or `/search-licence-plate`)
    /// and returns its `results`, best first.
    pub async fn search(&self, path: &str, body: &Value) -> Result<Vec<Value>, SearchError> {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = res.status();
        let text = res.text().await.map_err(|e| self.transport(e))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|_| SearchError::BadAnswer(format!("status {status}, body {:.200}", text)))?;
        if !status.is_success() {
            return Err(SearchError::Refused {
                status: status.as_u16(),
                message: json["error"].as_str().unwrap_or("no message").to_string(),
            });
        }
        match json.get("results").and_then(Value::as_array) {
            Some(results) => Ok(results.clone()),
            None => Err(SearchError::BadAnswer("no `results` array".into())),
        }
    }

    /// A picture the data API holds, `GET /media/{name}` with the box's
    /// token: the answer as it came (the caller passes on its status).
    pub async fn media(&self, name: &str) -> Result<reqwest::Response, SearchError> {
        self.http
            .get(format!("{}/media/{name}", self.base))
            .send()
            .await
            .map_err(|e| self.transport(e))
    }

    fn transport(&self, e: reqwest::Error) -> SearchError {
        if e.is_timeout() {
            SearchError::Timeout(self.timeout_ms)
        } else {
            // The causes say why (refused, a certificate from an unknown
            // CA, …); reqwest's own text only says that sending failed.
            let mut causes = Vec::new();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                causes.push(c.to_string());
                cause = c.source();
            }
            let why = std::iter::once(e.without_url().to_string())
                .chain(causes)
                .collect::<Vec<_>>()
                .join(": ");
            SearchError::Unreachable(why)
        }
    }
}
