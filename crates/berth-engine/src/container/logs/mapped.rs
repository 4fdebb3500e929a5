//! Reading a big log file from the disk without copying it: the file is mapped, a helper
//! thread pulls it into memory ahead of the decoder, and the decoder parses the mapping.
//!
//! **Why.** With `read`, one thread both waited for the disk and decoded: the kernel's
//! read-ahead keeps only a window ahead, the decoder (as fast as this VM's disk) kept
//! catching up with it and stalling, and the copy into the read buffer cost the decoder
//! about a third of its time. A thread doing the reads for it measured no better: it
//! spent the same copies on the two cores the decoder, the HTTP writer and the client
//! already share. Here the helper only asks the kernel to fill the page tables
//! (`MADV_POPULATE_READ`, which waits for the disk but copies nothing), up to [`AHEAD`]
//! bytes ahead of the decoder, so the disk is always busy and the decoder never waits
//! for a read or copies. A log already in the page cache gains nothing from this (the
//! mapping's page-table work then costs more than the copy), so a file that is mostly
//! resident is left to the `read` path.
//!
//! **Two decoders.** Timed per read on the 2-core VM, the helper finished populating 6 to
//! 10 ms before one decoder finished decoding: the decoder, about as fast as the disk
//! while it shares the cores with the HTTP writer and the client, lagged a few blocks
//! behind, and that lag was the gap to `cat`. A second decoder thread takes every other
//! block (see [`Decoders`]); the lag at the end is then 3 to 6 ms. Populating from two
//! threads, or in bigger or smaller chunks, read the disk slower than one helper going
//! in 2 MiB steps (a C test of each, the log evicted before each run).
//!
//! **Truncation.** Touching a mapped page past the end of a file that shrank after it was
//! mapped raises SIGBUS, which would kill berthd. Users do truncate container logs by hand
//! (`truncate -s 0 $(docker inspect -f '{{.LogPath}}' c)` is a common recipe), so every
//! mapping is registered in a small table, and a process-wide SIGBUS handler maps a zero
//! page over a faulting page of a registered mapping, marks it, and returns: the load is
//! retried and reads zeros. The decoder checks the mark after each block and drops that
//! block's output, so a read of a truncated log ends with the lines read before the
//! truncation, as a `read` that hits the new end of file would. A SIGBUS at any other
//! address goes to the handler that was installed before (Rust's own stack-overflow
//! handler) or to the default action, as if this module did not exist.
//!
//! Apart from truncation the mapped bytes never change while they are read: the shim only
//! appends (past the mapped length) and rotates by renaming, and the decoder treats the
//! text as untrusted bytes anyway (any content is parsed without panicking).
//!
//! **Memory.** The helper keeps at most [`AHEAD`] bytes populated ahead of the decoder and
//! the decoder unmaps what it has read every [`DROP_EVERY`] bytes (`MADV_DONTNEED`: the
//! pages leave berthd's RSS and stay in the page cache), so the daemon's RSS grows by a
//! bounded amount whatever the log size.

use std::fs::File;
use std::ops::ControlFlow;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Files smaller than this are read with `read`: a helper thread costs more than it saves.
const MIN_LEN: usize = 8 << 20;
/// How far the helper populates ahead of the decoder.
const AHEAD: usize = 16 << 20;
/// The helper's unit of work.
const CHUNK: usize = 2 << 20;
/// How often the decoder unmaps what it has read.
const DROP_EVERY: usize = 4 << 20;
/// A file with at least this share of its pages in the page cache is read with `read`.
const RESIDENT_ENOUGH: f64 = 0.9;

/// Pages sampled to tell whether a file is in the page cache.
const SAMPLES: usize = 64;

/// `MADV_POPULATE_READ` (Linux 5.14); not in every libc crate release.
const MADV_POPULATE_READ: libc::c_int = 22;

/// Streams the whole lines of the file at `path` through `decode` and `emit` from a
/// mapping; `None` (nothing emitted) when the file should be read with `read` instead:
/// small, mostly in the page cache already, not mappable, or a kernel without
/// `MADV_POPULATE_READ`. Returns the bytes of complete lines read and whether `emit` asked
/// to stop.
pub(super) fn stream_file<D, E>(
    path: &Path,
    block: usize,
    decode: &D,
    emit: &mut E,
) -> Option<(u64, ControlFlow<()>)>
where
    D: Fn(&[u8], &mut Vec<Vec<u8>>) + Sync,
    E: FnMut(Vec<u8>) -> ControlFlow<()>,
{
    let pair = super::cores() >= 2;
    stream_file_with(path, block, pair, decode, emit)
}

