//! The thread pool every kernel runs on, and deterministic chunked maps over it.
//!
//! One process-wide pool whose size `set_num_threads` can change at any time
//! (rayon's global pool can be sized only once). Work is split into chunks
//! whose boundaries depend only on the problem size, and partial results are
//! combined in chunk order, so floating-point sums are identical whatever the
//! thread count.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::{Error, Result};

static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

/// More threads than this is a mistake, not a configuration.
pub const MAX_THREADS: usize = 1024;

fn build(n: usize) -> Result<Arc<rayon::ThreadPool>> {
    if n > MAX_THREADS {
        return Err(Error::Value(format!(
            "number of threads must be at most {MAX_THREADS}, got {n}"
        )));
    }
    // n == 0 lets rayon pick: RAYON_NUM_THREADS, else the number of CPUs.
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("csipose-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| Error::Threads(e.to_string()))
}

fn pool() -> Result<Arc<rayon::ThreadPool>> {
    if let Some(p) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return Ok(Arc::clone(p));
    }
    let mut slot = POOL.write().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = slot.as_ref() {
        return Ok(Arc::clone(p));
    }
    let p = build(0)?;
    *slot = Some(Arc::clone(&p));
    Ok(p)
}

/// Resize the pool to `n` threads (0 = the default). Kernels already running
/// finish on the old pool.
pub fn set_num_threads(n: usize) -> Result<()> {
    let p = build(n)?;
    *POOL.write().unwrap_or_else(|e| e.into_inner()) = Some(p);
    Ok(())
}

/// The number of threads kernels run on.
pub fn num_threads() -> Result<usize> {
    Ok(pool()?.current_num_threads())
}

/// Run `f` inside the pool.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R> {
    Ok(pool()?.install(f))
}

/// Map `f` over `0..n` cut into ranges of `chunk` items, results in range order.
///
/// The calling thread runs ranges itself and pool threads help as they wake
/// ([`split_in_place`]), so a call of one range never touches the pool (small
/// calls from several Python threads never queue behind each other) and the
/// caller is never left idle while the pool works. Which thread runs a range
/// does not change its result, so results do not depend on the thread count.
pub fn map_chunks<R, F>(n: usize, chunk: usize, f: F) -> Result<Vec<R>>
where
    R: Send,
    F: Fn(Range<usize>) -> R + Sync + Send,
{
    let chunk = chunk.max(1);
    let mut slots: Vec<Option<R>> = (0..n.div_ceil(chunk).max(1)).map(|_| None).collect();
    split_in_place(slots.len(), 1, 2, 1, &mut slots, |cs, out, _| {
        for (c, slot) in cs.zip(out.iter_mut()) {
            *slot = Some(f(c * chunk..n.min((c + 1) * chunk)));
        }
    })?;
    collect_slots(slots)
}

/// Like [`map_chunks`], also handing each range its slice of a per-item output
/// (`out.len() == n * width`).
pub fn map_chunks_out<R, T, F>(
    n: usize,
    chunk: usize,
    width: usize,
    out: &mut [T],
    f: F,
) -> Result<Vec<R>>
where
    R: Send,
    T: Send,
    F: Fn(Range<usize>, &mut [T]) -> R + Sync + Send,
{
    if out.len() != n.saturating_mul(width) {
        return Err(Error::Shape(format!(
            "output holds {} values, expected {n} x {width}",
            out.len()
        )));
    }
    let chunk = chunk.max(1);
    if width == 0 {
        // No per-item output: every range gets an empty slice.
        return map_chunks(n, chunk, |r| f(r, &mut []));
    }
    if n <= chunk {
        return Ok(vec![f(0..n, out)]);
    }
    let mut cells: Vec<(Option<R>, &mut [T])> =
        out.chunks_mut(chunk * width).map(|o| (None, o)).collect();
    split_in_place(cells.len(), 1, 2, 1, &mut cells, |cs, part, _| {
        for (c, (slot, o)) in cs.zip(part.iter_mut()) {
            *slot = Some(f(c * chunk..n.min((c + 1) * chunk), o));
        }
    })?;
    collect_slots(cells.into_iter().map(|(r, _)| r).collect())
}

/// The results of [`split_in_place`]'s blocks, each filled exactly once.
fn collect_slots<R>(slots: Vec<Option<R>>) -> Result<Vec<R>> {
    slots
        .into_iter()
        .map(|r| r.ok_or_else(|| Error::Threads("a block was not run".into())))
        .collect()
}

