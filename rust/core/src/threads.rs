//! The thread pool every kernel runs on, and deterministic chunked maps over it.
//!
//! One process-wide pool whose size `set_num_threads` can change at any time
//! (rayon's global pool can be sized only once). Work is split into chunks
//! whose boundaries depend only on the problem size, and partial results are
//! combined in chunk order, so floating-point sums are identical whatever the
//! thread count.

use std::ops::Range;
use std::sync::{Arc, RwLock};

use rayon::prelude::*;

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

fn chunk_ranges(n: usize, chunk: usize) -> impl IndexedParallelIterator<Item = Range<usize>> {
    let chunk = chunk.max(1);
    (0..n.div_ceil(chunk))
        .into_par_iter()
        .map(move |c| c * chunk..n.min((c + 1) * chunk))
}

/// Map `f` over `0..n` cut into ranges of `chunk` items, results in range order.
///
/// Problems of one chunk run on the calling thread without touching the pool,
/// so small calls from several Python threads never queue behind each other.
pub fn map_chunks<R, F>(n: usize, chunk: usize, f: F) -> Result<Vec<R>>
where
    R: Send,
    F: Fn(Range<usize>) -> R + Sync + Send,
{
    if n <= chunk {
        return Ok(vec![f(0..n)]);
    }
    install(|| chunk_ranges(n, chunk).map(&f).collect())
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
    install(|| {
        out.par_chunks_mut(chunk * width)
            .zip(chunk_ranges(n, chunk))
            .map(|(o, r)| f(r, o))
            .collect()
    })
}

/// Run `f(range, part)` over `n` items cut into one contiguous part per pool
/// thread (at least `min_items` items each), each part with its slice of
/// `out` (`width` values per item). The calling thread runs the first part
/// itself and waits for the pool's, so a call of one part (one thread, or a
/// small batch) never touches the pool: no worker to wake, no hand-over.
pub fn split_in_place<T, F>(
    n: usize,
    min_items: usize,
    width: usize,
    out: &mut [T],
    f: F,
) -> Result<()>
where
    T: Send,
    F: Fn(Range<usize>, &mut [T]) + Sync,
{
    if out.len() != n.saturating_mul(width) {
        return Err(Error::Shape(format!(
            "output holds {} values, expected {n} x {width}",
            out.len()
        )));
    }
    let pool = pool()?;
    let parts = pool.current_num_threads().min(n / min_items.max(1)).max(1);
    if parts == 1 || width == 0 {
        f(0..n, out);
        return Ok(());
    }
    let per = n.div_ceil(parts);
    pool.in_place_scope(|s| {
        let mut chunks = out.chunks_mut(per * width).enumerate();
        let first = chunks.next();
        for (i, o) in chunks {
            let f = &f;
            s.spawn(move |_| f(i * per..n.min((i + 1) * per), o));
        }
        if let Some((_, o)) = first {
            f(0..per.min(n), o);
        }
    });
    Ok(())
}

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
    fn in_place_parts_cover_every_item_once() {
        for (threads, n, min_items) in [(1, 10, 1), (3, 10, 1), (3, 10, 4), (2, 1, 1), (2, 0, 1)] {
            set_num_threads(threads).unwrap();
            let mut out = vec![usize::MAX; n * 2];
            split_in_place(n, min_items, 2, &mut out, |r, o| {
                assert_eq!(o.len(), r.len() * 2);
                for (i, slot) in r.zip(o.chunks_exact_mut(2)) {
                    slot.copy_from_slice(&[i, i + 1]);
                }
            })
            .unwrap();
            let want: Vec<usize> = (0..n).flat_map(|i| [i, i + 1]).collect();
            assert_eq!(out, want, "{threads} threads, {n} items");
        }
        assert!(split_in_place(3, 1, 2, &mut [0u8; 5], |_, _| ()).is_err());
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
