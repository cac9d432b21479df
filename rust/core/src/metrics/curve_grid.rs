//! PCK curves at evenly spaced thresholds: each joint's bracket by a direct
//! index instead of a search.
//!
//! For sorted thresholds `v_i` close to `first + i * step` (a `linspace`), the
//! first threshold a normalised distance `x` passes (`x <= v_i`) is
//! `ceil(G(x))` with `G(x) = (x - first) / step`, unless `G(x)` lies within
//! [`MARGIN`] of an integer. Only those rare joints (and NaN, infinite or
//! non-finite-scale cases) take the exact float64 test, so every decision is
//! the one `dist / s <= v_i` makes.
//!
//! Why the direct index is exact (`u` = 2^-53; `G` in real arithmetic with the
//! rounded `inv_step`, which keeps it strictly increasing):
//! * [`Grid::new`] accepts thresholds only when every `|G(v_i) - i| <= MAX_DEV`
//!   (computed; true value within 2^-29 of it since `|v| / step <= 2^20`).
//! * The kernel computes `f = fl(fl(dist * fl(inv_step / s)) - fl(first * inv_step))`
//!   while the contract compares `x = fl(dist / s)`; `|f - G(x)| <= 8 u 2^21 =
//!   2^-29` wherever `-1 <= f <= t + 1` (there `|x| inv_step <= t + 2^20 + 2`).
//! * With `c = ceil(f)` and `c - 1 + MARGIN < f < c - MARGIN`:
//!   `G(v_i) <= i + MAX_DEV + 2^-29 < G(x)` for every `i <= c - 1` (fails) and
//!   `G(v_i) >= c - MAX_DEV - 2^-29 > G(x)` for every `i >= c` (passes), since
//!   `MARGIN > MAX_DEV + 2^-28`. Beyond the ends (`f > t + 1`, `f < -1`) the
//!   relative error cannot move `G(x)` back among the thresholds.

/// Largest accepted distance of a threshold from its grid position, in steps
/// (a `linspace` is off by a few ulp: about 1e-14 steps).
const MAX_DEV: f64 = 1e-7;

/// Half-width, in steps, of the band around each threshold in which the
/// exact test decides.
const MARGIN: f64 = 1e-6;

/// Squared float32 distances outside [2^-100, 2^100] (underflow, overflow,
/// zero, NaN) are left to the exact test.
const Q32_MIN: f32 = 7.888_609e-31;
const Q32_MAX: f32 = 1.267_650_6e30;

/// Marks an entry for the exact test in the index buffer.
pub(super) const UNSURE: u32 = u32::MAX;

/// Evenly spaced sorted thresholds, as the direct index needs them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Grid {
    inv_step: f64,
    /// first * inv_step.
    offset: f64,
    /// Number of thresholds (the index of "passes none").
    count: f64,
}

impl Grid {
    /// `None` unless `sorted` (ascending, no NaN) is close enough to evenly
    /// spaced for the direct index, and its values are at most 2^20 steps
    /// from zero (so the roundings above stay below 2^-29 steps).
    pub(super) fn new(sorted: &[f64]) -> Option<Self> {
        let (&first, &last) = (sorted.first()?, sorted.last()?);
        let t = sorted.len();
        if t < 2 || t >= (UNSURE as usize) {
            return None;
        }
        let step = (last - first) / (t - 1) as f64;
        if !(step.is_finite() && step > 0.0) || first.abs().max(last.abs()) > step * 1_048_576.0 {
            return None;
        }
        let inv_step = 1.0 / step;
        let dev = sorted
            .iter()
            .enumerate()
            .map(|(i, &v)| ((v - first) * inv_step - i as f64).abs())
            .fold(0.0, f64::max);
        (dev <= MAX_DEV).then_some(Self {
            inv_step,
            offset: first * inv_step,
            count: t as f64,
        })
    }

    /// The factor `inv_step / s` of a row with scale `s`; `None` when it is
    /// not finite (the exact test then decides the row).
    #[inline(always)]
    pub(super) fn row_factor(&self, s: f64) -> Option<f64> {
        let a = self.inv_step / s;
        a.is_finite().then_some(a)
    }

