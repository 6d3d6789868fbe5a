//! The output file: stdout, or a file that is only put in place once
//! everything was written (docs/SPEC.md section 1 "Output"). Write errors come back
//! as the original `io::Error` so the caller can tell a closed pipe
//! (`| head -1`, a quiet success) from a real failure.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, BufWriter, Stdout, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempPath;

use super::Destination;
use crate::error::{Error, Result};

/// `Stdout` rather than its lock, so the writer is `Send` (the XLSX writer
/// needs that); behind a 64 KiB buffer the lock per write costs nothing.
enum Sink {
    Stdout(Stdout),
    File(File),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stdout(s) => s.write(buf),
            Sink::File(f) => f.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout(s) => s.write_all(buf),
            Sink::File(f) => f.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(s) => s.flush(),
            Sink::File(f) => f.flush(),
        }
    }
}

const BUFFER_SIZE: usize = 64 * 1024;

/// The buffered writer of an [`OutputFile`]. A concrete type rather than
/// `dyn Write` so serde_json's many small writes hit an inlined fast path
/// instead of a virtual call each.
pub struct OutputWriter {
    inner: Buffer,
}

enum Buffer {
    /// Stdout, a FIFO or a device: written from the run's own thread, so a
    /// reader that goes away (`| head -1`) is seen at the next write.
    Direct(BufWriter<Sink>),
    /// A regular file: its bytes are written by a thread of its own when
    /// they come fast. Boxed: the writer is held by value all the way up
    /// to the output's `Sink`, whose other variant is small.
    Chunked(Box<ChunkWriter>),
}

impl Write for OutputWriter {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Buffer::Direct(out) => out.write(buf),
            Buffer::Chunked(out) => out.write(buf),
        }
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            Buffer::Direct(out) => out.write_all(buf),
            Buffer::Chunked(out) => out.write_all(buf),
        }
    }

    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Buffer::Direct(out) => out.flush(),
            Buffer::Chunked(out) => out.flush(),
        }
    }
}

/// What a [`ChunkWriter`] fills before handing it on.
const CHUNK_SIZE: usize = 256 * 1024;

/// Chunks handed on and not yet written: with the one being filled and
/// the one being written, at most 4 x 256 KiB in memory.
const CHUNKS_QUEUED: usize = 2;

/// A chunk that took at least this long to fill is written from the
/// caller's thread rather than handed on: the export is waiting on the
/// network, its thread has time to spare, and waking another thread to
/// copy 256 KiB costs more CPU than the copy (the latency-bound export of
/// bench row (b), 200 pages at 50 ms: 0.93x the CPU of handing every
/// chunk on, median of 15 alternated pairs). An export bound by its own
/// CPU fills a chunk in 0.5-4 ms.
const HAND_ON_FILLED_WITHIN: Duration = Duration::from_millis(10);

/// Writes a regular file's bytes on a thread of its own, 256 KiB at a
/// time, so the export's thread goes on fetching and formatting while the
/// kernel copies the last chunk into the page cache. That copy was 8-14%
/// of a 1M-lead export's CPU, all of it on the one thread that also parses
/// (issue 14). The thread starts with the first chunk filled within
/// [`HAND_ON_FILLED_WITHIN`]: an output smaller than a chunk, or one
/// produced slowly, is written as before, from the caller's thread.
///
/// A write of a chunk or more (a conversation with large messages) is not
/// copied: once the thread has written what came before, it goes to the
/// file from the caller's thread, as `BufWriter` does, so memory stays at
/// a few chunks whatever the record size.
///
/// The bytes reach the file in order, and a write error is not lost: it
/// comes back from the next `write`, from `flush`, or from
/// [`ChunkWriter::into_file`].
struct ChunkWriter {
    chunk: Vec<u8>,
    /// When `chunk` started filling.
    filling_since: Instant,
    hand_on_filled_within: Duration,
    /// Shared with the thread: both write through `&File`, never at once.
    file: Arc<File>,
    state: ChunkState,
}

