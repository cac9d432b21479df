//! COCO object keypoint similarity, exactly as `pycocotools` `COCOeval.computeOks`.

use std::ops::Range;

use super::batch::{PoseBatch, first_nonfinite_gt_rows};
use super::samples_per_chunk;
#[cfg(target_arch = "x86_64")]
use super::simd::{Isa, isa};
use super::simd::{drop_full_mask, exp_neg, exp_neg_products, multiversion, squared_distances_2d};
use crate::threads::map_chunks_out;
use crate::{Error, Result};

/// Sum of a sample's terms (unlabelled ones are 0) in four fixed lanes,
/// joined pairwise: one vector and a short tail per sample, where eight
/// lanes ended in seven dependent scalar additions.
#[inline(always)]
fn plain_sum(x: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let mut it = x.chunks_exact(4);
    for c in &mut it {
        for l in 0..4 {
            acc[l] += c[l];
        }
    }
    let head = (acc[0] + acc[2]) + (acc[1] + acc[3]);
    it.remainder().iter().fold(head, |s, v| s + v)
}

/// The object scale s^2 of each ground truth.
#[derive(Debug, Clone, Copy)]
pub enum OksArea<'a> {
    /// Given per sample (COCO: the segment area), `[n]`.
    Given(&'a [f64]),
    /// Width x height of the bounding box of the labelled ground-truth joints
    /// (the usual convention when no segment area exists).
    KeypointBBox,
}

/// OKS of each sample's prediction against its ground truth, written to `out` `[n]`.
///
/// `sigmas` are COCO's per-keypoint constants (kappa = 2 sigma). Joints with
/// `labelled` false are ignored; a ground truth with no labelled joint is
/// scored against COCO's ignore box, twice its `bbox` `[n, 4]` (x, y, w, h),
/// which must then be given. A NaN predicted joint contributes 0.
pub fn oks(
    batch: &PoseBatch<'_>,
    sigmas: &[f64],
    area: OksArea<'_>,
    bbox: Option<&[f64]>,
    out: &mut [f64],
) -> Result<()> {
    let (n, k, d) = (batch.n(), batch.k(), batch.d());
    if d != 2 {
        return Err(Error::Shape(format!(
            "OKS is defined for 2-D keypoints, got {d}-D"
        )));
    }
    if sigmas.len() != k {
        return Err(Error::Shape(format!(
            "{} sigmas for {k} joints",
            sigmas.len()
        )));
    }
    if let Some(s) = sigmas.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(Error::Value(format!(
            "sigmas must be finite and > 0, got {s}"
        )));
    }
    if let OksArea::Given(a) = area {
        if a.len() != n {
            return Err(Error::Shape(format!(
                "area holds {} values for {n} samples",
                a.len()
            )));
        }
        if let Some(i) = a.iter().position(|a| !(a.is_finite() && *a >= 0.0)) {
            return Err(Error::Value(format!(
                "area of sample {i} must be finite and >= 0, got {}",
                a[i]
            )));
        }
    }
    if let Some(b) = bbox
        && b.len() != n * 4
    {
        return Err(Error::Shape(format!(
            "bbox holds {} values, expected [{n}, 4]",
            b.len()
        )));
    }
    let vars: Vec<f64> = sigmas.iter().map(|s| (2.0 * s) * (2.0 * s)).collect();
    // e = d^2 / var / (s^2 + eps) / 2 is computed as d^2 * ((1 / var) * (1 / (2 (s^2 + eps)))):
    // two multiplications instead of three divisions move e by a few ulp,
    // which changes each OKS term by less than 1e-15.
    let inv_var: Vec<f64> = vars.iter().map(|v| 1.0 / v).collect();
    let plan = Plan {
        batch,
        vars: &vars,
        inv_var: &inv_var,
        area,
        bbox,
    };
    let parts = map_chunks_out(n, samples_per_chunk(k), 1, out, |range, out| {
        oks_chunk_dispatch(&plan, range, out)
    })?;
    parts.into_iter().collect()
}

struct Plan<'a> {
    batch: &'a PoseBatch<'a>,
    vars: &'a [f64],
    /// 1 / var of each joint.
    inv_var: &'a [f64],
    area: OksArea<'a>,
    bbox: Option<&'a [f64]>,
}

const INF_BITS: u64 = f64::INFINITY.to_bits();

/// Entries per block: a block's inputs and buffers stay in a 32 KiB L1
/// (1,024 spilled out of it: 12% slower at one thread on the AVX-512 VM).
const BLOCK_ENTRIES: usize = 512;

