//! The load path's float32 kernel: per-frame min-max, the subcarrier map and
//! the z-score of one frame in one pass, the map applied as its sparse taps.
//!
//! Each output is `y = (sum_k c_k (x_k - lo)) * r + o` with `c_k = w_k / std`,
//! `o = -mean / std` (rounded to float32 once, when the transform is prepared),
//! `lo` the frame's minimum and `r = 1 / (max - min)` (without min-max:
//! `lo = 0`, `r = 1`). Against the float64 transform `Y` of the same float32
//! input, to first order in u = 2^-24 (the roundings: `x - lo`, `c_k`, each
//! product, the n - 1 tap additions, `r`, the product with `r`, `o`, the last
//! addition, and the float64 result's own rounding to float32):
//!
//! `|y - Y| <= (n + 7) u (sum_k |w_k| |x^_k| / std + |mean| / std) + 2^-126`
//!
//! with n the taps of the output's row and `x^` the min-max scaled input (the
//! raw input without min-max); the last term covers float32 underflow.
//! `ERROR_BOUND_ULPS` is that `n + 7`. A frame or a transform whose
//! magnitudes could overflow float32 takes the float64 path instead
//! ([`FusedTransform::frame`] says which), so the bound always holds.

use super::fused_lanes::{Rows, min_max, run_rows};
use super::transform::{CsiTransform, OwnedTransform};

/// Largest magnitude (2^60) of an input value, a coefficient or a scale
/// factor the float32 path takes: products of two stay far below float32's
/// 2^128, sums of any number of taps too.
const LIMIT: f64 = 1_152_921_504_606_846_976.0;

/// `|v| <= LIMIT` (false for NaN).
fn within_limit(v: f64) -> bool {
    v.abs() <= LIMIT
}

/// The bound's factor of u for a row of `taps` taps.
pub const fn error_bound_ulps(taps: usize) -> usize {
    taps + 7
}

/// A [`CsiTransform`] prepared for frames `[a, s, p]`: float32 tap
/// coefficients with the z-score folded in.
#[derive(Debug, Clone)]
pub struct FusedTransform {
    /// The float64 path's transform (owned, so that a prepared gather can keep it).
    exact: OwnedTransform,
    shape: [usize; 3],
    /// Output subcarriers.
    t: usize,
    /// Taps of row `row`: `start[row]..start[row + 1]`, shared by the antennas.
    start: Vec<usize>,
    /// Source subcarrier of each tap.
    index: Vec<usize>,
    /// Where each tap's source row starts in an antenna's frame: `index * p`.
    off: Vec<usize>,
    /// `Some((s p, t p))` when the taps were checked to read and write inside
    /// an antenna's frames of those sizes (the vector kernel's precondition).
    checked: Option<(usize, usize)>,
    /// `coef[ant * taps + k]`: tap `k`'s weight over the std of its output.
    coef: Vec<f32>,
    /// `offset[ant * t + row]`: -mean / std of the output (0 without a z-score).
    offset: Vec<f32>,
    /// Some coefficient is too large for float32: every frame takes the float64 path.
    exact_only: bool,
}

