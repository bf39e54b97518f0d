//! The failure log: every request whose client did not get a complete answer, one JSON
//! object per line in `<data dir>/failures/YYYY-MM-DD.jsonl` (UTC days, files 0600, the
//! directory 0700). Requests hand records to a bounded channel and never wait for the disk;
//! one writer task batches the appends, keeps `keep_days` of files, and flushes and syncs
//! everything accepted before the server exits.

pub mod reader;
pub mod record;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::record::{RecordSink, RequestRecord};
pub use record::FailureRecord;

/// A batch is written after this many records or this long, whichever comes first.
const BATCH_RECORDS: usize = 100;
const BATCH_EVERY: Duration = Duration::from_secs(1);
/// A batch is also written once the queued records' bodies reach this many bytes: a storm
/// of large bodies is held for a dozen records, not a hundred, so less memory is held and
/// the bodies are still in the CPU's caches when the writer compares and scans them.
const BATCH_BODY_BYTES: usize = 1 << 20;
/// The most bytes of bodies the queue holds (a record's count alone would let 4 096 bodies
/// of up to `server.body_limit` each wait in memory); a record that would pass it is dropped
/// and counted, as when the queue is full.
const QUEUED_BODY_BYTES: usize = 64 << 20;
/// How many bytes of bodies already written the writer remembers, to write a repeated body
/// once a day file; past this it forgets them all and starts again.
const REMEMBERED_BODY_BYTES: usize = 8 << 20;
/// Bodies shorter than this are always written out: cheaper than hashing, comparing and
/// remembering them.
const SHORTEST_REFERRED_BODY: usize = 1024;
/// The batch buffer's capacity kept between batches.
const KEPT_LINE_BYTES: usize = 1 << 20;
/// Formatting lines yields to other tasks after this many bytes.
const YIELD_EVERY_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FailureLogError {
    #[error("cannot write the failure log in {dir}: {source}")]
    Write {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

/// A finished request the log keeps, and its number in this server's run.
type Queued = (Arc<RequestRecord>, u64);

/// The request side: queues the finished requests the log keeps.
pub struct FailureLog {
    queue: mpsc::Sender<Queued>,
    backlog: Arc<Backlog>,
    /// Records dropped because the queue was full.
    dropped: AtomicU64,
    /// Records queued, for record ids unique within this server.
    next: AtomicU64,
}

impl FailureLog {
    /// The log and its writer; run the writer on the server's background tasks.
    pub fn new(dir: PathBuf, keep_days: u32, capacity: usize) -> (Arc<FailureLog>, Writer) {
        Self::holding(dir, keep_days, capacity, QUEUED_BODY_BYTES)
    }

    /// [`FailureLog::new`] with a queue of at most `capacity` records and `body_bytes` of
    /// their bodies.
    fn holding(
        dir: PathBuf,
        keep_days: u32,
        capacity: usize,
        body_bytes: usize,
    ) -> (Arc<FailureLog>, Writer) {
        let (queue, incoming) = mpsc::channel(capacity.max(1));
        let backlog = Arc::new(Backlog {
            batch_full: tokio::sync::Notify::new(),
            body_bytes: AtomicUsize::new(0),
            most_body_bytes: body_bytes,
        });
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let log = Arc::new(FailureLog {
            queue,
            backlog: backlog.clone(),
            dropped: AtomicU64::new(0),
            next: AtomicU64::new(0),
        });
        let writer = Writer {
            dir,
            keep_days,
            incoming,
            backlog,
            batch_size: BATCH_RECORDS.min(capacity.max(1)),
            lines: Lines {
                id_prefix: format!("f{:x}{:03x}", started.as_secs(), started.subsec_millis()),
                ..Lines::default()
            },
            open: None,
        };
        (log, writer)
    }

    /// Records dropped so far because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl RecordSink for FailureLog {
    /// Queues the shared record as it is: the writer builds the line, off the request path.
    fn record(&self, record: &Arc<RequestRecord>) {
        if !FailureRecord::keeps(record) {
            return;
        }
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let size = body_len(record);
        if !self.backlog.reserve(size) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.queue.try_send((record.clone(), number)).is_err() {
            self.backlog.release(size);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        let queued = self.queue.max_capacity() - self.queue.capacity();
        if queued >= BATCH_RECORDS.min(self.queue.max_capacity())
            || self.backlog.bodies_fill_a_batch()
        {
            self.backlog.batch_full.notify_one();
        }
    }

    fn holds(&self, record: &RequestRecord) -> bool {
        FailureRecord::keeps(record)
    }
}

fn body_len(record: &RequestRecord) -> usize {
    record.body.as_ref().map_or(0, bytes::Bytes::len)
}

/// What the queue holds besides its records, shared by both ends.
struct Backlog {
    /// Wakes the writer when a batch is full; otherwise it wakes once a second, so a
    /// failure storm costs no thread wake-up a record.
    batch_full: tokio::sync::Notify,
    /// The bytes of the queued records' bodies.
    body_bytes: AtomicUsize,
    most_body_bytes: usize,
}

impl Backlog {
    /// Counts `size` more bytes of bodies queued, unless that passes the most the queue
    /// holds. A body larger than that on its own still goes into an empty queue.
    fn reserve(&self, size: usize) -> bool {
        let before = self.body_bytes.fetch_add(size, Ordering::Relaxed);
        if before > 0 && before + size > self.most_body_bytes {
            self.release(size);
            return false;
        }
        true
    }

    fn release(&self, size: usize) {
        self.body_bytes.fetch_sub(size, Ordering::Relaxed);
    }

    fn bodies_fill_a_batch(&self) -> bool {
        self.body_bytes.load(Ordering::Relaxed) >= BATCH_BODY_BYTES
    }
}

/// The writer task's half: owns the files.
pub struct Writer {
    dir: PathBuf,
    keep_days: u32,
    incoming: mpsc::Receiver<Queued>,
    backlog: Arc<Backlog>,
    /// A full batch: [`BATCH_RECORDS`], or the whole queue when it is smaller.
    batch_size: usize,
    lines: Lines,
    /// The day file appended to last: lent to each blocking append and given back.
    open: Option<DayFile>,
}

impl Writer {
    /// Writes batches until `stop`, then everything still queued, and syncs the files.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut batch: Vec<Queued> = Vec::new();
        let mut tick = tokio::time::interval(BATCH_EVERY);
        let mut last_prune: Option<String> = None;
        loop {
            let stopping = tokio::select! {
                _ = self.backlog.batch_full.notified() => {
                    // A wake-up left over from the last batch's requests: wait for a full
                    // batch, so a failure storm costs one write per hundred records.
                    if self.incoming.len() < self.batch_size && !self.backlog.bodies_fill_a_batch() {
                        continue;
                    }
                    false
                }
                _ = tick.tick() => false,
                _ = stop.cancelled() => true,
            };
            if stopping {
                self.incoming.close();
            }
            while let Ok(record) = self.incoming.try_recv() {
                self.backlog.release(body_len(&record.0));
                batch.push(record);
            }
            if !batch.is_empty() || stopping {
                self.write(std::mem::take(&mut batch), stopping).await;
            }
            let today = today();
            if last_prune.as_deref() != Some(today.as_str()) {
                self.prune(&today).await;
                last_prune = Some(today);
            }
            if stopping {
                return;
            }
        }
    }

    /// Turns the batch into lines here, on the runtime, and appends them on a blocking
    /// thread. The records were allocated by request tasks on the runtime's threads; freed
    /// here, their memory goes back to those threads' caches for the next requests, where
    /// freeing them on a blocking thread cost each failing request several microseconds.
    async fn write(&mut self, batch: Vec<Queued>, sync: bool) {
        let runs = self.lines.of(batch).await;
        let dir = self.dir.clone();
        let mut open = self.open.take();
        let appended = tokio::task::spawn_blocking(move || {
            let appended = append(&dir, &runs, &mut open, sync);
            (appended, open, runs)
        })
        .await;
        let error = match appended {
            Ok((appended, open, runs)) => {
                self.open = open;
                self.lines.take_back(runs);
                appended.err().map(|error| error.to_string())
            }
            Err(error) => Some(error.to_string()),
        };
        if let Some(error) = error {
            // Some remembered bodies may not have reached the file.
            self.lines.bodies.forget();
            self.open = None;
            tracing::error!(%error, "failure records lost");
        }
    }

    async fn prune(&self, today: &str) {
        let (dir, keep, today) = (self.dir.clone(), self.keep_days, today.to_string());
        let _ = tokio::task::spawn_blocking(move || prune(&dir, keep, &today)).await;
        // An open day file just deleted is found by the next batch's `same_file` check.
    }
}

/// Turns records into lines, and remembers what it needs to between batches.
#[derive(Default)]
struct Lines {
    /// Ids start with this server's start time, so they are unique across restarts too.
    id_prefix: String,
    bodies: WrittenBodies,
    /// The last batch's buffers, kept so a storm's batches reuse them.
    spare: DayLines,
}

/// A batch's lines for one UTC day: one run, or two around midnight.
#[derive(Default)]
struct DayLines {
    day: String,
    /// The lines without their bodies.
    lines: Vec<u8>,
    /// The bodies, each with where in `lines` it goes, in order: written from the request's
    /// own buffer, not copied into `lines` first.
    bodies: Vec<(usize, bytes::Bytes)>,
}

impl DayLines {
    fn starting(day: &str, mut spare: DayLines) -> DayLines {
        spare.day.clear();
        spare.day.push_str(day);
        spare
    }

    /// The lines, bodies in place, as slices for a vectored write.
    fn slices(&self) -> Vec<std::io::IoSlice<'_>> {
        let mut slices = Vec::with_capacity(self.bodies.len() * 2 + 1);
        let mut from = 0;
        for (at, body) in &self.bodies {
            slices.push(std::io::IoSlice::new(&self.lines[from..*at]));
            slices.push(std::io::IoSlice::new(body));
            from = *at;
        }
        slices.push(std::io::IoSlice::new(&self.lines[from..]));
        slices
    }
}

impl Lines {
    /// The batch's lines by day. A body already in its day's file is written as a
    /// reference to the record holding it.
    async fn of(&mut self, batch: Vec<Queued>) -> Vec<DayLines> {
        let mut runs: Vec<DayLines> = Vec::new();
        let mut since_yield = 0;
        for (request, number) in batch {
            let id = format!("{}-{number:06}", self.id_prefix);
            let Some((mut record, body)) = FailureRecord::of(&request, id) else {
                continue;
            };
            if runs.last().is_none_or(|run| run.day != record.day()) {
                let spare = if runs.is_empty() {
                    std::mem::take(&mut self.spare)
                } else {
                    DayLines::default()
                };
                runs.push(DayLines::starting(record.day(), spare));
            }
            let run = runs.last_mut().expect("pushed above");
            let before = run.lines.len();
            match self.bodies.earlier(&run.day, &body, &record.id) {
                Some(earlier) => record.line_referring_to(earlier, &mut run.lines),
                None => {
                    record.line_before_body(&mut run.lines);
                    since_yield += body.len(); // scanned for line breaks
                    run.bodies.push((run.lines.len(), record::one_line(&body)));
                    run.lines.extend_from_slice(record::LINE_AFTER_BODY);
                }
            }
            // Formatting a storm of records takes milliseconds: let requests on this
            // thread go on between them.
            since_yield += run.lines.len() - before;
            if since_yield >= YIELD_EVERY_BYTES {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
        }
        runs
    }

    /// The buffers of lines written, for the next batch. The bodies are let go here, on
    /// the runtime, for the reason [`Writer::write`] gives.
    fn take_back(&mut self, runs: Vec<DayLines>) {
        if let Some(mut run) = runs.into_iter().next() {
            run.lines.clear();
            run.bodies.clear();
            // Kept for the next batch, but not a storm's worth.
            run.lines.shrink_to(KEPT_LINE_BYTES);
            run.bodies.shrink_to(BATCH_RECORDS);
            self.spare = run;
        }
    }
}

/// The day file appended to last, kept open so a batch is one `write`, not an open, a
/// write and a close.
struct DayFile {
    day: String,
    file: std::fs::File,
}

/// The open file for `day`, opened (and the directory made) if it is not, or if the path
/// no longer names it (a person moved or deleted it: appends go to a new file).
fn day_file<'a>(
    open: &'a mut Option<DayFile>,
    dir: &Path,
    day: &str,
) -> std::io::Result<&'a mut std::fs::File> {
    let path = dir.join(format!("{day}.jsonl"));
    let still_there = open
        .as_ref()
        .is_some_and(|open| open.day == day && same_file(&open.file, &path));
    if !still_there {
        // Past midnight: yesterday's lines are on the disk before its file is let go, so a
        // shutdown's sync of the open file covers everything.
        if let Some(yesterday) = open.take().filter(|open| open.day != day) {
            yesterday.file.sync_all()?;
        }
        create_private_dir(dir)?;
        let file = open_private_append(&path)?;
        *open = Some(DayFile {
            day: day.to_string(),
            file,
        });
    }
    Ok(&mut open.as_mut().expect("opened above").file)
}

