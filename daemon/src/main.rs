//! `wayside`, the edge daemon. This file only parses the command line and
//! hands over to the command modules under `cli/`.

mod backoff;
mod camera;
mod cli;
mod config;
mod data_api;
mod decode;
mod encode;
mod forward;
mod http;
mod live;
mod media;
mod metrics;
mod models;
mod mqtt;
mod pipeline;
mod vision;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Model sessions keep their tensors in planned arenas instead of growing
/// each inference thread's malloc arena to the high-water mark of a run's
/// churn (wayside-arena; docs/BENCHMARKS.md, "Where the memory goes").
#[global_allocator]
static ALLOCATOR: wayside_arena::Replaying = wayside_arena::Replaying;

#[derive(Parser)]
#[command(name = "wayside", version, about = "Roadside video analytics")]
struct Args {
    /// Configuration file (TOML). Defaults apply when omitted.
    #[arg(long, short, global = true, env = "WAYSIDE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (API.md) until SIGTERM.
    Serve,
    /// Count pedestrians and vehicles in a video file, as POST /video does.
    Process(cli::process::ProcessArgs),
    /// Detect pedestrians and vehicles in one image and print JSON.
    Detect(cli::detect::DetectArgs),
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Model cache commands.
    Models {
        #[command(subcommand)]
        command: cli::models::ModelsCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check the configuration file and print it with every default filled
    /// in; an error names the field and the problem.
    Check,
}

fn main() -> Result<()> {
    wayside_arena::map_large_allocations();
    wayside_service::logging::init("wayside");
    let args = Args::parse();
    let config = config::Config::load(args.config.as_deref())?;
    match args.command {
        Command::Serve => cli::serve::run(config),
        Command::Process(a) => cli::process::run(&config, a),
        Command::Detect(a) => cli::detect::run(&config, a),
        // Loading validated it already: an error has named the field.
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            print!("{}", toml::to_string(&config)?);
            eprintln!("config ok");
            Ok(())
        }
        Command::Models { command } => cli::models::run(&config, command),
    }
}