    /// The first passing threshold of each distance of a block, with each
    /// entry's factor `a`, written as its histogram cell `index * k + joint[e]`
    /// (`UNSURE`: within the margin, a NaN distance or factor); `true` when
    /// any is `UNSURE`. Flat and branch-free so the loop vectorises. f is
    /// clamped to [-1/2, t - 1/2] (NaN kept): below, every threshold passes (`G(x) < -1/2 + 2^-29`); above, none does
    /// (`G(x) > t - 1/2 - 2^-29`, or the ends' argument beyond `t + 1`); both
    /// ends lie half a step from any integer. The caller keeps
    /// `(count + 1) * k` below `UNSURE`.
    #[inline(always)]
    pub(super) fn cells(
        &self,
        (dist, a, joint): (&[f64], &[f64], &[u32]),
        k: u32,
        idx: &mut [u32],
    ) -> bool {
        // Adding 2^52 to an integer in [0, 2^52) leaves it in the low mantissa bits.
        const SHIFT: f64 = 4_503_599_627_370_496.0;
        let (off, lo, hi) = (self.offset, -0.5, self.count - 0.5);
        let mut unsure = false;
        for (((o, &dj), &aj), &j) in idx.iter_mut().zip(dist).zip(a).zip(joint) {
            let f = dj * aj - off;
            let f = if f < lo { lo } else { f };
            let f = if f > hi { hi } else { f };
            let c = f.ceil();
            let sure = (c - f > MARGIN) & (f - (c - 1.0) > MARGIN);
            // c is an integer in [-0, t], t < 2^32.
            let i = (c + SHIFT).to_bits().wrapping_sub(SHIFT.to_bits()) as u32;
            *o = if sure {
                i.wrapping_mul(k).wrapping_add(j)
            } else {
                UNSURE
            };
            unsure |= !sure;
        }
        unsure
    }
}

/// The direct index computed in float32 from the float32 coordinates (eight
/// lanes per instruction, no float64 square root), for curves whose MPJPE is
/// not wanted. Its error bound, in steps, with `E = |first| / step + t + 2`:
/// `q = dx^2 + dy^2 (+ dz^2)` in float32 is within 5 2^-24 of the exact
/// squared distance (relative; inside [`Q32_MIN`], [`Q32_MAX`]), its square
/// root within 3.5 2^-24, the product with the float32 factor within
/// 5.5 2^-24, and the subtraction of the float32 offset adds 2^-24 E: at most
/// `8 2^-24 E = 2^-21 E` against `G(x)` of the float64 contract (whose own
/// roundings are a few 2^-53). The margin is `MAX_DEV + 2^-19 E`, four times that.
#[derive(Debug, Clone, Copy)]
pub(super) struct Grid32 {
    inv_step: f64,
    offset: f32,
    count: f32,
    margin: f32,
}

impl Grid {
    /// The float32 form, when its margin stays below 1/16 step (`E <= 2^15`).
    pub(super) fn single(&self) -> Option<Grid32> {
        let e = self.offset.abs() + self.count + 2.0;
        (e <= 32_768.0).then(|| Grid32 {
            inv_step: self.inv_step,
            offset: self.offset as f32,
            count: self.count as f32,
            margin: (MAX_DEV + e / 524_288.0) as f32,
        })
    }
}

impl Grid32 {
    /// The constants of [`Grid32::cells`]: the offset, the two clamps and
    /// the margin.
    pub(super) fn constants(&self) -> (f32, f32, f32, f32) {
        (self.offset, -0.5, self.count - 0.5, self.margin)
    }

    /// The squared float32 distances the index decides: outside, the exact test.
    pub(super) fn square_range() -> (f32, f32) {
        (Q32_MIN, Q32_MAX)
    }

