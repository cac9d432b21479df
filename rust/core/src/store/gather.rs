//! Batches out of a mapped store: CSI windows (with load-time transforms),
//! label rows, and the z-score moments of a set of frames.

use super::fused::FusedTransform;
use super::mapped::MappedArray;
use super::transform::CsiTransform;
use crate::threads::{map_chunks, split_in_place};
use crate::{Error, Result};

/// `[frames, antennas, subcarriers, packets]` of a CSI array.
fn csi_shape(csi: &MappedArray) -> Result<[usize; 4]> {
    match *csi.shape() {
        // Frames without antennas, subcarriers or packets would be zero-sized chunks.
        [_, a, s, p] if a == 0 || s == 0 || p == 0 => Err(Error::DataFormat(format!(
            "{}: CSI frames of [antennas, subcarriers, packets] = [{a}, {s}, {p}] are empty",
            csi.path().display()
        ))),
        [f, a, s, p] => Ok([f, a, s, p]),
        ref other => Err(Error::DataFormat(format!(
            "{}: CSI must be [frames, antennas, subcarriers, packets], the file has shape {other:?}",
            csi.path().display()
        ))),
    }
}

fn check_rows(rows: &[i64], limit: usize, what: &str) -> Result<()> {
    match rows.iter().position(|&r| r < 0 || r as u64 > limit as u64) {
        None => Ok(()),
        Some(i) => Err(Error::Value(format!(
            "{what} {} at batch position {i} is out of range 0..={limit}",
            rows[i]
        ))),
    }
}

/// Gather windows of `length` consecutive frames starting at `starts` into
/// `out` `[batch, length, antennas, t, packets]`, transforming every frame.
pub fn gather_windows(
    csi: &MappedArray,
    starts: &[i64],
    length: usize,
    transform: &CsiTransform<'_>,
    out: &mut [f32],
) -> Result<()> {
    WindowGather::new(csi, length, transform)?.gather(csi, starts, out)
}

/// The window gather of one CSI array, prepared once: its checks against the
/// array's shape done and the transform's float32 kernel built, so that a
/// caller gathering many batches (a store) pays neither per call.
#[derive(Debug, Clone)]
pub struct WindowGather {
    /// `[frames, antennas, subcarriers, packets]` of the array it was prepared for.
    shape: [usize; 4],
    length: usize,
    /// Values per output window.
    window: usize,
    /// `None` for the identity: windows are copied.
    fused: Option<FusedTransform>,
}

impl WindowGather {
    /// Prepare windows of `length` frames of `csi` under `transform`.
    pub fn new(csi: &MappedArray, length: usize, transform: &CsiTransform<'_>) -> Result<Self> {
        let [f, a, s, p] = csi_shape(csi)?;
        transform.check(a, s)?;
        if length == 0 || length > f {
            return Err(Error::Value(format!(
                "window length {length} does not fit {f} frames"
            )));
        }
        Ok(Self {
            shape: [f, a, s, p],
            length,
            window: length * a * transform.out_subcarriers(s) * p,
            fused: (!transform.is_identity()).then(|| FusedTransform::new(transform, [a, s, p])),
        })
    }

    /// Values per output window (`length x antennas x t x packets`).
    pub fn window_len(&self) -> usize {
        self.window
    }

    /// Gather the windows starting at `starts` of `csi` (the array this was
    /// prepared for) into `out` `[batch, length, antennas, t, packets]`.
    pub fn gather(&self, csi: &MappedArray, starts: &[i64], out: &mut [f32]) -> Result<()> {
        let [f, a, s, p] = self.shape;
        if csi.shape() != self.shape {
            return Err(Error::Shape(format!(
                "{}: shape {:?}, the gather was prepared for {:?}",
                csi.path().display(),
                csi.shape(),
                self.shape
            )));
        }
        let (length, window) = (self.length, self.window);
        check_rows(starts, f - length, "window start")?;
        if out.len() != starts.len() * window {
            return Err(Error::Shape(format!(
                "out holds {} values, expected {} windows x {window}",
                out.len(),
                starts.len()
            )));
        }
        if window == 0 {
            return Ok(());
        }
        let data = csi.f32()?;
        let (src_frame, dst_frame) = (a * s * p, window / length);
        let fused = &self.fused;
        let src_window = length * src_frame;
        let all_starts = starts;
        let source = |start: i64| {
            let first = start as usize * src_frame;
            &data[first..first + src_window]
        };
        let src_bytes = src_window * 4;
        split_in_place(
            starts.len(),
            block_items(src_bytes),
            help_items(src_bytes),
            window,
            out,
            |range, dst, after| {
                let starts = &starts[range];
                for (i, (dst, &start)) in dst.chunks_exact_mut(window).zip(starts).enumerate() {
                    // The next window's lines are on their way while this one is done.
                    let next = starts
                        .get(i + 1)
                        .or_else(|| after.and_then(|a| all_starts.get(a)));
                    if let Some(&next) = next {
                        prefetch(source(next));
                    }
                    let src = source(start);
                    match fused {
                        // Consecutive frames are contiguous in the file: one copy per window.
                        None => dst.copy_from_slice(src),
                        Some(f) => {
                            // Each frame prefetches the one after it: the window's
                            // next frame, or the next window's first.
                            let after = next.map(|&n| &source(n)[..src_frame]);
                            let mut frames = src.chunks_exact(src_frame).peekable();
                            for y in dst.chunks_exact_mut(dst_frame) {
                                let Some(x) = frames.next() else { break };
                                let ahead = frames.peek().copied().or(after).unwrap_or(&[]);
                                f.frame(x, y, ahead);
                            }
                        }
                    }
                }
            },
        )
    }
}