enum ChunkState {
    /// Nothing handed on yet.
    Idle,
    Running {
        chunks: SyncSender<Vec<u8>>,
        /// Written chunks coming back, to be filled again.
        written: Receiver<Vec<u8>>,
        /// Chunks handed on and not yet back.
        in_flight: usize,
        thread: JoinHandle<io::Result<()>>,
    },
    /// The thread failed with this error (kind and message: `io::Error`
    /// cannot be cloned), or the writer was finished.
    Failed(io::ErrorKind, String),
}

impl ChunkWriter {
    fn new(file: File) -> ChunkWriter {
        ChunkWriter {
            chunk: Vec::with_capacity(CHUNK_SIZE),
            filling_since: Instant::now(),
            hand_on_filled_within: HAND_ON_FILLED_WITHIN,
            file: Arc::new(file),
            state: ChunkState::Idle,
        }
    }

    /// A full chunk: handed on if it filled quickly, else written here
    /// once the thread has written what it was given.
    fn chunk_full(&mut self) -> io::Result<()> {
        let now = Instant::now();
        let filled_in = now.duration_since(self.filling_since);
        self.filling_since = now;
        if filled_in < self.hand_on_filled_within || !self.caught_up()? {
            return self.hand_on();
        }
        (&*self.file).write_all(&self.chunk)?;
        self.chunk.clear();
        Ok(())
    }

    #[cfg(test)]
    fn thread_started(&self) -> bool {
        !matches!(self.state, ChunkState::Idle)
    }

    #[cfg(test)]
    fn handed_on_not_back(&self) -> usize {
        match self.state {
            ChunkState::Running { in_flight, .. } => in_flight,
            _ => 0,
        }
    }

    /// Whether every chunk handed on is in the file, without waiting.
    fn caught_up(&mut self) -> io::Result<bool> {
        match &mut self.state {
            ChunkState::Idle => Ok(true),
            ChunkState::Running {
                written, in_flight, ..
            } => {
                while *in_flight > 0 && written.try_recv().is_ok() {
                    *in_flight -= 1;
                }
                Ok(*in_flight == 0)
            }
            ChunkState::Failed(..) => Err(self.error()),
        }
    }

    /// Hands the filled chunk to the writing thread, starting it first if
    /// need be.
    fn hand_on(&mut self) -> io::Result<()> {
        if let ChunkState::Idle = self.state {
            self.start()?;
        }
        let ChunkState::Running {
            chunks,
            written,
            in_flight,
            ..
        } = &mut self.state
        else {
            return Err(self.error());
        };
        let next = match written.try_recv() {
            Ok(spare) => {
                *in_flight -= 1;
                spare
            }
            Err(_) => Vec::with_capacity(CHUNK_SIZE),
        };
        let full = std::mem::replace(&mut self.chunk, next);
        if chunks.send(full).is_err() {
            // The thread stopped: it failed, and says why when joined.
            self.stop()?;
            return Err(self.error());
        }
        *in_flight += 1;
        Ok(())
    }

    /// Waits until everything handed on is in the file.
    fn drain(&mut self) -> io::Result<()> {
        if let ChunkState::Running {
            written, in_flight, ..
        } = &mut self.state
        {
            while *in_flight > 0 {
                if written.recv().is_err() {
                    self.stop()?;
                    return Err(self.error());
                }
                *in_flight -= 1;
            }
        }
        Ok(())
    }

