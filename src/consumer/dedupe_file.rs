//! [`FileIdempotencyStore`]: the bounded in-memory store, backed by an append-only file so
//! handled ids survive a restart.
//!
//! ```text
//!  open(path) ── read "<uuid> <unix ms>" lines, keep those younger than max_age ─▶ memory
//!  mark_processed(id) ── memory + append a line (flushed to the OS before returning,
//!                         fsynced at most sync_interval later)
//!  more than 2 × capacity lines written ── rewrite the file with what memory holds
//! ```

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::dedupe::{IdempotencyStore, MemoryIdempotencyStore};
use crate::error::{Error, ErrorKind, Result};

/// An [`IdempotencyStore`] that remembers at most `capacity` ids for at most `max_age`, like
/// [`MemoryIdempotencyStore`], and keeps them in a file so a restarted service still skips
/// messages it handled before it stopped.
///
/// Each mark is appended and flushed to the operating system before `mark_processed`
/// returns (it survives the process being killed); the file is `fsync`ed by the first mark
/// made [`with_sync_interval`](Self::with_sync_interval) or longer after the last sync (1 s
/// by default), by [`sync`](Self::sync), and when the store is dropped (a power loss may
/// forget the marks since the last sync: those messages are handled again). Compaction rewrites the file under the same lock
/// as the appends. One process per file. Unreadable lines are skipped when the file is
/// opened.
///
/// ```
/// use std::time::Duration;
/// use kafka_sync::{FileIdempotencyStore, IdempotencyStore};
///
/// let path = std::env::temp_dir().join(format!("ks-doc-{}.ids", uuid::Uuid::new_v4()));
/// let id = uuid::Uuid::new_v4();
/// FileIdempotencyStore::open(&path, 1000, Duration::from_secs(3600))
///     .unwrap()
///     .mark_processed(id)
///     .unwrap();
/// let reopened = FileIdempotencyStore::open(&path, 1000, Duration::from_secs(3600)).unwrap();
/// assert!(reopened.is_processed(&id).unwrap());
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub struct FileIdempotencyStore {
    path: PathBuf,
    memory: MemoryIdempotencyStore,
    capacity: usize,
    /// How often appended marks are `fsync`ed (zero: after every mark).
    sync_interval: Duration,
    file: Mutex<Appender>,
}

/// How often marks are `fsync`ed unless [`FileIdempotencyStore::with_sync_interval`] says
/// otherwise.
pub(crate) const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(1);

struct Appender {
    out: BufWriter<File>,
    lines: usize,
    /// When the file was last `fsync`ed.
    synced: Instant,
    /// Marks appended since then.
    unsynced: usize,
}

impl FileIdempotencyStore {
    /// Opens (or creates) the store at `path`, loading the ids younger than `max_age`.
    pub fn open(path: impl AsRef<Path>, capacity: usize, max_age: Duration) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let memory = MemoryIdempotencyStore::new(capacity, max_age);
        let mut lines = 0;
        if path.exists() {
            let file = File::open(&path).map_err(|e| io_error("opening", &path, e))?;
            let now = (SystemTime::now(), Instant::now());
            for line in BufReader::new(file).lines() {
                let line = line.map_err(|e| io_error("reading", &path, e))?;
                lines += 1;
                let Some((id, at)) = parse(&line) else {
                    log::warn!("{}: skipping unreadable line {line:?}", path.display());
                    continue;
                };
                let age = now.0.duration_since(at).unwrap_or(Duration::ZERO);
                if age <= max_age {
                    memory.mark_at(id, now.1.checked_sub(age).unwrap_or(now.1));
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error("opening", &path, e))?;
        Ok(FileIdempotencyStore {
            path,
            memory,
            capacity,
            sync_interval: DEFAULT_SYNC_INTERVAL,
            file: Mutex::new(Appender {
                out: BufWriter::new(file),
                lines,
                synced: Instant::now(),
                unsynced: 0,
            }),
        })
    }

    /// `fsync`s appended marks at most `interval` apart (`Duration::ZERO`: after every
    /// mark, before `mark_processed` returns). Default: 1 s: a
    /// power loss may forget the marks of the last second (those messages are handled
    /// again); a killed process loses none (each mark reaches the OS before returning).
    pub fn with_sync_interval(mut self, interval: Duration) -> Self {
        self.sync_interval = interval;
        self
    }

    /// `fsync`s every mark appended so far.
    pub fn sync(&self) -> Result<()> {
        let mut appender = self.lock();
        self.sync_locked(&mut appender)
    }

    fn sync_locked(&self, appender: &mut Appender) -> Result<()> {
        appender
            .out
            .flush()
            .and_then(|()| appender.out.get_ref().sync_data())
            .map_err(|e| io_error("syncing", &self.path, e))?;
        appender.synced = Instant::now();
        appender.unsynced = 0;
        Ok(())
    }

    /// The file the ids are kept in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Appender> {
        self.file.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rewrites the file with the ids memory holds (to a temporary file, `fsync`ed, then
    /// renamed over the file). Runs under the appender's lock, so no mark is appended to the
    /// file being replaced; one process per file.
    fn compact(&self, appender: &mut Appender) -> Result<()> {
        let tmp = self.path.with_extension("compacting");
        let mut out =
            BufWriter::new(File::create(&tmp).map_err(|e| io_error("creating", &tmp, e))?);
        let now = (SystemTime::now(), Instant::now());
        let entries = self.memory.entries();
        for (id, at) in &entries {
            let wall = now.0 - now.1.saturating_duration_since(*at);
            writeln!(out, "{}", line(id, wall)).map_err(|e| io_error("writing", &tmp, e))?;
        }
        out.flush()
            .and_then(|()| out.get_ref().sync_data())
            .map_err(|e| io_error("writing", &tmp, e))?;
        drop(out);
        std::fs::rename(&tmp, &self.path).map_err(|e| io_error("replacing", &self.path, e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename itself survives a power loss once its directory is synced.
            if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
                log::debug!("idempotency store: syncing {}: {e}", dir.display());
            }
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| io_error("opening", &self.path, e))?;
        *appender = Appender {
            out: BufWriter::new(file),
            lines: entries.len(),
            synced: Instant::now(),
            unsynced: 0,
        };
        Ok(())
    }
}

impl Drop for FileIdempotencyStore {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            log::warn!("{e}");
        }
    }
}

