//! `wayside models verify`: every model file matches its pinned hash and loads.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;
use wayside_vision::runtime::Model;

use crate::config::Config;
use crate::models::Manifest;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Check every model's sha256 and load it in tract.
    Verify,
}

pub fn run(config: &Config, command: ModelsCommand) -> Result<()> {
    match command {
        ModelsCommand::Verify => verify(config),
    }
}

fn verify(config: &Config) -> Result<()> {
    let manifest = Manifest::load(&config.models.manifest)?;
    crate::vision::configure_tract(config)?;
    for entry in &manifest.models {
        entry.verify(&config.models.dir)?;
        let started = Instant::now();
        Model::load(
            &entry.path(&config.models.dir),
            &[entry.input.input_shape()],
        )
        .with_context(|| format!("model {} does not load in tract", entry.id))?;
        println!(
            "ok  {:<22} {:<16} sha256 {}…  loaded in {:>5} ms  licence: {}",
            entry.id,
            entry.task,
            &entry.sha256[..12.min(entry.sha256.len())],
            started.elapsed().as_millis(),
            entry.licence
        );
    }
    println!("{} models verified", manifest.models.len());
    Ok(())
}