/// `file` is what `path` names now.
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        path.exists()
    }
}

/// The bodies already in the current day's file, by a sampled fingerprint, with the id of
/// the record that holds each. A fingerprint only finds a candidate; the whole body is
/// compared before a record refers to it.
#[derive(Default)]
struct WrittenBodies {
    day: String,
    ids: std::collections::HashMap<u64, (bytes::Bytes, String), foldhash::fast::RandomState>,
    bytes: usize,
    fingerprints: foldhash::fast::RandomState,
}

impl WrittenBodies {
    /// The record of `day` that already holds `body`; otherwise remembers `id` as its
    /// holder and says none.
    fn earlier(&mut self, day: &str, body: &bytes::Bytes, id: &str) -> Option<String> {
        if body.len() < SHORTEST_REFERRED_BODY {
            return None;
        }
        if self.day != day {
            self.forget();
            self.day = day.to_string();
        }
        let fingerprint = self.fingerprint(body);
        if let Some((held, earlier)) = self.ids.get(&fingerprint)
            && held == body
        {
            return Some(earlier.clone());
        }
        if self.bytes + body.len() > REMEMBERED_BODY_BYTES {
            self.forget();
        }
        if body.len() <= REMEMBERED_BODY_BYTES {
            self.bytes += body.len();
            // A different body with the same fingerprint gives way to the newer one, the
            // likelier to be retried.
            if let Some((older, _)) = self.ids.insert(fingerprint, (body.clone(), id.to_string())) {
                self.bytes -= older.len();
            }
        }
        None
    }