multiversion! {
    fn oks_chunk_dispatch<'a>(plan: &Plan<'a>, range: Range<usize>, out: &mut [f64]) -> Result<()>;
    wide = match plan.vars.len() {
        // A joint count known at compile time lets the per-sample loops unroll.
        17 => oks_chunk::<true, 17>(plan, range, out),
        15 => oks_chunk::<true, 15>(plan, range, out),
        _ => oks_chunk::<true, 0>(plan, range, out),
    };
    base = oks_chunk::<false, 0>(plan, range, out);
}

/// OKS of the samples in `range`, in blocks: each entry's weight
/// w = 1 / var / (2 (s^2 + eps)) (+inf for an unlabelled joint), then
/// exp(-d^2 w) over flat buffers, then plain sums per sample.
#[inline(always)]
fn oks_chunk<const FMA: bool, const K: usize>(
    plan: &Plan<'_>,
    range: Range<usize>,
    out: &mut [f64],
) -> Result<()> {
    // K > 0: the caller checked that there are K joints.
    let k = if K > 0 { K } else { plan.vars.len() };
    let block = (BLOCK_ENTRIES / k).max(1);
    let inv_var = &plan.inv_var[..k];
    // The labelled count's reciprocal: a multiply per sample instead of a division.
    let inv_count: Vec<f64> = (0..=k).map(|l| 1.0 / l as f64).collect();
    let mut q = vec![0.0; block * k];
    let mut w = vec![0.0; block * k];
    let (mut labelled, mut scale) = (vec![0usize; block], vec![0.0; block]);
    for start in range.clone().step_by(block) {
        let rows = start..range.end.min(start + block);
        let (m, b) = (rows.len() * k, rows.len());
        let (p, g, vis) = plan.batch.rows(rows.clone());
        let vis = drop_full_mask(vis);
        // All labelled: the weights (and the boxes, where no area is given)
        // come from the distances' loads.
        let given = match plan.area {
            OksArea::Given(a) => Some(&a[rows.clone()]),
            OksArea::KeypointBBox => None,
        };
        let (finite, weighted) = distances_wide::<FMA, K>(
            p,
            g,
            inv_var,
            given,
            &mut q[..m],
            vis.is_none(),
            &mut w[..m],
        );
        // A labelled joint with a non-finite distance has a non-finite
        // prediction or ground truth; only then scan the ground truth.
        let suspect = match vis {
            None => !finite,
            Some(v) => !q[..m]
                .iter()
                .zip(v)
                .fold(true, |ok, (x, &on)| ok & (!on | x.is_finite())),
        };
        if suspect {
            plan.batch
                .check_gt_finite(first_nonfinite_gt_rows(rows.start, g, vis, k, 2))?;
        }
        if weighted {
            labelled[..b].fill(k);
        } else {
            for (row, i) in rows.clone().enumerate() {
                let vi = vis.map(|v| &v[row * k..(row + 1) * k]);
                labelled[row] = vi.map_or(k, |v| v.iter().map(|&b| usize::from(b)).sum());
                scale[row] = match plan.area {
                    OksArea::Given(a) => a[i],
                    OksArea::KeypointBBox => {
                        labelled_box_area(&g[row * 2 * k..(row + 1) * 2 * k], vi, labelled[row])
                    }
                };
            }
            // Apart from the rows, so that the divisions run vectorised.
            scale[..b]
                .iter_mut()
                .for_each(|a| *a = 1.0 / (2.0 * (*a + f64::EPSILON)));
            for (row, (wr, a)) in w[..m].chunks_exact_mut(k).zip(&scale[..b]).enumerate() {
                match vis {
                    None => wr.iter_mut().zip(inv_var).for_each(|(w, iv)| *w = iv * a),
                    // exp(-inf) and exp(-NaN) are 0: an unlabelled joint adds
                    // nothing to the plain sum, whatever its distance.
                    // Picked with bit masks: as a branch, the 'if' mispredicted.
                    Some(v) => (wr.iter_mut().zip(inv_var).zip(&v[row * k..(row + 1) * k]))
                        .for_each(|((w, iv), &on)| {
                            let keep = u64::from(on).wrapping_neg();
                            let bits = ((iv * a).to_bits() & keep) | (INF_BITS & !keep);
                            *w = f64::from_bits(bits);
                        }),
                }
            }
        }
        exp_neg_products::<FMA>(&mut q[..m], &w[..m]);
        for ((row, i), sim) in rows.enumerate().zip(q[..m].chunks_exact(k)) {
            out[i - range.start] = if labelled[row] > 0 {
                plain_sum(sim) * inv_count[labelled[row]]
            } else {
                ignore_box_oks::<FMA>(plan.batch.sample(i).0, plan, i)?
            };
        }
    }
    Ok(())
}