    /// The float32 factor `inv_step / s` of a row, NaN unless it is a
    /// normal float32 in [2^-100, 2^100] (its entries are then all unsure).
    #[inline(always)]
    pub(super) fn row_factor(&self, s: f64) -> f32 {
        let a = self.inv_step / s;
        if a >= f64::from(Q32_MIN) && a <= f64::from(Q32_MAX) {
            a as f32
        } else {
            f32::NAN
        }
    }

    /// Squared float32 distances of `D`-dimensional joints in `q`; `false`
    /// when one of them is not finite.
    #[inline(always)]
    pub(super) fn squares<const D: usize>(p: &[f32], g: &[f32], q: &mut [f32]) -> bool {
        let mut finite = true;
        for ((qe, pe), ge) in q.iter_mut().zip(p.chunks_exact(D)).zip(g.chunks_exact(D)) {
            let mut s = 0.0f32;
            for c in 0..D {
                let x = pe[c] - ge[c];
                s += x * x;
            }
            *qe = s;
            finite &= s.is_finite();
        }
        finite
    }

    /// As [`Grid::cells`], from float32 squared distances `q` and each
    /// entry's factor `a` (`joint[e]`: the entry's joint), so the count is
    /// one increment per entry; entries outside the float32 bound are
    /// `UNSURE`. The caller keeps `(count + 1) * k` below `UNSURE`.
    #[inline(always)]
    pub(super) fn cells(
        &self,
        (q, a, joint): (&[f32], &[f32], &[u32]),
        k: u32,
        idx: &mut [u32],
    ) -> bool {
        // Adding 2^23 to an integer in [0, 2^23) leaves it in the low mantissa bits.
        const SHIFT: f32 = 8_388_608.0;
        let (off, m) = (self.offset, self.margin);
        // f is clamped to [-1/2, t - 1/2] (NaN kept): the index, and whether it
        // is sure, do not change below -1/2 (every threshold passes: within the
        // error bound G(x) < 0 - MAX_DEV) or above t - 1/2 (none passes: G(x) >
        // t - 1 + MAX_DEV), and both ends lie half a step from any integer.
        let (lo, hi) = (-0.5f32, self.count - 0.5);
        let mut unsure = false;
        for (((o, &qe), &ae), &j) in idx.iter_mut().zip(q).zip(a).zip(joint) {
            let f = qe.sqrt() * ae - off;
            let f = if f < lo { lo } else { f };
            let f = if f > hi { hi } else { f };
            let c = f.ceil();
            let inside = (Q32_MIN..=Q32_MAX).contains(&qe);
            // c - f lies in [0, 1) (within 2^-25 of the exact difference):
            // sure when it is more than the margin from both ends.
            let gap = c - f;
            let sure = inside & (gap > m) & (gap < 1.0 - m);
            // c is an integer in [-0, t] (t < 2^23).
            let i = (c + SHIFT).to_bits().wrapping_sub(SHIFT.to_bits());
            *o = if sure {
                i.wrapping_mul(k).wrapping_add(j)
            } else {
                UNSURE
            };
            unsure |= !sure;
        }
        unsure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
        let step = (b - a) / (n - 1) as f64;
        let mut v: Vec<f64> = (0..n).map(|i| a + i as f64 * step).collect();
        v[n - 1] = b;
        v
    }