/// Source bytes a batch reads at least before pool threads are asked to
/// help: asking costs the caller a wake-up call (microseconds), which must be
/// small against the copy it shares.
const MIN_HELP_BYTES: usize = 128 * 1024;

/// Source bytes a thread claims at a time: large enough that the shared
/// counter is touched rarely, small enough that a late helper still finds
/// work in a batch of ~1 MB.
const BLOCK_BYTES: usize = 32 * 1024;

/// Items of `bytes` each that make `MIN_HELP_BYTES`.
fn help_items(bytes: usize) -> usize {
    MIN_HELP_BYTES.div_ceil(bytes.max(1))
}

/// Items of `bytes` each that make a block of `BLOCK_BYTES`.
fn block_items(bytes: usize) -> usize {
    BLOCK_BYTES.div_ceil(bytes.max(1))
}

/// Ask for the first line of every page of `x` ahead of its use: a gathered
/// row starts on an arbitrary page, where the hardware prefetchers have
/// nothing to follow, and each of its pages needs a TLB walk and a DRAM row
/// of its own. Started one row ahead, both overlap the copy of the row
/// before; the prefetchers stream the rest of each page once it is touched.
/// (Measured with benches/bench_data_cpu.py: every line of the next row was
/// slower than none; one line per page gave the most.)
#[inline(always)]
fn prefetch<T>(x: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let (ptr, bytes) = (x.as_ptr().cast::<i8>(), std::mem::size_of_val(x));
        let pages = (0..bytes).step_by(4096).chain(bytes.checked_sub(1));
        for offset in pages {
            // SAFETY: `offset` is inside `x`; a prefetch never faults or writes.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr.wrapping_add(offset)) };
        }
    }
}

/// Copy rows `rows` of any array into `out` (`rows.len()` x row bytes).
pub fn gather_rows(array: &MappedArray, rows: &[i64], out: &mut [u8]) -> Result<()> {
    let width = array.row_bytes();
    let n = array.rows();
    if n == 0 && !rows.is_empty() {
        return Err(Error::Value(format!(
            "{} has no rows",
            array.path().display()
        )));
    }
    check_rows(rows, n.saturating_sub(1), "row")?;
    if out.len() != rows.len() * width {
        return Err(Error::Shape(format!(
            "out holds {} bytes, expected {} rows x {width}",
            out.len(),
            rows.len()
        )));
    }
    if width == 0 {
        return Ok(());
    }
    let data = array.bytes();
    let row = |r: i64| &data[r as usize * width..(r as usize + 1) * width];
    // Split by bytes, not rows: small label rows stay together, while a batch
    // of large CSI frames spreads over every thread.
    split_in_place(
        rows.len(),
        block_items(width),
        help_items(width),
        width,
        out,
        |range, dst, after| {
            let part = &rows[range];
            for (i, (dst, &r)) in dst.chunks_exact_mut(width).zip(part).enumerate() {
                if let Some(&next) = part.get(i + 1).or_else(|| after.and_then(|a| rows.get(a))) {
                    prefetch(row(next));
                }
                dst.copy_from_slice(row(r));
            }
        },
    )
}

