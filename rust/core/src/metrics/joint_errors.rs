//! One pass over a pose batch: per-joint distances, the PCK counts at any
//! number of thresholds, and the MPJPE sums.
//!
//! PCK and MPJPE share this kernel so a report reads its inputs once. The fast
//! path (no root, scalar normalisers) works on squared distances in flat,
//! vectorisable loops and decides `sqrt(q) / s <= t` without a division per
//! joint: for each sample it brackets the boundary in `q` and only joints
//! inside that 1e-12-wide bracket take the exact float64 test.

use std::ops::Range;

use super::batch::{PoseBatch, first_nonfinite_gt, first_nonfinite_gt_rows};
#[cfg(target_arch = "x86_64")]
use super::curve_avx2::{Lanes, cells_2d, torso_scales_8};
use super::curve_grid::{Grid, Grid32, UNSURE};
#[cfg(target_arch = "x86_64")]
use super::distances_avx2::squares32_and_distance_lanes_2d;
#[cfg(target_arch = "x86_64")]
use super::pck_avx2::{RunRows, limits, pck_2d};
use super::samples_per_chunk;
#[cfg(target_arch = "x86_64")]
use super::simd::{Isa, isa};
use super::simd::{distances, drop_full_mask, masked_sum, multiversion, squared_distances};
use crate::threads::map_chunks_out;
use crate::{Error, Result};

/// How a PCK normalises a joint's distance (section 3 of the metrics reference).
#[derive(Debug, Clone, Copy)]
pub enum PckNorm<'a> {
    /// WiFlow `utils/metrics.py`: scale = max(|gt[a] - gt[b]|, floor) per
    /// sample; correct when d / scale <= t. With a mask, a sample whose `a` or
    /// `b` is not visible has no scale and is skipped.
    Torso { a: usize, b: usize, floor: f64 },
    /// scale = the longest side of the bounding box of the sample's visible
    /// ground-truth joints; correct when d / scale <= t; a zero box is skipped.
    BBox,
    /// mmpose `keypoint_pck_accuracy`: per-axis factors `[n, d]` (default: the
    /// longest bounding-box side on every axis); a sample with a zero factor is
    /// skipped, negative factors become 1e6; correct when |(p - g) / f| < t.
    MmPose { factors: Option<&'a [f64]> },
    /// correct when d <= t, in the data's units.
    Absolute,
}

/// The name of a PCK normalisation, as the Python API spells it; the
/// binding adds the arguments a [`PckNorm`] needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// `"torso"`: [`PckNorm::Torso`].
    Torso,
    /// `"bbox"`: [`PckNorm::BBox`].
    BBox,
    /// `"mmpose"`: [`PckNorm::MmPose`].
    MmPose,
    /// `"absolute"`: [`PckNorm::Absolute`].
    Absolute,
}

impl std::str::FromStr for NormKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "torso" => Ok(Self::Torso),
            "bbox" => Ok(Self::BBox),
            "mmpose" => Ok(Self::MmPose),
            "absolute" => Ok(Self::Absolute),
            other => Err(Error::Value(format!(
                "unknown norm {other:?}; expected 'torso', 'bbox', 'mmpose' or 'absolute'"
            ))),
        }
    }
}

/// What one pass measured. Counts are over (sample, joint) entries whose
/// ground truth is visible.
#[derive(Debug, Clone, PartialEq)]
pub struct JointErrors {
    /// `correct[t * k + j]`: entries of joint `j` within threshold `t` (thresholds in the order given).
    pub correct: Vec<u64>,
    /// `scored[j]`: entries of joint `j` the PCK scored.
    pub scored: Vec<u64>,
    /// Samples the PCK skipped for want of a normaliser.
    pub pck_skipped: u64,
    /// Sum of the Euclidean distances of the entries the MPJPE scored.
    pub dist_sum: f64,
    /// Entries the MPJPE scored.
    pub dist_count: u64,
    /// Samples skipped because the root joint is not visible (root-relative only).
    pub root_skipped: u64,
}

enum Scale {
    Skip,
    Scalar(f64),
    PerAxis([f64; 3]),
}

/// Longest side of the bounding box of the visible joints; 0 when none is visible.
#[inline(always)]
fn bbox_side(g: &[f32], vis: Option<&[bool]>, d: usize) -> f64 {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for (j, p) in g.chunks_exact(d).enumerate() {
        if vis.is_none_or(|v| v[j]) {
            for c in 0..d {
                lo[c] = lo[c].min(f64::from(p[c]));
                hi[c] = hi[c].max(f64::from(p[c]));
            }
        }
    }
    (0..d).map(|c| hi[c] - lo[c]).fold(0.0, f64::max)
}

#[inline(always)]
fn sample_scale(norm: &PckNorm<'_>, i: usize, g: &[f32], vis: Option<&[bool]>, d: usize) -> Scale {
    match *norm {
        PckNorm::Torso { a, b, floor } => {
            if vis.is_some_and(|v| !v[a] || !v[b]) {
                return Scale::Skip;
            }
            let mut q = [0.0];
            squared_distances(&g[a * d..(a + 1) * d], &g[b * d..(b + 1) * d], d, &mut q);
            Scale::Scalar(q[0].sqrt().max(floor))
        }
        PckNorm::BBox => match bbox_side(g, vis, d) {
            s if s > 0.0 => Scale::Scalar(s),
            _ => Scale::Skip,
        },
        PckNorm::MmPose { factors } => {
            let mut f = [1.0; 3];
            match factors {
                Some(fs) => f[..d].copy_from_slice(&fs[i * d..(i + 1) * d]),
                None => f[..d].fill(bbox_side(g, vis, d)),
            }
            if f[..d].contains(&0.0) {
                return Scale::Skip;
            }
            for x in &mut f[..d] {
                if *x < 0.0 {
                    *x = 1e6;
                }
            }
            Scale::PerAxis(f)
        }
        PckNorm::Absolute => Scale::Scalar(1.0),
    }
}

/// Sorted thresholds, the comparison and the options of one call.
struct Plan<'a> {
    batch: &'a PoseBatch<'a>,
    norm: Option<&'a PckNorm<'a>>,
    sorted: &'a [f64],
    strict: bool,
    root: Option<usize>,
    /// Curves at evenly spaced thresholds: the direct bracket index.
    grid: Option<Grid>,
    /// Its float32 form, set unless per-sample distances are wanted.
    grid32: Option<Grid32>,
    /// Whether the distances are summed (the MPJPE).
    mpjpe: bool,
}

#[derive(Default)]
struct Partial {
    /// `correct[t * k + j]` with thresholds in sorted order.
    correct: Vec<u64>,
    scored: Vec<u64>,
    /// Samples scored on every joint (no mask), added to `scored` at the end.
    scored_samples: u64,
    pck_skipped: u64,
    dist_sum: f64,
    /// Sums of distances of earlier parts of the chunk, each from 0, added
    /// before `dist_sum` (see the float32 curve in [`fast_chunk`]).
    dist_parts: Vec<f64>,
    dist_count: u64,
    root_skipped: u64,
    first_bad_gt: Option<usize>,
    /// Curves only: `first_pass[i * k + j]` entries of joint `j` whose first
    /// passing sorted threshold is `i` (`i = t`: none passes); turned into
    /// `correct` by [`Partial::settle_curve`].
    first_pass: Vec<u64>,
}

impl Partial {
    fn new(k: usize, t: usize) -> Self {
        Self {
            correct: vec![0; t * k],
            scored: vec![0; k],
            ..Self::default()
        }
    }

    /// Add the curve histogram into `correct`: an entry passes every sorted
    /// threshold from its first passing one on.
    fn settle_curve(&mut self, k: usize) {
        let t = self.correct.len() / k.max(1);
        let mut running = vec![0u64; k];
        for ti in 0..t {
            let hist = &self.first_pass[ti * k..(ti + 1) * k];
            let row = &mut self.correct[ti * k..(ti + 1) * k];
            for ((r, c), h) in running.iter_mut().zip(row).zip(hist) {
                *r += h;
                *c += *r;
            }
        }
    }
}