/// Run `f(range, part, next)` over `n` items in blocks of `block` items,
/// each block with its slice of `out` (`width` values per item); `next` is
/// the first item of the block the same thread runs after this one (to
/// prefetch). Every item is visited once, but which thread runs a block is
/// not fixed, so `f` must write each item's output from its inputs alone.
///
/// The calling thread claims blocks itself from the start; pool threads are
/// only asked to help (for at least `min_items` items) and claim blocks from
/// the same counter once they wake. So the call never waits for a worker to
/// wake up or to be scheduled: a worker that comes late finds nothing left,
/// and the caller waits only for blocks a worker already holds. (A static
/// split made the caller wait for a sleeping worker on every call, which made
/// 2-thread batches of ~1 MB slower than 1 thread; docs/data.md.)
pub fn split_in_place<T, F>(
    n: usize,
    block: usize,
    min_items: usize,
    width: usize,
    out: &mut [T],
    f: F,
) -> Result<()>
where
    T: Send,
    F: Fn(Range<usize>, &mut [T], Option<usize>) + Sync,
{
    if out.len() != n.saturating_mul(width) {
        return Err(Error::Shape(format!(
            "output holds {} values, expected {n} x {width}",
            out.len()
        )));
    }
    let pool = pool()?;
    let helpers = if n >= min_items.max(1) && width > 0 {
        pool.current_num_threads().saturating_sub(1)
    } else {
        0
    };
    if helpers == 0 {
        f(0..n, out, None);
        return Ok(());
    }
    let block = block.max(1);
    let blocks = n.div_ceil(block);
    let claims = Arc::new(Claims::default());
    let dst = OutPtr(out.as_mut_ptr());
    let work = || {
        let claim = || claims.next.fetch_add(1, Ordering::Relaxed);
        let mut cur = claim();
        while cur < blocks {
            let next = claim();
            let range = cur * block..n.min((cur + 1) * block);
            // SAFETY: each block index is claimed by exactly one thread (an
            // atomic counter), so the slices of `out` handed out never
            // overlap, and every range lies inside `out` (n * width values).
            let part = unsafe {
                std::slice::from_raw_parts_mut(dst.at(range.start * width), range.len() * width)
            };
            f(range, part, (next < blocks).then(|| next * block));
            cur = next;
        }
    };
    let task: &(dyn Fn() + Sync) = &work;
    // SAFETY: only the lifetime is erased. A helper calls `task` only after
    // registering in `claims.active` while `claims.closed` was still false,
    // and `_wait` (dropped before `work`, `out` and `f` go, also on unwind)
    // closes and waits until no helper is registered, so no call outlives
    // the borrows.
    let task: *const (dyn Fn() + Sync + 'static) = unsafe { std::mem::transmute(task) };
    let _wait = WaitForHelpers(&claims);
    for _ in 0..helpers {
        let (claims, task) = (Arc::clone(&claims), TaskPtr(task));
        pool.spawn(move || {
            let task = task;
            claims.active.fetch_add(1, Ordering::SeqCst);
            let _done = Leave(&claims);
            if !claims.closed.load(Ordering::SeqCst) {
                // SAFETY: registered while not closed: the caller is still
                // inside `split_in_place`, waiting for us (see above).
                let run = std::panic::AssertUnwindSafe(|| unsafe { (*task.0)() });
                // A panic must not reach rayon (it aborts the process without a
                // handler): the caller reports it as an error instead.
                if std::panic::catch_unwind(run).is_err() {
                    claims.panicked.store(true, Ordering::SeqCst);
                }
            }
        });
    }
    work();
    drop(_wait);
    if claims.panicked.load(Ordering::SeqCst) {
        return Err(Error::Threads(
            "a worker thread panicked; the output is incomplete".into(),
        ));
    }
    Ok(())
}

/// The block counter of one `split_in_place` call and its helpers' registry.
#[derive(Default)]
struct Claims {
    next: AtomicUsize,
    active: AtomicUsize,
    closed: AtomicBool,
    panicked: AtomicBool,
}

/// A helper's registration, left also if its task unwinds.
struct Leave<'a>(&'a Claims);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Close the call to late helpers and wait for the registered ones.
struct WaitForHelpers<'a>(&'a Claims);

