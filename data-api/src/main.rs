//! `wayside-data serve --config FILE`: loads the config (file, then flags and
//! `WAYSIDE_DATA_*` environment), validates it, and serves until SIGINT/SIGTERM.
//! Prints `listening on http://ADDR` on stdout once bound (tests read it).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use wayside_data::config::{BackendKind, Config};

#[derive(Parser)]
#[command(name = "wayside-data", version, about = "Wayside central data API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file; flags and environment override it.
    #[arg(long, env = "WAYSIDE_DATA_CONFIG")]
    config: Option<PathBuf>,
    /// Bind address, e.g. 127.0.0.1:8090 (port 0 picks a free one).
    #[arg(long, env = "WAYSIDE_DATA_LISTEN")]
    listen: Option<String>,
    #[arg(long, env = "WAYSIDE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, env = "WAYSIDE_DATA_BACKEND", value_enum)]
    backend: Option<BackendKind>,
    #[arg(long, env = "WAYSIDE_ES_URL")]
    es_url: Option<String>,
    #[arg(long, env = "WAYSIDE_DATA_ES_INDEX_PREFIX")]
    es_index_prefix: Option<String>,
    /// Base URL for media links in results.
    #[arg(long, env = "WAYSIDE_DATA_PUBLIC_URL")]
    public_url: Option<String>,
    #[arg(long, env = "WAYSIDE_DATA_JSON_BODY_LIMIT")]
    json_body_limit: Option<usize>,
    #[arg(long, env = "WAYSIDE_DATA_MEDIA_BODY_LIMIT")]
    media_body_limit: Option<usize>,
    /// Accepted bearer token (repeatable; comma-separated in the environment).
    #[arg(
        long = "auth-token",
        env = "WAYSIDE_DATA_AUTH_TOKENS",
        value_delimiter = ','
    )]
    auth_tokens: Vec<String>,
    /// HTTPS certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "WAYSIDE_DATA_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    #[arg(long, env = "WAYSIDE_DATA_TLS_KEY")]
    tls_key: Option<PathBuf>,
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut cfg = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Config::from_toml(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => Config::default(),
        };
        if let Some(v) = self.listen {
            cfg.listen = v;
        }
        if let Some(v) = self.data_dir {
            cfg.data_dir = v;
        }
        if let Some(v) = self.backend {
            cfg.backend = v;
        }
        if let Some(v) = self.es_url {
            cfg.elasticsearch.url = v;
        }
        if let Some(v) = self.es_index_prefix {
            cfg.elasticsearch.index_prefix = v;
        }
        if let Some(v) = self.public_url {
            cfg.public_url = Some(v);
        }
        if let Some(v) = self.json_body_limit {
            cfg.limits.json_body_bytes = v;
        }
        if let Some(v) = self.media_body_limit {
            cfg.limits.media_body_bytes = v;
        }
        if !self.auth_tokens.is_empty() {
            cfg.auth_tokens = self.auth_tokens;
        }
        if self.tls_cert.is_some() {
            cfg.tls_cert = self.tls_cert;
        }
        if self.tls_key.is_some() {
            cfg.tls_key = self.tls_key;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wayside_service::logging::init("wayside-data");
    let Command::Serve(args) = Cli::parse().command;
    let cfg = args.into_config()?;
    let addr = cfg.listen_addr()?;
    let tls = wayside_data::tls::server_config(&cfg)?;
    let router = wayside_data::build(cfg)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(%local, "wayside-data listening");
    {
        let mut out = std::io::stdout().lock();
        let scheme = if tls.is_some() { "https" } else { "http" };
        writeln!(out, "listening on {scheme}://{local}")?;
        out.flush()?;
    }
    wayside_service::ready();
    wayside_data::serve(listener, router, tls, wayside_service::shutdown_signal()).await?;
    Ok(())
}