/// Squared distances of a block's samples into `q`, and where `weights` is
/// asked for and the `WIDE` builds run, every joint's weight
/// `inv_var[j] / (2 (area + eps))` with the `given` areas, or else the
/// keypoint box of every joint, as area (the same bits as the separate
/// steps) into `w` from the same loads.
/// Returns whether every distance is finite and whether `w` was written.
#[inline(always)]
fn distances_wide<const WIDE: bool, const K: usize>(
    p: &[f32],
    g: &[f32],
    inv_var: &[f64],
    given: Option<&[f64]>,
    q: &mut [f64],
    weights: bool,
    w: &mut [f64],
) -> (bool, bool) {
    #[cfg(target_arch = "x86_64")]
    if WIDE && weights && isa() >= Isa::Avx2 {
        // SAFETY: isa() reports only features the CPU has.
        let finite = unsafe {
            super::distances_avx2::distances_and_weights_2d::<K>(p, g, inv_var, given, q, w)
        };
        return (finite, true);
    }
    let _ = (inv_var, given, weights, w);
    (squared_distances_2d::<WIDE>(p, g, q), false)
}

/// Width x height of the bounding box of the labelled joints of a finite 2-D
/// ground truth (0 when none is labelled). Extremes are picked in float32,
/// which is exact, and only the sides are float64.
#[inline(always)]
fn labelled_box_area(g: &[f32], vis: Option<&[bool]>, labelled: usize) -> f64 {
    if labelled == 0 {
        return 0.0;
    }
    let (lx, ly, hx, hy) = match vis {
        None => box_lanes_all(g),
        // Selects, not branches: which joints are labelled is data.
        Some(v) => box_lanes(g, |j| v.get(j).copied().unwrap_or(false)),
    };
    (f64::from(hx) - f64::from(lx)) * (f64::from(hy) - f64::from(ly))
}

/// [`box_lanes`] of every joint, without selects.
#[inline(always)]
fn box_lanes_all(g: &[f32]) -> (f32, f32, f32, f32) {
    let mut lo = [f32::INFINITY; 8];
    let mut hi = [f32::NEG_INFINITY; 8];
    let mut it = g.chunks_exact(8);
    for c in &mut it {
        for l in 0..8 {
            lo[l] = if c[l] < lo[l] { c[l] } else { lo[l] };
            hi[l] = if c[l] > hi[l] { c[l] } else { hi[l] };
        }
    }
    for (l, &x) in it.remainder().iter().enumerate() {
        lo[l] = if x < lo[l] { x } else { lo[l] };
        hi[l] = if x > hi[l] { x } else { hi[l] };
    }
    pick_extremes(&lo, &hi)
}

/// Extremes (low x, low y, high x, high y) of the joints `keep` selects, in
/// eight lanes of interleaved x, y; an unselected joint is read as +inf for
/// the minima and -inf for the maxima.
#[inline(always)]
fn box_lanes(g: &[f32], keep: impl Fn(usize) -> bool) -> (f32, f32, f32, f32) {
    let mut lo = [f32::INFINITY; 8];
    let mut hi = [f32::NEG_INFINITY; 8];
    let mut add = |l: usize, j: usize, x: f32| {
        let on = keep(j);
        let (a, b) = if on {
            (x, x)
        } else {
            (f32::INFINITY, f32::NEG_INFINITY)
        };
        lo[l] = if a < lo[l] { a } else { lo[l] };
        hi[l] = if b > hi[l] { b } else { hi[l] };
    };
    let mut it = g.chunks_exact(8);
    for (c, xy) in (&mut it).enumerate() {
        for (l, &x) in xy.iter().enumerate() {
            add(l, 4 * c + l / 2, x);
        }
    }
    let done = g.len() / 8 * 4;
    for (l, &x) in it.remainder().iter().enumerate() {
        add(l, done + l / 2, x);
    }
    pick_extremes(&lo, &hi)
}

