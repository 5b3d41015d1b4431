//! Bounded-memory external sort for reconciliation inputs.
//!
//! A day may bring up to a million counterparty records per biller; the
//! matcher wants them sorted by our reference. [`ExternalSorter`] keeps at
//! most `buffer_records` items in memory: when the buffer is full it is
//! sorted (stably) and written as a *run* to an anonymous temporary file in
//! the sorter's directory. [`ExternalSorter::finish`] merges the runs and
//! the in-memory tail with a k-way heap merge.
//!
//! - **Stable**: items with equal keys come out in insertion order (each
//!   run is sorted stably, and equal keys from different runs are taken
//!   from the earlier run first; the tail is the last run). The same input
//!   gives the same output, item for item.
//! - **Memory**: `buffer_records` items plus one item and one read buffer
//!   per run while merging.
//! - **Clean-up**: runs are unnamed temporary files (`O_TMPFILE`, or created
//!   and unlinked at once where that is not supported): they never appear
//!   in the directory, and their space is given back when the sorter or the
//!   [`SortedIter`] is dropped, on error or panic, and even when the process
//!   is killed. Nothing is left to sweep.
//! - **Format**: each item is encoded with bincode (varint integers), the
//!   runs are written and read through large buffers. Runs are private to
//!   the process that wrote them; the encoding is not a storage format.

use std::cmp::Ordering;
use std::collections::binary_heap::{BinaryHeap, PeekMut};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Write buffer of a run being spilled.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;
/// Read buffer of each run while merging.
const READ_BUFFER_BYTES: usize = 64 * 1024;

type Compare<T> = Arc<dyn Fn(&T, &T) -> Ordering + Send + Sync>;

fn codec() -> impl Options + Copy {
    bincode::DefaultOptions::new()
}

