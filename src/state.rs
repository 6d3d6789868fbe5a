//! Incremental runs (`--state PATH`): a JSON file with one bookmark per
//! `vendor/agent/resource` — the newest `created_at` written and the ids
//! that share it — locked for the run and replaced atomically.
//!
//! The lock is taken on a sibling `PATH.lock` file, not on the state file
//! itself, because the state file is replaced by a rename and a lock on the
//! old inode would not stop the next run. Locking uses the standard
//! library's advisory `File::try_lock` (flock on Unix), so no extra crate.
//!
//! Paths are resolved to the real file first: the lock belongs to the file,
//! not to one spelling of its name, and a save through a symlink must
//! replace the file the link points at, not the link.
//!
//! Saving is two steps so the caller can order them around the output's
//! commit: [`StateFile::prepare`] writes and syncs the new state to a
//! temporary file beside the real one (the step that can fail for lack of
//! space or permission), and [`PreparedState::commit`] only renames it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tempfile::TempPath;

use crate::error::{Error, Result};
use crate::export::Bookmark;
use crate::model::{Resource, Vendor, format_timestamp};
pub use crate::output::resolve_path;
use crate::output::{remove_stale_temps, sync_parent, temp_prefix};

/// The state format this build writes; a file with a larger version was
/// written by a newer leads and is not touched.
pub const STATE_VERSION: u32 = 1;

/// A state file holds a few hundred bytes a source; anything near this is
/// not a state file, and reading it whole could exhaust memory.
pub const MAX_STATE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct StateData {
    version: u32,
    bookmarks: BTreeMap<String, StoredBookmark>,
}

