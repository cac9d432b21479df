//! Squared 2-D distances from interleaved float32 x, y with explicit AVX2:
//! the float32 loads convert straight to float64 and two unpacks pair each
//! joint's squares, where the autovectorised loop deinterlaced with four
//! shuffles per eight floats. The same operations per joint as
//! [`super::simd::squared_distances`] (dx*dx + dy*dy in float64), so the
//! same bits; and [`RunSums`], the one-pass kernels' sums of their roots in
//! the order the flat loops sum them.

use std::arch::x86_64::{
    __m256d, _mm256_add_pd, _mm256_and_pd, _mm256_andnot_pd, _mm256_castsi256_pd,
    _mm256_cmpgt_epi64, _mm256_set1_epi64x, _mm256_setr_epi64x, _mm256_setzero_pd,
    _mm256_storeu_pd,
};

use super::simd::square;

/// `q[e] = (p_x - g_x)^2 + (p_y - g_y)^2` of joint `e`, for the joints that
/// `p`, `g` (`2 q.len()` values each) and `q` all hold; returns whether
/// every one is finite (q - q is 0 or NaN, summed on the side: the adds
/// hide under the loads, where a pass of its own over q did not).
#[target_feature(enable = "avx2")]
pub(crate) fn squared_distances_2d(p: &[f32], g: &[f32], q: &mut [f64]) -> bool {
    use std::arch::x86_64::{
        _CMP_EQ_OQ, _mm_loadu_ps, _mm256_add_pd, _mm256_cmp_pd, _mm256_movemask_pd,
        _mm256_setzero_pd, _mm256_storeu_pd, _mm256_sub_pd,
    };
    let m = q.len().min(p.len() / 2).min(g.len() / 2);
    let (p, g, q) = (&p[..2 * m], &g[..2 * m], &mut q[..m]);
    let mut pc = p.chunks_exact(8);
    let mut gc = g.chunks_exact(8);
    let mut qc = q.chunks_exact_mut(4);
    let mut nan = _mm256_setzero_pd();
    for ((pv, gv), qv) in (&mut pc).zip(&mut gc).zip(&mut qc) {
        // SAFETY: the chunks hold 8 floats (two loads of 4) and 4 doubles.
        unsafe {
            let s = joint_squares(
                [_mm_loadu_ps(pv.as_ptr()), _mm_loadu_ps(pv.as_ptr().add(4))],
                [_mm_loadu_ps(gv.as_ptr()), _mm_loadu_ps(gv.as_ptr().add(4))],
            );
            _mm256_storeu_pd(qv.as_mut_ptr(), in_order(s));
            nan = _mm256_add_pd(nan, _mm256_sub_pd(s, s));
        }
    }
    let mut finite = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_EQ_OQ>(nan, nan)) == 0b1111;
    let rest = pc
        .remainder()
        .chunks_exact(2)
        .zip(gc.remainder().chunks_exact(2));
    for (qe, (pe, ge)) in qc.into_remainder().iter_mut().zip(rest) {
        *qe = square::<2>(pe, ge);
        finite &= qe.is_finite();
    }
    finite
}

/// The squared distances of four joints from their interleaved float32 x, y
/// as two halves of four (x0 y0 x1 y1, x2 y2 x3 y3) per side, in lanes
/// 0, 2, 1, 3 ([`in_order`] puts them in joint order): both loops' one
/// formula. (The finiteness sum takes them as they are: permuting first
/// cost the OKS kernel about 1 ms in 40.)
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn joint_squares(
    [p_lo, p_hi]: [std::arch::x86_64::__m128; 2],
    [g_lo, g_hi]: [std::arch::x86_64::__m128; 2],
) -> std::arch::x86_64::__m256d {
    use std::arch::x86_64::{
        _mm256_add_pd, _mm256_cvtps_pd, _mm256_mul_pd, _mm256_sub_pd, _mm256_unpackhi_pd,
        _mm256_unpacklo_pd,
    };
    // x0 y0 x1 y1 and x2 y2 x3 y3, as float64.
    let d_lo = _mm256_sub_pd(_mm256_cvtps_pd(p_lo), _mm256_cvtps_pd(g_lo));
    let d_hi = _mm256_sub_pd(_mm256_cvtps_pd(p_hi), _mm256_cvtps_pd(g_hi));
    let (s_lo, s_hi) = (_mm256_mul_pd(d_lo, d_lo), _mm256_mul_pd(d_hi, d_hi));
    // x0^2 x2^2 x1^2 x3^2 + y0^2 y2^2 y1^2 y3^2.
    _mm256_add_pd(
        _mm256_unpacklo_pd(s_lo, s_hi),
        _mm256_unpackhi_pd(s_lo, s_hi),
    )
}

