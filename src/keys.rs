//! Where keys come from: the process environment (behind a trait, so tests
//! need not touch it) and key files, read with the care a secret needs.

use std::path::Path;

use crate::error::{Error, Result};
use crate::secret::{ApiKey, looks_like_key};

/// What the environment provides; a parameter so tests need not touch the
/// process environment.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

/// At most this much of a key file is read: a key is a line, and a path
/// mistyped as `/dev/zero` must not read until memory runs out.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The first line of a key file, trimmed. Reading stops at the first newline,
/// so a FIFO (`--api-key-file <(pass show x)`) works whether or not its
/// writer closes. `given_by` names the flag or field the path came from.
pub fn read_key_file(path: &Path, given_by: &str) -> Result<ApiKey> {
    use std::io::{BufRead, Read};
    let shown = shown_path(path, given_by);
    let file = std::fs::File::open(path).map_err(|e| {
        let error = Error::usage(format!("cannot read the key file {shown}: {e}"));
        if looks_like_key(&path.to_string_lossy()) {
            error.with_hint(format!("{given_by} takes the path of a file that holds the key, not the key: put the key in a file (chmod 600) or in the vendor's variable"))
        } else {
            error
        }
    })?;
    warn_if_readable_by_others(path, "key file");
    let mut line = Vec::new();
    std::io::BufReader::new(file.take(MAX_KEY_FILE_BYTES + 1))
        .read_until(b'\n', &mut line)
        .map_err(|e| Error::usage(format!("cannot read the key file {shown}: {e}")))?;
    if line.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(Error::usage(format!(
            "the key file {shown} has no line break in its first {} KiB: not a key file",
            MAX_KEY_FILE_BYTES / 1024
        ))
        .with_hint("the key file holds the key on its first line"));
    }
    let text = std::str::from_utf8(&line)
        .map_err(|_| Error::usage(format!("the key file {shown} is not text (UTF-8)")))?;
    ApiKey::new(text).ok_or_else(|| Error::usage(format!("the key file {shown} is empty")))
}

/// A path for an error message, unless it looks like a key given where the
/// path belongs: then the flag or field is named instead.
pub fn shown_path(path: &Path, flag: &str) -> String {
    let text = path.to_string_lossy();
    if looks_like_key(&text) {
        format!("given with {flag} (not shown: it looks like a key)")
    } else {
        path.display().to_string()
    }
}

/// `what` ("config file", "key file") names the file in the warning. Only a
/// regular file is checked: a pipe (`<(pass show x)`) or a device has no
/// owner's intent to report.
#[cfg(unix)]
pub(crate) fn warn_if_readable_by_others(path: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.is_file()
    {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "{what} {} is readable by group or others (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
}

#[cfg(not(unix))]
pub(crate) fn warn_if_readable_by_others(_path: &Path, _what: &str) {}