/// From this many thresholds on, a joint's normalised distance is located
/// among the sorted thresholds by binary search (log t comparisons) instead of
/// being compared with each of them.
const CURVE_SEARCH_MIN: usize = 8;

/// Add one sample's entries to the curve histogram: the first sorted threshold
/// `t` with `dist / s <= t`. The predicate is the exact test itself (the same
/// division and comparison) and is monotone in `t` because `sorted` ascends,
/// so the search returns the exact test's answer from any starting guess; the
/// guess (linear between the end thresholds) only makes it fast for evenly
/// spaced curves. A NaN distance passes no threshold.
#[inline(always)]
fn count_curve(dist: &[f64], vis: Option<&[bool]>, s: f64, sorted: &[f64], first_pass: &mut [u64]) {
    let k = dist.len();
    let t = sorted.len();
    let (first, last) = match (sorted.first(), sorted.last()) {
        (Some(&a), Some(&b)) => (a, b),
        _ => return,
    };
    let step = (last - first) / (t.saturating_sub(1).max(1)) as f64;
    let even = step.is_finite() && step > 0.0;
    for (j, &dj) in dist.iter().enumerate() {
        if vis.is_some_and(|v| !v[j]) {
            continue;
        }
        let x = dj / s;
        let i = if x.is_nan() {
            t
        } else if even {
            let guess = ((x - first) / step).ceil().clamp(0.0, t as f64) as usize;
            first_passing(x, sorted, guess)
        } else {
            sorted.partition_point(|&tv| tv < x)
        };
        if let Some(c) = first_pass.get_mut(i * k + j) {
            *c += 1;
        }
    }
}

/// The first threshold in `sorted` that `x` passes (`sorted.len()`: none, or NaN).
#[inline(always)]
fn exact_index(x: f64, sorted: &[f64]) -> usize {
    if x.is_nan() {
        sorted.len()
    } else {
        sorted.partition_point(|&tv| tv < x)
    }
}

/// [`exact_index`] of entry `e` of `D = d`-dimensional joints `p`, `g` at
/// scale `s`: its float64 distance over `s`, the exact test's quotient.
#[inline(always)]
fn exact_entry_index(
    (p, g): (&[f32], &[f32]),
    d: usize,
    e: usize,
    s: f64,
    sorted: &[f64],
) -> usize {
    let mut q = [0.0];
    squared_distances(&p[e * d..(e + 1) * d], &g[e * d..(e + 1) * d], d, &mut q);
    exact_index(q[0].sqrt() / s, sorted)
}

/// The first index `i` with `x <= sorted[i]` (`sorted.len()` if none), walking
/// from `guess`; neither `x` nor a threshold is NaN, so `t < x` is `!(x <= t)`.
#[inline(always)]
fn first_passing(x: f64, sorted: &[f64], guess: usize) -> usize {
    let mut i = guess.min(sorted.len());
    while i > 0 && sorted.get(i - 1).is_some_and(|&tv| x <= tv) {
        i -= 1;
    }
    while sorted.get(i).is_some_and(|&tv| tv < x) {
        i += 1;
    }
    i
}

/// Measure every visible (sample, joint) entry of `batch` in one pass.
///
/// * `norm`, `thresholds`: the PCK to count (none when `norm` is `None`).
/// * `root`: measure distances root-relative, after subtracting joint `root`
///   of the prediction and of the ground truth in each sample.
/// * `per_sample`: `[n]` output for each sample's mean distance (NaN when the
///   sample has nothing visible).
pub fn joint_errors(
    batch: &PoseBatch<'_>,
    norm: Option<&PckNorm<'_>>,
    thresholds: &[f64],
    root: Option<usize>,
    per_sample: Option<&mut [f64]>,
) -> Result<JointErrors> {
    measure(batch, norm, thresholds, root, per_sample, true)
}

/// The PCK counts of [`joint_errors`] alone (no root, no per-sample output):
/// `dist_sum` and `dist_count` are not measured and stay 0. A curve at evenly
/// spaced thresholds then takes its brackets from float32 distances, which
/// decide exactly as the float64 test (module `curve_grid`).
pub fn pck_counts(
    batch: &PoseBatch<'_>,
    norm: &PckNorm<'_>,
    thresholds: &[f64],
) -> Result<JointErrors> {
    measure(batch, Some(norm), thresholds, None, None, false)
}

fn measure(
    batch: &PoseBatch<'_>,
    norm: Option<&PckNorm<'_>>,
    thresholds: &[f64],
    root: Option<usize>,
    per_sample: Option<&mut [f64]>,
    distances: bool,
) -> Result<JointErrors> {
    let (n, k, d) = (batch.n(), batch.k(), batch.d());
    if thresholds.iter().any(|t| t.is_nan()) {
        return Err(Error::Value("PCK thresholds must not be NaN".into()));
    }
    if let Some(r) = root.filter(|&r| r >= k) {
        return Err(Error::Value(format!(
            "root joint {r} is out of range for {k} joints"
        )));
    }
    match norm {
        Some(PckNorm::Torso { a, b, floor }) => {
            if *a >= k || *b >= k {
                return Err(Error::Value(format!(
                    "torso joints ({a}, {b}) are out of range for {k} joints"
                )));
            }
            if floor.is_nan() || *floor < 0.0 {
                return Err(Error::Value(format!(
                    "torso floor must be >= 0, got {floor}"
                )));
            }
        }
        Some(PckNorm::MmPose { factors: Some(f) }) if f.len() != n * d => {
            return Err(Error::Shape(format!(
                "norm factors hold {} values, expected [{n}, {d}]",
                f.len()
            )));
        }
        _ => {}
    }
    let t = if norm.is_some() { thresholds.len() } else { 0 };
    let mut order: Vec<usize> = (0..t).collect();
    order.sort_by(|&x, &y| thresholds[x].total_cmp(&thresholds[y]));
    let sorted: Vec<f64> = order.iter().map(|&i| thresholds[i]).collect();
    let strict = matches!(norm, Some(PckNorm::MmPose { .. }));
    // Evenly spaced curve thresholds take the direct index, counted by
    // histogram cells `index * k + joint` that must stay below the SKIPPED
    // marker (beyond, the exact search counts them); in float32 unless
    // per-sample distances are wanted (an MPJPE's sum of float64 distances
    // is then taken from the same loads).
    let cells_fit = (t + 1).saturating_mul(k) < SKIPPED as usize;
    let grid = (t >= CURVE_SEARCH_MIN && !strict && cells_fit)
        .then(|| Grid::new(&sorted))
        .flatten();
    let plan = Plan {
        batch,
        norm,
        sorted: &sorted,
        strict,
        root,
        grid,
        grid32: grid
            .filter(|_| per_sample.is_none())
            .and_then(|g| g.single()),
        mpjpe: distances,
    };
    let fast = root.is_none() && !strict;

    let (out, width) = match per_sample {
        Some(o) => (o, 1),
        None => (&mut [][..], 0),
    };
    // Counts alone (the float32 curve) do not depend on the chunking, and each
    // chunk's kept partial holds a [threshold, joint] table of fresh memory:
    // larger chunks, still many per thread at the sizes where speed matters.
    // A sum of distances keeps every path's chunks (and so its bits): the
    // float32 curve's fast path sums each part of its larger chunks apart.
    let counts_only = plan.grid32.is_some() && !distances;
    let parts_apart = plan.grid32.is_some() && fast;
    let chunk = samples_per_chunk(k) * if counts_only || parts_apart { 8 } else { 1 };
    let parts = map_chunks_out(n, chunk, width, out, |range, out| {
        if fast {
            SCRATCH.with_borrow_mut(|scratch| fast_chunk_dispatch(&plan, range, out, scratch))
        } else {
            exact_chunk(&plan, range, out)
        }
    })?;

    let mut total = Partial::new(k, t);
    for p in parts {
        total
            .correct
            .iter_mut()
            .zip(&p.correct)
            .for_each(|(a, b)| *a += b);
        total
            .scored
            .iter_mut()
            .zip(&p.scored)
            .for_each(|(a, b)| *a += b + p.scored_samples);
        total.pck_skipped += p.pck_skipped;
        for s in p.dist_parts.iter().chain([&p.dist_sum]) {
            // After its parts, a chunk's own sum is +0.0: adding it changes
            // nothing (the sums are never -0.0).
            total.dist_sum += s;
        }
        total.dist_count += p.dist_count;
        total.root_skipped += p.root_skipped;
        total.first_bad_gt = total.first_bad_gt.or(p.first_bad_gt);
    }
    batch.check_gt_finite(total.first_bad_gt)?;
    let mut correct = vec![0; t * k];
    for (s, &ti) in order.iter().enumerate() {
        correct[ti * k..(ti + 1) * k].copy_from_slice(&total.correct[s * k..(s + 1) * k]);
    }
    if !distances {
        (total.dist_sum, total.dist_count) = (0.0, 0);
    }
    Ok(JointErrors {
        correct,
        scored: total.scored,
        pck_skipped: total.pck_skipped,
        dist_sum: total.dist_sum,
        dist_count: total.dist_count,
        root_skipped: total.root_skipped,
    })
}