impl FusedTransform {
    /// Prepare `transform` for frames `[a, s, p]` (checked by the caller with
    /// [`CsiTransform::check`]).
    pub fn new(transform: &CsiTransform<'_>, [a, s, p]: [usize; 3]) -> Self {
        let t = transform.out_subcarriers(s);
        let (start, index, weight): (Vec<usize>, Vec<usize>, Vec<f64>) = match transform.map {
            Some(m) => {
                let (st, ix, w) = m.parts();
                (
                    st.iter().map(|&v| v as usize).collect(),
                    ix.iter().map(|&v| v as usize).collect(),
                    w.to_vec(),
                )
            }
            None => ((0..=s).collect(), (0..s).collect(), vec![1.0; s]),
        };
        let taps = index.len();
        let mut coef = Vec::with_capacity(a * taps);
        let mut offset = Vec::with_capacity(a * t);
        let mut exact_only = false;
        for ant in 0..a {
            for row in 0..t {
                let (mean, std) = match transform.zscore {
                    Some((m, sd)) => (
                        m.get(ant * t + row).copied().unwrap_or(0.0),
                        sd.get(ant * t + row).copied().unwrap_or(1.0),
                    ),
                    None => (0.0, 1.0),
                };
                let o = -mean / std;
                exact_only |= !within_limit(o);
                offset.push(o as f32);
                for k in
                    start.get(row).copied().unwrap_or(0)..start.get(row + 1).copied().unwrap_or(0)
                {
                    let c = weight.get(k).copied().unwrap_or(0.0) / std;
                    exact_only |= !within_limit(c);
                    coef.push(c as f32);
                }
            }
        }
        // `coef` was filled row by row per antenna, which is tap order.
        let off: Vec<usize> = index.iter().map(|&i| i * p).collect();
        let checked = (0..a).all(|ant| {
            Rows {
                x: &[],
                p,
                start: &start,
                off: &off,
                coef: coef.get(ant * taps..(ant + 1) * taps).unwrap_or(&[]),
                offset: offset.get(ant * t..(ant + 1) * t).unwrap_or(&[]),
                ahead: &[],
            }
            .in_bounds(s * p, t * p)
        });
        Self {
            exact: OwnedTransform::new(transform),
            shape: [a, s, p],
            t,
            start,
            index,
            off,
            checked: checked.then_some((s * p, t * p)),
            coef,
            offset,
            exact_only,
        }
    }

    /// Values per output frame.
    pub fn out_len(&self) -> usize {
        self.shape[0] * self.t * self.shape[2]
    }