impl Drop for WaitForHelpers<'_> {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
        // A registered helper holds at most two blocks (microseconds); after
        // about that long, yield: it was descheduled on a loaded machine.
        let mut spins = 0u32;
        while self.0.active.load(Ordering::SeqCst) != 0 {
            spins += 1;
            if spins < 1 << 8 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

struct OutPtr<T>(*mut T);

impl<T> OutPtr<T> {
    /// Item `i` of the output (the caller keeps `i` inside it).
    fn at(&self, i: usize) -> *mut T {
        self.0.wrapping_add(i)
    }
}

// SAFETY: the pointer is only turned into disjoint slices of `out` (see
// `split_in_place`), and `T: Send` lets those be written from other threads.
unsafe impl<T: Send> Sync for OutPtr<T> {}

struct TaskPtr(*const (dyn Fn() + Sync + 'static));

// SAFETY: the task is `Sync`, and `split_in_place` keeps it alive for as long
// as any helper may call it.
unsafe impl Send for TaskPtr {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_item_in_order() {
        let parts = map_chunks(10, 3, |r| r.collect::<Vec<_>>()).unwrap();
        assert_eq!(parts.concat(), (0..10).collect::<Vec<_>>());
        assert_eq!(parts.len(), 4);
    }

    #[test]
    fn per_item_output_is_aligned_with_ranges() {
        let mut out = vec![0usize; 10 * 2];
        map_chunks_out(10, 4, 2, &mut out, |r, o| {
            for (i, slot) in r.zip(o.chunks_exact_mut(2)) {
                slot.copy_from_slice(&[i, i * i]);
            }
        })
        .unwrap();
        assert_eq!(out[2 * 7..2 * 8], [7, 49]);
    }

    #[test]
    fn zero_width_output_still_visits_every_range() {
        let parts =
            map_chunks_out::<_, f64, _>(10, 3, 0, &mut [], |r, o| (r.len(), o.len())).unwrap();
        assert_eq!(parts, vec![(3, 0), (3, 0), (3, 0), (1, 0)]);
    }

    #[test]
    fn output_of_wrong_length_is_an_error() {
        let mut out = vec![0u8; 3];
        assert!(map_chunks_out(2, 1, 2, &mut out, |_, _| ()).is_err());
    }

    #[test]
    fn in_place_blocks_cover_every_item_once() {
        for (threads, n, block, min_items) in [
            (1, 10, 3, 1),
            (3, 10, 1, 1),
            (3, 10, 3, 4),
            (2, 1, 1, 1),
            (2, 0, 1, 1),
            (2, 1000, 7, 1),
        ] {
            set_num_threads(threads).unwrap();
            for _ in 0..20 {
                let mut out = vec![usize::MAX; n * 2];
                split_in_place(n, block, min_items, 2, &mut out, |r, o, next| {
                    assert_eq!(o.len(), r.len() * 2);
                    assert!(next.is_none_or(|s| s >= r.end && s < n && s % block == 0));
                    for (i, slot) in r.zip(o.chunks_exact_mut(2)) {
                        slot.copy_from_slice(&[i, i + 1]);
                    }
                })
                .unwrap();
                let want: Vec<usize> = (0..n).flat_map(|i| [i, i + 1]).collect();
                assert_eq!(out, want, "{threads} threads, {n} items, blocks of {block}");
            }
        }
        assert!(split_in_place(3, 1, 1, 2, &mut [0u8; 5], |_, _, _| ()).is_err());
        set_num_threads(0).unwrap();
    }

    #[test]
    fn a_panicking_block_on_a_pool_thread_is_an_error() {
        // The caller's own panic unwinds to its caller; a pool thread's becomes
        // an error instead of aborting the process.
        let caller = std::thread::current().id();
        let reported = (0..5).any(|_| {
            set_num_threads(2).unwrap();
            let mut out = vec![0u8; 40];
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                split_in_place(40, 1, 1, 1, &mut out, |_, _, _| {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    if std::thread::current().id() != caller {
                        panic!("block failed");
                    }
                })
            }));
            matches!(r, Ok(Err(Error::Threads(_))))
        });
        assert!(
            reported,
            "a pool thread's panic was not reported as an error"
        );
        set_num_threads(0).unwrap();
    }

    #[test]
    fn pool_threads_help_with_long_blocks() {
        // Blocks that sleep leave the caller's core free, so a helper wakes
        // within the call and takes some of them. (Other tests resize the
        // shared pool concurrently: a try that ran on one thread is retried.)
        let caller = std::thread::current().id();
        let helped = (0..5).any(|_| {
            set_num_threads(2).unwrap();
            let mut out = vec![None; 40];
            split_in_place(40, 1, 1, 1, &mut out, |_, o, _| {
                std::thread::sleep(std::time::Duration::from_millis(2));
                o[0] = Some(std::thread::current().id());
            })
            .unwrap();
            assert!(out.iter().all(Option::is_some));
            out.iter().any(|t| t.is_some_and(|t| t != caller))
        });
        assert!(helped, "no block ran on a pool thread");
        set_num_threads(0).unwrap();
    }

    #[test]
    fn pool_can_be_resized() {
        set_num_threads(3).unwrap();
        assert_eq!(num_threads().unwrap(), 3);
        set_num_threads(1).unwrap();
        assert_eq!(install(rayon::current_num_threads).unwrap(), 1);
        set_num_threads(0).unwrap();
    }
}