/// Whether a normalised distance passes threshold `t` (NaN never does).
fn passes(x: f64, t: f64, strict: bool) -> bool {
    if strict { x < t } else { x <= t }
}

/// Bounds (lo, hi) on the squared distance q for `sqrt(q) / s <= t`: q <= lo
/// surely passes, q > hi surely fails, and only lo < q <= hi needs the exact
/// test. The 1e-12 margin dwarfs the four roundings (about 4.4e-16) of the
/// exact test and of t * s squared.
#[inline(always)]
fn bounds(t: f64, s: f64) -> (f64, f64) {
    if t < 0.0 {
        return (f64::NEG_INFINITY, f64::NEG_INFINITY);
    }
    let b = (t * s) * (t * s);
    if b > 1e-250 {
        (b * (1.0 - 1e-12), b * (1.0 + 1e-12))
    } else {
        // Near underflow the relative bound does not hold: test every joint exactly.
        (f64::NEG_INFINITY, f64::INFINITY)
    }
}

multiversion! {
    fn fast_chunk_dispatch<'a>(
        plan: &Plan<'a>,
        range: Range<usize>,
        out: &mut [f64],
        scratch: &mut Scratch,
    ) -> Partial;
    wide = match plan.batch.k() {
        // A joint count known at compile time lets the per-sample loops unroll.
        17 => fast_chunk::<17>(plan, range, out, scratch),
        15 => fast_chunk::<15>(plan, range, out, scratch),
        _ => fast_chunk::<0>(plan, range, out, scratch),
    };
    base = fast_chunk::<0>(plan, range, out, scratch);
}

/// Entries measured together in the fast path: the block's inputs, squares
/// and distances (32 bytes an entry) stay in a 32 KiB L1. Twice as many
/// spilled out of it: 1,000,000 x 17 PCK + MPJPE took 17-20% longer at one
/// thread on the AVX-512 VM, in either build.
const BLOCK_ENTRIES: usize = 512;

/// Entries of a float32 curve block (28 bytes an entry, in L2). Its loops
/// run from L1 or L2 alike, but each block restarts the stream of misses
/// into memory: 4,096 entries took 13% less time than 512 on the AVX-512 VM.
const CURVE32_BLOCK_ENTRIES: usize = 4096;

thread_local! {
    /// [`fast_chunk`]'s buffers on this thread (taken outside the
    /// multiversioned dispatch, so the chunk's loops keep its target features).
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// The buffers of [`fast_chunk`], kept per thread from chunk to chunk: a
/// fresh set per chunk (about 100 KiB for a curve with its MPJPE, zeroed or
/// filled, over a thousand chunks on 1,000,000 samples) took 6 of 36 ms.
/// Every buffer is written before it is read, so none is cleared between
/// chunks, but for `q`'s spare lanes, zeroed as fresh buffers were;
/// `joint` holds `e % k` for the `k` it was filled for.
#[derive(Default)]
struct Scratch {
    q: Vec<f64>,
    dist: Vec<f64>,
    scale: Vec<f64>,
    brackets: Vec<(f64, f64)>,
    idx: Vec<u32>,
    factor: Vec<f64>,
    q32: Vec<f32>,
    factor32: Vec<f32>,
    joint: (usize, Vec<u32>),
    first_pass: Vec<u64>,
    /// [`pck_chunk_2d`]'s run tables (for their `k`) and counts.
    #[cfg(target_arch = "x86_64")]
    runs: Option<RunRows>,
    #[cfg(target_arch = "x86_64")]
    counts: Vec<[i32; 8]>,
}

/// The first `n` values of `v`, grown (with default values) if shorter.
fn sized<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    if v.len() < n {
        v.resize(n, T::default());
    }
    &mut v[..n]
}

/// Entry `e`'s joint `e % k` for `n` entries, from `Scratch::joint`.
fn joints((of, joint): &mut (usize, Vec<u32>), k: usize, n: usize) -> &[u32] {
    if *of != k || joint.len() < n {
        *joint = (0..n).map(|e| (e % k) as u32).collect();
        *of = k;
    }
    &joint[..n]
}

/// No root, scalar normalisers: flat loops over blocks of samples.
#[inline(always)]
fn fast_chunk<const K: usize>(
    plan: &Plan<'_>,
    range: Range<usize>,
    out: &mut [f64],
    scratch: &mut Scratch,
) -> Partial {
    let k = plan.batch.k();
    let mut acc = Partial::new(k, plan.sorted.len());
    let curve = plan.sorted.len() >= CURVE_SEARCH_MIN;
    if curve {
        let mut hist = std::mem::take(&mut scratch.first_pass);
        hist.clear();
        hist.resize((plan.sorted.len() + 1) * k, 0);
        acc.first_pass = hist;
    }
    let block = (BLOCK_ENTRIES / k).max(1);
    // Fewer thresholds than a curve's, unmasked 2-D rows: one pass.
    #[cfg(target_arch = "x86_64")]
    let range = if out.is_empty() {
        pck_chunk_2d(plan, range, block, scratch, &mut acc)
    } else {
        range
    };
    // LANES spare entries: count_rows_wide reads whole runs of lanes.
    let q = sized(&mut scratch.q, block * k + LANES);
    // Another joint count's distances may lie there: count_rows_wide would
    // find them unsure and settle every row of the block.
    q[block * k..].fill(0.0);
    let dist = sized(&mut scratch.dist, block * k);
    if let Some(grid) = plan.grid32 {
        // Whole blocks of the float64 path, whose sums of distances these are.
        let block32 = block * (CURVE32_BLOCK_ENTRIES / BLOCK_ENTRIES);
        let joint = joints(&mut scratch.joint, k, block32 * k);
        #[cfg(target_arch = "x86_64")]
        let lanes = (plan.batch.d() == 2 && isa() >= Isa::Avx2).then(|| Lanes::new(k));
        let scale = sized(&mut scratch.scale, block32);
        let q32 = sized(&mut scratch.q32, block32 * k);
        let factor = sized(&mut scratch.factor32, block32 * k);
        let idx = sized(&mut scratch.idx, block32 * k);
        // With the MPJPE, each run of `samples_per_chunk(k)` rows sums its
        // distances as a chunk of its own (`Partial::dist_parts`), as the
        // chunks of `mpjpe()` do: its bits, from chunks eight times larger.
        let part = if plan.mpjpe {
            samples_per_chunk(k)
        } else {
            range.len().max(1)
        };
        for first in range.clone().step_by(part) {
            let part = first..range.end.min(first + part);
            for start in part.clone().step_by(block32) {
                let rows = start..part.end.min(start + block32);
                #[cfg(target_arch = "x86_64")]
                let rows = match &lanes {
                    Some(lanes) => {
                        let bufs = (&mut scale[..], &mut idx[..]);
                        curve_block32_2d(plan, (&grid, lanes), rows, bufs, block, &mut acc)
                    }
                    None => rows,
                };
                if !rows.is_empty() {
                    let bufs = (&mut scale[..], &mut q32[..], &mut factor[..], &mut idx[..]);
                    let sums = (block, &mut q[..], &mut dist[..]);
                    curve_block32::<K>(plan, &grid, rows, (bufs, sums), joint, &mut acc);
                }
            }
            if plan.mpjpe {
                acc.dist_parts.push(std::mem::take(&mut acc.dist_sum));
            }
        }
        acc.settle_curve(k);
        scratch.first_pass = std::mem::take(&mut acc.first_pass);
        return acc;
    }
    let scale = sized(&mut scratch.scale, block);
    let brackets = sized(&mut scratch.brackets, block);
    // Evenly spaced curves count by histogram cells (index * k + joint):
    // each entry's joint, and the block's cells.
    let entries = if plan.grid.is_some() { block * k } else { 0 };
    let joint = joints(&mut scratch.joint, k, entries);
    let idx = sized(&mut scratch.idx, entries);
    let factor = sized(&mut scratch.factor, entries);
    for start in range.clone().step_by(block) {
        let rows = start..range.end.min(start + block);
        let out = out
            .get_mut(rows.start - range.start..rows.end - range.start)
            .unwrap_or_default();
        let bufs = (
            &mut q[..],
            &mut dist[..],
            &mut scale[..],
            &mut brackets[..],
            &mut idx[..],
        );
        fast_block::<K>(plan, rows, out, bufs, (&mut factor[..], joint), &mut acc);
    }
    if curve {
        acc.settle_curve(k);
        scratch.first_pass = std::mem::take(&mut acc.first_pass);
    }
    acc
}