    /// A hash of the length, both ends and 16 slices spread over the body: a few hundred
    /// bytes read whatever the size, where hashing all of a 76 KB body cost ~11 µs a record.
    fn fingerprint(&self, body: &[u8]) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        const END: usize = 256;
        const SLICES: usize = 16;
        const SLICE: usize = 16;
        let mut hasher = self.fingerprints.build_hasher();
        hasher.write_usize(body.len());
        hasher.write(&body[..END.min(body.len())]);
        hasher.write(&body[body.len().saturating_sub(END)..]);
        let step = body.len() / SLICES;
        for i in 0..SLICES {
            let at = i * step;
            hasher.write(&body[at..(at + SLICE).min(body.len())]);
        }
        hasher.finish()
    }

    fn forget(&mut self) {
        self.ids.clear();
        self.bytes = 0;
    }
}

/// Appends each day's lines to its file, creating the directory (0700) and files (0600),
/// and syncs the open file to the disk if `sync`.
fn append(
    dir: &Path,
    runs: &[DayLines],
    open: &mut Option<DayFile>,
    sync: bool,
) -> Result<(), FailureLogError> {
    let failed = |source| FailureLogError::Write {
        dir: dir.display().to_string(),
        source,
    };
    for run in runs {
        let file = day_file(open, dir, &run.day).map_err(failed)?;
        write_all_vectored(file, &mut run.slices()).map_err(failed)?;
    }
    // Earlier batches went to the open file too: sync it even when this batch is empty.
    if sync && let Some(open) = open {
        open.file.sync_all().map_err(failed)?;
    }
    Ok(())
}