/// Per (antenna, output subcarrier) mean and population standard deviation
/// over the packets of `frames`, after `transform` (which must not z-score).
/// Returns `(mean, std, count per entry)`; deterministic whatever the thread count.
pub fn csi_moments(
    csi: &MappedArray,
    frames: &[i64],
    transform: &CsiTransform<'_>,
) -> Result<(Vec<f64>, Vec<f64>, u64)> {
    let [f, a, s, p] = csi_shape(csi)?;
    if transform.zscore.is_some() {
        return Err(Error::Value("moments are taken before the z-score".into()));
    }
    transform.check(a, s)?;
    check_rows(frames, f.saturating_sub(1), "frame")?;
    let t = transform.out_subcarriers(s);
    let (src_frame, entries) = (a * s * p, a * t);
    let data = csi.f32()?;
    // Chan's parallel merge of (count, mean, M2) per entry, in chunk order.
    let parts = map_chunks(frames.len(), 256, |range| {
        let mut stats = vec![(0u64, 0.0f64, 0.0f64); entries];
        let (mut scratch, mut y) = (Vec::new(), vec![0.0f64; entries * p]);
        for &fr in &frames[range] {
            let first = fr as usize * src_frame;
            transform.apply_f64(
                &data[first..first + src_frame],
                [a, s, p],
                &mut scratch,
                &mut y,
            );
            for (st, vals) in stats.iter_mut().zip(y.chunks_exact(p)) {
                for &v in vals {
                    st.0 += 1;
                    let d = v - st.1;
                    st.1 += d / st.0 as f64;
                    st.2 += d * (v - st.1);
                }
            }
        }
        stats
    })?;
    let mut total = vec![(0u64, 0.0f64, 0.0f64); entries];
    for part in parts {
        for (t, b) in total.iter_mut().zip(part) {
            let n = t.0 + b.0;
            if n == 0 {
                continue;
            }
            let d = b.1 - t.1;
            t.1 += d * b.0 as f64 / n as f64;
            t.2 += b.2 + d * d * t.0 as f64 * b.0 as f64 / n as f64;
            t.0 = n;
        }
    }
    let count = total.first().map_or(0, |t| t.0);
    let mean = total.iter().map(|t| t.1).collect();
    let std = total
        .iter()
        .map(|t| {
            if t.0 > 0 {
                (t.2 / t.0 as f64).sqrt()
            } else {
                0.0
            }
        })
        .collect();
    Ok((mean, std, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::SubcarrierMap;

    fn array(dir: &std::path::Path, name: &str, shape: [usize; 4]) -> MappedArray {
        let data: Vec<u8> = (0..shape.iter().product::<usize>())
            .flat_map(|i| ((i * 37 % 101) as f32 * 0.25 - 3.0).to_le_bytes())
            .collect();
        let path = dir.join(name);
        let shape = format!("({}, {}, {}, {})", shape[0], shape[1], shape[2], shape[3]);
        super::super::mapped::tests::write_npy(&path, "<f4", &shape, &data);
        MappedArray::open(&path).unwrap()
    }

    #[test]
    fn a_prepared_gather_is_the_one_shot_gather_and_keeps_to_its_array() {
        let dir = std::env::temp_dir().join(format!("csipose-gather-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = array(&dir, "a.npy", [5, 2, 3, 8]);
        let b = array(&dir, "b.npy", [5, 2, 4, 8]);
        let (start, index, weight) = ([0u32, 2, 3], [0u32, 2, 1], [0.5, 0.5, 1.0]);
        let map = SubcarrierMap::new(&start, &index, &weight, 3).unwrap();
        let (mean, std) = ([0.1, 0.2, 0.3, 0.4], [1.0, 0.5, 0.25, 2.0]);
        for t in [
            CsiTransform::default(),
            CsiTransform {
                minmax: true,
                map: Some(map),
                zscore: Some((&mean, &std)),
            },
        ] {
            let g = WindowGather::new(&a, 2, &t).unwrap();
            let starts = [0, 3, 1, 3];
            let mut want = vec![0.0f32; 4 * g.window_len()];
            gather_windows(&a, &starts, 2, &t, &mut want).unwrap();
            for _ in 0..2 {
                let mut got = vec![f32::NAN; want.len()];
                g.gather(&a, &starts, &mut got).unwrap();
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                );
            }
            assert!(matches!(
                g.gather(&b, &starts, &mut want),
                Err(Error::Shape(_))
            ));
            assert!(matches!(
                g.gather(&a, &[4], &mut want[..g.window_len()]),
                Err(Error::Value(_))
            ));
            assert!(matches!(
                g.gather(&a, &[0], &mut want),
                Err(Error::Shape(_))
            ));
        }
        assert!(WindowGather::new(&a, 6, &CsiTransform::default()).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
