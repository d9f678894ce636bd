//! The `examroom` command: one binary for the server, its tools, and the per-environment shim.

mod bench;
mod bench_sessions;
mod serve;
mod shell;
mod token;

use std::net::SocketAddr;
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
    /// Serve the API (REST, SSE) for candidates and proctors.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "EXAMROOM_LISTEN")]
        listen: Option<SocketAddr>,
        /// Data directory (the store, the token secret, environment state).
        #[arg(long, env = "EXAMROOM_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// The exam catalog: one directory per exam.
        #[arg(long, env = "EXAMROOM_EXAMS")]
        exams: Option<PathBuf>,
        /// A TOML file with the same settings (flags and EXAMROOM_* variables override it).
        #[arg(long, env = "EXAMROOM_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Mint a token (or a sign-in URL) signed with the server's secret.
    Token {
        /// The server's data directory (holds the secret).
        #[arg(long, env = "EXAMROOM_DATA_DIR", default_value = "/var/lib/examroom")]
        data_dir: PathBuf,
        /// The user id.
        #[arg(long)]
        user: String,
        /// candidate or proctor.
        #[arg(long, default_value = "candidate")]
        role: String,
        /// Lifetime, e.g. 2h.
        #[arg(long, default_value = "2h")]
        ttl: String,
        /// Print a sign-in URL instead of the bare token.
        #[arg(long)]
        url: bool,
        /// The server's address for --url.
        #[arg(long, env = "EXAMROOM_PUBLIC_ORIGIN", default_value = "http://127.0.0.1:8080")]
        base_url: String,
    },
    /// Exam definitions.
    Exam {
        #[command(subcommand)]
        what: ExamCommand,
    },
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
enum ExamCommand {
    /// Check an exam directory (or a catalog of them); every problem names its file, line and field.
    Validate {
        /// An exam directory, or a catalog directory.
        dir: PathBuf,
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
    // The grading helper, run inside a check under this name (see `sandbox::shim::trusted`).
    if args.next().is_some_and(|a| std::path::Path::new(&a).file_name().is_some_and(|n| n == "examroom-run")) {
        std::process::exit(examroom_runtime::sandbox::shim::trusted::run_client());
    }
    if args.next().is_some_and(|a| a == "__shim") {
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
            Command::Serve { listen, data_dir, exams, config } => {
                serve::run(serve::Settings::resolve(listen, data_dir, exams, config.as_deref())?).await
            }
            Command::Token { data_dir, user, role, ttl, url, base_url } => {
                token::run(data_dir, &user, &role, &ttl, url, &base_url)
            }
            Command::Exam { what: ExamCommand::Validate { dir } } => {
                let problems = examroom_exams::validate(&dir);
                for p in &problems {
                    println!("{p}");
                }
                if problems.is_empty() {
                    println!("{}: no problems", dir.display());
                    Ok(())
                } else {
                    anyhow::bail!("{} problem(s)", problems.len())
                }
            }
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