/// [`stream_file`] with one decoder or two.
fn stream_file_with<D, E>(
    path: &Path,
    block: usize,
    pair: bool,
    decode: &D,
    emit: &mut E,
) -> Option<(u64, ControlFlow<()>)>
where
    D: Fn(&[u8], &mut Vec<Vec<u8>>) + Sync,
    E: FnMut(Vec<u8>) -> ControlFlow<()>,
{
    let file = File::open(path).ok()?;
    let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
    if len < MIN_LEN {
        return None;
    }
    let map = Mapping::new(&file, len)?;
    if map.resident_share() >= RESIDENT_ENOUGH {
        return None;
    }
    // The first chunk on this thread: an old kernel says EINVAL here and `read` takes over;
    // a file truncated since the `stat` says EFAULT, and `read` sees its new length.
    let first = CHUNK.min(len);
    if map.populate(0, first).is_err() {
        return None;
    }
    Some(map.stream(first, block, pair, decode, emit))
}

/// A read-only shared mapping of a whole file, registered with the SIGBUS handler.
struct Mapping {
    base: *mut libc::c_void,
    len: usize,
    slot: &'static Slot,
}

// SAFETY: the mapping is only read; the raw pointer is what makes the type !Send/!Sync.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(file: &File, len: usize) -> Option<Mapping> {
        if !sigbus::install() {
            return None;
        }
        // SAFETY: a fresh read-only mapping of an open file; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let Some(slot) = sigbus::register(base as usize, len) else {
            // SAFETY: unmapping the mapping made just above, never read.
            unsafe { libc::munmap(base, len) };
            return None;
        };
        // SAFETY: advice on our own mapping: it only widens the kernel's read-ahead.
        unsafe { libc::madvise(base, len, libc::MADV_SEQUENTIAL) };
        Some(Mapping { base, len, slot })
    }

    /// The share of the file's pages in the page cache, from [`SAMPLES`] pages spread over
    /// it (`mincore` of a whole 178 MB log took 2 to 3 ms).
    fn resident_share(&self) -> f64 {
        let page = sigbus::page_size();
        let pages = self.len.div_ceil(page);
        let (mut seen, mut resident) = (0usize, 0usize);
        for i in 0..SAMPLES.min(pages) {
            let at = (pages * i / SAMPLES.min(pages)) * page;
            let mut v = 0u8;
            // SAFETY: one page inside our mapping; mincore writes one byte for it.
            if unsafe { libc::mincore(self.base.wrapping_byte_add(at), 1, &mut v) } == 0 {
                seen += 1;
                resident += usize::from(v & 1 == 1);
            }
        }
        if seen == 0 {
            return 0.0;
        }
        resident as f64 / seen as f64
    }

    /// Faults `[at, at + n)` in (reading from the disk as needed); an error instead of a
    /// SIGBUS past the end of a truncated file.
    fn populate(&self, at: usize, n: usize) -> std::io::Result<()> {
        // SAFETY: a range inside our mapping; MADV_POPULATE_READ only fills page tables.
        let r = unsafe { libc::madvise(self.base.wrapping_byte_add(at), n, MADV_POPULATE_READ) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Drops `[from, to)` from berthd's page tables (the page cache keeps the pages).
    fn unmap_read(&self, from: usize, to: usize) {
        // SAFETY: a range inside our mapping that the decoder has finished with; a later
        // touch would fault the pages in again.
        unsafe {
            libc::madvise(
                self.base.wrapping_byte_add(from),
                to - from,
                libc::MADV_DONTNEED,
            )
        };
    }

    /// The decoder's side, with the helper thread running alongside; `[0, ready)` is
    /// populated already. With `pair`, a second decoder thread takes every other block
    /// (see [`Decoders`]).
    fn stream<D, E>(
        &self,
        ready: usize,
        block: usize,
        pair: bool,
        decode: &D,
        emit: &mut E,
    ) -> (u64, ControlFlow<()>)
    where
        D: Fn(&[u8], &mut Vec<Vec<u8>>) + Sync,
        E: FnMut(Vec<u8>) -> ControlFlow<()>,
    {
        let progress = Progress {
            ready: AtomicUsize::new(ready),
            read: AtomicUsize::new(0),
            helper_done: AtomicBool::new(ready >= self.len),
            starved: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        };
        // SAFETY: the mapping is `len` readable bytes for as long as `self` lives; a page
        // a truncation took away reads as zeros (see the module docs).
        let data = unsafe { std::slice::from_raw_parts(self.base as *const u8, self.len) };
        let decoder = std::thread::current();
        std::thread::scope(|s| {
            let helper = s.spawn(|| self.populate_ahead(&progress, &decoder));
            // Whatever way this ends (a panic in `decode` included), the helper must not
            // stay parked, or the scope would never end.
            let _stop = StopHelper(&progress, helper.thread());
            let cutter = Cutter {
                data,
                block,
                progress: &progress,
                helper: helper.thread(),
            };
            let mut d = Decoders::new(s, pair, data, decode);
            let (mut at, mut dropped) = (0usize, 0usize);
            loop {
                // `at`: the end of the blocks handed out; `from`: the start of the oldest
                // one not yet emitted.
                let (from, next) = d.next(&cutter, &mut at);
                let Some(out) = next else {
                    return (from as u64, ControlFlow::Continue(()));
                };
                if self.slot.truncated() {
                    // Some block read as zeros: it ends the file, as in `read` (with two
                    // decoders the one in flight is dropped too).
                    return (from as u64, ControlFlow::Continue(()));
                }
                let done_to = d.emitted_to();
                progress.read.store(done_to, Ordering::Release);
                if progress.ready.load(Ordering::Acquire) < done_to + AHEAD / 2 {
                    helper.thread().unpark();
                }
                for piece in out {
                    if emit(piece).is_break() {
                        return (done_to as u64, ControlFlow::Break(()));
                    }
                }
                let behind = from - from % DROP_EVERY;
                if behind > dropped {
                    self.unmap_read(dropped, behind);
                    dropped = behind;
                }
            }
        })
    }

    /// The helper thread: populates chunk after chunk, at most [`AHEAD`] past the decoder.
    fn populate_ahead(&self, p: &Progress, decoder: &std::thread::Thread) {
        let mut at = p.ready.load(Ordering::Acquire);
        while at < self.len && !p.stop.load(Ordering::Acquire) {
            if at > p.read.load(Ordering::Acquire) + AHEAD && !p.starved.load(Ordering::Acquire) {
                std::thread::park();
                continue;
            }
            let n = CHUNK.min(self.len - at);
            if self.populate(at, n).is_err() {
                // Truncated under us: the decoder stops at what was populated.
                break;
            }
            at += n;
            p.ready.store(at, Ordering::Release);
            decoder.unpark();
        }
        p.helper_done.store(true, Ordering::Release);
        decoder.unpark();
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        sigbus::unregister(self.slot);
        // SAFETY: our mapping, no longer read (the decoder's borrow has ended).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Cuts the populated part of the mapping into blocks of whole lines.
struct Cutter<'a> {
    data: &'a [u8],
    block: usize,
    progress: &'a Progress,
    helper: &'a std::thread::Thread,
}

impl Cutter<'_> {
    /// The end of the block that starts at `at`: after its last newline, or after the
    /// first one when a line is longer than a block (waiting for the helper when the
    /// window does not hold it yet); `None` at the end of what could be mapped (a partial
    /// last line stays).
    fn cut(&self, at: usize) -> Option<usize> {
        let p = self.progress;
        loop {
            let done = p.helper_done.load(Ordering::Acquire);
            let ready = p.ready.load(Ordering::Acquire);
            let limit = (at + self.block).min(ready);
            let nl = memchr::memrchr(b'\n', &self.data[at..limit]).or_else(|| {
                memchr::memchr(b'\n', &self.data[limit..ready]).map(|i| limit - at + i)
            });
            if let Some(nl) = nl {
                p.starved.store(false, Ordering::Release);
                return Some(at + nl + 1);
            }
            if done {
                return None;
            }
            // A line longer than the window: the helper must go on past it.
            p.starved.store(true, Ordering::Release);
            self.helper.unpark();
            std::thread::park();
        }
    }
}

/// The second decoder's queue of block ranges and its output for each.
type Pair = (
    std::sync::mpsc::SyncSender<(usize, usize)>,
    std::sync::mpsc::Receiver<Vec<Vec<u8>>>,
);

/// One decoder (this thread), or two: a second thread decodes every other block while
/// this one decodes the next, and their output is emitted in file order. On a 2-core
/// machine a single decoder was the slowest part of a cold read once the client no
/// longer had to strip a header per line; two keep both cores busy, and at most two
/// blocks' output is held at once.
struct Decoders<'a, D> {
    data: &'a [u8],
    decode: &'a D,
    /// The second thread's job queue and results, and the block it holds.
    pair: Option<Pair>,
    theirs: Option<(usize, usize)>,
    /// End of the blocks emitted so far.
    emitted: usize,
}

