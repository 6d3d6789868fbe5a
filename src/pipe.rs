//! A response body on its way from the task that fetches it to the walk
//! that parses it. What is read ahead is bounded by bytes, not by pages
//! (docs/SPEC.md section 9): each pipe holds at most its share of the
//! read-ahead budget; a fetch task that would go over waits, and so stops
//! reading its socket, until the walk takes what it holds. The pipe of the
//! body the walk is parsing is drained as it fills, so a body larger than
//! the whole budget still goes through, a share at a time.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// The bytes all the bodies read ahead of the walk may hold together.
pub const READ_AHEAD_BYTES: usize = 4 * 1024 * 1024;
/// The smallest share of the budget one pipe gets, however many requests
/// are in flight.
const MIN_SHARE: usize = 256 * 1024;

/// Each pipe's share of [`READ_AHEAD_BYTES`] when `pipes` bodies are in
/// flight at once.
pub fn share(pipes: usize) -> usize {
    (READ_AHEAD_BYTES / pipes.max(1)).max(MIN_SHARE)
}

/// What the fetch side sends.
pub enum Piece {
    /// Part of the body, in order; the permit returns its bytes to the
    /// pipe's allowance when the piece is dropped.
    Chunk(Bytes, #[allow(dead_code)] OwnedSemaphorePermit),
    /// The body's length, as the server announced it, before its chunks:
    /// a reader that collects the whole body sizes its buffer once.
    Length(u64),
    /// The attempt that sent the chunks so far failed and the request is
    /// being sent again: what was received of the body is void.
    Restart,
}

/// The fetch side of a pipe.
pub struct PipeWriter {
    pieces: mpsc::UnboundedSender<Piece>,
    room: Arc<Semaphore>,
    share: u32,
    /// Whether a chunk was sent since the last restart.
    sent: bool,
}

/// The parsing side; `None` from [`PipeReader::next`] is the end of the
/// body (the fetch task then holds the outcome).
pub struct PipeReader {
    pieces: mpsc::UnboundedReceiver<Piece>,
}

pub fn pipe(share: usize) -> (PipeWriter, PipeReader) {
    let share = u32::try_from(share).unwrap_or(u32::MAX).max(1);
    let (sender, receiver) = mpsc::unbounded_channel();
    (
        PipeWriter {
            pieces: sender,
            room: Arc::new(Semaphore::new(share as usize)),
            share,
            sent: false,
        },
        PipeReader { pieces: receiver },
    )
}

impl PipeWriter {
    /// Sends a chunk once the pipe has room for it (a chunk larger than
    /// the whole share waits for an empty pipe). False when the reader is
    /// gone: nobody wants the rest of the body.
    pub async fn send(&mut self, chunk: Bytes) -> bool {
        let wanted = u32::try_from(chunk.len())
            .unwrap_or(u32::MAX)
            .clamp(1, self.share);
        let Ok(permit) = self.room.clone().acquire_many_owned(wanted).await else {
            return false;
        };
        self.sent = true;
        self.pieces.send(Piece::Chunk(chunk, permit)).is_ok()
    }

    /// Announces the body's length before its first chunk.
    pub fn announce(&mut self, length: u64) {
        let _ = self.pieces.send(Piece::Length(length));
    }

    /// The next attempt starts over: tells the reader to drop what it got.
    pub fn restart(&mut self) {
        if std::mem::take(&mut self.sent) {
            let _ = self.pieces.send(Piece::Restart);
        }
    }
}

impl PipeReader {
    pub async fn next(&mut self) -> Option<Piece> {
        self.pieces.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_writer_waits_once_its_share_is_held_and_goes_on_when_the_reader_takes_it() {
        let (mut writer, mut reader) = pipe(10);
        assert!(writer.send(Bytes::from_static(b"0123456")).await);
        let blocked = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            writer.send(Bytes::from_static(b"789ab")),
        )
        .await;
        assert!(blocked.is_err(), "12 bytes would be over a share of 10");
        let Some(Piece::Chunk(first, _)) = reader.next().await else {
            panic!("a chunk")
        };
        assert_eq!(&first[..], b"0123456");
        drop(first);
        // The first chunk was taken (its permit dropped with the piece).
        assert!(writer.send(Bytes::from_static(b"789ab")).await);
        let Some(Piece::Chunk(second, _)) = reader.next().await else {
            panic!("a chunk")
        };
        assert_eq!(&second[..], b"789ab");
        drop(writer);
        assert!(reader.next().await.is_none());
    }

    #[tokio::test]
    async fn a_chunk_larger_than_the_share_goes_through_an_empty_pipe() {
        let (mut writer, mut reader) = pipe(4);
        assert!(
            writer
                .send(Bytes::from_static(b"a chunk of 19 bytes"))
                .await
        );
        let Some(Piece::Chunk(chunk, _)) = reader.next().await else {
            panic!("a chunk")
        };
        assert_eq!(chunk.len(), 19);
    }

    #[tokio::test]
    async fn restart_is_sent_only_after_a_chunk_and_a_gone_reader_stops_the_writer() {
        let (mut writer, mut reader) = pipe(100);
        writer.restart();
        assert!(writer.send(Bytes::from_static(b"x")).await);
        writer.restart();
        writer.restart();
        assert!(matches!(reader.next().await, Some(Piece::Chunk(..))));
        assert!(matches!(reader.next().await, Some(Piece::Restart)));
        drop(reader);
        assert!(!writer.send(Bytes::from_static(b"y")).await);
    }

    #[test]
    fn shares_split_the_budget_but_never_below_the_floor() {
        assert_eq!(share(1), READ_AHEAD_BYTES);
        assert_eq!(share(4), READ_AHEAD_BYTES / 4);
        assert_eq!(share(0), READ_AHEAD_BYTES);
        assert_eq!(share(10_000), MIN_SHARE);
    }
}