/// The PCK (fewer thresholds than a curve's, torso or absolute) and MPJPE of the
/// unmasked 2-D rows at the start of `range` in one pass
/// ([`pck_avx2::pck_2d`](super::pck_avx2::pck_2d)); returns the rows left
/// to the flat loops (all of `range` where it does not apply). With the
/// MPJPE, it takes whole blocks of `block` rows, so the flat loops' blocks
/// after them start where [`fast_block`]'s would, and the sums keep their bits.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn pck_chunk_2d(
    plan: &Plan<'_>,
    range: Range<usize>,
    block: usize,
    scratch: &mut Scratch,
    acc: &mut Partial,
) -> Range<usize> {
    let (k, t) = (plan.batch.k(), plan.sorted.len());
    // Curves (t >= CURVE_SEARCH_MIN) take the grid or the search.
    if plan.batch.d() != 2 || isa() < Isa::Avx2 || t >= CURVE_SEARCH_MIN {
        return range;
    }
    // None: no PCK, or absolute thresholds (every scale 1).
    let torso = match plan.norm {
        Some(PckNorm::Torso { a, b, floor }) => Some((*a, *b, *floor)),
        None | Some(PckNorm::Absolute) => None,
        Some(_) => return range,
    };
    let unit = if plan.mpjpe {
        8 * block / gcd(8, block)
    } else {
        8
    };
    let taken = range.len() / unit * unit;
    let rows = range.start..range.start + taken;
    let (p, g, vis) = plan.batch.rows(rows.clone());
    if taken == 0 || drop_full_mask(vis).is_some() {
        return range;
    }
    if scratch.runs.as_ref().is_none_or(|r| r.k() != k) {
        scratch.runs = RunRows::new(k);
    }
    let Some(runs) = &scratch.runs else {
        return range;
    };
    let counts = sized(&mut scratch.counts, t * k);
    counts.fill([0; 8]);
    let fill = |row: usize, out: &mut [f64; 8]| match torso {
        Some(torso) => {
            let g = &g[row * 2 * k..(row + 8) * 2 * k];
            // SAFETY: pck_2d runs only where isa() reports AVX2 (above).
            unsafe { torso_scales_2d(g, k, torso, out) };
        }
        None => out.fill(1.0),
    };
    let before = acc.dist_sum;
    let sums = (&mut acc.dist_sum, block * k);
    macro_rules! pass {
        ($t:literal) => {{
            let lim: [(f64, f64, f64); $t] = std::array::from_fn(|i| limits(plan.sorted[i]));
            // SAFETY: isa() reports AVX2 (checked above).
            unsafe {
                if plan.mpjpe {
                    pck_2d::<$t, true>((p, g), fill, runs, &lim, counts, sums)
                } else {
                    pck_2d::<$t, false>((p, g), fill, runs, &lim, counts, sums)
                }
            }
        }};
    }
    let (groups, finite) = match t {
        0 => pass!(0),
        1 => pass!(1),
        2 => pass!(2),
        3 => pass!(3),
        4 => pass!(4),
        5 => pass!(5),
        6 => pass!(6),
        _ => pass!(7),
    };
    debug_assert_eq!(groups * 8, taken);
    runs.add_counts(counts, &mut acc.correct);
    if plan.norm.is_some() {
        acc.scored_samples += taken as u64;
    }
    acc.dist_count += (taken * k) as u64;
    let finite = if plan.mpjpe {
        (acc.dist_sum - before).is_finite()
    } else {
        finite
    };
    if !finite && acc.first_bad_gt.is_none() {
        acc.first_bad_gt = first_nonfinite_gt_rows(rows.start, g, None, k, 2);
    }
    rows.end..range.end
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Scratch of one block: squared distances, distances (entries), scales and
/// brackets (rows), and an evenly spaced curve's histogram cells (entries).
type Buffers<'a> = (
    &'a mut [f64],
    &'a mut [f64],
    &'a mut [f64],
    &'a mut [(f64, f64)],
    &'a mut [u32],
);

#[inline(always)]
fn fast_block<const K: usize>(
    plan: &Plan<'_>,
    range: Range<usize>,
    out: &mut [f64],
    (q, dist, scale, brackets, idx): Buffers<'_>,
    (factor, joint): (&mut [f64], &[u32]),
    acc: &mut Partial,
) {
    let (k, d) = (plan.batch.k(), plan.batch.d());
    let m = range.len() * k;
    let dist = &mut dist[..m];
    let (p, g, vis) = plan.batch.rows(range.clone());
    let vis = drop_full_mask(vis);
    distances(p, g, d, &mut q[..m], dist);
    // The whole buffer (with its spare lanes) for count_rows_wide.
    let q_wide: &[f64] = q;
    let q = &q_wide[..m];
    let row_vis = |row: usize| vis.map(|v| &v[row * k..(row + 1) * k]);

    let before = acc.dist_sum;
    if out.is_empty() {
        add_sum(dist, vis, acc);
    } else {
        for (row, o) in out.iter_mut().enumerate() {
            let (s, c) = masked_sum(&dist[row * k..(row + 1) * k], row_vis(row));
            acc.dist_sum += s;
            acc.dist_count += c;
            *o = if c > 0 { s / c as f64 } else { f64::NAN };
        }
    }
    // A finite sum of the visible distances proves the visible ground truth is
    // finite (a NaN or infinite coordinate there makes its distance NaN or
    // infinite), so the exact scan runs only after a non-finite sum.
    if !(acc.dist_sum - before).is_finite() && acc.first_bad_gt.is_none() {
        acc.first_bad_gt = first_nonfinite_gt_rows(range.start, g, vis, k, d);
    }

    let Some(norm) = plan.norm else { return };
    // Every row's scale first (NaN: skipped), so the square roots of the
    // torso scales pipeline instead of waiting on one another.
    let scale = &mut scale[..range.len()];
    block_scales(norm, range, g, vis, (k, d), scale, acc);
    if !acc.first_pass.is_empty() {
        if let Some(grid) = plan.grid {
            grid_block(plan, &grid, (dist, scale, vis), (factor, joint, idx), acc);
            return;
        }
        for (row, &s) in scale.iter().enumerate() {
            if !s.is_nan() {
                let rows = row * k..(row + 1) * k;
                count_curve(
                    &dist[rows],
                    row_vis(row),
                    s,
                    plan.sorted,
                    &mut acc.first_pass,
                );
            }
        }
        return;
    }
    let brackets = &mut brackets[..scale.len()];
    for (ti, &t) in plan.sorted.iter().enumerate() {
        // Every row's bracket in one loop, then the joints row by row.
        for (b, &s) in brackets.iter_mut().zip(scale.iter()) {
            *b = if s.is_nan() {
                (f64::NEG_INFINITY, f64::NEG_INFINITY)
            } else {
                bounds(t, s)
            };
        }
        let c = &mut acc.correct[ti * k..(ti + 1) * k];
        if K > 0 && K <= LANES * 4 && vis.is_none() {
            // Whole rows in vector lanes; the rare joints in a bracket after.
            if count_rows_wide::<K>(q_wide, brackets, c) {
                for (row, (&b, &s)) in brackets.iter().zip(scale.iter()).enumerate() {
                    let rows = row * k..(row + 1) * k;
                    settle_row(&q[rows.clone()], &dist[rows], None, b, s, t, c);
                }
            }
            continue;
        }
        for (row, (&(lo, hi), &s)) in brackets.iter().zip(scale.iter()).enumerate() {
            let rows = row * k..(row + 1) * k;
            count_row::<K>(
                &q[rows.clone()],
                &dist[rows],
                row_vis(row),
                (lo, hi),
                s,
                t,
                c,
            );
        }
    }
}