    #[test]
    fn direct_index_is_the_partition_point() {
        let cases = [
            (0.0, 0.5, 101, 0.37),
            (-0.3, 1.7, 41, 1.0),
            (0.05, 0.95, 19, 0.011),
            (1e3, 1e3 + 1.0, 11, 3.0),
        ];
        for (a, b, n, s) in cases {
            let sorted = linspace(a, b, n);
            let g = Grid::new(&sorted).unwrap();
            let f = g.row_factor(s).unwrap();
            // Distances exactly at thresholds times s, one ulp either side, and a sweep.
            let mut dist: Vec<f64> = Vec::new();
            for &v in &sorted {
                let d = v * s;
                for k in -3i64..=3 {
                    dist.push(f64::from_bits((d.to_bits() as i64 + k) as u64));
                }
            }
            dist.extend((0..4000).map(|i| (a - 0.2 + (b - a + 0.4) * f64::from(i) / 4000.0) * s));
            dist.extend([f64::NAN, f64::INFINITY, 0.0, -0.0, 1e300]);
            // Cells of 3 joints, one entry's factor left open.
            let mut cells = vec![0u32; dist.len()];
            let joint: Vec<u32> = (0..dist.len()).map(|e| (e % 3) as u32).collect();
            let mut factor = vec![f; dist.len()];
            factor[5] = f64::NAN;
            assert!(g.cells((&dist, &factor, &joint), 3, &mut cells));
            assert_eq!(cells[5], UNSURE);
            let mut sure_cells = 0;
            for (e, (&d, &c)) in dist.iter().zip(&cells).enumerate() {
                let x = d / s;
                let want = if x.is_nan() {
                    sorted.len()
                } else {
                    sorted.partition_point(|&v| v < x)
                };
                if c != UNSURE {
                    sure_cells += 1;
                    assert_eq!(c as usize, want * 3 + e % 3, "x = {x}, thresholds {a}..{b}");
                }
            }
            // All but the margin's few and the open entry are decided here.
            assert!(sure_cells >= 3900, "{sure_cells} sure of {}", dist.len());
        }
    }

    #[test]
    fn float32_cells_are_the_partition_point() {
        // Entries of 3 joints (cell = index * 3 + joint) whose float32
        // distances lie exactly on each threshold times s, a few float32 ulp
        // either side, in a sweep beyond both ends, and at the edge cases.
        let cases = [
            (0.0, 0.5, 101, 0.37f64),
            (-0.3, 1.7, 41, 1.0),
            (0.05, 0.95, 19, 0.011),
        ];
        for (a, b, n, s) in cases {
            let sorted = linspace(a, b, n);
            let g = Grid::new(&sorted).and_then(|g| g.single()).unwrap();
            let mut dx: Vec<f32> = Vec::new();
            for &v in &sorted {
                let d = (v * s).abs() as f32;
                for u in -3i32..=3 {
                    dx.push(f32::from_bits(d.to_bits().wrapping_add_signed(u)));
                }
            }
            dx.extend((0..4000).map(|i| ((b + 0.6) * s * f64::from(i) / 4000.0) as f32));
            dx.extend([f32::NAN, f32::INFINITY, 0.0, 1e-20, 1e15, f32::MAX]);
            let q: Vec<f32> = dx.iter().map(|x| x * x).collect();
            let factor = vec![g.row_factor(s); q.len()];
            let joint: Vec<u32> = (0..q.len()).map(|e| (e % 3) as u32).collect();
            let mut idx = vec![0u32; q.len()];
            assert!(g.cells((&q, &factor, &joint), 3, &mut idx));
            let mut sure = 0;
            for (e, (&x, &c)) in dx.iter().zip(&idx).enumerate() {
                // The float64 contract: sqrt(dx^2) / s against each threshold.
                let r = (f64::from(x) * f64::from(x)).sqrt() / s;
                let want = if r.is_nan() {
                    sorted.len()
                } else {
                    sorted.partition_point(|&v| v < r)
                };
                if c != UNSURE {
                    sure += 1;
                    assert_eq!(c as usize, want * 3 + e % 3, "x = {x}, thresholds {a}..{b}");
                }
            }
            assert!(sure > 3900, "{sure} sure of {}", dx.len());
        }
    }

    #[test]
    fn uneven_or_degenerate_thresholds_are_refused() {
        assert!(Grid::new(&[0.0, 0.1, 0.3]).is_none());
        assert!(Grid::new(&[0.5; 10]).is_none());
        assert!(Grid::new(&[1.0]).is_none());
        assert!(Grid::new(&[]).is_none());
        // Steps of one ulp: too far from zero in steps.
        let tiny: Vec<f64> = (0..10)
            .map(|i| f64::from_bits(1.0f64.to_bits() + i))
            .collect();
        assert!(Grid::new(&tiny).is_none());
        assert!(Grid::new(&linspace(0.0, 1.0, 101)).is_some());
    }
}