/// [`joint_squares`]' lanes in joint order.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn in_order(s: std::arch::x86_64::__m256d) -> std::arch::x86_64::__m256d {
    std::arch::x86_64::_mm256_permute4x64_pd::<0b11_01_10_00>(s)
}

/// [`squared_distances_2d`] of `rows = q.len() / k` samples of `k` joints,
/// one sample at a time, with OKS's weights of every joint,
/// `w = inv_var[j] / (2 (area + eps))`, where `area` is `given[r]`, or else
/// the width x height of the sample's ground-truth box (every joint
/// labelled), from the same
/// loads: separate passes over the ground truth and the weights cost more
/// than the extremes and a division do here. The box is
/// `oks::labelled_box_area`'s (float32 extremes, exact picks, float64 sides
/// and product) and the weights `oks_chunk`'s, so the same bits. Returns
/// whether every distance is finite.
/// `K > 0` is the joint count known at compile time (the caller checked
/// `inv_var.len() == K`), so the per-sample loops unroll.
#[target_feature(enable = "avx2")]
pub(crate) fn distances_and_weights_2d<const K: usize>(
    p: &[f32],
    g: &[f32],
    inv_var: &[f64],
    given: Option<&[f64]>,
    q: &mut [f64],
    w: &mut [f64],
) -> bool {
    use std::arch::x86_64::{
        _CMP_EQ_OQ, _mm_cvtss_f32, _mm_max_ps, _mm_min_ps, _mm_movehl_ps, _mm_shuffle_ps,
        _mm256_add_pd, _mm256_castps256_ps128, _mm256_cmp_pd, _mm256_extractf128_ps,
        _mm256_loadu_ps, _mm256_max_ps, _mm256_min_ps, _mm256_movemask_pd, _mm256_set1_ps,
        _mm256_setzero_pd, _mm256_storeu_pd, _mm256_sub_pd,
    };
    let k = if K > 0 { K } else { inv_var.len().max(1) };
    let inv_var = &inv_var[..k.min(inv_var.len())];
    let rows = (q.len() / k).min(p.len() / (2 * k)).min(g.len() / (2 * k));
    let rows = rows
        .min(w.len() / k)
        .min(given.map_or(usize::MAX, <[f64]>::len));
    let mut nan = _mm256_setzero_pd();
    let mut finite = true;
    for r in 0..rows {
        let (pr, gr) = (
            &p[r * 2 * k..(r + 1) * 2 * k],
            &g[r * 2 * k..(r + 1) * 2 * k],
        );
        let qr = &mut q[r * k..(r + 1) * k];
        let mut lo = _mm256_set1_ps(f32::INFINITY);
        let mut hi = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut pc = pr.chunks_exact(8);
        let mut gc = gr.chunks_exact(8);
        let mut qc = qr.chunks_exact_mut(4);
        for ((pv, gv), qv) in (&mut pc).zip(&mut gc).zip(&mut qc) {
            // SAFETY: the chunks hold 8 floats and 4 doubles.
            let (pw, gw) = unsafe { (_mm256_loadu_ps(pv.as_ptr()), _mm256_loadu_ps(gv.as_ptr())) };
            (lo, hi) = (_mm256_min_ps(lo, gw), _mm256_max_ps(hi, gw));
            let half = |v| [_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v)];
            let s = joint_squares(half(pw), half(gw));
            // SAFETY: the chunk of q holds 4 doubles.
            unsafe { _mm256_storeu_pd(qv.as_mut_ptr(), in_order(s)) };
            nan = _mm256_add_pd(nan, _mm256_sub_pd(s, s));
        }
        // Eight lanes to x, y: halves, then pairs (lane 0 = x, lane 1 = y).
        let lo4 = _mm_min_ps(_mm256_castps256_ps128(lo), _mm256_extractf128_ps::<1>(lo));
        let hi4 = _mm_max_ps(_mm256_castps256_ps128(hi), _mm256_extractf128_ps::<1>(hi));
        let (lo2, hi2) = (
            _mm_min_ps(lo4, _mm_movehl_ps(lo4, lo4)),
            _mm_max_ps(hi4, _mm_movehl_ps(hi4, hi4)),
        );
        let mut lx = _mm_cvtss_f32(lo2);
        let mut ly = _mm_cvtss_f32(_mm_shuffle_ps::<1>(lo2, lo2));
        let mut hx = _mm_cvtss_f32(hi2);
        let mut hy = _mm_cvtss_f32(_mm_shuffle_ps::<1>(hi2, hi2));
        let rest = pc
            .remainder()
            .chunks_exact(2)
            .zip(gc.remainder().chunks_exact(2));
        for (qe, (pe, ge)) in qc.into_remainder().iter_mut().zip(rest) {
            *qe = square::<2>(pe, ge);
            finite &= qe.is_finite();
            lx = if ge[0] < lx { ge[0] } else { lx };
            ly = if ge[1] < ly { ge[1] } else { ly };
            hx = if ge[0] > hx { ge[0] } else { hx };
            hy = if ge[1] > hy { ge[1] } else { hy };
        }
        let area = match given {
            Some(a) => a[r],
            None => (f64::from(hx) - f64::from(lx)) * (f64::from(hy) - f64::from(ly)),
        };
        let a = 1.0 / (2.0 * (area + f64::EPSILON));
        for (we, iv) in w[r * k..(r + 1) * k].iter_mut().zip(inv_var) {
            *we = iv * a;
        }
    }
    finite & (_mm256_movemask_pd(_mm256_cmp_pd::<_CMP_EQ_OQ>(nan, nan)) == 0b1111)
}

