//! Where credentials come from: a file or the environment. A token may
//! still be given with `--token` for a quick local try, but nothing
//! requires it on a command line, where `ps` and shell history would show it.

use std::path::Path;

use anyhow::{Context, bail};

/// Reads a token from `file`: the whole file, without its trailing newline.
pub fn read_token_file(file: &Path, flag: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {flag} {}", file.display()))?;
    let token = text.trim_end_matches(['\n', '\r']).to_string();
    check_token(&token, &format!("{flag} {}", file.display()))?;
    warn_if_readable_by_others(file, flag);
    Ok(token)
}

/// The token from the first source that has one: a value (`--token` or an
/// environment variable clap read), then a file.
pub fn token_from(value: Option<&str>, file: Option<&Path>, flag: &str) -> anyhow::Result<Option<String>> {
    match (value, file) {
        (Some(_), Some(_)) => bail!("give a token either directly or with {flag}, not both"),
        (Some(value), None) => {
            check_token(value, "the token")?;
            Ok(Some(value.to_string()))
        }
        (None, Some(file)) => read_token_file(file, flag).map(Some),
        (None, None) => Ok(None),
    }
}

/// A token from the environment variable `var`, when it is set.
pub fn token_from_env(var: &str) -> anyhow::Result<Option<String>> {
    match std::env::var(var) {
        Ok(value) if value.is_empty() => Ok(None),
        Ok(value) => {
            check_token(&value, var)?;
            Ok(Some(value))
        }
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{var} is not valid UTF-8: use printable ASCII"),
    }
}

fn check_token(token: &str, origin: &str) -> anyhow::Result<()> {
    if token.is_empty() {
        bail!("{origin} is empty: a token is a long random string, e.g. from `openssl rand -hex 32`");
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("{origin} must be printable ASCII without spaces (e.g. from `openssl rand -hex 32`)");
    }
    Ok(())
}

#[cfg(unix)]
fn warn_if_readable_by_others(file: &Path, flag: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(file)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %file.display(),
            "{flag}: the token file is readable by other users; `chmod 600` it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_file: &Path, _flag: &str) {}
