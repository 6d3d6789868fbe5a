//! Incremental runs (`--state PATH`, SPEC section 7): a JSON file with one
//! bookmark per `vendor/agent/resource` — the newest `created_at` written and
//! the ids that share it — locked for the run and replaced atomically only
//! after the output is complete.
//!
//! The lock is taken on a sibling `PATH.lock` file, not on the state file
//! itself, because the state file is replaced by a rename and a lock on the
//! old inode would not stop the next run. Locking uses the standard
//! library's advisory `File::try_lock` (flock on Unix), so no extra crate.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::export::Bookmark;
use crate::model::{Resource, Vendor, format_timestamp};
use crate::time::parse_vendor_timestamp;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct StateData {
    version: u32,
    bookmarks: BTreeMap<String, StoredBookmark>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct StoredBookmark {
    created_at: String,
    ids: Vec<String>,
    updated_at: String,
}

/// An open, locked state file. Dropping it releases the lock.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    data: StateData,
    _lock: File,
}

pub fn bookmark_key(vendor: Vendor, agent: &str, resource: Resource) -> String {
    format!("{}/{}/{}", vendor.as_str(), agent, resource.as_str())
}

impl StateFile {
    /// Locks `PATH.lock` (waiting up to `wait`) and reads `PATH` if it exists.
    pub fn open(path: &Path, wait: Duration) -> Result<StateFile> {
        let lock_path = lock_path(path);
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
        let deadline = Instant::now() + wait;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = lock.read_to_string(&mut holder);
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

        let data = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::local_file(format!(
                    "state file {} is not a leads state file: {e}",
                    path.display()
                ))
                .with_hint(
                    "move it away to start over (the next run then exports everything again)",
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateData {
                version: 1,
                ..StateData::default()
            },
            Err(e) => {
                return Err(Error::local_file(format!(
                    "cannot read the state file {}: {e}",
                    path.display()
                )));
            }
        };
        Ok(StateFile {
            path: path.to_owned(),
            data,
            _lock: lock,
        })
    }

    pub fn bookmark(&self, key: &str) -> Option<Bookmark> {
        let stored = self.data.bookmarks.get(key)?;
        Some(Bookmark {
            created_at: parse_vendor_timestamp(&stored.created_at),
            ids: stored.ids.clone(),
        })
    }

    /// Moves the bookmark forward (never back).
    pub fn advance(&mut self, key: &str, newest: &Bookmark, now: DateTime<Utc>) {
        let Some(created) = newest.created_at else {
            return;
        };
        let merged = match self.bookmark(key) {
            Some(old) if old.created_at > Some(created) => return,
            Some(old) if old.created_at == Some(created) => {
                let mut ids = old.ids;
                for id in &newest.ids {
                    if !ids.contains(id) {
                        ids.push(id.clone());
                    }
                }
                ids
            }
            _ => newest.ids.clone(),
        };
        self.data.bookmarks.insert(
            key.to_owned(),
            StoredBookmark {
                created_at: format_timestamp(&created),
                ids: merged,
                updated_at: format_timestamp(&now),
            },
        );
    }

    /// Writes the state atomically: a temporary file beside it, renamed over.
    pub fn save(&self) -> Result<()> {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let fail = |e: std::io::Error| {
            Error::local_file(format!(
                "cannot write the state file {}: {e}",
                self.path.display()
            ))
        };
        let mut temp = tempfile::Builder::new()
            .prefix(".leads-state.")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(fail)?;
        serde_json::to_writer_pretty(&mut temp, &self.data).map_err(|e| fail(e.into()))?;
        temp.write_all(b"\n").map_err(fail)?;
        temp.as_file().sync_all().map_err(fail)?;
        temp.persist(&self.path).map_err(|e| fail(e.error))?;
        Ok(())
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
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
}
