//! `examroom completion SHELL` and `examroom man`: shell completions and manual pages, both generated from the same
//! clap definitions as the command line itself, so they cannot drift from it. The .deb installs both (see
//! scripts/package.sh).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// The end of `examroom --help` and the manual page's last section: where the configuration comes from.
pub const AFTER_HELP: &str = "\
Configuration: `serve` and `doctor` read /etc/examroom/config.toml when it exists and no --config names another \
file (--config /dev/null reads none). EXAMROOM_* environment variables override the file, and flags override both. \
`examroom config show` prints the configuration in effect and where each value comes from, secrets masked.

Files: /etc/examroom/config.toml (the configuration), /var/lib/examroom (the data directory: the store, the token \
secret, environments' state), /usr/share/examroom/exams (the sample exams the package installs).

Restarting or stopping the server never ends a candidate's environment (the systemd unit has KillMode=process).";

/// Writes the completion script for `shell` to `out`.
pub fn completion(mut cmd: clap::Command, shell: clap_complete::Shell, out: &mut dyn Write) -> Result<()> {
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, out);
    Ok(())
}

/// Prints the top-level manual page, or with `dir` writes a page for every command (`examroom.1`,
/// `examroom-serve.1`, `examroom-image-import.1`...) into it.
pub fn man(cmd: clap::Command, dir: Option<&Path>) -> Result<()> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir).with_context(|| format!("write the manual pages into {}", dir.display()))
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            std::io::stdout().write_all(&page)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn sample() -> Command {
        Command::new("examroom")
            .version("1.2.3 (commit abc)")
            .about("the about line")
            .subcommand(Command::new("serve").about("Serve the API").arg(Arg::new("listen").long("listen")))
            .subcommand(Command::new("token").about("Mint a token"))
    }

    #[test]
    fn completion_scripts_name_the_subcommands_and_their_flags() {
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
            let mut out = Vec::new();
            completion(sample(), shell, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("serve") && text.contains("token"), "{shell}: {text}");
            assert!(text.contains("listen"), "{shell} completes serve's --listen: {text}");
        }
    }

    #[test]
    fn man_writes_one_page_per_command() {
        let dir = tempfile::tempdir().unwrap();
        man(sample(), Some(dir.path())).unwrap();
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["examroom-serve.1", "examroom-token.1", "examroom.1"]);
        let page = std::fs::read_to_string(dir.path().join("examroom-serve.1")).unwrap();
        assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
        assert!(page.contains("listen"), "{page}");
    }

    #[test]
    fn man_into_a_path_that_is_a_file_is_a_clear_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = man(sample(), Some(&file.path().join("sub"))).unwrap_err();
        assert!(format!("{err:#}").contains("create"), "{err:#}");
    }
}