impl Default for StateData {
    fn default() -> Self {
        StateData {
            version: STATE_VERSION,
            bookmarks: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct StoredBookmark {
    created_at: String,
    ids: Vec<String>,
    updated_at: String,
}

/// An open, locked state file. Dropping it releases the lock.
#[derive(Debug)]
pub struct StateFile {
    /// As the user spelled it, for messages.
    shown: PathBuf,
    /// The real file (symlinks resolved), which is read and replaced.
    real: PathBuf,
    data: StateData,
    _lock: File,
}

/// A new state written and synced to a temporary file beside the real one,
/// waiting to be renamed into place. Dropping it removes the temporary file.
#[derive(Debug)]
pub struct PreparedState {
    shown: PathBuf,
    real: PathBuf,
    temp: TempPath,
}

pub fn bookmark_key(vendor: Vendor, agent: &str, resource: Resource) -> String {
    format!("{}/{}/{}", vendor.as_str(), agent, resource.as_str())
}

/// The lock file of a state file (beside the real file).
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

/// The bookmark after a run that wrote up to `newest`: moved forward,
/// never back; at the same time the ids are merged. `None` when nothing
/// changes (`newest` is older, or has no time).
pub fn advanced(old: Option<&Bookmark>, newest: &Bookmark) -> Option<Bookmark> {
    let created = newest.created_at?;
    let ids = match old {
        Some(old) if old.created_at > Some(created) => return None,
        Some(old) if old.created_at == Some(created) => {
            let mut ids = old.ids.clone();
            for id in &newest.ids {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
            ids
        }
        _ => newest.ids.clone(),
    };
    Some(Bookmark {
        created_at: Some(created),
        ids,
    })
}

/// Refuses anything but a regular file (or nothing) at `path`: reading a
/// FIFO would wait forever, `/dev/zero` would never end, and replacing a
/// device node or a directory by rename would be destructive.
fn require_regular(path: &Path, what: &str, shown: &Path) -> Result<Option<std::fs::Metadata>> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(Some(meta)),
        Ok(_) => Err(Error::local_file(format!(
            "the {what} {} is not a regular file",
            shown.display()
        ))
        .with_hint("--state needs a path to a regular file (or to none yet)")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::local_file(format!(
            "cannot read the {what} {}: {e}",
            shown.display()
        ))),
    }
}

impl StateFile {
    /// Locks `PATH.lock` (waiting up to `wait`) and reads `PATH` if it exists.
    pub fn open(path: &Path, wait: Duration) -> Result<StateFile> {
        let real = resolve_path(path).map_err(|e| {
            Error::local_file(format!(
                "cannot resolve the state file {}: {e}",
                path.display()
            ))
            .with_hint("the state file's directory must exist")
        })?;
        if let Some(meta) = require_regular(&real, "state file", path)? {
            refuse_hard_links(&meta, path)?;
        }
        let lock_path = lock_path(&real);
        require_regular(&lock_path, "state lock", &lock_path)?;
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| {
                Error::local_file(format!(
                    "cannot open the state lock {}: {e}",
                    lock_path.display()
                ))
            })?;
        // Between the check and the open something else could have been put
        // there; the open file itself is what counts.
        if !lock.metadata().is_ok_and(|m| m.is_file()) {
            return Err(Error::local_file(format!(
                "the state lock {} is not a regular file",
                lock_path.display()
            )));
        }
        let deadline = Instant::now() + wait;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = (&mut lock).take(512).read_to_string(&mut holder);
                    let holder = holder.trim();
                    let holder = if holder.is_empty() {
                        "another leads run".to_owned()
                    } else {
                        holder.to_owned()
                    };
                    return Err(Error::local_file(format!(
                        "state file {} is locked by {holder}",
                        path.display()
                    ))
                    .with_hint(
                        "wait for that run to finish, or pass --lock-timeout SECS to wait for it",
                    ));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::local_file(format!(
                        "cannot lock {}: {e}",
                        lock_path.display()
                    )));
                }
            }
        }
        let holder = format!(
            "leads pid {} since {}",
            std::process::id(),
            format_timestamp(&Utc::now())
        );
        let _ = lock
            .set_len(0)
            .and_then(|_| lock.seek(SeekFrom::Start(0)))
            .and_then(|_| lock.write_all(holder.as_bytes()));

        // Under the lock no other run can be writing a state temporary file
        // for this state, so any left over is from a killed run.
        if let (Some(dir), Some(name)) = (real.parent(), real.file_name()) {
            remove_stale_temps(dir, name);
        }

        let data = read_state(&real, path)?;
        Ok(StateFile {
            shown: path.to_owned(),
            real,
            data,
            _lock: lock,
        })
    }

    pub fn bookmark(&self, key: &str) -> Option<Bookmark> {
        let stored = self.data.bookmarks.get(key)?;
        Some(Bookmark {
            created_at: parse_stored_time(&stored.created_at),
            ids: stored.ids.clone(),
        })
    }

    /// Moves the bookmark forward (never back).
    pub fn advance(&mut self, key: &str, newest: &Bookmark, now: DateTime<Utc>) {
        let Some(Bookmark {
            created_at: Some(created),
            ids,
        }) = advanced(self.bookmark(key).as_ref(), newest)
        else {
            return;
        };
        self.data.bookmarks.insert(
            key.to_owned(),
            StoredBookmark {
                created_at: format_timestamp(&created),
                ids,
                updated_at: format_timestamp(&now),
            },
        );
    }

    /// Writes the new state to a temporary file beside the real one and
    /// syncs it, without replacing anything yet.
    pub fn prepare(&self) -> Result<PreparedState> {
        let fail = |e: std::io::Error| {
            Error::local_file(format!(
                "cannot write the state file {}: {}",
                self.shown.display(),
                crate::output::os_reason(&e)
            ))
            .with_hint("nothing was written; the next run repeats this one")
        };
        let (dir, name) = match (self.real.parent(), self.real.file_name()) {
            (Some(dir), Some(name)) => (dir, name),
            _ => return Err(fail(std::io::ErrorKind::InvalidInput.into())),
        };
        let mut temp = tempfile::Builder::new()
            .prefix(&temp_prefix(name))
            .suffix(".tmp")
            .rand_bytes(6)
            .tempfile_in(dir)
            .map_err(fail)?;
        let mut text = serde_json::to_vec_pretty(&self.data).map_err(|e| fail(e.into()))?;
        text.push(b'\n');
        temp.write_all(&text).map_err(fail)?;
        temp.as_file().sync_all().map_err(fail)?;
        let (file, temp) = temp.into_parts();
        drop(file);
        Ok(PreparedState {
            shown: self.shown.clone(),
            real: self.real.clone(),
            temp,
        })
    }

    /// Prepares and commits in one go.
    pub fn save(&self) -> Result<()> {
        self.prepare()?.commit()
    }
}