impl fmt::Debug for FileIdempotencyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileIdempotencyStore")
            .field("path", &self.path)
            .field("memory", &self.memory)
            .finish()
    }
}

impl IdempotencyStore for FileIdempotencyStore {
    fn is_processed(&self, id: &Uuid) -> Result<bool> {
        self.memory.is_processed(id)
    }

    fn mark_processed(&self, id: Uuid) -> Result<()> {
        if self.capacity == 0 {
            return Ok(());
        }
        self.memory.mark_processed(id)?;
        let mut appender = self.lock();
        let written = writeln!(appender.out, "{}", line(&id, SystemTime::now()))
            .and_then(|()| appender.out.flush());
        written.map_err(|e| io_error("appending to", &self.path, e))?;
        appender.lines += 1;
        appender.unsynced += 1;
        if appender.lines > self.capacity.saturating_mul(2).max(1024) {
            self.compact(&mut appender)?;
        } else if appender.synced.elapsed() >= self.sync_interval {
            self.sync_locked(&mut appender)?;
        }
        Ok(())
    }
}

fn line(id: &Uuid, at: SystemTime) -> String {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("{id} {ms}")
}

fn parse(line: &str) -> Option<(Uuid, SystemTime)> {
    let (id, ms) = line.trim().split_once(' ')?;
    let at = UNIX_EPOCH + Duration::from_millis(ms.parse().ok()?);
    Some((Uuid::parse_str(id).ok()?, at))
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("idempotency store: {what} {} failed", path.display()),
    )
    .with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        std::env::temp_dir().join(format!("ks-ids-{}.log", Uuid::new_v4()))
    }

    #[test]
    fn ids_survive_a_reopen_and_old_or_garbled_lines_are_dropped() {
        let path = temp();
        let old = Uuid::new_v4();
        std::fs::write(&path, format!("{old} 1000\nnot a line\n")).unwrap();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        {
            let store = FileIdempotencyStore::open(&path, 100, Duration::from_secs(60)).unwrap();
            for id in &ids {
                store.mark_processed(*id).unwrap();
            }
        }
        let store = FileIdempotencyStore::open(&path, 100, Duration::from_secs(60)).unwrap();
        assert!(ids.iter().all(|id| store.is_processed(id).unwrap()));
        assert!(!store.is_processed(&old).unwrap(), "older than max_age");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_file_that_cannot_be_opened_is_an_io_error_naming_it() {
        let path = std::env::temp_dir()
            .join(format!("ks-missing-dir-{}", Uuid::new_v4()))
            .join("ids.log");
        let e = FileIdempotencyStore::open(&path, 10, Duration::from_secs(60)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(e.to_string().contains("ids.log"), "{e}");
    }

    #[test]
    fn marks_are_synced_every_interval_or_at_once() {
        let path = temp();
        let store = FileIdempotencyStore::open(&path, 100, Duration::from_secs(60))
            .unwrap()
            .with_sync_interval(Duration::ZERO);
        store.mark_processed(Uuid::new_v4()).unwrap();
        assert_eq!(store.lock().unsynced, 0, "synced before returning");
        let store = FileIdempotencyStore::open(&path, 100, Duration::from_secs(60))
            .unwrap()
            .with_sync_interval(Duration::from_secs(3600));
        store.mark_processed(Uuid::new_v4()).unwrap();
        assert_eq!(store.lock().unsynced, 1, "waits for the interval");
        store.sync().unwrap();
        assert_eq!(store.lock().unsynced, 0);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_file_is_compacted_to_what_memory_holds() {
        let path = temp();
        let store = FileIdempotencyStore::open(&path, 10, Duration::from_secs(60)).unwrap();
        let ids: Vec<Uuid> = (0..1100).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            store.mark_processed(*id).unwrap();
        }
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < 200, "{lines} lines after compaction");
        let reopened = FileIdempotencyStore::open(&path, 10, Duration::from_secs(60)).unwrap();
        assert!(reopened.is_processed(ids.last().unwrap()).unwrap());
        assert!(!reopened.is_processed(&ids[0]).unwrap());
        std::fs::remove_file(&path).unwrap();
    }
}
