//! The `examroom` command: one binary for the server, its tools, and the per-environment shim.

mod backup;
mod bench;
mod bench_desktop;
mod bench_sessions;
mod bench_terminal;
mod capacity;
mod catalog_reload;
mod config_show;
mod doctor;
mod exam_authoring;
mod image_cmd;
mod image_pull;
mod manual;
mod serve;
mod shell;
mod token;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// `examroom --version`: the package's version and the git commit it was built from (see build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("EXAMROOM_COMMIT"), ")");

#[derive(Parser)]
#[command(
    name = "examroom",
    version = VERSION,
    about = "Isolated Linux exam environments in the browser, for many candidates at once",
    after_long_help = manual::AFTER_HELP
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
        /// The share of the host's memory that environments may have: a session is admitted only while the memory
        /// limits of the live ones stay within it (default 0.8).
        #[arg(long, env = "EXAMROOM_MEMORY_SHARE")]
        memory_share: Option<f64>,
        /// Serve what candidates run on their exam's ports to their own browser, from this address (an origin of its
        /// own per session: `http://p<port>-<session>.localhost:PORT` unless EXAMROOM_PORTS_URL says otherwise).
        #[arg(long, env = "EXAMROOM_PORTS_LISTEN")]
        ports_listen: Option<SocketAddr>,
        /// The store: `postgres://user:password@host/db` (PostgreSQL, which several replicas share) or a file path
        /// (SQLite). Default: SQLite in the data directory.
        #[arg(long, env = "EXAMROOM_DATABASE")]
        database: Option<String>,
        /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key.
        #[arg(long, env = "EXAMROOM_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert (PEM).
        #[arg(long, env = "EXAMROOM_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Check that this host can run examroom, and print what to fix (exits non-zero if a check fails).
    Doctor {
        /// Data directory of the server to check for.
        #[arg(long, env = "EXAMROOM_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// The exam catalog of the server to check for.
        #[arg(long, env = "EXAMROOM_EXAMS")]
        exams: Option<PathBuf>,
        /// The server's TOML config file.
        #[arg(long, env = "EXAMROOM_CONFIG")]
        config: Option<PathBuf>,
        /// The server's memory share.
        #[arg(long, env = "EXAMROOM_MEMORY_SHARE")]
        memory_share: Option<f64>,
        /// Print JSON: {"ok": bool, "checks": [{"name", "verdict", "summary", "fix", "fatal"}]}.
        #[arg(long)]
        json: bool,
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
    /// The image store: OCI images that exams use as their base (`base = "image:NAME:TAG"`).
    Image {
        #[command(subcommand)]
        what: image_cmd::ImageCommand,
    },
    /// Work with sandbox environments directly.
    Sandbox {
        #[command(subcommand)]
        what: SandboxCommand,
    },
    /// The server's configuration.
    Config {
        #[command(subcommand)]
        what: config_show::ConfigCommand,
    },
    /// Back up the store while the server runs (SQLite: a checked copy; PostgreSQL: prints the pg_dump to run).
    Backup {
        /// The server's data directory (its SQLite store).
        #[arg(long, env = "EXAMROOM_DATA_DIR", default_value = "/var/lib/examroom")]
        data_dir: PathBuf,
        /// The server's `--database`, when it is not SQLite in the data directory.
        #[arg(long, env = "EXAMROOM_DATABASE")]
        database: Option<String>,
        /// The new file (default: examroom-<unix seconds>.db here). Never overwritten.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print a shell completion script (bash: `examroom completion bash > /etc/bash_completion.d/examroom`).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one page per command into a directory.
    Man {
        /// Write examroom.1 and examroom-COMMAND.1 pages into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ExamCommand {
    /// Check an exam directory (or a catalog of them); every problem names its file, line and field.
    Validate {
        /// An exam directory, or a catalog directory.
        dir: PathBuf,
        /// The server's data directory: exams on an image (`base = "image:REF"`) are checked against its image
        /// store (`<data-dir>/sandbox/images`).
        #[arg(long, env = "EXAMROOM_DATA_DIR", default_value = "/var/lib/examroom")]
        data_dir: PathBuf,
    },
    /// Test an exam before candidates do: for each task a real session runs its reference solution and is graded
    /// (every check must pass), and one session where nothing is done is graded too (every check must fail, unless
    /// it says `may_pass_unsolved`). Prints each check's outcome and time; exits 1 on any surprise (naming the task
    /// and check), 3 when the exam cannot run on this machine.
    Test {
        /// The exam directory.
        dir: PathBuf,
        /// Test only this task (and the unsolved session).
        #[arg(long, value_name = "ID")]
        task: Option<String>,
        /// Also leave, for each tested task, a session open with its solution applied, and print how to attach.
        #[arg(long)]
        keep: bool,
        /// The server's data directory, whose image store (`<data-dir>/sandbox/images`) has the exam's image.
        #[arg(long, env = "EXAMROOM_DATA_DIR", default_value = "/var/lib/examroom")]
        data_dir: PathBuf,
        /// Sessions at once.
        #[arg(long, default_value_t = 3)]
        jobs: usize,
    },
    /// Pack an exam directory into one archive (a gzip'd tar: the exam's files and a manifest of their SHA-256).
    Pack {
        /// The exam directory (it must validate).
        dir: PathBuf,
        /// The archive to write (default: ./<exam id>-<version>.examroom.tar.gz).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Install an archive made by `exam pack` into the catalog, as <catalog>/<exam id>. A server serving the
    /// catalog picks it up without a restart; sessions running keep their version.
    Install {
        /// The archive.
        archive: PathBuf,
        /// The exam catalog.
        #[arg(long, env = "EXAMROOM_EXAMS", default_value = "exams")]
        exams: PathBuf,
        /// Replace an exam of the same id.
        #[arg(long)]
        replace: bool,
    },
    /// Import exams from another format.
    Import {
        #[command(subcommand)]
        from: ImportCommand,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// CK-X labs: one examroom exam per lab of LABS_DIR (the directory of labs.json) into OUT_DIR, with a report of
    /// every inconsistency found.
    Ckx {
        /// The directory that holds labs.json (CK-X's facilitator/assets/exams).
        labs_dir: PathBuf,
        /// Where to write the exams (one directory per lab).
        out_dir: PathBuf,
        /// Run setup scripts in natural order (q1, q2, ..., q10) instead of CK-X's glob order (q1, q10, q11, ..., q2).
        #[arg(long)]
        natural_order: bool,
    },
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Create an environment, attach this terminal to its shell, and destroy it when you leave with Enter ~ .
    ///
    /// Leaving: escapes as in ssh, recognised only right after Enter: `~.` leaves and destroys the environment (with
    /// --keep: detaches, and the environment keeps running), `~?` lists the escapes, `~~` types a single `~`. Every
    /// other key, Ctrl-C and Ctrl-] included, goes to the environment.
    ///
    /// The environment's terminal follows this terminal's size. This terminal's settings, and the modes programs
    /// inside switched on (alternate screen, mouse, bracketed paste...), are restored however the command ends: on
    /// leaving, when the environment ends, on an error, and on SIGTERM, SIGINT or SIGHUP (which destroy the
    /// environment unless --keep, and exit with 128 + the signal's number). Standard input must be a terminal.
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
        /// Leave the environment running when this command ends; it prints how to re-attach.
        #[arg(long)]
        keep: bool,
        /// Attach to this environment of the label (see `sandbox list`) instead of creating one; a client already
        /// attached to it lets go without destroying it.
        #[arg(long, value_name = "ID", conflicts_with = "base")]
        attach: Option<examroom_core::EnvironmentId>,
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

/// `examroom doctor`: reads the host, prints the checks, fails if any check fails.
fn run_doctor(s: &serve::Settings, json: bool) -> anyhow::Result<()> {
    let catalog = examroom_exams::Catalog::load(&s.exams);
    let wanted = serve::wanted(s, &catalog);
    let checks = doctor::checks(&doctor::read(&s.data_dir), &wanted);
    if json {
        println!("{}", serde_json::to_string_pretty(&doctor::render_json(&checks))?);
    } else {
        print!("{}", doctor::render(&checks));
    }
    let failed = checks.iter().filter(|c| c.verdict == doctor::Verdict::Fail).count();
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed");
    }
    Ok(())
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
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("examroom: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Serve {
                listen,
                data_dir,
                exams,
                config,
                memory_share,
                ports_listen,
                database,
                tls_cert,
                tls_key,
            } => {
                let mut s = serve::Settings::resolve(listen, data_dir, exams, config.as_deref(), memory_share)?;
                s.ports_listen = ports_listen.or(s.ports_listen);
                s.database = database.or(s.database);
                s.tls_cert = tls_cert.or(s.tls_cert);
                s.tls_key = tls_key.or(s.tls_key);
                serve::run(s).await
            }
            Command::Doctor { data_dir, exams, config, memory_share, json } => {
                let s = serve::Settings::resolve(None, data_dir, exams, config.as_deref(), memory_share)?;
                run_doctor(&s, json)
            }
            Command::Token { data_dir, user, role, ttl, url, base_url } => {
                token::run(data_dir, &user, &role, &ttl, url, &base_url)
            }
            Command::Exam { what: ExamCommand::Validate { dir, data_dir } } => {
                let store = examroom_images::ImageStore::at(data_dir.join("sandbox").join("images"));
                let missing = |reference: &str| match store.resolve(reference) {
                    Ok(_) => None,
                    Err(examroom_images::ImageError::NotFound { .. }) => Some(format!(
                        "the image {reference} is not in the image store of {}; import it with `examroom image \
                         import --data-dir {} FILE_OR_DIR --name {reference}`",
                        data_dir.display(),
                        data_dir.display()
                    )),
                    Err(e) => Some(format!("the image {reference}: {e}")),
                };
                let problems = examroom_exams::validate_images(&dir, &missing);
                exam_authoring::report_validation(&dir, &problems, &examroom_exams::lint(&dir))
            }
            Command::Exam { what: ExamCommand::Test { dir, task, keep, data_dir, jobs } } => {
                if std::env::var_os("EXAMROOM_LOG").is_some() {
                    serve::init_logs();
                }
                exam_authoring::exam_test::run(exam_authoring::exam_test::TestArgs { dir, task, keep, data_dir, jobs })
                    .await
            }
            Command::Exam { what: ExamCommand::Pack { dir, out } } => exam_authoring::pack(&dir, out),
            Command::Exam { what: ExamCommand::Install { archive, exams, replace } } => {
                exam_authoring::install(&archive, &exams, replace)
            }
            Command::Exam {
                what: ExamCommand::Import { from: ImportCommand::Ckx { labs_dir, out_dir, natural_order } },
            } => exam_authoring::import_ckx(&labs_dir, &out_dir, natural_order),
            Command::Bench { what } => bench::run(what).await,
            Command::Image { what } => image_cmd::run(what).await,
            Command::Sandbox { what: SandboxCommand::Shell { state_dir, label, base, keep, attach } } => {
                shell::run(shell::ShellArgs { state_dir, label, base, keep, attach }).await
            }
            Command::Sandbox { what: SandboxCommand::List { state_dir, label, reap } } => {
                shell::list(state_dir, &label, reap).await
            }
            Command::Config { what } => config_show::run(what, &matches),
            Command::Backup { data_dir, database, out } => {
                backup::run(&data_dir, database.as_deref(), &out.unwrap_or_else(backup::default_out)).await
            }
            Command::Completion { shell } => manual::completion(Cli::command(), shell, &mut std::io::stdout()),
            Command::Man { dir } => manual::man(Cli::command(), dir.as_deref()),
        }
    });
    if let Err(e) = result {
        eprintln!("examroom: {e:#}");
        let cannot_run = e.downcast_ref::<exam_authoring::exam_test::CannotRun>().is_some();
        std::process::exit(if cannot_run { exam_authoring::exam_test::CANNOT_RUN } else { 1 });
    }
}
