//! `completion SHELL` and `man`: made from the same definitions as `--help`
//! ([`super::command`]), so they cannot drift from it.

use std::path::PathBuf;

use anyhow::Context;

/// Examples of `completion`.
pub const COMPLETION_EXAMPLES: &str = "\
Examples:
  # bash: for this shell, then for every new one
  source <(nomos-issuer completion bash)
  nomos-issuer completion bash > ~/.local/share/bash-completion/completions/nomos-issuer
  # zsh: a directory on $fpath
  nomos-issuer completion zsh > ~/.zfunc/_nomos-issuer
  # fish
  nomos-issuer completion fish > ~/.config/fish/completions/nomos-issuer.fish";

/// Examples of `man`.
pub const MAN_EXAMPLES: &str = "\
Examples:
  # Read it now
  nomos-issuer man | man -l -
  # Install the page of nomos-issuer
  nomos-issuer man > /usr/local/share/man/man1/nomos-issuer.1
  # One page per command (nomos-issuer-keys-rotate.1, …)
  nomos-issuer man --dir /usr/local/share/man/man1";

/// Options of `completion`.
#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Options of `man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write one page per command into this directory instead of printing the
    /// top page
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script.
pub fn completion(args: &CompletionArgs) -> anyhow::Result<()> {
    let mut cmd = super::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "nomos-issuer", &mut script);
    write_stdout(&script)
}

/// Prints the manual page, or writes every command's into `--dir`.
pub fn man(args: &ManArgs) -> anyhow::Result<()> {
    let cmd = super::command();
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write the manual pages in {}", dir.display()))?;
            eprintln!("wrote the manual pages in {}", dir.display());
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .context("cannot render the manual page")?;
            write_stdout(&page)?;
        }
    }
    Ok(())
}

/// Writes to stdout; a reader that stopped early (`| head`) is no error.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}