impl<'a, D: Fn(&[u8], &mut Vec<Vec<u8>>) + Sync> Decoders<'a, D> {
    fn new<'s>(
        s: &'s std::thread::Scope<'s, '_>,
        pair: bool,
        data: &'a [u8],
        decode: &'a D,
    ) -> Decoders<'a, D>
    where
        'a: 's,
    {
        let pair = pair.then(|| {
            let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<(usize, usize)>(1);
            let (out_tx, out_rx) = std::sync::mpsc::sync_channel(1);
            s.spawn(move || {
                while let Ok((a, b)) = job_rx.recv() {
                    let mut out = Vec::new();
                    decode(&data[a..b], &mut out);
                    if out_tx.send(out).is_err() {
                        return;
                    }
                }
            });
            (job_tx, out_rx)
        });
        Decoders {
            data,
            decode,
            pair,
            theirs: None,
            emitted: 0,
        }
    }

    fn emitted_to(&self) -> usize {
        self.emitted
    }

    /// The output of the next block(s) in file order, with the start of the first;
    /// `None` at the end. `at` is where the next block to hand out starts.
    fn next(&mut self, cut: &Cutter<'_>, at: &mut usize) -> (usize, Option<Vec<Vec<u8>>>) {
        let from = self.emitted;
        let Some((tx, rx)) = &self.pair else {
            let Some(end) = cut.cut(*at) else {
                return (from, None);
            };
            let mut out = Vec::new();
            (self.decode)(&self.data[*at..end], &mut out);
            *at = end;
            self.emitted = end;
            return (from, Some(out));
        };
        if self.theirs.is_none() {
            let Some(end) = cut.cut(*at) else {
                return (from, None);
            };
            if tx.send((*at, end)).is_err() {
                return (from, None);
            }
            self.theirs = Some((*at, end));
            *at = end;
        }
        // The block after theirs is ours.
        let mut out = Vec::new();
        let ours = cut.cut(*at).inspect(|&end| {
            (self.decode)(&self.data[*at..end], &mut out);
        });
        let Ok(mut all) = rx.recv() else {
            return (from, None);
        };
        self.theirs = None;
        if let Some(end) = ours {
            *at = end;
            // Theirs goes on at once with the block after ours.
            if let Some(next) = cut.cut(*at) {
                if tx.send((*at, next)).is_ok() {
                    self.theirs = Some((*at, next));
                    *at = next;
                }
            }
            all.append(&mut out);
        }
        self.emitted = self.theirs.map_or(*at, |(a, _)| a);
        (from, Some(all))
    }
}