    fn start(&mut self) -> io::Result<()> {
        let (chunks, queued) = std::sync::mpsc::sync_channel::<Vec<u8>>(CHUNKS_QUEUED);
        let (done, written) = std::sync::mpsc::channel();
        let file = Arc::clone(&self.file);
        let thread = std::thread::Builder::new()
            .name("leads-output".into())
            .spawn(move || {
                for mut chunk in queued {
                    (&*file).write_all(&chunk)?;
                    chunk.clear();
                    // The writer may be gone already: the chunk is then
                    // simply freed.
                    let _ = done.send(chunk);
                }
                Ok(())
            })
            .inspect_err(|e| self.state = ChunkState::Failed(e.kind(), e.to_string()))?;
        self.state = ChunkState::Running {
            chunks,
            written,
            in_flight: 0,
            thread,
        };
        Ok(())
    }

    /// Ends the thread after what was handed on is written, or hands back
    /// the error that stopped it (also kept for later calls).
    fn stop(&mut self) -> io::Result<()> {
        let state = std::mem::replace(
            &mut self.state,
            ChunkState::Failed(io::ErrorKind::Other, "the output was finished".into()),
        );
        let outcome = match state {
            ChunkState::Idle => Ok(()),
            ChunkState::Running { chunks, thread, .. } => {
                drop(chunks);
                thread.join().unwrap_or_else(|_| {
                    Err(io::Error::other("the output thread stopped unexpectedly"))
                })
            }
            ChunkState::Failed(kind, message) => Err(io::Error::new(kind, message)),
        };
        match &outcome {
            Ok(()) => self.state = ChunkState::Idle,
            Err(e) => self.state = ChunkState::Failed(e.kind(), e.to_string()),
        }
        outcome
    }

    fn error(&self) -> io::Error {
        match &self.state {
            ChunkState::Failed(kind, message) => io::Error::new(*kind, message.clone()),
            _ => io::Error::other("the output thread is still running"),
        }
    }