fn codec_error(e: bincode::ErrorKind) -> io::Error {
    match e {
        bincode::ErrorKind::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

/// One spilled run: an unnamed temporary file and how many items it holds.
struct Run {
    file: File,
    items: u64,
}

/// Sorts items of any serde type by a key, keeping at most
/// `buffer_records` of them in memory (see the module documentation).
pub struct ExternalSorter<T> {
    dir: PathBuf,
    buffer_records: usize,
    compare: Compare<T>,
    buffer: Vec<T>,
    runs: Vec<Run>,
}

impl<T: Serialize + DeserializeOwned + 'static> ExternalSorter<T> {
    /// A sorter ordering items by `key` (ascending), spilling to `dir`
    /// (which must exist) every `buffer_records` items.
    ///
    /// ```ignore
    /// let sorter = ExternalSorter::new(dir, 100_000, |r: &TheirRecord| r.our_reference.as_str())?;
    /// ```
    pub fn new<K>(dir: &Path, buffer_records: usize, key: fn(&T) -> &K) -> io::Result<Self>
    where
        K: Ord + ?Sized + 'static,
    {
        Self::with_compare(dir, buffer_records, move |a: &T, b: &T| key(a).cmp(key(b)))
    }

    /// A sorter ordering items by a comparison (for composite keys).
    /// Items comparing `Equal` keep their insertion order.
    pub fn with_compare(
        dir: &Path,
        buffer_records: usize,
        compare: impl Fn(&T, &T) -> Ordering + Send + Sync + 'static,
    ) -> io::Result<Self> {
        if buffer_records == 0 || buffer_records > u32::MAX as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("an external sort buffer holds 1 to {} records", u32::MAX),
            ));
        }
        let meta = std::fs::metadata(dir)?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(ExternalSorter {
            dir: dir.to_path_buf(),
            buffer_records,
            compare: Arc::new(compare),
            // Grows to `buffer_records` as items come, not allocated up front:
            // a small day stays small.
            buffer: Vec::new(),
            runs: Vec::new(),
        })
    }

    /// Adds an item; sorts and spills the buffer as a run when it is full.
    pub fn push(&mut self, item: T) -> io::Result<()> {
        self.buffer.push(item);
        if self.buffer.len() >= self.buffer_records {
            self.spill()?;
        }
        Ok(())
    }

    /// How many runs have been written to disk so far.
    pub fn spilled_runs(&self) -> usize {
        self.runs.len()
    }

    fn spill(&mut self) -> io::Result<()> {
        let compare = &self.compare;
        let buffer = &self.buffer;
        // Sort positions, not the items: a record is large and a merge sort
        // moves every item at each pass. `sort_by` is stable, so equal keys
        // keep their insertion order.
        let mut order: Vec<u32> = (0..buffer.len() as u32).collect();
        order.sort_by(|&a, &b| compare(&buffer[a as usize], &buffer[b as usize]));
        let file = tempfile::tempfile_in(&self.dir)?;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        for &i in &order {
            codec()
                .serialize_into(&mut out, &buffer[i as usize])
                .map_err(|e| codec_error(*e))?;
        }
        let items = buffer.len() as u64;
        self.buffer.clear();
        let mut file = out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        self.runs.push(Run { file, items });
        Ok(())
    }

    /// Sorts what is left in memory and returns the merged, sorted items.
    pub fn finish(mut self) -> io::Result<SortedIter<T>> {
        let compare = self.compare.clone();
        let mut tail = std::mem::take(&mut self.buffer);
        tail.sort_by(|a, b| compare(a, b));
        let spilled_runs = self.runs.len();
        if self.runs.is_empty() {
            return Ok(SortedIter {
                inner: Inner::Memory(tail.into_iter()),
                spilled_runs,
            });
        }
        let mut sources: Vec<Source<T>> = std::mem::take(&mut self.runs)
            .into_iter()
            .map(|run| Source::Run {
                reader: BufReader::with_capacity(READ_BUFFER_BYTES, run.file),
                left: run.items,
            })
            .collect();
        // The tail holds the newest items: it is the last source, so that
        // equal keys are taken from it last.
        sources.push(Source::Memory(tail.into_iter()));
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (index, source) in sources.iter_mut().enumerate() {
            if let Some(item) = source.next_item()? {
                heap.push(Head {
                    item,
                    source: index,
                    compare: compare.clone(),
                });
            }
        }
        Ok(SortedIter {
            inner: Inner::Merge {
                heap,
                sources,
                failed: false,
            },
            spilled_runs,
        })
    }
}

/// Where the merge takes its next item from.
enum Source<T> {
    Run { reader: BufReader<File>, left: u64 },
    Memory(std::vec::IntoIter<T>),
}

impl<T: DeserializeOwned> Source<T> {
    fn next_item(&mut self) -> io::Result<Option<T>> {
        match self {
            Source::Run { reader, left } => {
                if *left == 0 {
                    return Ok(None);
                }
                let item = codec()
                    .deserialize_from(reader)
                    .map_err(|e| codec_error(*e))?;
                *left -= 1;
                Ok(Some(item))
            }
            Source::Memory(items) => Ok(items.next()),
        }
    }
}

/// The smallest unread item of one source. `BinaryHeap` is a max-heap, so
/// the order is reversed: the smallest key, then the earliest source, is
/// the greatest.
struct Head<T> {
    item: T,
    source: usize,
    compare: Compare<T>,
}

impl<T> PartialEq for Head<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<T> Eq for Head<T> {}

impl<T> PartialOrd for Head<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Head<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.compare)(&self.item, &other.item)
            .then(self.source.cmp(&other.source))
            .reverse()
    }
}

enum Inner<T> {
    Memory(std::vec::IntoIter<T>),
    Merge {
        heap: BinaryHeap<Head<T>>,
        sources: Vec<Source<T>>,
        /// After an error the iterator ends.
        failed: bool,
    },
}

/// The sorted items. Dropping it closes (and so frees) every run.
pub struct SortedIter<T> {
    inner: Inner<T>,
    spilled_runs: usize,
}

impl<T> SortedIter<T> {
    /// How many runs were spilled to disk before the merge.
    pub fn spilled_runs(&self) -> usize {
        self.spilled_runs
    }
}

