//! The `examroom` command: one binary for the server, its tools, and the per-environment shim.

mod bench;
mod shell;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "examroom",
    version,
    about = "Isolated Linux exam environments in the browser, for many candidates at once"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmarks that print figures (not pass/fail).
    Bench {
        #[command(subcommand)]
        what: bench::Bench,
    },
    /// Work with sandbox environments directly.
    Sandbox {
        #[command(subcommand)]
        what: SandboxCommand,
    },
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Create an environment, attach this terminal to its shell, and destroy it when you detach with Ctrl-].
    Shell {
        /// Where environments keep their state.
        #[arg(long, default_value = "/var/lib/examroom/sandbox")]
        state_dir: PathBuf,
        /// The runtime instance's label.
        #[arg(long, default_value = "cli")]
        label: String,
        /// `host` or `rootfs:/PATH`.
        #[arg(long, default_value = "host")]
        base: String,
    },
    /// List environments of a label (including ones left by a dead server), or remove the lost ones.
    List {
        /// Where environments keep their state.
        #[arg(long, default_value = "/var/lib/examroom/sandbox")]
        state_dir: PathBuf,
        /// The runtime instance's label.
        #[arg(long, default_value = "cli")]
        label: String,
        /// Destroy environments whose shim is gone.
        #[arg(long)]
        reap: bool,
    },
}

fn main() {
    // The shim is this same binary: dispatch before anything else (no async runtime, no threads; it forks).
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == "__shim") {
        let dir = args.next().map(PathBuf::from).unwrap_or_default();
        std::process::exit(examroom_runtime::sandbox::shim::main(&dir));
    }
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("examroom: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Bench { what } => bench::run(what).await,
            Command::Sandbox { what: SandboxCommand::Shell { state_dir, label, base } } => {
                shell::run(state_dir, &label, &base).await
            }
            Command::Sandbox { what: SandboxCommand::List { state_dir, label, reap } } => {
                shell::list(state_dir, &label, reap).await
            }
        }
    });
    if let Err(e) = result {
        eprintln!("examroom: {e:#}");
        std::process::exit(1);
    }
}