    /// Everything written (the last partial chunk included) and the thread
    /// ended: the file, ready to be synced.
    fn into_file(mut self) -> io::Result<File> {
        self.stop()?;
        (&*self.file).write_all(&self.chunk)?;
        let file = Arc::clone(&self.file);
        // The thread has ended and dropped its handle; this is the other.
        drop(self);
        Arc::try_unwrap(file).map_err(|_| io::Error::other("the output file is still shared"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if let ChunkState::Failed(..) = self.state {
            return Err(self.error());
        }
        if self.chunk.len() + buf.len() > CHUNK_SIZE {
            if !self.chunk.is_empty() {
                self.chunk_full()?;
            }
            if buf.len() >= CHUNK_SIZE {
                self.drain()?;
                return (&*self.file).write_all(buf);
            }
        }
        self.chunk.extend_from_slice(buf);
        Ok(())
    }

    /// Everything buffered is in the file when this returns, or its error
    /// comes back: before the thread started the bytes are written here,
    /// after it, what is left is handed on and waited for.
    fn flush(&mut self) -> io::Result<()> {
        match self.state {
            ChunkState::Idle => {
                (&*self.file).write_all(&self.chunk)?;
                self.chunk.clear();
                Ok(())
            }
            ChunkState::Running { .. } => {
                if !self.chunk.is_empty() {
                    self.hand_on()?;
                }
                self.drain()
            }
            ChunkState::Failed(..) => Err(self.error()),
        }
    }
}

impl Drop for ChunkWriter {
    /// A failed or interrupted run drops its output: the thread is ended
    /// (at most the queued chunks are still written) before the caller
    /// removes the temporary file.
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

enum Target {
    Stdout,
    /// A regular file (new or existing): written to a temporary file beside
    /// it and renamed over it on commit.
    Atomic {
        path: PathBuf,
        temp: TempPath,
    },
    /// An existing non-regular file such as `/dev/null`, a FIFO or a
    /// process substitution (`-o >(gzip > out.gz)`): there is nothing to
    /// rename over, and replacing a device node with a regular file would be
    /// a disaster, so it is written directly.
    Direct {
        path: PathBuf,
    },
}

/// Where a split [`OutputFile`]'s bytes go; dropping it removes the
/// temporary file, like dropping the `OutputFile`.
pub struct PendingFile(Target);

impl PendingFile {
    /// Whether nothing written reaches its reader before the commit: a
    /// temporary file renamed in place (not stdout, nor a FIFO or device
    /// written directly).
    pub fn is_atomic(&self) -> bool {
        matches!(self.0, Target::Atomic { .. })
    }

    pub fn join(self, writer: OutputWriter) -> OutputFile {
        OutputFile {
            writer,
            target: self.0,
        }
    }
}

/// An open destination. Dropping it without [`commit`](OutputFile::commit)
/// removes the temporary file and leaves an existing target untouched.
pub struct OutputFile {
    // Declared before `target` so the file handle is closed before the
    // temporary path is deleted (required on Windows, tidy elsewhere).
    writer: OutputWriter,
    target: Target,
}

impl OutputFile {
    pub fn open(dest: &Destination) -> Result<OutputFile> {
        let (sink, target) = match dest {
            Destination::Stdout => (Sink::Stdout(io::stdout()), Target::Stdout),
            Destination::File(path) => open_file(path)?,
            Destination::Database(_) => {
                return Err(Error::internal("a database output is not opened as a file"));
            }
        };
        let inner = match (sink, &target) {
            (Sink::File(file), Target::Atomic { .. }) => {
                Buffer::Chunked(Box::new(ChunkWriter::new(file)))
            }
            (sink, _) => Buffer::Direct(BufWriter::with_capacity(BUFFER_SIZE, sink)),
        };
        Ok(OutputFile {
            writer: OutputWriter { inner },
            target,
        })
    }

    pub fn writer(&mut self) -> &mut OutputWriter {
        &mut self.writer
    }

    /// The writer apart from where it goes, so the writer can be owned by
    /// the formats above it; [`PendingFile::join`] puts them back together.
    pub fn split(self) -> (OutputWriter, PendingFile) {
        (self.writer, PendingFile(self.target))
    }

    /// Flushes, syncs and renames the temporary file over the target. For
    /// stdout only flushes, and a reader that already went away (broken
    /// pipe) is success, as docs/SPEC.md section 1 asks for `| head -1`.
    pub fn commit(self) -> Result<()> {
        let OutputFile { writer, target } = self;
        match (target, writer.inner) {
            (Target::Stdout, Buffer::Direct(out)) => match out.into_inner() {
                Ok(_) => Ok(()),
                Err(e) if e.error().kind() == io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(Error::local_file(format!(
                    "cannot write to stdout: {}",
                    e.error()
                ))),
            },
            (Target::Direct { path }, Buffer::Direct(out)) => {
                let sink = out
                    .into_inner()
                    .map_err(|e| cannot_write(&path, e.error()))?;
                drop(sink);
                Ok(())
            }
            (Target::Atomic { path, temp }, Buffer::Chunked(out)) => {
                let file = out.into_file().map_err(|e| cannot_write(&path, &e))?;
                // Without the sync a crash soon after the rename can leave
                // an empty or partial file under the final name.
                file.sync_all().map_err(|e| cannot_write(&path, &e))?;
                drop(file);
                temp.persist(&path)
                    .map_err(|e| cannot_write(&path, &e.error))?;
                sync_parent(&path);
                Ok(())
            }
            _ => Err(Error::internal("an output file joined to another's writer")),
        }
    }
}

fn open_file(path: &Path) -> Result<(Sink, Target)> {
    let existing = match fs::metadata(path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(cannot_write(path, &e)),
    };
    if let Some(meta) = &existing {
        if meta.is_dir() {
            return Err(Error::local_file(format!(
                "cannot write {}: it is a directory",
                path.display()
            ))
            .with_hint("give a file name, e.g. -o leads.json"));
        }
        if !meta.is_file() {
            let file = fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| cannot_write(path, &e))?;
            let target = Target::Direct {
                path: path.to_owned(),
            };
            return Ok((Sink::File(file), target));
        }
        // The rename would replace a read-only file without complaint;
        // whoever made it read-only meant it not to be overwritten.
        if meta.permissions().readonly() {
            return Err(Error::local_file(format!(
                "cannot write {}: the file is read-only",
                path.display()
            )));
        }
    }

    // Like a shell's `>`, write through a symlink to the file it points at
    // (also one that does not exist yet) rather than replacing the link
    // with a regular file.
    let real = match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            resolve_path(path).map_err(|e| cannot_write(path, &e))?
        }
        _ => path.to_owned(),
    };
    let Some(name) = real.file_name() else {
        return Err(Error::local_file(format!(
            "cannot write {}: not a file name",
            path.display()
        )));
    };
    let dir = match real.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    remove_stale_temps(dir, name);
    let prefix = temp_prefix(name);
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(TEMP_SUFFIX).rand_bytes(6);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // tempfile's default is 0600; a new output file should get the
        // usual 0666 minus umask (open(2) applies the umask to this mode),
        // and a replaced one keeps its mode.
        let mode = existing
            .as_ref()
            .map(|meta| meta.permissions().mode() & 0o7777)
            .unwrap_or(0o666);
        builder.permissions(fs::Permissions::from_mode(mode));
    }
    let temp = builder
        .tempfile_in(dir)
        .map_err(|e| {
            cannot_write(path, &e).with_hint(format!(
                "the directory {} must exist and be writable (the output is written there first, then renamed)",
                dir.display()
            ))
        })?;
    #[cfg(unix)]
    if let Some(meta) = &existing {
        // The umask also applied to the copied mode; restore it exactly.
        let _ = fs::set_permissions(temp.path(), meta.permissions());
    }
    let (file, temp) = temp.into_parts();
    Ok((Sink::File(file), Target::Atomic { path: real, temp }))
}