impl<T: DeserializeOwned> Iterator for SortedIter<T> {
    type Item = io::Result<T>;

    fn next(&mut self) -> Option<io::Result<T>> {
        match &mut self.inner {
            Inner::Memory(items) => items.next().map(Ok),
            Inner::Merge {
                heap,
                sources,
                failed,
            } => {
                if *failed {
                    return None;
                }
                let mut top = heap.peek_mut()?;
                match sources[top.source].next_item() {
                    // Replace the head in place: one sift-down instead of a
                    // pop and a push.
                    Ok(Some(next)) => Some(Ok(std::mem::replace(&mut top.item, next))),
                    Ok(None) => Some(Ok(PeekMut::pop(top).item)),
                    Err(e) => {
                        *failed = true;
                        Some(Err(e))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::recon::{RecordStatus, TheirRecord};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn our_reference(r: &TheirRecord) -> &str {
        r.our_reference.as_str()
    }

    fn record(rng: &mut StdRng, line: u64, our_reference: String) -> TheirRecord {
        TheirRecord {
            our_reference,
            their_reference: format!("R{:010}", rng.gen_range(0..10_000_000_000u64)),
            biller_id: "sh-water".into(),
            account: format!("{:012}", rng.gen_range(0..1_000_000_000_000u64)),
            amount_minor: rng.gen_range(1..10_000_000),
            currency: "CNY".into(),
            status: if rng.gen_ratio(1, 50) {
                RecordStatus::Failed
            } else {
                RecordStatus::Credited
            },
            at: if rng.gen_ratio(1, 10) {
                None
            } else {
                Some("2026-11-29T10:15:00+08:00".into())
            },
            line,
        }
    }

    /// A UUID v7 string for a random millisecond of the day: references
    /// shaped like payment ids, arriving in random order.
    fn random_v7(rng: &mut StdRng) -> String {
        let millis = 1_795_881_600_000u64 + rng.gen_range(0..86_400_000u64);
        let random: [u8; 10] = rng.gen();
        uuid::Builder::from_unix_timestamp_millis(millis, &random)
            .into_uuid()
            .to_string()
    }

    /// Open descriptors of this process pointing into `dir` (unnamed
    /// temporary files show as `dir/#inode (deleted)`).
    #[cfg(target_os = "linux")]
    fn open_files_in(dir: &Path) -> usize {
        let dir = dir.canonicalize().unwrap();
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.starts_with(&dir))
            .count()
    }

    fn dir_entries(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    fn sort_all(sorter: ExternalSorter<TheirRecord>) -> Vec<TheirRecord> {
        sorter
            .finish()
            .unwrap()
            .collect::<io::Result<Vec<_>>>()
            .unwrap()
    }

    #[test]
    fn sorts_250k_records_stably_through_25_runs_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = StdRng::seed_from_u64(6);
        // A pool of references smaller than the input: some keys repeat,
        // so stability across runs is exercised.
        let pool: Vec<String> = (0..200_000).map(|_| random_v7(&mut rng)).collect();
        let input: Vec<TheirRecord> = (0..250_000u64)
            .map(|line| {
                let reference = pool[rng.gen_range(0..pool.len())].clone();
                record(&mut rng, line + 1, reference)
            })
            .collect();

        let mut sorter = ExternalSorter::new(dir.path(), 10_000, our_reference).unwrap();
        for r in input.iter().cloned() {
            sorter.push(r).unwrap();
        }
        assert_eq!(sorter.spilled_runs(), 25);
        // Runs are unnamed: the directory shows nothing while they exist.
        assert_eq!(dir_entries(dir.path()), 0);
        #[cfg(target_os = "linux")]
        assert_eq!(open_files_in(dir.path()), 25);

        let iter = sorter.finish().unwrap();
        assert_eq!(iter.spilled_runs(), 25);
        let output: Vec<TheirRecord> = iter.collect::<io::Result<_>>().unwrap();
        #[cfg(target_os = "linux")]
        assert_eq!(open_files_in(dir.path()), 0, "runs closed after drop");
        assert_eq!(dir_entries(dir.path()), 0);

        // Sorted by reference, and stable: `line` is the insertion order,
        // so equal references come with increasing lines.
        assert_eq!(output.len(), input.len());
        for pair in output.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            match a.our_reference.cmp(&b.our_reference) {
                Ordering::Less => {}
                Ordering::Equal => assert!(a.line < b.line, "unstable at {a:?} / {b:?}"),
                Ordering::Greater => panic!("out of order: {a:?} before {b:?}"),
            }
        }
        // The same multiset: the stable sort in memory gives exactly this.
        let mut expected = input;
        expected.sort_by(|a, b| a.our_reference.cmp(&b.our_reference));
        assert_eq!(output, expected);
    }

    #[test]
    fn runs_are_freed_when_the_iterator_is_dropped_half_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let mut sorter = ExternalSorter::new(dir.path(), 100, our_reference).unwrap();
        for line in 0..1_000 {
            let reference = random_v7(&mut rng);
            sorter.push(record(&mut rng, line, reference)).unwrap();
        }
        let mut iter = sorter.finish().unwrap();
        assert_eq!(iter.spilled_runs(), 10);
        for _ in 0..10 {
            iter.next().unwrap().unwrap();
        }
        #[cfg(target_os = "linux")]
        assert_eq!(open_files_in(dir.path()), 10);
        drop(iter);
        #[cfg(target_os = "linux")]
        assert_eq!(open_files_in(dir.path()), 0);
        assert_eq!(dir_entries(dir.path()), 0);
    }

    #[test]
    fn runs_are_freed_when_the_sorter_is_dropped_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        let mut sorter = ExternalSorter::new(dir.path(), 2, |s: &String| s.as_str()).unwrap();
        for s in ["c", "b", "a", "d", "e"] {
            sorter.push(s.to_string()).unwrap();
        }
        assert_eq!(sorter.spilled_runs(), 2);
        drop(sorter);
        #[cfg(target_os = "linux")]
        assert_eq!(open_files_in(dir.path()), 0);
        assert_eq!(dir_entries(dir.path()), 0);
    }

    #[test]
    fn no_items_gives_an_empty_iterator() {
        let dir = tempfile::tempdir().unwrap();
        let sorter = ExternalSorter::new(dir.path(), 10, our_reference).unwrap();
        assert_eq!(sorter.spilled_runs(), 0);
        let mut iter = sorter.finish().unwrap();
        assert_eq!(iter.spilled_runs(), 0);
        assert!(iter.next().is_none());
    }

    #[test]
    fn fewer_items_than_the_buffer_never_spill() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = StdRng::seed_from_u64(8);
        let mut sorter = ExternalSorter::new(dir.path(), 10_000, our_reference).unwrap();
        let mut input = Vec::new();
        for line in 0..9_999 {
            let reference = random_v7(&mut rng);
            let r = record(&mut rng, line, reference);
            input.push(r.clone());
            sorter.push(r).unwrap();
        }
        assert_eq!(sorter.spilled_runs(), 0);
        #[cfg(target_os = "linux")]
        assert_eq!(open_files_in(dir.path()), 0);
        let output = sort_all(sorter);
        input.sort_by(|a, b| a.our_reference.cmp(&b.our_reference));
        assert_eq!(output, input);
    }

