//! `examroom image …`: the image store in the data directory (`<data-dir>/sandbox/images`, where the server's runtime
//! looks for `base = "image:REF"`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use examroom_images::{ImageStore, ImageWriter, Imported, Limits};

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Import an OCI image layout directory, an OCI archive, or a `docker save` / `podman save` archive.
    Import {
        #[command(flatten)]
        at: StoreArgs,
        /// The layout directory or the archive.
        source: PathBuf,
        /// The name to give it (NAME:TAG); else the name the archive gives, if any.
        #[arg(long)]
        name: Option<String>,
        /// The most bytes of file content the image may unpack to.
        #[arg(long, default_value_t = Limits::default().max_bytes)]
        max_bytes: u64,
        /// The most entries (files, directories, links) the image may have.
        #[arg(long, default_value_t = Limits::default().max_inodes)]
        max_inodes: u64,
    },
    /// Pull an image from an OCI registry (HTTPS; `--insecure-http` for a registry on the loopback) and import it.
    Pull {
        #[command(flatten)]
        at: StoreArgs,
        /// REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:DIGEST.
        reference: String,
        /// The name to give it (NAME:TAG); else REPOSITORY:TAG.
        #[arg(long)]
        name: Option<String>,
        /// A JSON file with the registry's credentials: {"username": "…", "password": "…"}.
        #[arg(long)]
        credentials: Option<PathBuf>,
        /// Plain HTTP instead of HTTPS.
        #[arg(long)]
        insecure_http: bool,
        /// The most the whole pull may take, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// The most bytes the image may take (its blobs, and unpacked).
        #[arg(long, default_value_t = Limits::default().max_bytes)]
        max_bytes: u64,
    },
    /// List the images in the store.
    List {
        #[command(flatten)]
        at: StoreArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a name, or an image by digest (with its names); an image no name points at is deleted, unless an
    /// environment uses it.
    Rm {
        #[command(flatten)]
        at: StoreArgs,
        /// NAME:TAG or sha256:DIGEST.
        reference: String,
    },
    /// Write an OCI archive from a root file system directory (split into layers), e.g. one made by debootstrap.
    Pack {
        /// The directory.
        dir: PathBuf,
        /// The archive to write.
        #[arg(long, short)]
        output: PathBuf,
        /// The name recorded in the archive (NAME:TAG).
        #[arg(long)]
        name: Option<String>,
        /// How many layers to split the tree into.
        #[arg(long, default_value_t = 3)]
        layers: usize,
        /// KEY=VALUE for the image's Env (repeatable).
        #[arg(long)]
        env: Vec<String>,
        /// The image's WorkingDir.
        #[arg(long)]
        workdir: Option<String>,
    },
}

#[derive(clap::Args)]
pub struct StoreArgs {
    /// The server's data directory (the store is `<data-dir>/sandbox/images`).
    #[arg(long, env = "EXAMROOM_DATA_DIR", default_value = "/var/lib/examroom")]
    data_dir: PathBuf,
    /// The sandbox state directory, if not `<data-dir>/sandbox` (the store is `<state-dir>/images`).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

impl StoreArgs {
    fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| self.data_dir.join("sandbox"))
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The environments (of any label) whose base is the tree `rootfs`: `<state>/<label>/<id>/config.json` names it.
pub fn users_of(state_dir: &Path, rootfs: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(labels) = std::fs::read_dir(state_dir) else { return out };
    for label in labels.flatten() {
        let Ok(envs) = std::fs::read_dir(label.path()) else { continue };
        for env in envs.flatten() {
            let Ok(bytes) = std::fs::read(env.path().join("config.json")) else { continue };
            let Ok(cfg) = serde_json::from_slice::<serde_json::Value>(&bytes) else { continue };
            if cfg["spec"]["base"]["rootfs"].as_str() == Some(&rootfs.to_string_lossy()) {
                out.push(format!(
                    "environment {}/{}",
                    label.file_name().to_string_lossy(),
                    env.file_name().to_string_lossy()
                ));
            }
        }
    }
    out
}

fn report(r: &examroom_images::ImportReport, started: std::time::Instant) {
    let how = match r.outcome {
        Imported::Unpacked => "imported",
        Imported::AlreadyPresent => "already present",
    };
    println!(
        "{how}: {} ({}, {} layers, {}) in {:.1} s",
        r.name.as_deref().unwrap_or("(no name)"),
        r.image.digest,
        r.image.layers.len(),
        human(r.image.size_bytes),
        started.elapsed().as_secs_f64()
    );
}

pub async fn run(cmd: ImageCommand) -> Result<()> {
    if let ImageCommand::Pull { at, reference, name, credentials, insecure_http, timeout, max_bytes } = cmd {
        let store = ImageStore::open(at.state_dir().join("images"))?;
        let started = std::time::Instant::now();
        let limits = Limits { max_bytes, ..Limits::default() };
        let timeout = std::time::Duration::from_secs(timeout);
        let pull = crate::image_pull::Pull { reference, name, credentials, insecure_http, timeout, limits };
        let r = crate::image_pull::pull(store, pull).await?;
        report(&r, started);
        return Ok(());
    }
    tokio::task::spawn_blocking(move || run_blocking(cmd)).await?
}

fn run_blocking(cmd: ImageCommand) -> Result<()> {
    match cmd {
        ImageCommand::Pull { .. } => unreachable!("pulled above"),
        ImageCommand::Import { at, source, name, max_bytes, max_inodes } => {
            let store = ImageStore::open(at.state_dir().join("images"))?;
            let started = std::time::Instant::now();
            let r = store.import(&source, name.as_deref(), Limits { max_bytes, max_inodes })?;
            report(&r, started);
            Ok(())
        }
        ImageCommand::List { at, json } => {
            let images = ImageStore::at(at.state_dir().join("images")).list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&images)?);
                return Ok(());
            }
            println!("{:<40} {:<20} {:>7} {:>10}", "NAME", "DIGEST", "LAYERS", "SIZE");
            for i in images {
                let names = if i.names.is_empty() { "(no name)".to_string() } else { i.names.join(",") };
                let short = &i.digest[..i.digest.len().min(19)];
                println!("{names:<40} {short:<20} {:>7} {:>10}", i.layers.len(), human(i.size_bytes));
            }
            Ok(())
        }
        ImageCommand::Rm { at, reference } => {
            let state = at.state_dir();
            let store = ImageStore::open(state.join("images"))?;
            let collected = store.remove(&reference, &|rootfs| users_of(&state, rootfs))?;
            if collected.is_empty() {
                println!("removed {reference}");
            } else {
                println!("removed {reference}; deleted {}", collected.join(", "));
            }
            Ok(())
        }
        ImageCommand::Pack { dir, output, name, layers, env, workdir } => {
            let mut w = ImageWriter::new();
            for kv in &env {
                anyhow::ensure!(kv.contains('='), "--env {kv:?}: write KEY=VALUE");
                w = w.env(kv);
            }
            if let Some(d) = &workdir {
                w = w.working_dir(d);
            }
            let w = w.layers_from_dir(&dir, layers).with_context(|| format!("pack {}", dir.display()))?;
            let d = w.write_oci_archive(&output, name.as_deref())?;
            println!("wrote {} ({d}, {layers} layers)", output.display());
            Ok(())
        }
    }
}