/// Lanes of one counting step in [`count_rows_wide`].
const LANES: usize = 8;

/// Add the passes of every row of a block of unmasked rows of `K` joints at
/// one threshold to `c` `[K]`, given each row's bracket from [`bounds`];
/// returns whether any lane lies inside its row's bracket (joints there are
/// not counted: [`settle_row`] decides them). Each row is read as whole runs
/// of [`LANES`] from `q`, which holds `LANES` spare entries after the block:
/// lanes past the row's `K` joints count into counters that are dropped.
/// The counters are the block's own, so they stay in registers where `c`'s,
/// one read-modify-write per joint, did not (7 of 27 ms of PCK@0.2 + MPJPE
/// on 1,000,000 x 17 samples, one thread, AVX-512 VM).
#[inline(always)]
fn count_rows_wide<const K: usize>(q: &[f64], brackets: &[(f64, f64)], c: &mut [u64]) -> bool {
    let runs = K.div_ceil(LANES);
    let mut counts = [[0u64; LANES]; 4];
    let mut unsure = [0u64; LANES];
    for (row, &(lo, hi)) in brackets.iter().enumerate() {
        let Some(qr) = q.get(row * K..row * K + runs * LANES) else {
            break; // the caller leaves LANES spare entries: never taken
        };
        for (qv, cv) in qr.chunks_exact(LANES).zip(counts.iter_mut()) {
            for l in 0..LANES {
                cv[l] += u64::from(qv[l] <= lo);
                // The spare lanes may raise it too: settle_row then finds nothing.
                unsure[l] |= u64::from((qv[l] > lo) & (qv[l] <= hi));
            }
        }
    }
    for (j, cj) in c.iter_mut().take(K).enumerate() {
        *cj += counts[j / LANES][j % LANES];
    }
    unsure.iter().any(|&u| u != 0)
}

/// Every row's scale (NaN: skipped) with the scored counts, as [`fast_block`] takes them.
#[inline(always)]
fn block_scales(
    norm: &PckNorm<'_>,
    range: Range<usize>,
    g: &[f32],
    vis: Option<&[bool]>,
    (k, d): (usize, usize),
    scale: &mut [f64],
    acc: &mut Partial,
) {
    if let (PckNorm::Torso { a, b, floor }, None) = (norm, vis) {
        // Unmasked torso: every row is scored; a flat loop over the rows.
        acc.scored_samples += scale.len() as u64;
        match d {
            2 => torso_scales::<2>(g, k, (*a, *b, *floor), scale),
            _ => torso_scales::<3>(g, k, (*a, *b, *floor), scale),
        }
    } else {
        row_scales(norm, range, g, vis, (k, d), scale, acc);
    }
}

/// The curve of one block from float32 squared distances (the MPJPE's sums
/// of float64 distances taken from the same loads where it is measured):
/// the direct index of [`Grid32`] in flat loops over the block; joints it
/// cannot decide surely take the exact float64 test.
#[inline(always)]
fn curve_block32<const K: usize>(
    plan: &Plan<'_>,
    grid: &Grid32,
    range: Range<usize>,
    ((scale, q32, factor, idx), sums): (Buffers32<'_>, SumBuffers<'_>),
    joint: &[u32],
    acc: &mut Partial,
) {
    // K > 0: the caller checked that there are K joints (the loops unroll).
    let (k, d) = (if K > 0 { K } else { plan.batch.k() }, plan.batch.d());
    let Some(norm) = plan.norm else { return };
    let (p, g, vis) = plan.batch.rows(range.clone());
    let vis = drop_full_mask(vis);
    let m = range.len() * k;
    let (q32, factor, idx) = (&mut q32[..m], &mut factor[..m], &mut idx[..m]);
    // The squares first: their contiguous loads bring the block in from
    // memory with many misses in flight, where the scales' strided loads
    // would wait on each line in turn.
    let finite = if plan.mpjpe {
        squares_and_sums(plan.batch, range.clone(), q32, sums, acc)
    } else if d == 2 {
        Grid32::squares::<2>(p, g, q32)
    } else {
        Grid32::squares::<3>(p, g, q32)
    };
    let scale = &mut scale[..range.len()];
    block_scales(norm, range.clone(), g, vis, (k, d), scale, acc);
    // The row length as a runtime value: with K known, LLVM turned this fill
    // into AVX-512 scatters across rows.
    for (f, &s) in factor.chunks_exact_mut(plan.batch.k()).zip(scale.iter()) {
        f.fill(grid.row_factor(s));
    }
    // k < UNSURE / (count + 1): checked where grid32 is chosen.
    let k32 = k as u32;
    if grid.cells((q32, factor, &joint[..m]), k32, idx) {
        // The exact float64 test for what the float32 index left open.
        settle_open_cells(idx, scale, k, |e, s| {
            exact_entry_index((p, g), d, e, s, plan.sorted)
        });
    }
    histogram_cells(&mut acc.first_pass, idx, vis);
    // A non-finite float32 square (a NaN or infinite coordinate, or an
    // overflow) sends the block to the exact scan of the ground truth.
    if !finite && acc.first_bad_gt.is_none() {
        acc.first_bad_gt = first_nonfinite_gt_rows(range.start, g, vis, k, d);
    }
}