/// `Write::write_all_vectored`, which std has not made stable.
fn write_all_vectored(
    file: &mut std::fs::File,
    mut slices: &mut [std::io::IoSlice<'_>],
) -> std::io::Result<()> {
    use std::io::Write;
    std::io::IoSlice::advance_slices(&mut slices, 0); // past leading empty slices
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => std::io::IoSlice::advance_slices(&mut slices, written),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

pub(crate) fn open_private_append(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Deletes day files older than `keep_days` before `today`.
fn prune(dir: &Path, keep_days: u32, today: &str) {
    let Some(today) = reader::day_number(today) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(day) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(reader::day_number)
        else {
            continue;
        };
        if today - day >= i64::from(keep_days) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Today's UTC date, `YYYY-MM-DD`.
fn today() -> String {
    utc_day(std::time::SystemTime::now())
}

/// The UTC date of `time`, `YYYY-MM-DD`: what names a day's file.
pub(crate) fn utc_day(time: std::time::SystemTime) -> String {
    let mut text = humantime::format_rfc3339_seconds(time).to_string();
    text.truncate(10);
    text
}

#[cfg(test)]
mod tests {
    use super::{Backlog, FailureLog, WrittenBodies};
    use crate::record::RecordSink;
    use bytes::Bytes;
    use std::sync::Arc;

    /// A failed request whose client body is `len` bytes of JSON.
    fn failed_with_body(len: usize) -> Arc<crate::record::RequestRecord> {
        let mut record = crate::record::tests::record(500);
        let text = "a".repeat(len - r#"{"x":""}"#.len());
        record.body = Some(Bytes::from(format!(r#"{{"x":"{text}"}}"#)));
        Arc::new(record)
    }

    /// Stops `writer` (which writes everything queued) and parses today's file.
    async fn written_at_shutdown(
        writer: super::Writer,
        dir: &std::path::Path,
    ) -> Vec<serde_json::Value> {
        let stop = tokio_util::sync::CancellationToken::new();
        stop.cancel();
        writer.run(stop).await;
        let file = dir.join(format!("{}.jsonl", super::today()));
        std::fs::read_to_string(file)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_record_past_the_queued_body_bytes_is_dropped_counted_and_the_rest_written() {
        let dir = tempfile::tempdir().unwrap();
        let (log, writer) = FailureLog::holding(dir.path().to_path_buf(), 14, 100, 10_000);
        log.record(&failed_with_body(6_000));
        log.record(&failed_with_body(6_000)); // 12 000 bytes queued would pass 10 000
        log.record(&failed_with_body(3_000));
        assert_eq!(log.dropped(), 1);
        let sizes: Vec<usize> = written_at_shutdown(writer, dir.path())
            .await
            .iter()
            .map(|line| line["request"]["x"].as_str().unwrap().len() + r#"{"x":""}"#.len())
            .collect();
        assert_eq!(sizes, [6_000, 3_000]);
        assert_eq!(
            log.backlog
                .body_bytes
                .load(std::sync::atomic::Ordering::Relaxed),
            0,
            "the writer took every queued body off the count"
        );
    }

    /// A shutdown writes the whole queue as one batch: more slices than one `writev` takes.
    #[tokio::test]
    async fn a_batch_of_more_bodies_than_one_writev_takes_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (log, writer) = FailureLog::new(dir.path().to_path_buf(), 14, 4096);
        for n in 0..1500 {
            let mut record = crate::record::tests::record(500);
            // Distinct, and every third pretty-printed across lines.
            let gap = if n % 3 == 0 { "\n  " } else { "" };
            let body = format!(r#"{{{gap}"n":{n},"x":"{}"}}"#, "a".repeat(1_200));
            record.body = Some(Bytes::from(body));
            log.record(&Arc::new(record));
        }
        let numbers: Vec<u64> = written_at_shutdown(writer, dir.path())
            .await
            .iter()
            .map(|line| line["request"]["n"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, (0..1500).collect::<Vec<u64>>());
    }

    #[test]
    fn a_body_larger_than_the_queue_holds_still_goes_into_an_empty_queue() {
        let backlog = Backlog {
            batch_full: tokio::sync::Notify::new(),
            body_bytes: Default::default(),
            most_body_bytes: 10_000,
        };
        assert!(backlog.reserve(20_000));
        assert!(!backlog.reserve(1), "nothing more while it waits");
        backlog.release(20_000);
        assert!(backlog.reserve(1));
    }

    #[test]
    fn a_body_is_referred_to_only_when_every_byte_matches() {
        let mut bodies = WrittenBodies::default();
        let body = Bytes::from(vec![b'a'; 10_000]);
        assert_eq!(bodies.earlier("2026-12-03", &body, "f-1"), None);
        let again = Bytes::from(vec![b'a'; 10_000]);
        assert_eq!(
            bodies.earlier("2026-12-03", &again, "f-2").as_deref(),
            Some("f-1")
        );
        // One byte apart where no fingerprint slice reads: the fingerprints match, the
        // bodies do not, and the newer body takes the place.
        let mut changed = vec![b'a'; 10_000];
        changed[5_100] = b'b';
        let changed = Bytes::from(changed);
        assert_eq!(bodies.fingerprint(&changed), bodies.fingerprint(&body));
        assert_eq!(bodies.earlier("2026-12-03", &changed, "f-3"), None);
        assert_eq!(
            bodies.earlier("2026-12-03", &changed, "f-4").as_deref(),
            Some("f-3")
        );
        assert_eq!(
            bodies.bytes, 10_000,
            "the replaced body is no longer counted"
        );
        // A new day file holds none of them.
        assert_eq!(bodies.earlier("2026-12-04", &changed, "f-5"), None);
    }
}