    /// Transform one frame `src` `[a, s, p]` into `dst` `[a, t, p]`, pulling
    /// `ahead` (the frame to be transformed next, or nothing) into the cache
    /// meanwhile. Returns false when the frame took the float64 path (its values, or the
    /// transform's coefficients, are beyond what float32 holds with the bound).
    #[inline]
    pub fn frame(&self, src: &[f32], dst: &mut [f32], ahead: &[f32]) -> bool {
        let [a, s, p] = self.shape;
        if dst.is_empty() {
            // No antennas, output subcarriers or packets: chunks of p = 0 would panic.
            return true;
        }
        let (lo, hi) = min_max(src);
        let (lo, r) = if self.exact.minmax {
            let range = f64::from(hi) - f64::from(lo);
            if range.is_nan() || range <= 0.0 {
                // A constant (or all-NaN) frame scales to 0: only the offsets remain.
                for (y, o) in dst.chunks_exact_mut(self.shape[2]).zip(&self.offset) {
                    y.fill(*o);
                }
                return true;
            }
            let r = 1.0 / range;
            if self.exact_only || !(within_limit(range) && within_limit(r)) {
                self.exact.view().apply_exact(src, self.shape, dst);
                return false;
            }
            (lo, r as f32)
        } else {
            let big = f64::from(lo.abs().max(hi.abs()));
            // NaN min/max (all-NaN frame) pass: NaN inputs give NaN outputs either way.
            if self.exact_only || big > LIMIT {
                self.exact.view().apply_exact(src, self.shape, dst);
                return false;
            }
            (0.0, 1.0)
        };
        let taps = self.index.len();
        let t = self.t;
        for ((x, y), ant) in src
            .chunks_exact(s * p)
            .zip(dst.chunks_exact_mut(t * p))
            .zip(0..a)
        {
            let rows = Rows {
                x,
                p,
                start: &self.start,
                off: &self.off,
                coef: &self.coef[ant * taps..(ant + 1) * taps],
                offset: &self.offset[ant * t..(ant + 1) * t],
                // Each antenna's rows prefetch their share of the next frame.
                ahead: ahead
                    .chunks(ahead.len().div_ceil(a).max(1))
                    .nth(ant)
                    .unwrap_or(&[]),
            };
            run_rows(&rows, self.checked, y, lo, r);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::SubcarrierMap;

    /// The float64 transform, written out: min-max, taps, z-score.
    fn oracle(
        x: &[f32],
        [a, s, p]: [usize; 3],
        minmax: bool,
        rows: &[Vec<(usize, f64)>],
        mean: &[f64],
        std: &[f64],
    ) -> Vec<f64> {
        let xs: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let (lo, hi) = xs
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        let xh: Vec<f64> = if minmax {
            xs.iter()
                .map(|&v| if hi > lo { (v - lo) / (hi - lo) } else { 0.0 })
                .collect()
        } else {
            xs
        };
        let t = rows.len();
        let mut out = vec![0.0; a * t * p];
        for ant in 0..a {
            for (row, taps) in rows.iter().enumerate() {
                for j in 0..p {
                    let v: f64 = taps
                        .iter()
                        .map(|&(k, w)| w * xh[(ant * s + k) * p + j])
                        .sum();
                    let e = ant * t + row;
                    out[e * p + j] = (v - mean[e]) / std[e];
                }
            }
        }
        out
    }

    #[test]
    fn fused_frames_stay_within_the_stated_bound() {
        // 2 antennas, 7 subcarriers -> rows of 1, 2, 3 and 0 taps, 10 packets.
        let (start, index) = ([0u32, 1, 3, 6, 6], [4u32, 0, 6, 1, 2, 5]);
        let weight = [1.0, 0.3, 0.7, -0.5, 2.0, 0.25];
        let map = SubcarrierMap::new(&start, &index, &weight, 7).unwrap();
        let rows: Vec<Vec<(usize, f64)>> = (0..4)
            .map(|r| {
                (start[r] as usize..start[r + 1] as usize)
                    .map(|k| (index[k] as usize, weight[k]))
                    .collect()
            })
            .collect();
        let shape = [2, 7, 10];
        let mean: Vec<f64> = (0..8).map(|i| f64::from(i) * 0.37 - 1.0).collect();
        let std: Vec<f64> = (0..8).map(|i| 0.05 + f64::from(i) * 0.11).collect();
        let mut seed = 12345u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        for minmax in [true, false] {
            for trial in 0..50 {
                let scale = [1.0f32, 1e-3, 1e4][trial % 3];
                let x: Vec<f32> = (0..140).map(|_| (next() * 80.0 - 20.0) * scale).collect();
                let t = CsiTransform {
                    minmax,
                    map: Some(map),
                    zscore: Some((&mean, &std)),
                };
                let fused = FusedTransform::new(&t, shape);
                let mut y = vec![0.0f32; fused.out_len()];
                assert!(fused.frame(&x, &mut y, &[]));
                let want = oracle(&x, shape, minmax, &rows, &mean, &std);
                let xs: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
                let (lo, hi) = xs
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
                        (l.min(v), h.max(v))
                    });
                for ant in 0..2 {
                    for (row, taps) in rows.iter().enumerate() {
                        let e = ant * 4 + row;
                        for j in 0..10 {
                            let m: f64 = taps
                                .iter()
                                .map(|&(k, w)| {
                                    let v = xs[(ant * 7 + k) * 10 + j];
                                    w.abs()
                                        * if minmax {
                                            (v - lo) / (hi - lo)
                                        } else {
                                            v.abs()
                                        }
                                })
                                .sum::<f64>()
                                / std[e]
                                + mean[e].abs() / std[e];
                            let bound =
                                error_bound_ulps(taps.len()) as f64 * f64::from(f32::EPSILON) / 2.0
                                    * m
                                    + 2f64.powi(-126);
                            let (got, w) = (f64::from(y[e * 10 + j]), want[e * 10 + j]);
                            assert!((got - w).abs() <= bound, "{got} vs {w}, bound {bound}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn constant_and_huge_frames() {
        let (mean, std) = ([0.5, -1.0], [0.25, 2.0]);
        let t = CsiTransform {
            minmax: true,
            map: None,
            zscore: Some((&mean, &std)),
        };
        let fused = FusedTransform::new(&t, [1, 2, 2]);
        let mut y = [9.0f32; 4];
        assert!(fused.frame(&[f32::NAN, 3.0, 3.0, 3.0], &mut y, &[]));
        assert_eq!(y, [-2.0, -2.0, 0.5, 0.5]);
        // A range beyond 2^60 takes the float64 path, which agrees with the oracle.
        assert!(!fused.frame(&[-1e30, 0.0, 1e30, 0.0], &mut y, &[]));
        assert_eq!(y, [-2.0, 0.0, 1.0, 0.75]);
        let plain = CsiTransform {
            zscore: Some((&mean, &std)),
            ..Default::default()
        };
        let fused = FusedTransform::new(&plain, [1, 2, 2]);
        assert!(!fused.frame(&[1e30, 0.0, 0.0, 0.0], &mut y, &[]));
        assert_eq!(y[0], ((1e30f64 - 0.5) / 0.25) as f32);
    }
}