/// [`curve_block32`] of the whole groups of eight rows of `range` when their
/// joints are 2-D and unmasked: their cells in one pass ([`cells_2d`]), then
/// the histogram; returns the rows left to the flat loops (all of `range`
/// when it does not apply). With the MPJPE, its sums come from the same
/// loads in the float64 path's blocks of `block` rows from the start of
/// `range` (one on such a block), so only a `range` of whole groups takes
/// this path then.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn curve_block32_2d(
    plan: &Plan<'_>,
    (grid, lanes): (&Grid32, &Lanes),
    range: Range<usize>,
    (scale, idx): (&mut [f64], &mut [u32]),
    block: usize,
    acc: &mut Partial,
) -> Range<usize> {
    let (k, whole) = (plan.batch.k(), range.len() / 8 * 8);
    let rows = range.start..range.start + whole;
    let (p, g, vis) = plan.batch.rows(rows.clone());
    let Some(norm) = plan.norm else {
        return range;
    };
    if whole == 0 || drop_full_mask(vis).is_some() || (plan.mpjpe && whole != range.len()) {
        return range;
    }
    let scale = &mut scale[..whole];
    let torso = match norm {
        PckNorm::Torso { a, b, floor } => Some((*a, *b, *floor)),
        _ => None,
    };
    // Torso scales group by group, inside the pass: the first loads of a
    // block that gather them wait on each line in turn.
    let fill = |r: Range<usize>, out: &mut [f64]| {
        if let Some(torso) = torso {
            let g = &g[r.start * 2 * k..r.end * 2 * k];
            // SAFETY: the caller made lanes only where isa() reports AVX2.
            unsafe { torso_scales_2d(g, k, torso, out) };
        }
    };
    match torso {
        Some(_) => acc.scored_samples += whole as u64,
        None => block_scales(norm, rows.clone(), g, None, (k, 2), scale, acc),
    }
    let open = |e: usize, scale: &[f64]| {
        open_cell(e, scale, k, |e, s| {
            exact_entry_index((p, g), 2, e, s, plan.sorted)
        })
    };
    let idx = &mut idx[..whole * k];
    let bufs = (scale, fill);
    let finite = if plan.mpjpe {
        acc.dist_count += idx.len() as u64;
        let sums = (&mut acc.dist_sum, block * k);
        // SAFETY: the caller made lanes only where isa() reports AVX2.
        unsafe { cells_2d::<true>((p, g), bufs, (grid, lanes), open, idx, sums) }
    } else {
        // SAFETY: as above.
        unsafe { cells_2d::<false>((p, g), bufs, (grid, lanes), open, idx, (&mut 0.0, 0)) }
    };
    histogram_cells(&mut acc.first_pass, idx, None);
    if !finite && acc.first_bad_gt.is_none() {
        acc.first_bad_gt = first_nonfinite_gt_rows(rows.start, g, None, k, 2);
    }
    rows.end..range.end
}

/// Scratch of one float32 curve block: scales (rows), squared distances,
/// factors and histogram cells (entries).
type Buffers32<'a> = (&'a mut [f64], &'a mut [f32], &'a mut [f32], &'a mut [u32]);

/// The float64 path's block rows, and scratch for its squared distances and
/// distances (entries of one such block).
type SumBuffers<'a> = (usize, &'a mut [f64], &'a mut [f64]);

/// Add the distances of the visible joints of `dist` to the MPJPE's sum.
#[inline(always)]
fn add_sum(dist: &[f64], vis: Option<&[bool]>, acc: &mut Partial) {
    let (s, c) = masked_sum(dist, vis);
    acc.dist_sum += s;
    acc.dist_count += c;
}

/// [`Grid32::squares`] of the rows `range` into `q32`, with the MPJPE's sums
/// of their float64 distances added as [`fast_block`] adds them: in its
/// blocks of `block` rows from the chunk's start (`range` starts on one),
/// in its lanes, so the same bits. Unmasked 2-D joints take both from the
/// same loads in explicit AVX2 where the CPU has it. Returns whether every
/// float32 square is finite.
#[inline(always)]
fn squares_and_sums(
    batch: &PoseBatch<'_>,
    range: Range<usize>,
    q32: &mut [f32],
    (block, q, dist): SumBuffers<'_>,
    acc: &mut Partial,
) -> bool {
    let (k, d) = (batch.k(), batch.d());
    let mut finite = true;
    for start in range.clone().step_by(block) {
        let rows = start..range.end.min(start + block);
        let e = (rows.start - range.start) * k..(rows.end - range.start) * k;
        let m = e.len();
        let (p, g, vis) = batch.rows(rows);
        let (q32, vis) = (&mut q32[e], drop_full_mask(vis));
        #[cfg(target_arch = "x86_64")]
        if d == 2 && vis.is_none() && isa() >= Isa::Avx2 {
            // SAFETY: isa() reports only features the CPU has.
            let (ok, lanes) = unsafe { squares32_and_distance_lanes_2d(p, g, q32) };
            finite &= ok;
            // As masked_sum sums its lanes.
            acc.dist_sum += lanes.iter().sum::<f64>();
            acc.dist_count += m as u64;
            continue;
        }
        finite &= if d == 2 {
            Grid32::squares::<2>(p, g, q32)
        } else {
            Grid32::squares::<3>(p, g, q32)
        };
        distances(p, g, d, &mut q[..m], &mut dist[..m]);
        add_sum(&dist[..m], vis, acc);
    }
    finite
}

/// The curve of one block at evenly spaced thresholds from its float64
/// distances: the direct index of [`Grid`] as histogram cells in flat loops
/// over the block; entries it leaves open take the exact test.
#[inline(always)]
fn grid_block(
    plan: &Plan<'_>,
    grid: &Grid,
    (dist, scale, vis): (&[f64], &[f64], Option<&[bool]>),
    (factor, joint, cells): (&mut [f64], &[u32], &mut [u32]),
    acc: &mut Partial,
) {
    let (k, m) = (plan.batch.k(), dist.len());
    let (factor, cells) = (&mut factor[..m], &mut cells[..m]);
    for (f, &s) in factor.chunks_exact_mut(k).zip(scale) {
        // NaN (a skipped row, or a factor out of range): every entry open.
        f.fill(grid.row_factor(s).unwrap_or(f64::NAN));
    }
    // k < UNSURE / (count + 1): checked where the cells are chosen.
    if grid.cells((dist, factor, &joint[..m]), k as u32, cells) {
        settle_open_cells(cells, scale, k, |e, s| {
            exact_index(dist[e] / s, plan.sorted)
        });
    }
    histogram_cells(&mut acc.first_pass, cells, vis);
}

/// Replace each open cell (`UNSURE`) of a block by the cell of the exact
/// test's index `exact(entry, its row's scale)`; a skipped row's (NaN scale)
/// become `SKIPPED`. Runs of 16 cells are tested at once: open ones are rare.
#[inline(always)]
fn settle_open_cells(
    cells: &mut [u32],
    scale: &[f64],
    k: usize,
    exact: impl Fn(usize, f64) -> usize,
) {
    const RUN: usize = 16;
    for (r, run) in cells.chunks_mut(RUN).enumerate() {
        if !run.iter().fold(false, |any, &c| any | (c == UNSURE)) {
            continue;
        }
        for (e, c) in (r * RUN..).zip(run.iter_mut()) {
            if *c == UNSURE {
                *c = open_cell(e, scale, k, &exact);
            }
        }
    }
}

/// The cell of entry `e` of a block that the direct index left open: the
/// exact test's index `exact(e, its row's scale)`; `SKIPPED` for a skipped
/// row (NaN scale).
#[inline(always)]
fn open_cell(e: usize, scale: &[f64], k: usize, exact: impl Fn(usize, f64) -> usize) -> u32 {
    let (row, j) = (e / k, e % k);
    match scale.get(row) {
        Some(&s) if !s.is_nan() => u32::try_from(exact(e, s) * k + j).unwrap_or(SKIPPED),
        _ => SKIPPED,
    }
}

/// A histogram cell no table holds: the entry is not counted.
const SKIPPED: u32 = UNSURE - 1;

/// Count a block's entries into the flat `[threshold, joint]` histogram
/// `first_pass` by their cells (`idx[e]`), only the visible ones when `vis`
/// is given: one increment per entry, no index arithmetic and no branch. A
/// cell out of range (`SKIPPED`, `UNSURE`) is counted in the last cell, the
/// last joint's "no threshold passes", which `settle_curve` never reads.
#[inline(always)]
fn histogram_cells(hist: &mut [u64], idx: &[u32], vis: Option<&[bool]>) {
    let Some(last) = hist.len().checked_sub(1) else {
        return;
    };
    match vis {
        None => {
            // Four increments a step: LLVM unrolled the plain loop in one
            // build and not in the next (1.5 ms of 40).
            let mut runs = idx.chunks_exact(4);
            for run in &mut runs {
                for &c in run {
                    hist[(c as usize).min(last)] += 1;
                }
            }
            for &c in runs.remainder() {
                hist[(c as usize).min(last)] += 1;
            }
        }
        Some(v) => {
            for (&c, &seen) in idx.iter().zip(v) {
                hist[(c as usize).min(last)] += u64::from(seen);
            }
        }
    }
}