/// What the decoder and the helper tell each other.
struct Progress {
    /// Populated up to here.
    ready: AtomicUsize,
    /// Decoded up to here.
    read: AtomicUsize,
    helper_done: AtomicBool,
    /// The decoder waits for the end of a line that runs past the window.
    starved: AtomicBool,
    stop: AtomicBool,
}

struct StopHelper<'a>(&'a Progress, &'a std::thread::Thread);

impl Drop for StopHelper<'_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Release);
        self.1.unpark();
    }
}

use sigbus::Slot;

/// The SIGBUS handler and its table of mappings.
mod sigbus {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Once;

    /// One registered mapping. `start` is claimed first (0 = free), then `len` published;
    /// the handler matches only a slot with both set.
    pub(super) struct Slot {
        start: AtomicUsize,
        len: AtomicUsize,
        hit: AtomicBool,
    }

    impl Slot {
        /// A page of this mapping read as zeros since it was registered.
        pub(super) fn truncated(&self) -> bool {
            self.hit.load(Ordering::Acquire)
        }
    }

    /// Concurrent mapped reads; a read that finds no free slot uses `read`.
    const SLOTS: usize = 32;

    #[allow(clippy::declare_interior_mutable_const)]
    const FREE: Slot = Slot {
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        hit: AtomicBool::new(false),
    };
    static TABLE: [Slot; SLOTS] = [FREE; SLOTS];
    static PAGE: AtomicUsize = AtomicUsize::new(4096);
    static INSTALL: Once = Once::new();
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    /// The handler that was there before ours, called for faults outside the table.
    static mut PREVIOUS: Option<libc::sigaction> = None;