/// How many symlinks are followed before giving up (Linux's own limit).
const MAX_SYMLINKS: usize = 40;

/// The real location of `path`: every symlink followed, also when the last
/// one points at a file that does not exist yet (then its directory is
/// resolved and the name kept), so that every spelling of one state file
/// gives the same path, and so the same lock.
pub fn resolve_path(path: &Path) -> std::io::Result<PathBuf> {
    use std::io::{Error as IoError, ErrorKind as IoKind};
    let mut current = std::path::absolute(path)?;
    for _ in 0..MAX_SYMLINKS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            Ok(_) => return fs::canonicalize(&current),
            Err(e) if e.kind() == IoKind::NotFound => {
                let name = current
                    .file_name()
                    .ok_or_else(|| IoError::new(IoKind::InvalidInput, "not a file name"))?;
                let dir = match current.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir,
                    _ => Path::new("."),
                };
                return Ok(fs::canonicalize(dir)?.join(name));
            }
            Err(e) => return Err(e),
        }
    }
    Err(IoError::new(
        IoKind::InvalidInput,
        "too many levels of symbolic links",
    ))
}

const TEMP_SUFFIX: &str = ".tmp";

/// The name start of a temporary file written beside `name`:
/// `.NAME.leads-PID-`, then random letters and `.tmp`. The writer's pid is
/// in the name so that a later run can tell a file left behind by a killed
/// run (SIGKILL, power loss) from one a live run is still writing.
pub(crate) fn temp_prefix(name: &OsStr) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(format!(".leads-{}-", std::process::id()));
    prefix
}