/// From the same loads, for unmasked 2-D joints: the float32 squares
/// `q32[e]` of `Grid32::squares` (`(p - g)^2` summed in float32, no FMA),
/// and the float64 distances (`sqrt` of [`joint_squares`]) summed in
/// [`masked_sum`]'s eight lanes (joint `e` in lane `e % 8`, the last `m % 8`
/// in lanes from 0), so the same bits as `Grid32::squares`, [`distances`]
/// and [`masked_sum`]'s lanes (the curve with its MPJPE took both passes:
/// 41 ms on 1,000,000 x 17 samples at one thread, 38.5 this way). Returns
/// (every float32 square finite, the lanes) for `q32.len()` joints.
///
/// [`masked_sum`]: super::simd::masked_sum
/// [`distances`]: super::simd::distances
#[target_feature(enable = "avx2")]
pub(crate) fn squares32_and_distance_lanes_2d(
    p: &[f32],
    g: &[f32],
    q32: &mut [f32],
) -> (bool, [f64; 8]) {
    use std::arch::x86_64::{
        _CMP_EQ_OQ, _mm_loadu_ps, _mm256_add_pd, _mm256_add_ps, _mm256_castpd_ps, _mm256_castps_pd,
        _mm256_castps128_ps256, _mm256_cmp_ps, _mm256_hadd_ps, _mm256_insertf128_ps,
        _mm256_movemask_ps, _mm256_mul_ps, _mm256_permute4x64_pd, _mm256_setzero_pd,
        _mm256_setzero_ps, _mm256_sqrt_pd, _mm256_storeu_pd, _mm256_storeu_ps, _mm256_sub_ps,
    };
    let m = q32.len().min(p.len() / 2).min(g.len() / 2);
    let (p, g, q32) = (&p[..2 * m], &g[..2 * m], &mut q32[..m]);
    let mut pc = p.chunks_exact(16);
    let mut gc = g.chunks_exact(16);
    let mut qc = q32.chunks_exact_mut(8);
    // Lanes 0-3 and 4-7 of masked_sum, each in joint_squares' order 0, 2, 1, 3.
    let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    let mut nan = _mm256_setzero_ps();
    for ((pv, gv), qv) in (&mut pc).zip(&mut gc).zip(&mut qc) {
        // SAFETY: the chunks hold 16 floats (four loads of 4) and 8 floats.
        unsafe {
            let half = |v: &[f32], i: usize| _mm_loadu_ps(v.as_ptr().add(4 * i));
            let (p4, g4) = (
                [0, 1, 2, 3].map(|i| half(pv, i)),
                [0, 1, 2, 3].map(|i| half(gv, i)),
            );
            // Float64: four joints a time, their roots into the lanes.
            lo = _mm256_add_pd(
                lo,
                _mm256_sqrt_pd(joint_squares([p4[0], p4[1]], [g4[0], g4[1]])),
            );
            hi = _mm256_add_pd(
                hi,
                _mm256_sqrt_pd(joint_squares([p4[2], p4[3]], [g4[2], g4[3]])),
            );
            // Float32: x0 y0 .. x3 y3 and x4 y4 .. x7 y7, squared, pairs added
            // (x^2 + y^2, as 0 + x^2 + y^2 is) in the order 0 1 4 5 2 3 6 7.
            let whole = |a, b| _mm256_insertf128_ps::<1>(_mm256_castps128_ps256(a), b);
            let d0 = _mm256_sub_ps(whole(p4[0], p4[1]), whole(g4[0], g4[1]));
            let d1 = _mm256_sub_ps(whole(p4[2], p4[3]), whole(g4[2], g4[3]));
            let s = _mm256_hadd_ps(_mm256_mul_ps(d0, d0), _mm256_mul_ps(d1, d1));
            let s = _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(s)));
            _mm256_storeu_ps(qv.as_mut_ptr(), s);
            nan = _mm256_add_ps(nan, _mm256_sub_ps(s, s));
        }
    }
    let mut finite = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(nan, nan)) == 0xff;
    let mut lanes = [0.0f64; 8];
    // SAFETY: two stores of 4 doubles into 8.
    unsafe {
        _mm256_storeu_pd(lanes.as_mut_ptr(), in_order(lo));
        _mm256_storeu_pd(lanes.as_mut_ptr().add(4), in_order(hi));
    }
    let rest = pc
        .remainder()
        .chunks_exact(2)
        .zip(gc.remainder().chunks_exact(2));
    for (l, ((pe, ge), qe)) in rest.zip(qc.into_remainder()).enumerate() {
        let (x, y) = (pe[0] - ge[0], pe[1] - ge[1]);
        *qe = x * x + y * y;
        finite &= qe.is_finite();
        lanes[l] += square::<2>(pe, ge).sqrt();
    }
    (finite, lanes)
}