impl PreparedState {
    /// Renames the prepared state over the real file and syncs the
    /// directory, so the rename survives a power loss.
    pub fn commit(self) -> Result<()> {
        let PreparedState { shown, real, temp } = self;
        temp.persist(&real).map_err(|e| {
            Error::local_file(format!(
                "cannot replace the state file {}: {}",
                shown.display(),
                crate::output::os_reason(&e.error)
            ))
        })?;
        sync_parent(&real);
        Ok(())
    }
}

/// A file with several names cannot keep them all: the rename that
/// replaces it atomically gives one name a new file and leaves the others
/// on the old one, and two names would lock separately. Refused rather than
/// silently split.
fn refuse_hard_links(meta: &std::fs::Metadata, shown: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Err(Error::local_file(format!(
                "the state file {} has {} hard links",
                shown.display(),
                meta.nlink()
            ))
            .with_hint(
                "a state file must have one name (saving replaces it, which would split the names); use a symlink instead",
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (meta, shown);
    Ok(())
}

/// Reads and checks the state at `real`; no file, an empty one or `{}` is a
/// fresh start, anything else must be a complete state this build can
/// read, or the run stops before anything is fetched.
fn read_state(real: &Path, shown: &Path) -> Result<StateData> {
    let cannot_read = |e: std::io::Error| {
        Error::local_file(format!(
            "cannot read the state file {}: {e}",
            shown.display()
        ))
    };
    let file = match File::open(real) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StateData::default()),
        Err(e) => return Err(cannot_read(e)),
    };
    if !file.metadata().map_err(cannot_read)?.is_file() {
        return Err(Error::local_file(format!(
            "the state file {} is not a regular file",
            shown.display()
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(Error::local_file(format!(
            "the state file {} is larger than {} MiB: not a leads state file",
            shown.display(),
            MAX_STATE_BYTES / (1024 * 1024)
        )));
    }
    parse_state(&bytes).map_err(|reason| {
        Error::local_file(format!(
            "state file {} is not a valid leads state file: {reason}",
            shown.display()
        ))
        .with_hint(
            "the file was left as it is; fix it, or move it away to start over (the next run then exports everything again)",
        )
    })
}

fn parse_state(bytes: &[u8]) -> std::result::Result<StateData, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(StateData::default());
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
    if value.as_object().is_some_and(serde_json::Map::is_empty) {
        return Ok(StateData::default());
    }
    if let Some(version) = value.get("version").and_then(serde_json::Value::as_u64)
        && version > u64::from(STATE_VERSION)
    {
        return Err(format!(
            "it is version {version}, written by a newer leads (this one reads version {STATE_VERSION})"
        ));
    }
    let data: StateData = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if data.version != STATE_VERSION {
        return Err(format!("unknown version {}", data.version));
    }
    for (key, mark) in &data.bookmarks {
        for (field, text) in [
            ("created_at", &mark.created_at),
            ("updated_at", &mark.updated_at),
        ] {
            if parse_stored_time(text).is_none() {
                return Err(format!(
                    "bookmark {key:?}: {field} {text:?} is not a timestamp"
                ));
            }
        }
    }
    Ok(data)
}

/// The state stores times as RFC 3339 in UTC, as `format_timestamp` writes
/// them; nothing looser is accepted.
fn parse_stored_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn bookmarks_round_trip_and_only_move_forward() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let t1 = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        let t0 = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        {
            let mut state = StateFile::open(&path, Duration::ZERO).unwrap();
            assert_eq!(state.bookmark("chatzuri/a/leads"), None);
            state.advance(
                "chatzuri/a/leads",
                &Bookmark {
                    created_at: Some(t1),
                    ids: vec!["1".into()],
                },
                t1,
            );
            state.advance(
                "chatzuri/a/leads",
                &Bookmark {
                    created_at: Some(t0),
                    ids: vec!["0".into()],
                },
                t1,
            );
            state.advance(
                "chatzuri/a/leads",
                &Bookmark {
                    created_at: Some(t1),
                    ids: vec!["2".into()],
                },
                t1,
            );
            state.save().unwrap();
        }
        let state = StateFile::open(&path, Duration::ZERO).unwrap();
        assert_eq!(
            state.bookmark("chatzuri/a/leads"),
            Some(Bookmark {
                created_at: Some(t1),
                ids: vec!["1".into(), "2".into()]
            })
        );
    }

    #[test]
    fn a_second_open_is_refused_while_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let _held = StateFile::open(&path, Duration::ZERO).unwrap();
        let err = StateFile::open(&path, Duration::from_millis(120)).unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::LocalFile);
        assert!(
            err.message.contains("locked by leads pid"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{not json").unwrap();
        assert!(StateFile::open(&path, Duration::ZERO).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn empty_files_and_empty_objects_are_a_fresh_start() {
        for text in ["", "   \n\t", "{}", " { }\n"] {
            let data = parse_state(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(data, StateData::default(), "{text:?}");
        }
    }

    #[test]
    fn json_that_is_not_a_valid_state_is_refused() {
        let good_mark = r#"{"created_at":"2025-01-02T03:04:05Z","ids":["1"],"updated_at":"2025-01-02T03:04:05Z"}"#;
        assert!(
            parse_state(format!(r#"{{"version":1,"bookmarks":{{"k":{good_mark}}}}}"#).as_bytes())
                .is_ok()
        );
        let bad = [
            r#"{"version":1,"bookmarks":{"k":{"created_at":"yesterday","ids":[],"updated_at":"2025-01-02T03:04:05Z"}}}"#,
            r#"{"version":1,"bookmarks":{"k":{"created_at":"2025-01-02T03:04:05Z","ids":[],"updated_at":"soon"}}}"#,
            r#"{"version":1,"bookmarks":{"k":{"created_at":"2025-01-02T03:04:05Z","updated_at":"2025-01-02T03:04:05Z"}}}"#,
            r#"{"version":1,"bookmarks":{"k":{"created_at":"2025-01-02T03:04:05Z","ids":[1],"updated_at":"2025-01-02T03:04:05Z"}}}"#,
            r#"{"version":1,"bookmarks":{"k":{"created_at":20250102,"ids":[],"updated_at":"2025-01-02T03:04:05Z"}}}"#,
            r#"{"version":1}"#,
            r#"{"bookmarks":{}}"#,
            r#"{"version":"1","bookmarks":{}}"#,
            r#"{"version":0,"bookmarks":{}}"#,
            r#"{"version":1,"bookmarks":[]}"#,
            r#"{"version":1,"bookmarks":{},"extra":true}"#,
            r#"[]"#,
            r#"null"#,
            r#"{"#,
        ];
        for text in bad {
            assert!(parse_state(text.as_bytes()).is_err(), "accepted {text}");
        }
        let newer = parse_state(br#"{"version":2,"bookmarks":{},"something":"new"}"#).unwrap_err();
        assert!(newer.contains("newer leads"), "{newer}");
    }

    #[test]
    fn an_invalid_state_file_is_exit_7_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let text = r#"{"version":1,"bookmarks":{"k":{"created_at":"2025-13-45","ids":[],"updated_at":"x"}}}"#;
        std::fs::write(&path, text).unwrap();
        let err = StateFile::open(&path, Duration::ZERO).unwrap_err();
        assert_eq!(err.kind.exit_code(), 7);
        assert!(
            err.message.contains("not a valid leads state"),
            "{}",
            err.message
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_state_resolves_to_the_target_and_saving_keeps_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        // The target does not exist yet: still resolved to it.
        let resolved = resolve_path(&link).unwrap();
        assert_eq!(
            resolved,
            std::fs::canonicalize(dir.path()).unwrap().join("real.json")
        );
        let state = StateFile::open(&link, Duration::ZERO).unwrap();
        // The other spelling is locked out.
        let err = StateFile::open(&real, Duration::ZERO).unwrap_err();
        assert!(err.message.contains("locked by"), "{}", err.message);
        state.save().unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(std::fs::symlink_metadata(&real).unwrap().is_file());
        assert_eq!(
            names(dir.path()),
            ["link.json", "real.json", "real.json.lock"]
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_state_file_with_two_hard_links_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{}").unwrap();
        std::fs::hard_link(&path, dir.path().join("other.json")).unwrap();
        let err = StateFile::open(&path, Duration::ZERO).unwrap_err();
        assert_eq!(err.kind.exit_code(), 7);
        assert!(err.message.contains("hard links"), "{}", err.message);
    }

    #[cfg(unix)]
    #[test]
    fn fifo_and_device_state_or_lock_paths_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = StateFile::open(&fifo, Duration::ZERO).unwrap_err();
        assert_eq!(err.kind.exit_code(), 7);
        assert!(
            err.message.contains("not a regular file"),
            "{}",
            err.message
        );

        let err = StateFile::open(Path::new("/dev/zero"), Duration::ZERO).unwrap_err();
        assert!(
            err.message.contains("not a regular file"),
            "{}",
            err.message
        );

        // A lock path that is a device: refused before it is opened or read.
        let state = dir.path().join("s.json");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("s.json.lock")).unwrap();
        let err = StateFile::open(&state, Duration::ZERO).unwrap_err();
        assert!(
            err.message.contains("not a regular file"),
            "{}",
            err.message
        );
        assert!(!state.exists());
    }

    #[test]
    fn an_oversized_state_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let file = File::create(&path).unwrap();
        file.set_len(MAX_STATE_BYTES + 1).unwrap();
        let err = StateFile::open(&path, Duration::ZERO).unwrap_err();
        assert_eq!(err.kind.exit_code(), 7);
        assert!(
            err.message.contains("larger than 16 MiB"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_prepared_state_is_invisible_until_committed_and_gone_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{}").unwrap();
        let mut state = StateFile::open(&path, Duration::ZERO).unwrap();
        let t = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 1, 2, 3, 4, 5).unwrap();
        state.advance(
            "k",
            &Bookmark {
                created_at: Some(t),
                ids: vec!["1".into()],
            },
            t,
        );
        let prepared = state.prepare().unwrap();
        let during = names(dir.path());
        assert_eq!(during.len(), 3, "{during:?}");
        let temp = during.iter().find(|n| n.ends_with(".tmp")).unwrap();
        assert!(
            temp.starts_with(&format!(".state.json.leads-{}-", std::process::id())),
            "{temp}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}");
        drop(prepared);
        assert_eq!(names(dir.path()), ["state.json", "state.json.lock"]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}");
        state.prepare().unwrap().commit().unwrap();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("2025-01-02T03:04:05.000000Z")
        );
        assert_eq!(names(dir.path()), ["state.json", "state.json.lock"]);
    }

    #[test]
    fn stale_state_temporaries_of_dead_runs_are_removed_live_ones_kept() {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        // pid_max is at most 2^22 on Linux: this pid cannot be running.
        let dead = ".state.json.leads-4194305-abc123.tmp";
        // The parent (the test runner) is alive while this test runs.
        #[cfg(unix)]
        let live = format!(
            ".state.json.leads-{}-abc123.tmp",
            std::os::unix::process::parent_id()
        );
        #[cfg(not(unix))]
        let live = ".state.json.leads-1-abc123.tmp".to_owned();
        let unrelated = ".state.json.x1y2z3.tmp";
        for name in [dead, live.as_str(), unrelated] {
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        let _state = StateFile::open(&path, Duration::ZERO).unwrap();
        let left = names(dir.path());
        assert!(!left.iter().any(|n| n == dead), "{left:?}");
        assert!(left.contains(&live), "{left:?}");
        assert!(left.iter().any(|n| n == unrelated), "{left:?}");
    }
}