/// Each row's scale in `scale` (NaN: skipped), with the scored counts.
#[inline(always)]
fn row_scales(
    norm: &PckNorm<'_>,
    range: Range<usize>,
    g: &[f32],
    vis: Option<&[bool]>,
    (k, d): (usize, usize),
    scale: &mut [f64],
    acc: &mut Partial,
) {
    let row_vis = |row: usize| vis.map(|v| &v[row * k..(row + 1) * k]);
    for ((row, i), sc) in range.enumerate().zip(scale.iter_mut()) {
        let vi = row_vis(row);
        *sc = match sample_scale(norm, i, &g[row * k * d..(row + 1) * k * d], vi, d) {
            Scale::Scalar(s) => {
                match vi {
                    None => acc.scored_samples += 1,
                    Some(v) => acc
                        .scored
                        .iter_mut()
                        .zip(v)
                        .for_each(|(x, &b)| *x += u64::from(b)),
                }
                s
            }
            _ => {
                acc.pck_skipped += 1;
                f64::NAN
            }
        };
    }
}

/// Torso scales `max(|g[a] - g[b]|, floor)` of every row of `g` (rows of `k`
/// joints of `D` coordinates), as [`sample_scale`] computes them.
#[inline(always)]
fn torso_scales<const D: usize>(
    g: &[f32],
    k: usize,
    (a, b, floor): (usize, usize, f64),
    scale: &mut [f64],
) {
    for (row, sc) in g.chunks_exact(k * D).zip(scale.iter_mut()) {
        let (ga, gb) = (&row[a * D..(a + 1) * D], &row[b * D..(b + 1) * D]);
        let mut q = 0.0;
        for c in 0..D {
            let x = f64::from(ga[c]) - f64::from(gb[c]);
            q += x * x;
        }
        *sc = q.sqrt().max(floor);
    }
}

/// [`torso_scales`] of the eight 2-D rows of `g` into `out`, in AVX2 lanes
/// ([`torso_scales_8`]) where its checks pass.
///
/// # Safety
///
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn torso_scales_2d(g: &[f32], k: usize, torso: (usize, usize, f64), out: &mut [f64]) {
    // SAFETY: the caller's.
    if !unsafe { torso_scales_8(g, k, torso, out) } {
        torso_scales::<2>(g, k, torso, out);
    }
}

/// Add one sample's passes at threshold `t` to `c` `[k]`, given its bracket
/// `(lo, hi)` from [`bounds`] (`K > 0`: `K` joints, known at compile time).
#[inline(always)]
fn count_row<const K: usize>(
    q: &[f64],
    dist: &[f64],
    vis: Option<&[bool]>,
    (lo, hi): (f64, f64),
    s: f64,
    t: f64,
    c: &mut [u64],
) {
    let k = if K > 0 { K } else { q.len() };
    let (q, c) = (&q[..k], &mut c[..k]);
    let mut unsure = false;
    match vis {
        None => {
            for (cj, &qj) in c.iter_mut().zip(q) {
                *cj += u64::from(qj <= lo);
                unsure |= (qj > lo) & (qj <= hi);
            }
        }
        Some(v) => {
            for ((cj, &qj), &vj) in c.iter_mut().zip(q).zip(&v[..k]) {
                *cj += u64::from(vj & (qj <= lo));
                unsure |= vj & (qj > lo) & (qj <= hi);
            }
        }
    }
    if unsure {
        settle_row(q, dist, vis, (lo, hi), s, t, c);
    }
}

/// Add the passes of one sample's joints inside its bracket `(lo, hi)` at
/// threshold `t` to `c`: the exact test, for what the bracket left open.
#[inline(always)]
fn settle_row(
    q: &[f64],
    dist: &[f64],
    vis: Option<&[bool]>,
    (lo, hi): (f64, f64),
    s: f64,
    t: f64,
    c: &mut [u64],
) {
    for (j, ((&qj, &dj), cj)) in q.iter().zip(dist).zip(c.iter_mut()).enumerate() {
        let seen = vis.is_none_or(|v| v[j]);
        if seen && qj > lo && qj <= hi && dj / s <= t {
            *cj += 1;
        }
    }
}