/// Removes the temporary files beside `name` (in `dir`) whose writer is no
/// longer running. Without a way to tell (no `/proc`), nothing is removed:
/// deleting a live run's file would break that run. A file carrying this
/// process's own pid is stale too: this process creates its file for
/// `name` only after this sweep (and a container's leads is often pid 1
/// every time). Best effort: a file that cannot be removed stays.
pub(crate) fn remove_stale_temps(dir: &Path, name: &OsStr) {
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return;
    }
    let Some(name) = name.to_str() else { return };
    let prefix = format!(".{name}.leads-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let own = std::process::id();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(TEMP_SUFFIX))
            .and_then(|n| n.split_once('-'))
            .filter(|(_, random)| {
                !random.is_empty() && random.bytes().all(|b| b.is_ascii_alphanumeric())
            })
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid != own && proc_root.join(pid.to_string()).exists();
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        if !alive && regular {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Makes the rename itself durable; best effort, as not every platform or
/// file system lets a directory be opened and synced.
pub(crate) fn sync_parent(path: &Path) {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn cannot_write(path: &Path, e: &io::Error) -> Error {
    Error::local_file(format!("cannot write {}: {}", path.display(), os_reason(e)))
}

/// tempfile appends the temporary file's path to OS errors ("... at path
/// \"/dir/.out.json.x1Y2z3.tmp\""), which means nothing to the user and
/// would only confuse; its wrapper type is private, so cut the text.
pub(crate) fn os_reason(e: &io::Error) -> String {
    let text = e.to_string();
    if e.raw_os_error().is_none()
        && let Some((reason, _)) = text.rsplit_once(" at path \"")
    {
        return reason.to_owned();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn commit_replaces_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        fs::write(&path, "old contents").unwrap();
        let mut file = OutputFile::open(&Destination::File(path.clone())).unwrap();
        file.writer().write_all(b"new").unwrap();
        // Nothing visible under the final name until commit.
        assert_eq!(fs::read_to_string(&path).unwrap(), "old contents");
        let temps = dir_entries(dir.path());
        assert_eq!(temps.len(), 2);
        assert!(
            temps
                .iter()
                .any(|n| n.starts_with(".out.json.") && n.ends_with(".tmp")),
            "{temps:?}"
        );
        file.commit().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(dir_entries(dir.path()), ["out.json"]);
    }

    /// However slowly a test fills its chunks, they go to the thread.
    fn hand_on_every_chunk(file: &mut OutputFile) {
        match &mut file.writer.inner {
            Buffer::Chunked(chunks) => chunks.hand_on_filled_within = Duration::MAX,
            Buffer::Direct(_) => panic!("a regular file is written in chunks"),
        }
    }

    /// A regular file's bytes go through the writing thread: many chunks,
    /// records straddling their ends, one write larger than a chunk, all
    /// in order; the thread has ended and the temporary file is gone.
    #[test]
    fn chunked_output_keeps_every_byte_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.ndjson");
        let mut file = OutputFile::open(&Destination::File(path.clone())).unwrap();
        hand_on_every_chunk(&mut file);
        let mut expected = Vec::new();
        for n in 0..40_000u32 {
            let line = format!(
                "{{\"n\":{n},\"pad\":\"{}\"}}\n",
                "x".repeat((n % 97) as usize)
            );
            file.writer().write_all(line.as_bytes()).unwrap();
            expected.extend_from_slice(line.as_bytes());
            if n == 20_000 {
                let huge = vec![b'h'; 3 * CHUNK_SIZE + 17];
                file.writer().write_all(&huge).unwrap();
                expected.extend_from_slice(&huge);
                file.writer().flush().unwrap();
            }
        }
        assert!(expected.len() > 8 * CHUNK_SIZE);
        file.commit().unwrap();
        assert!(fs::read(&path).unwrap() == expected);
        assert_eq!(dir_entries(dir.path()), ["big.ndjson"]);
    }

    /// A record of a chunk or more (a conversation with large messages)
    /// goes to the file without being copied into a chunk, so the chunks
    /// in flight stay their size whatever the records' (bench row g grew
    /// by 60 MB when they took the largest record's size).
    #[test]
    fn large_records_are_not_copied_into_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conversations.ndjson");
        let mut writer = ChunkWriter::new(File::create(&path).unwrap());
        writer.hand_on_filled_within = Duration::MAX;
        let mut expected = Vec::new();
        for n in 0..12usize {
            let record = vec![
                b'a' + n as u8;
                if n % 3 == 0 {
                    5 * CHUNK_SIZE
                } else {
                    CHUNK_SIZE / 3
                }
            ];
            writer.write_all(&record).unwrap();
            expected.extend_from_slice(&record);
            assert!(
                writer.chunk.capacity() <= CHUNK_SIZE,
                "{}",
                writer.chunk.capacity()
            );
        }
        writer.into_file().unwrap();
        assert!(fs::read(&path).unwrap() == expected);
    }

    /// A write that fails on the writing thread (here a full disk) is
    /// reported, from a later write or at the latest by `flush`, with the
    /// kernel's error kind, and again when the file is taken.
    #[cfg(target_os = "linux")]
    #[test]
    fn chunked_output_reports_the_threads_write_error() {
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let mut writer = ChunkWriter::new(full);
        writer.hand_on_filled_within = Duration::MAX;
        let block = vec![b'x'; CHUNK_SIZE / 2 + 1];
        let failed = (0..64).find_map(|_| writer.write_all(&block).err());
        let error = match failed {
            Some(error) => error,
            None => writer.flush().unwrap_err(),
        };
        assert_eq!(error.kind(), io::ErrorKind::StorageFull, "{error}");
        let again = writer.into_file().unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::StorageFull, "{again}");
    }

    /// A failed run drops an output that already started its thread: the
    /// target keeps its old contents and no temporary file is left.
    #[test]
    fn dropping_a_chunked_output_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        fs::write(&path, "old contents").unwrap();
        let mut file = OutputFile::open(&Destination::File(path.clone())).unwrap();
        hand_on_every_chunk(&mut file);
        for _ in 0..10 {
            file.writer().write_all(&vec![b'n'; CHUNK_SIZE]).unwrap();
        }
        drop(file);
        assert_eq!(fs::read_to_string(&path).unwrap(), "old contents");
        assert_eq!(dir_entries(dir.path()), ["out.json"]);
    }

    /// Lines of a chunk's worth each, `count` of them.
    fn chunk_lines(first: usize, count: usize) -> Vec<Vec<u8>> {
        (first..first + count)
            .map(|n| {
                let mut line = format!("{n:08}").into_bytes();
                line.resize(CHUNK_SIZE / 2 - 1, b'.');
                line.push(b'\n');
                line
            })
            .collect()
    }

    /// Chunks that fill slowly (an export waiting on the network) are
    /// written from the caller's thread: no thread is started for them.
    #[test]
    fn slowly_filled_chunks_are_written_without_a_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slow.ndjson");
        let mut writer = ChunkWriter::new(File::create(&path).unwrap());
        writer.hand_on_filled_within = Duration::ZERO;
        let lines = chunk_lines(0, 9);
        for line in &lines {
            writer.write_all(line).unwrap();
        }
        assert!(!writer.thread_started());
        writer.into_file().unwrap();
        assert!(fs::read(&path).unwrap() == lines.concat());
    }

    /// An export that slows down once the thread is writing (the pages
    /// start to come slowly) writes its next chunks itself, after the
    /// thread's, and speeding up again hands them on: every byte in order.
    #[test]
    fn chunks_written_here_after_the_threads_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed.ndjson");
        let mut writer = ChunkWriter::new(File::create(&path).unwrap());
        let mut expected = Vec::new();
        for (round, within) in [Duration::MAX, Duration::ZERO, Duration::MAX, Duration::ZERO]
            .into_iter()
            .enumerate()
        {
            let slow = within == Duration::ZERO;
            writer.hand_on_filled_within = within;
            if slow {
                // The thread has written what it was given, so the first
                // slow chunk is written here rather than after it.
                writer.drain().unwrap();
            }
            for line in chunk_lines(round * 100, 12) {
                writer.write_all(&line).unwrap();
                expected.extend_from_slice(&line);
            }
            assert!(writer.thread_started());
            let in_flight = writer.handed_on_not_back();
            if slow {
                assert_eq!(in_flight, 0, "round {round}: a slow chunk was handed on");
            } else {
                assert!(in_flight > 0, "round {round}: no fast chunk was handed on");
            }
        }
        writer.into_file().unwrap();
        assert!(fs::read(&path).unwrap() == expected);
    }

    #[test]
    fn commit_creates_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.csv");
        let mut file = OutputFile::open(&Destination::File(path.clone())).unwrap();
        file.writer().write_all(b"id,vendor\n").unwrap();
        file.commit().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "id,vendor\n");
        assert_eq!(dir_entries(dir.path()), ["fresh.csv"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Not tempfile's private 0600: readable like any new file.
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_ne!(mode & 0o044, 0, "mode {mode:o}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn commit_keeps_the_mode_of_a_replaced_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let file = OutputFile::open(&Destination::File(path.clone())).unwrap();
        file.commit().unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
            0o640
        );
    }

    #[test]
    fn drop_without_commit_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let original = b"id,vendor\n1,x\n\xEF\xBB\xBFbinary\x00tail".to_vec();
        fs::write(&path, &original).unwrap();
        {
            let mut file = OutputFile::open(&Destination::File(path.clone())).unwrap();
            for i in 0..5000 {
                writeln!(file.writer(), "{i},chatzuri,bot1,lead,,José").unwrap();
            }
            // Dropped mid-stream, as on an error or Ctrl-C.
        }
        assert_eq!(fs::read(&path).unwrap(), original);
        assert_eq!(dir_entries(dir.path()), ["out.csv"]);

        // And when there was no target, none appears.
        let fresh = dir.path().join("new.json");
        let mut file = OutputFile::open(&Destination::File(fresh.clone())).unwrap();
        file.writer().write_all(b"[").unwrap();
        drop(file);
        assert!(!fresh.exists());
        assert_eq!(dir_entries(dir.path()), ["out.csv"]);
    }

    #[test]
    fn open_in_a_missing_directory_is_a_local_file_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("out.json");
        let err = OutputFile::open(&Destination::File(path.clone()))
            .err()
            .unwrap();
        assert_eq!(err.kind, crate::error::ErrorKind::LocalFile);
        assert_eq!(err.kind.exit_code(), 7);
        assert!(
            err.message
                .starts_with(&format!("cannot write {}: ", path.display())),
            "{}",
            err.message
        );
        assert!(!err.message.contains(".out.json."), "{}", err.message);
    }

    #[test]
    fn open_on_a_directory_is_a_local_file_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = OutputFile::open(&Destination::File(dir.path().to_owned()))
            .err()
            .unwrap();
        assert_eq!(err.kind, crate::error::ErrorKind::LocalFile);
        assert!(err.message.contains("directory"), "{}", err.message);
        assert!(dir_entries(dir.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_written_directly() {
        let dev_null = Path::new("/dev/null");
        let mut file = OutputFile::open(&Destination::File(dev_null.to_owned())).unwrap();
        file.writer().write_all(b"discarded").unwrap();
        file.commit().unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::metadata(dev_null).unwrap().file_type().is_char_device());
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        let link = dir.path().join("link.json");
        fs::write(&real, "old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut file = OutputFile::open(&Destination::File(link.clone())).unwrap();
        file.writer().write_all(b"new").unwrap();
        file.commit().unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_to_a_missing_file_are_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        let mut file = OutputFile::open(&Destination::File(link.clone())).unwrap();
        file.writer().write_all(b"new").unwrap();
        file.commit().unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("real.json")).unwrap(),
            "new"
        );
        assert_eq!(dir_entries(dir.path()), ["link.json", "real.json"]);
    }
}