    pub(super) fn page_size() -> usize {
        PAGE.load(Ordering::Relaxed)
    }

    pub(super) fn register(start: usize, len: usize) -> Option<&'static Slot> {
        let slot = TABLE.iter().find(|s| {
            s.start
                .compare_exchange(0, start, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })?;
        slot.hit.store(false, Ordering::Release);
        slot.len.store(len, Ordering::Release);
        Some(slot)
    }

    pub(super) fn unregister(slot: &Slot) {
        slot.len.store(0, Ordering::Release);
        slot.start.store(0, Ordering::Release);
    }

    /// Installs the handler once; false if it could not be (then nothing may be mapped).
    pub(super) fn install() -> bool {
        INSTALL.call_once(|| {
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            if let Ok(page) = usize::try_from(page) {
                if page > 0 {
                    PAGE.store(page, Ordering::Relaxed);
                }
            }
            // SAFETY: zeroed sigactions are valid values to fill in. PREVIOUS is written
            // before our handler, which reads it, is installed, and never after.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
                    return;
                }
                PREVIOUS = Some(old);
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_sigbus as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()) == 0 {
                    INSTALLED.store(true, Ordering::Release);
                }
            }
        });
        INSTALLED.load(Ordering::Acquire)
    }

    /// Async-signal-safe: atomics, `mmap` and `sigaction` only.
    extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
        let addr = unsafe { (*info).si_addr() } as usize;
        for slot in &TABLE {
            let start = slot.start.load(Ordering::Acquire);
            let len = slot.len.load(Ordering::Acquire);
            if start == 0 || len == 0 || addr < start || addr >= start + len {
                continue;
            }
            let page = addr - addr % page_size();
            // SAFETY: replaces one page of a registered read-only mapping, which only its
            // decoder reads, with a private zero page.
            let r = unsafe {
                libc::mmap(
                    page as *mut libc::c_void,
                    page_size(),
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if r != libc::MAP_FAILED {
                slot.hit.store(true, Ordering::Release);
                return;
            }
        }
        // Not ours: as if we were not installed.
        // SAFETY: PREVIOUS was written before this handler was installed and never since.
        let previous = unsafe { *std::ptr::addr_of!(PREVIOUS) };
        match previous {
            Some(old)
                if old.sa_flags & libc::SA_SIGINFO != 0
                    && old.sa_sigaction != libc::SIG_DFL
                    && old.sa_sigaction != libc::SIG_IGN =>
            {
                // SAFETY: an SA_SIGINFO handler has this signature.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(old.sa_sigaction) };
                f(sig, info, ctx);
            }
            Some(old) if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN => {
                // SAFETY: a plain handler has this signature.
                let f: extern "C" fn(libc::c_int) =
                    unsafe { std::mem::transmute(old.sa_sigaction) };
                f(sig);
            }
            _ => {
                // The default action: restore it and return; the faulting load runs again
                // and the kernel delivers SIGBUS with no handler.
                // SAFETY: a zeroed sigaction with SIG_DFL is valid.
                unsafe {
                    let mut sa: libc::sigaction = std::mem::zeroed();
                    sa.sa_sigaction = libc::SIG_DFL;
                    libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A directory on a disk (`/tmp` may be a tmpfs, whose pages cannot be evicted).
    fn disk_dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("berth-mapped-")
            .tempdir_in("/var/tmp")
            .expect("tempdir in /var/tmp")
    }

    /// A log of numbered lines of varied length (one longer than a block), written and
    /// then dropped from the page cache so that `stream_file` maps it.
    fn cold_log(dir: &Path, lines: usize) -> (std::path::PathBuf, Vec<u8>) {
        let mut data = Vec::new();
        for i in 0..lines {
            let pad = if i == 7 { 200_000 } else { i % 150 };
            data.extend_from_slice(format!("line {i} {}\n", "y".repeat(pad)).as_bytes());
        }
        let path = dir.join("c-json.log");
        write_cold(&path, &data);
        (path, data)
    }

    /// Writes `data` to `path` and drops it from the page cache.
    fn write_cold(path: &Path, data: &[u8]) {
        let mut f = File::create(path).expect("create");
        f.write_all(data).expect("write");
        f.sync_all().expect("sync");
        // SAFETY: advice on an open descriptor; the pages are clean after the sync.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }

    /// A mapped read of `path` in 64 KiB blocks, by one decoder or two; `each` sees the
    /// output so far after every piece. Returns the output, the bytes of whole lines read
    /// and the flow.
    fn read_mapped(
        path: &Path,
        pair: bool,
        mut each: impl FnMut(usize),
    ) -> (Vec<u8>, u64, ControlFlow<()>) {
        let mut got = Vec::new();
        let mut pieces = 0;
        let (consumed, flow) = stream_file_with(
            path,
            64 << 10,
            pair,
            &|b: &[u8], out: &mut Vec<Vec<u8>>| {
                // (Zeros are pages a truncation took away: the read drops that block.)
                assert!(
                    b.last() == Some(&b'\n') || b.contains(&0),
                    "a block ends with a whole line"
                );
                out.push(b.to_vec());
            },
            &mut |piece| {
                got.extend_from_slice(&piece);
                pieces += 1;
                each(pieces);
                ControlFlow::Continue(())
            },
        )
        .expect("a log not in the page cache is mapped");
        (got, consumed, flow)
    }

    #[test]
    fn mapped_read_yields_every_whole_line_in_order() {
        let dir = disk_dir();
        let (path, data) = cold_log(dir.path(), 150_000);
        assert!(data.len() >= MIN_LEN, "the log is big enough to be mapped");
        for pair in [false, true] {
            if pair {
                write_cold(&path, &data);
            }
            let (got, consumed, flow) = read_mapped(&path, pair, |_| {});
            assert!(flow.is_continue());
            assert_eq!(consumed, data.len() as u64, "pair {pair}");
            assert!(
                got == data,
                "the mapped read returns the file (pair {pair})"
            );
        }
    }

    #[test]
    fn a_line_longer_than_the_window_is_read_whole() {
        let dir = disk_dir();
        let mut data = b"first\n".to_vec();
        data.extend(std::iter::repeat_n(b'z', AHEAD + 3 * CHUNK));
        data.extend_from_slice(b"\nlast\npartial");
        let path = dir.path().join("long-json.log");
        for pair in [false, true] {
            write_cold(&path, &data);
            let (got, consumed, flow) = read_mapped(&path, pair, |_| {});
            assert!(flow.is_continue());
            let whole = data.len() - b"partial".len();
            assert_eq!(consumed, whole as u64, "the partial last line is left");
            assert!(
                got == data[..whole],
                "every whole line, the long one included (pair {pair})"
            );
        }
    }

    #[test]
    fn truncation_mid_read_ends_the_file_instead_of_killing_the_process() {
        for pair in [false, true] {
            let dir = disk_dir();
            let (path, data) = cold_log(dir.path(), 150_000);
            let (got, consumed, flow) = read_mapped(&path, pair, |pieces| {
                if pieces == 3 {
                    // What `truncate -s 0` on the log does while it is being read: the
                    // pages after this block are gone, touching them raises SIGBUS.
                    File::options()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(0))
                        .expect("truncate");
                }
            });
            assert!(flow.is_continue());
            assert_eq!(
                consumed,
                got.len() as u64,
                "it stops after the last whole block (pair {pair})"
            );
            assert!(got.len() < data.len(), "the read ended early");
            assert!(data.starts_with(&got), "what was sent is the file's start");
            // The next mapped read of the (now empty) file is not mapped at all.
            assert!(stream_file(
                &path,
                64 << 10,
                &|_: &[u8], _: &mut Vec<Vec<u8>>| {},
                &mut |_| { ControlFlow::Continue(()) }
            )
            .is_none());
        }
    }
}
