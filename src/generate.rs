//! `corridor generate`: the man pages and shell completions the Debian
//! package installs, made from the same clap definitions that parse the
//! command line, so they cannot drift from the real flags. A hidden
//! subcommand rather than a build script: the package step already has the
//! release binary, and a build script would run clap's whole definition
//! again at every compile for files only packaging wants.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use clap_complete::Shell;

#[derive(Subcommand, Debug)]
pub(crate) enum What {
    /// Man pages: corridor.1 and one per subcommand (corridor-gateway.1...).
    Man { dir: PathBuf },
    /// Completions for bash (`corridor.bash`), zsh (`_corridor`) and fish (`corridor.fish`).
    Completions { dir: PathBuf },
}

pub(crate) fn run(what: What, cmd: clap::Command) -> ExitCode {
    let (dir, made) = match what {
        What::Man { dir } => {
            let made = std::fs::create_dir_all(&dir).and_then(|()| clap_mangen::generate_to(cmd, &dir));
            (dir, made)
        }
        What::Completions { dir } => {
            let made = std::fs::create_dir_all(&dir).and_then(|()| completions(cmd, &dir));
            (dir, made)
        }
    };
    match made {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corridor generate: writing into {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

fn completions(mut cmd: clap::Command, dir: &Path) -> std::io::Result<()> {
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "corridor", dir)?;
    }
    Ok(())
}