/// Root-relative distances or per-axis normalisers: the exact test per joint.
fn exact_chunk(plan: &Plan<'_>, range: Range<usize>, out: &mut [f64]) -> Partial {
    let (k, d) = (plan.batch.k(), plan.batch.d());
    let mut acc = Partial::new(k, plan.sorted.len());
    for (row, i) in range.enumerate() {
        let (p, g, vis) = plan.batch.sample(i);
        if acc.first_bad_gt.is_none() {
            acc.first_bad_gt = first_nonfinite_gt(i, g, vis, d);
        }
        let mut mean = f64::NAN;
        let origin = match plan.root {
            Some(r) if vis.is_some_and(|v| !v[r]) => {
                acc.root_skipped += 1;
                if let Some(o) = out.get_mut(row) {
                    *o = mean;
                }
                continue;
            }
            Some(r) => Some((&p[r * d..(r + 1) * d], &g[r * d..(r + 1) * d])),
            None => None,
        };
        let scale = match plan.norm {
            Some(nm) => sample_scale(nm, i, g, vis, d),
            None => Scale::Skip,
        };
        if plan.norm.is_some() && matches!(scale, Scale::Skip) {
            acc.pck_skipped += 1;
        }
        let (mut sum, mut count) = (0.0, 0u64);
        for (j, (pj, gj)) in p.chunks_exact(d).zip(g.chunks_exact(d)).enumerate() {
            if vis.is_some_and(|v| !v[j]) {
                continue;
            }
            let mut delta = [0.0f64; 3];
            for c in 0..d {
                delta[c] = match origin {
                    None => f64::from(pj[c]) - f64::from(gj[c]),
                    Some((pr, gr)) => {
                        (f64::from(pj[c]) - f64::from(pr[c]))
                            - (f64::from(gj[c]) - f64::from(gr[c]))
                    }
                };
            }
            let dd = delta[..d].iter().map(|x| x * x).sum::<f64>().sqrt();
            sum += dd;
            count += 1;
            let normalised = match scale {
                Scale::Skip => continue,
                Scale::Scalar(s) => dd / s,
                Scale::PerAxis(f) => (0..d)
                    .map(|c| {
                        let x = delta[c] / f[c];
                        x * x
                    })
                    .sum::<f64>()
                    .sqrt(),
            };
            acc.scored[j] += 1;
            for (ti, &t) in plan.sorted.iter().enumerate() {
                acc.correct[ti * k + j] += u64::from(passes(normalised, t, plan.strict));
            }
        }
        acc.dist_sum += sum;
        acc.dist_count += count;
        if count > 0 {
            mean = sum / count as f64;
        }
        if let Some(o) = out.get_mut(row) {
            *o = mean;
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        pred: &[f32],
        gt: &[f32],
        vis: Option<&[bool]>,
        shape: [usize; 3],
        norm: PckNorm<'_>,
        t: &[f64],
    ) -> Result<JointErrors> {
        joint_errors(
            &PoseBatch::new(pred, gt, vis, shape)?,
            Some(&norm),
            t,
            None,
            None,
        )
    }

    #[test]
    fn option_names_parse_in_the_core() {
        use super::super::Alignment;
        assert_eq!("torso".parse::<NormKind>().ok(), Some(NormKind::Torso));
        assert_eq!(
            "absolute".parse::<NormKind>().ok(),
            Some(NormKind::Absolute)
        );
        assert!(
            matches!("Torso".parse::<NormKind>(), Err(Error::Value(m)) if m.contains("'torso'"))
        );
        assert_eq!("scale".parse::<Alignment>().ok(), Some(Alignment::Scale));
        assert!(
            matches!("pa".parse::<Alignment>(), Err(Error::Value(m)) if m.contains("similarity"))
        );
    }

    #[test]
    fn torso_boundary_is_inclusive_and_clamped() {
        // Torso joints 0 and 1 are 1.0 apart; joint 2 is off by exactly 0.5.
        let gt = [0.0, 0.0, 1.0, 0.0, 5.0, 5.0];
        let pred = [0.0, 0.0, 1.0, 0.0, 5.5, 5.0];
        let torso = PckNorm::Torso {
            a: 0,
            b: 1,
            floor: 0.01,
        };
        let r = run(&pred, &gt, None, [1, 3, 2], torso, &[0.5, 0.4999]).unwrap();
        assert_eq!(r.correct, vec![1, 1, 1, 1, 1, 0]);
        // A zero torso is clamped to 0.01: an error of 0.0009 passes at t = 0.1.
        let gt = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0];
        let pred = [0.0, 0.0, 0.0, 0.0, 1.0009, 1.0];
        let r = run(&pred, &gt, None, [1, 3, 2], torso, &[0.1, 0.05]).unwrap();
        assert_eq!(r.correct, vec![1, 1, 1, 1, 1, 0]);
    }

    #[test]
    fn bracket_decides_as_the_exact_test() {
        // Distances sweep across the boundary of t * s in steps of one ulp.
        let s: f64 = 0.37;
        let t: f64 = 0.23;
        let mut x = t * s * (1.0 - 1e-13);
        for _ in 0..2000 {
            let q = x * x;
            let exact = q.sqrt() / s <= t;
            let (lo, hi) = bounds(t, s);
            let fast = q <= lo || (q <= hi && q.sqrt() / s <= t);
            assert_eq!(fast, exact, "x = {x}");
            assert!(q <= lo || q > hi || (lo < q && q <= hi));
            x = f64::from_bits(x.to_bits() + 1);
        }
        assert_eq!(bounds(-0.5, 1.0), (f64::NEG_INFINITY, f64::NEG_INFINITY));
    }

    #[test]
    fn mmpose_is_strict() {
        let gt = [0.0, 0.0, 2.0, 0.0];
        let pred = [1.0, 0.0, 2.0, 0.0];
        let r = run(
            &pred,
            &gt,
            None,
            [1, 2, 2],
            PckNorm::MmPose { factors: None },
            &[0.5],
        )
        .unwrap();
        assert_eq!(r.correct, vec![0, 1]);
    }

    #[test]
    fn nan_predictions_are_wrong_and_nan_gt_is_an_error() {
        let gt = [0.0, 0.0, 1.0, 1.0];
        let pred = [f32::NAN, 0.0, 1.0, 1.0];
        let r = run(&pred, &gt, None, [1, 2, 2], PckNorm::Absolute, &[10.0]).unwrap();
        assert_eq!(r.correct, vec![0, 1]);
        assert!(r.dist_sum.is_nan());
        let gt = [0.0, 0.0, f32::INFINITY, 1.0];
        assert!(run(&pred, &gt, None, [1, 2, 2], PckNorm::Absolute, &[1.0]).is_err());
        let vis = [true, false];
        assert!(run(&pred, &gt, Some(&vis), [1, 2, 2], PckNorm::Absolute, &[1.0]).is_ok());
    }

    #[test]
    fn root_relative_distances_ignore_a_global_offset() {
        let gt = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let pred = [5.0, 5.0, 5.0, 6.0, 6.0, 6.0];
        let b = PoseBatch::new(&pred, &gt, None, [1, 2, 3]).unwrap();
        let r = joint_errors(&b, None, &[], Some(0), None).unwrap();
        assert_eq!((r.dist_sum, r.dist_count), (0.0, 2));
    }

    #[test]
    fn thresholds_may_come_in_any_order() {
        let gt = [0.0, 0.0, 0.0, 0.0];
        let pred = [0.3, 0.0, 0.1, 0.0];
        let r = run(
            &pred,
            &gt,
            None,
            [1, 2, 2],
            PckNorm::Absolute,
            &[0.2, 0.05, 0.5],
        )
        .unwrap();
        assert_eq!(r.correct, vec![0, 1, 0, 0, 1, 1]);
    }

    #[test]
    fn curve_search_decides_as_the_exact_test() {
        // Many thresholds (the searched path) including ones exactly at a
        // joint's normalised distance, a negative one and a NaN distance.
        let gt = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let pred = [0.0, 0.0, 1.0, 0.0, 0.25, 0.0, f32::NAN, 0.0];
        let torso = PckNorm::Torso {
            a: 0,
            b: 1,
            floor: 0.01,
        };
        let t: Vec<f64> = (-2..30).map(|i| f64::from(i) * 0.0625).rev().collect();
        let r = run(&pred, &gt, None, [1, 4, 2], torso, &t).unwrap();
        for (ti, &tv) in t.iter().enumerate() {
            let want = [0.0 <= tv, 0.0 <= tv, 0.25 <= tv, false];
            let got: Vec<bool> = r.correct[ti * 4..ti * 4 + 4]
                .iter()
                .map(|&c| c == 1)
                .collect();
            assert_eq!(got, want, "t = {tv}");
        }
    }

    #[test]
    fn first_passing_is_the_partition_point_from_any_guess() {
        let sorted = [0.0, 0.1, 0.1, 0.2, 0.35, 0.9];
        for x in [-1.0, 0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.35, 0.5, 0.9, 2.0] {
            let want = sorted.iter().position(|&t| x <= t).unwrap_or(sorted.len());
            for guess in 0..=sorted.len() + 2 {
                assert_eq!(first_passing(x, &sorted, guess), want, "x = {x}");
            }
        }
    }

    #[test]
    fn fast_and_exact_paths_agree() {
        // The exact path runs when a root is given; a root with zero offset
        // (joint 0 identical in pred and gt) measures the same distances.
        let (n, k) = (300, 5);
        let mut gt = vec![0f32; n * k * 2];
        let mut pred = vec![0f32; n * k * 2];
        for (i, (g, p)) in gt.iter_mut().zip(pred.iter_mut()).enumerate() {
            if i % (k * 2) >= 2 {
                *g = ((i * 37) % 101) as f32 / 10.0;
                *p = *g + ((i * 53) % 17) as f32 / 40.0 - 0.2;
            }
        }
        let b = PoseBatch::new(&pred, &gt, None, [n, k, 2]).unwrap();
        let torso = PckNorm::Torso {
            a: 1,
            b: 3,
            floor: 0.01,
        };
        let few = [0.0, 0.05, 0.1, 0.25, 1.0];
        let many: Vec<f64> = (0..41).map(|i| f64::from(i) * 0.025).collect();
        for t in [&few[..], &many[..]] {
            let fast = joint_errors(&b, Some(&torso), t, None, None).unwrap();
            let exact = joint_errors(&b, Some(&torso), t, Some(0), None).unwrap();
            assert_eq!(fast.correct, exact.correct);
            assert_eq!(fast.scored, exact.scored);
            assert!((fast.dist_sum - exact.dist_sum).abs() < 1e-9);
        }
    }

    #[test]
    fn whole_row_counting_decides_ties_as_the_exact_path() {
        // 17 and 15 joints take count_rows_wide; 100 rows span several
        // blocks. Offsets of whole sixteenths put many distances exactly on
        // the thresholds, so the brackets and settle_row decide them.
        for k in [17, 15] {
            let n = 100;
            let mut gt = vec![0f32; n * k * 2];
            let mut pred = vec![0f32; n * k * 2];
            for (i, (g, p)) in gt.iter_mut().zip(pred.iter_mut()).enumerate() {
                if i % (k * 2) >= 2 {
                    *g = ((i * 37) % 101) as f32 / 8.0;
                    *p = *g + ((i * 53) % 9) as f32 / 16.0;
                }
            }
            let b = PoseBatch::new(&pred, &gt, None, [n, k, 2]).unwrap();
            let t = [0.0, 0.0625, 0.25, 0.3125, 0.5];
            let fast = joint_errors(&b, Some(&PckNorm::Absolute), &t, None, None).unwrap();
            let exact = joint_errors(&b, Some(&PckNorm::Absolute), &t, Some(0), None).unwrap();
            assert_eq!(fast.correct, exact.correct, "k = {k}");
            assert!(fast.correct.iter().any(|&c| c > 0));
        }
    }
}