/// Float64 distance sums of runs of eight entries (`curve_avx2::cells_2d`,
/// `pck_avx2::pck_2d`) in `simd::masked_sum`'s lanes over blocks of entries,
/// as `fast_block` sums them: two vectors of run lanes (as
/// `joint_squares` leaves them: 0 2 1 3 and 4 6 5 7), the entries taken in
/// the current block of `block` entries, and the blocks finished.
pub(crate) struct RunSums {
    acc: [__m256d; 2],
    block: usize,
    taken: usize,
    blocks: usize,
}

impl RunSums {
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn new(block: usize) -> Self {
        let zero = _mm256_setzero_pd();
        Self {
            acc: [zero; 2],
            block,
            taken: 0,
            blocks: 0,
        }
    }

    /// Add the distances of the next run of eight entries; a run across the
    /// end of a block adds its first lanes (and zeros) there, then the rest
    /// to a fresh block.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn add(&mut self, d: [__m256d; 2], total: &mut f64) {
        let room = self.block - self.taken;
        if room >= 8 {
            self.acc = [
                _mm256_add_pd(self.acc[0], d[0]),
                _mm256_add_pd(self.acc[1], d[1]),
            ];
            self.taken += 8;
            if self.taken == self.block {
                self.flush(total);
            }
            return;
        }
        // Run lanes below `room` belong to this block.
        let r = room as i64;
        let before = [
            _mm256_cmpgt_epi64(_mm256_set1_epi64x(r), _mm256_setr_epi64x(0, 2, 1, 3)),
            _mm256_cmpgt_epi64(_mm256_set1_epi64x(r), _mm256_setr_epi64x(4, 6, 5, 7)),
        ]
        .map(|m| _mm256_castsi256_pd(m));
        for v in 0..2 {
            self.acc[v] = _mm256_add_pd(self.acc[v], _mm256_and_pd(before[v], d[v]));
        }
        self.flush(total);
        // 0 + x, as masked_sum starts each lane.
        self.acc = [0, 1].map(|v| _mm256_andnot_pd(before[v], d[v]));
        self.taken = 8 - room;
    }

    /// Add the current block's lanes to `total` in masked_sum's order: run
    /// lane `i` holds the block's entries at offset `i - blocks * block`
    /// modulo 8.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn flush(&mut self, total: &mut f64) {
        if self.taken == 0 {
            return;
        }
        let mut run = [0.0f64; 8];
        // SAFETY: two stores of four doubles into eight.
        unsafe {
            _mm256_storeu_pd(run.as_mut_ptr(), in_order(self.acc[0]));
            _mm256_storeu_pd(run.as_mut_ptr().add(4), in_order(self.acc[1]));
        }
        let shift = (8 - self.blocks * self.block % 8) % 8;
        let mut lanes = [0.0f64; 8];
        for (i, x) in run.iter().enumerate() {
            lanes[(i + shift) % 8] = *x;
        }
        *total += lanes.iter().sum::<f64>();
        *self = Self {
            blocks: self.blocks + 1,
            ..Self::new(self.block)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::super::simd::{Isa, isa, squared_distances};
    use super::*;

    /// Coordinates that test the edges: signed zeros, a subnormal, the
    /// largest floats (their squares overflow), infinity, NaN, a tiny value.
    const SPECIAL: [f32; 8] = [
        0.0,
        -0.0,
        1e-45,
        3.4e38,
        -3.4e38,
        f32::INFINITY,
        f32::NAN,
        1e-20,
    ];

    #[test]
    fn the_same_bits_as_squared_distances() {
        if isa() < Isa::Avx2 {
            return; // nothing to run on this CPU
        }
        let special = SPECIAL;
        let n = 203; // not a multiple of 4
        let p: Vec<f32> = (0..2 * n)
            .map(|i| match i % 11 {
                0 => special[i / 11 % special.len()],
                _ => (i as f32 * 0.731).sin() * 10f32.powi((i % 7) as i32 - 3),
            })
            .collect();
        let g: Vec<f32> = (0..2 * n)
            .map(|i| (i as f32 * 1.37).cos() * 10f32.powi((i % 5) as i32 - 2))
            .collect();
        // With and without the non-finite values (i % 11 == 0 holds them).
        for m in [n, n - 1, n - 3, 10, 9, 4, 1, 0] {
            let (mut want, mut got) = (vec![0.0; m], vec![0.0; m]);
            squared_distances(&p[..2 * m], &g[..2 * m], 2, &mut want);
            // SAFETY: the CPU has AVX2 (checked above).
            let finite = unsafe { squared_distances_2d(&p[..2 * m], &g[..2 * m], &mut got) };
            assert_eq!(finite, want.iter().all(|x| x.is_finite()), "{m} joints");
            for (e, (w, x)) in want.iter().zip(&got).enumerate() {
                assert_eq!(w.to_bits(), x.to_bits(), "joint {e} of {m}");
            }
        }
    }

    #[test]
    fn squares32_and_sums_match_the_separate_passes() {
        use super::super::curve_grid::Grid32;
        use super::super::simd::{distances, masked_sum};
        if isa() < Isa::Avx2 {
            return; // nothing to run on this CPU
        }
        let n = 523; // not a multiple of 8
        let special = SPECIAL;
        let g: Vec<f32> = (0..2 * n)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * [1e-3, 1.0, 3e4][i % 3])
            .collect();
        let p: Vec<f32> = g
            .iter()
            .enumerate()
            .map(|(i, x)| x + (i as f32 * 0.37).sin() * 10f32.powi((i % 7) as i32 - 3))
            .collect();
        let mut bad = p.clone();
        for (i, x) in bad.iter_mut().enumerate().filter(|(i, _)| i % 13 == 5) {
            *x = special[i / 13 % special.len()];
        }
        // Each lane its own magnitude (joint e in lane e % 8): lanes of very
        // different sizes, summed into one total below.
        let by_lane: Vec<f32> = g
            .iter()
            .enumerate()
            .map(|(i, x)| x + (i as f32 * 0.91).sin() * 2f32.powi(7 * ((i / 2) % 8) as i32 - 20))
            .collect();
        for p in [&p, &bad, &by_lane] {
            for m in [n, 510, 17, 9, 8, 7, 1, 0] {
                let (p, g) = (&p[..2 * m], &g[..2 * m]);
                let mut want32 = vec![0f32; m];
                let want_finite = Grid32::squares::<2>(p, g, &mut want32);
                let (mut q, mut dist) = (vec![0.0; m], vec![0.0; m]);
                distances(p, g, 2, &mut q, &mut dist);
                // masked_sum's lanes: chunks of 8, then the rest from lane 0.
                let mut want = [0.0f64; 8];
                for (e, x) in dist.iter().enumerate() {
                    let l = if e < m - m % 8 {
                        e % 8
                    } else {
                        e - (m - m % 8)
                    };
                    want[l] += x;
                }
                let mut got32 = vec![0f32; m];
                // SAFETY: the CPU has AVX2 (checked above).
                let (finite, lanes) = unsafe { squares32_and_distance_lanes_2d(p, g, &mut got32) };
                assert_eq!(finite, want_finite, "{m} joints");
                for (l, (w, x)) in want.iter().zip(&lanes).enumerate() {
                    assert_eq!(w.to_bits(), x.to_bits(), "lane {l} of {m} joints");
                }
                let sum = lanes.iter().sum::<f64>();
                assert_eq!(masked_sum(&dist, None).0.to_bits(), sum.to_bits());
                for (e, (w, x)) in want32.iter().zip(&got32).enumerate() {
                    assert_eq!(w.to_bits(), x.to_bits(), "joint {e} of {m}");
                }
            }
        }
    }

    #[test]
    fn fused_weights_and_distances_match_the_separate_ones() {
        if isa() < Isa::Avx2 {
            return; // nothing to run on this CPU
        }
        for k in [1, 2, 3, 4, 5, 8, 15, 17] {
            let rows = 7;
            let g: Vec<f32> = (0..rows * k * 2)
                .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * [1e-3, 1.0, 3e4][i % 3])
                .collect();
            let p: Vec<f32> = g
                .iter()
                .enumerate()
                .map(|(i, x)| x + (i as f32).sin())
                .collect();
            let (mut want, mut got) = (vec![0.0; rows * k], vec![0.0; rows * k]);
            squared_distances(&p, &g, 2, &mut want);
            let inv_var: Vec<f64> = (0..k).map(|j| 1.0 / (j as f64 + 0.3)).collect();
            let mut w = vec![f64::NAN; rows * k];
            // SAFETY: the CPU has AVX2 (checked above).
            let finite =
                unsafe { distances_and_weights_2d::<0>(&p, &g, &inv_var, None, &mut got, &mut w) };
            assert!(finite);
            assert_eq!(
                want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                got.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
            for (r, wr) in w.chunks_exact(k).enumerate() {
                let xy = &g[r * 2 * k..(r + 1) * 2 * k];
                let pick = |c: usize, f: fn(f32, f32) -> f32| {
                    xy.iter().skip(c).step_by(2).copied().fold(xy[c], f)
                };
                let side = |c| f64::from(pick(c, f32::max)) - f64::from(pick(c, f32::min));
                let a = 1.0 / (2.0 * (side(0) * side(1) + f64::EPSILON));
                for (we, iv) in wr.iter().zip(&inv_var) {
                    assert_eq!(we.to_bits(), (iv * a).to_bits(), "k {k} row {r}");
                }
            }
            if k == 17 {
                // The compile-time joint count gives the same bits.
                let (mut q17, mut w17) = (vec![0.0; rows * k], vec![0.0; rows * k]);
                // SAFETY: as above.
                assert!(unsafe {
                    distances_and_weights_2d::<17>(&p, &g, &inv_var, None, &mut q17, &mut w17)
                });
                assert!(
                    q17.iter()
                        .zip(&got)
                        .all(|(a, b)| a.to_bits() == b.to_bits())
                );
                assert!(w17.iter().zip(&w).all(|(a, b)| a.to_bits() == b.to_bits()));
            }
            // Given areas replace the boxes.
            let given: Vec<f64> = (0..rows).map(|r| r as f64 * 0.37).collect();
            // SAFETY: as above.
            assert!(unsafe {
                distances_and_weights_2d::<0>(&p, &g, &inv_var, Some(&given), &mut got, &mut w)
            });
            for (wr, a) in w.chunks_exact(k).zip(&given) {
                let a = 1.0 / (2.0 * (a + f64::EPSILON));
                for (we, iv) in wr.iter().zip(&inv_var) {
                    assert_eq!(we.to_bits(), (iv * a).to_bits(), "k {k} given area");
                }
            }
            // A non-finite prediction is reported.
            let mut bad = p.clone();
            bad[2 * k * rows - 1] = f32::NAN;
            // SAFETY: as above.
            let finite = unsafe {
                distances_and_weights_2d::<0>(&bad, &g, &inv_var, None, &mut got, &mut w)
            };
            assert!(!finite);
        }
    }
}