/// The x and y extremes of eight lanes of interleaved x, y.
#[inline(always)]
fn pick_extremes(lo: &[f32; 8], hi: &[f32; 8]) -> (f32, f32, f32, f32) {
    let pick = |a: &[f32; 8], odd: usize, f: fn(f32, f32) -> f32| {
        (odd..8).step_by(2).map(|l| a[l]).fold(a[odd], f)
    };
    // Plain comparisons, not f32::min/max: a NaN coordinate is an error
    // the caller reports (its distance is not finite), so the NaN rules
    // of min/max would only cost instructions.
    fn min(a: f32, b: f32) -> f32 {
        if b < a { b } else { a }
    }
    fn max(a: f32, b: f32) -> f32 {
        if b > a { b } else { a }
    }
    (
        pick(lo, 0, min),
        pick(lo, 1, min),
        pick(hi, 0, max),
        pick(hi, 1, max),
    )
}

/// COCO's rule for a ground truth without a labelled joint: distances to an
/// ignore box twice its bbox, averaged over all joints.
fn ignore_box_oks<const FMA: bool>(p: &[f32], plan: &Plan<'_>, i: usize) -> Result<f64> {
    let b = plan.bbox.map(|b| &b[4 * i..4 * i + 4]).ok_or_else(|| {
        Error::Value(format!(
            "gt sample {i} has no labelled joint; COCO then scores against its \
             bounding box, so pass bbox"
        ))
    })?;
    let s2 = match plan.area {
        OksArea::Given(a) => a[i],
        OksArea::KeypointBBox => 0.0,
    };
    let (x0, x1) = (b[0] - b[2], b[0] + b[2] * 2.0);
    let (y0, y1) = (b[1] - b[3], b[1] + b[3] * 2.0);
    let sum: f64 = plan
        .vars
        .iter()
        .zip(p.chunks_exact(2))
        .map(|(var, xy)| {
            let (xd, yd) = (f64::from(xy[0]), f64::from(xy[1]));
            let dx = 0f64.max(x0 - xd) + 0f64.max(xd - x1);
            let dy = 0f64.max(y0 - yd) + 0f64.max(yd - y1);
            exp_neg::<FMA>((dx * dx + dy * dy) / var / (s2 + f64::EPSILON) / 2.0)
        })
        .sum();
    Ok(sum / plan.vars.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mean is a multiply by 1 / L: L (1 / L) is exactly 1 for every L up
    /// to 48, so a perfect prediction scores exactly 1 (docs/metrics.md).
    #[test]
    fn perfect_predictions_score_exactly_one_up_to_48_joints() {
        for k in 1..=48usize {
            let gt: Vec<f32> = (0..3 * k * 2)
                .map(|i| (i as f32 * 0.37).sin() + 1.0)
                .collect();
            // Sample 1 has every third joint unlabelled.
            let vis: Vec<bool> = (0..3 * k).map(|i| i / k != 1 || i % k % 3 != 1).collect();
            let sigmas = vec![0.05; k];
            for v in [None, Some(&vis[..])] {
                let b = PoseBatch::new(&gt, &gt, v, [3, k, 2]).unwrap();
                let mut out = [0.0; 3];
                oks(&b, &sigmas, OksArea::KeypointBBox, None, &mut out).unwrap();
                assert_eq!(out, [1.0; 3], "{k} joints, mask {}", v.is_some());
            }
        }
    }

    #[test]
    fn perfect_prediction_scores_one_and_distance_decays() {
        let gt = [0.0f32, 0.0, 10.0, 10.0];
        let pred = [0.0f32, 0.0, 10.0, 11.0];
        let b = PoseBatch::new(&pred, &gt, None, [1, 2, 2]).unwrap();
        let mut out = [0.0];
        oks(&b, &[0.1, 0.1], OksArea::Given(&[100.0]), None, &mut out).unwrap();
        let expect = (1.0 + (-1.0f64 / 0.04 / (100.0 + f64::EPSILON) / 2.0).exp()) / 2.0;
        assert!((out[0] - expect).abs() < 1e-15);
    }

    /// One sample's OKS by the kernel's steps, one at a time: squares,
    /// keypoint box (or the given area), weights, exp (with FMA where the
    /// wide builds run), `plain_sum`, 1 / k.
    fn by_steps(p: &[f32], g: &[f32], inv_var: &[f64], area: Option<f64>, fma: bool) -> f64 {
        let k = inv_var.len();
        let area = area.unwrap_or_else(|| labelled_box_area(g, None, k));
        let a = 1.0 / (2.0 * (area + f64::EPSILON));
        let terms: Vec<f64> = (0..k)
            .map(|j| {
                let q = super::super::simd::square::<2>(&p[2 * j..], &g[2 * j..]);
                let e = q * (inv_var[j] * a);
                if fma {
                    exp_neg::<true>(e)
                } else {
                    exp_neg::<false>(e)
                }
            })
            .collect();
        plain_sum(&terms) * (1.0 / k as f64)
    }

    #[test]
    fn every_labelled_sample_has_the_bits_of_the_steps() {
        #[cfg(target_arch = "x86_64")]
        let fma = isa() >= Isa::Avx2;
        #[cfg(not(target_arch = "x86_64"))]
        let fma = false;
        let wave = |i: usize, f: f32| (i as f32 * f).sin();
        for k in [1usize, 2, 3, 4, 5, 8, 15, 17, 31, 32, 33] {
            for n in [0usize, 1, 3, 4, 5, 9, 13] {
                let mut gt: Vec<f32> = (0..n * k * 2).map(|i| 3.0 * wave(i, 0.71)).collect();
                let mut pred: Vec<f32> = gt
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| x + 0.4 * wave(i, 1.37))
                    .collect();
                // Sample 1: a NaN and an infinite prediction; sample 2: every
                // joint at one point (a zero box); sample 4: exact predictions
                // and signed zeros.
                if n > 1 {
                    pred[2 * k] = f32::NAN;
                    pred[2 * k + 2 * k - 1] = f32::INFINITY;
                }
                if n > 2 {
                    gt[4 * k..6 * k].fill(0.5);
                }
                if n > 4 {
                    pred[8 * k..10 * k].copy_from_slice(&gt[8 * k..10 * k]);
                    gt[8 * k] = -0.0;
                    pred[8 * k + 1] = -0.0;
                }
                let sigmas: Vec<f64> = (0..k).map(|j| 0.025 + 0.01 * j as f64).collect();
                let inv_var: Vec<f64> = sigmas
                    .iter()
                    .map(|s| 1.0 / ((2.0 * s) * (2.0 * s)))
                    .collect();
                let given: Vec<f64> = (0..n).map(|i| [0.0, 2.5, 1e-9, 40.0][i % 4]).collect();
                let b = PoseBatch::new(&pred, &gt, None, [n, k, 2]).unwrap();
                for area in [OksArea::KeypointBBox, OksArea::Given(&given)] {
                    let mut got = vec![0.0; n];
                    oks(&b, &sigmas, area, None, &mut got).unwrap();
                    for (i, g) in got.iter().enumerate() {
                        let a = match area {
                            OksArea::Given(a) => Some(a[i]),
                            OksArea::KeypointBBox => None,
                        };
                        let w = 2 * k;
                        let want = by_steps(
                            &pred[i * w..(i + 1) * w],
                            &gt[i * w..(i + 1) * w],
                            &inv_var,
                            a,
                            fma,
                        );
                        assert_eq!(
                            g.to_bits(),
                            want.to_bits(),
                            "k {k} n {n} sample {i}: {g} {want}"
                        );
                    }
                }
                // A non-finite ground truth is named, in the first or the last sample.
                for bad in [0, n.saturating_sub(1)] {
                    if n == 0 {
                        continue;
                    }
                    let mut gt = gt.clone();
                    gt[bad * 2 * k + 1] = f32::NAN;
                    let b = PoseBatch::new(&pred, &gt, None, [n, k, 2]).unwrap();
                    let e = oks(&b, &sigmas, OksArea::KeypointBBox, None, &mut vec![0.0; n]);
                    let msg = format!("{}", e.unwrap_err());
                    assert!(msg.contains(&format!("sample {bad}, joint 0")), "{msg}");
                }
            }
        }
    }

    #[test]
    fn unlabelled_gt_needs_a_bbox() {
        let gt = [0.0f32; 4];
        let pred = [1.0f32; 4];
        let vis = [false, false];
        let b = PoseBatch::new(&pred, &gt, Some(&vis), [1, 2, 2]).unwrap();
        let mut out = [0.0];
        let sig = [0.1, 0.1];
        assert!(oks(&b, &sig, OksArea::KeypointBBox, None, &mut out).is_err());
        // Inside the ignore box every distance is zero.
        oks(
            &b,
            &sig,
            OksArea::KeypointBBox,
            Some(&[0.0, 0.0, 1.0, 1.0]),
            &mut out,
        )
        .unwrap();
        assert_eq!(out[0], 1.0);
    }
}