    #[test]
    fn exactly_a_full_buffer_spills_one_run_and_merges_an_empty_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut sorter = ExternalSorter::new(dir.path(), 3, |s: &String| s.as_str()).unwrap();
        for s in ["b", "c", "a"] {
            sorter.push(s.to_string()).unwrap();
        }
        assert_eq!(sorter.spilled_runs(), 1);
        let out: Vec<String> = sorter.finish().unwrap().map(Result::unwrap).collect();
        assert_eq!(out, ["a", "b", "c"]);
    }

    #[test]
    fn many_duplicate_keys_keep_insertion_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = StdRng::seed_from_u64(9);
        // 5 distinct references over 20,000 records: 6 runs and a tail.
        let keys = ["r-3", "r-1", "r-4", "r-0", "r-2"];
        let mut sorter = ExternalSorter::new(dir.path(), 2_999, our_reference).unwrap();
        let mut input = Vec::new();
        for line in 0..20_000 {
            let key = keys[rng.gen_range(0..keys.len())];
            let r = record(&mut rng, line, key.into());
            input.push(r.clone());
            sorter.push(r).unwrap();
        }
        assert_eq!(sorter.spilled_runs(), 6);
        let output = sort_all(sorter);
        for pair in output.windows(2) {
            assert!(
                (pair[0].our_reference.as_str(), pair[0].line)
                    < (pair[1].our_reference.as_str(), pair[1].line)
            );
        }
        input.sort_by(|a, b| a.our_reference.cmp(&b.our_reference));
        assert_eq!(output, input);
    }

    #[test]
    fn composite_keys_through_a_comparison() {
        let dir = tempfile::tempdir().unwrap();
        let mut sorter = ExternalSorter::with_compare(dir.path(), 2, |a: &(String, i64), b| {
            a.0.cmp(&b.0).then(b.1.cmp(&a.1))
        })
        .unwrap();
        for (k, v) in [("b", 1), ("a", 1), ("b", 5), ("a", 3), ("a", 2)] {
            sorter.push((k.to_string(), v)).unwrap();
        }
        let out: Vec<(String, i64)> = sorter.finish().unwrap().map(Result::unwrap).collect();
        let out: Vec<(&str, i64)> = out.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(out, [("a", 3), ("a", 2), ("a", 1), ("b", 5), ("b", 1)]);
    }

    #[test]
    fn a_zero_buffer_or_a_missing_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = ExternalSorter::new(dir.path(), 0, our_reference)
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(ExternalSorter::new(&dir.path().join("nope"), 10, our_reference).is_err());
    }

    /// `cargo test --release --lib reconcile::spill::tests::sort_1m -- --ignored --nocapture`
    #[test]
    #[ignore = "throughput measurement; run in release"]
    fn sort_1m_uuid_records_bench() {
        use std::time::Instant;
        const N: u64 = 1_000_000;
        let dir = tempfile::tempdir().unwrap();

        // The cost of making the records alone, to tell it apart.
        let mut rng = StdRng::seed_from_u64(1);
        let started = Instant::now();
        let mut bytes = 0usize;
        for line in 0..N {
            let reference = random_v7(&mut rng);
            bytes += record(&mut rng, line, reference).our_reference.len();
        }
        let generation = started.elapsed();
        assert!(bytes > 0);

        let mut rng = StdRng::seed_from_u64(1);
        let started = Instant::now();
        let mut sorter = ExternalSorter::new(dir.path(), 100_000, our_reference).unwrap();
        for line in 0..N {
            let reference = random_v7(&mut rng);
            sorter.push(record(&mut rng, line, reference)).unwrap();
        }
        let pushed = started.elapsed();
        let iter = sorter.finish().unwrap();
        let runs = iter.spilled_runs();
        let mut count = 0u64;
        let mut previous: Option<TheirRecord> = None;
        for item in iter {
            let item = item.unwrap();
            if let Some(p) = &previous {
                assert!(p.our_reference <= item.our_reference);
            }
            previous = Some(item);
            count += 1;
        }
        let total = started.elapsed();
        assert_eq!(count, N);
        let peak = crate::bench::settle::peak_rss_bytes().unwrap_or(0);
        println!(
            "external sort of {N} records, buffer 100000, {runs} runs: \
             generate+push {:.3} s, +finish+iterate {:.3} s total; \
             generating the records alone {:.3} s, so sort ≈ {:.3} s; peak RSS {:.1} MiB",
            pushed.as_secs_f64(),
            total.as_secs_f64(),
            generation.as_secs_f64(),
            total.as_secs_f64() - generation.as_secs_f64(),
            peak as f64 / (1024.0 * 1024.0)
        );
    }
}
