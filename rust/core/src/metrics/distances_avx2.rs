//! Squared 2-D distances from interleaved float32 x, y with explicit AVX2:
//! the float32 loads convert straight to float64 and two unpacks pair each
//! joint's squares, where the autovectorised loop deinterlaced with four
//! shuffles per eight floats. The same operations per joint as
//! [`super::simd::squared_distances`] (dx*dx + dy*dy in float64), so the
//! same bits.

/// `q[e] = (p_x - g_x)^2 + (p_y - g_y)^2` of joint `e`, for the joints that
/// `p`, `g` (`2 q.len()` values each) and `q` all hold; returns whether
/// every one is finite (q - q is 0 or NaN, summed on the side: the adds
/// hide under the loads, where a pass of its own over q did not).
#[target_feature(enable = "avx2")]
pub(crate) fn squared_distances_2d(p: &[f32], g: &[f32], q: &mut [f64]) -> bool {
    use std::arch::x86_64::{
        _CMP_EQ_OQ, _mm_loadu_ps, _mm256_add_pd, _mm256_cmp_pd, _mm256_cvtps_pd,
        _mm256_movemask_pd, _mm256_mul_pd, _mm256_permute4x64_pd, _mm256_setzero_pd,
        _mm256_storeu_pd, _mm256_sub_pd, _mm256_unpackhi_pd, _mm256_unpacklo_pd,
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
            // x0 y0 x1 y1 and x2 y2 x3 y3, as float64.
            let d_lo = _mm256_sub_pd(
                _mm256_cvtps_pd(_mm_loadu_ps(pv.as_ptr())),
                _mm256_cvtps_pd(_mm_loadu_ps(gv.as_ptr())),
            );
            let d_hi = _mm256_sub_pd(
                _mm256_cvtps_pd(_mm_loadu_ps(pv.as_ptr().add(4))),
                _mm256_cvtps_pd(_mm_loadu_ps(gv.as_ptr().add(4))),
            );
            let (s_lo, s_hi) = (_mm256_mul_pd(d_lo, d_lo), _mm256_mul_pd(d_hi, d_hi));
            // x0^2 x2^2 x1^2 x3^2 + y0^2 y2^2 y1^2 y3^2, then joints in order.
            let s = _mm256_add_pd(
                _mm256_unpacklo_pd(s_lo, s_hi),
                _mm256_unpackhi_pd(s_lo, s_hi),
            );
            _mm256_storeu_pd(qv.as_mut_ptr(), _mm256_permute4x64_pd::<0b11_01_10_00>(s));
            nan = _mm256_add_pd(nan, _mm256_sub_pd(s, s));
        }
    }
    let mut finite = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_EQ_OQ>(nan, nan)) == 0b1111;
    let rest = pc
        .remainder()
        .chunks_exact(2)
        .zip(gc.remainder().chunks_exact(2));
    for (qe, (pe, ge)) in qc.into_remainder().iter_mut().zip(rest) {
        let (dx, dy) = (
            f64::from(pe[0]) - f64::from(ge[0]),
            f64::from(pe[1]) - f64::from(ge[1]),
        );
        *qe = dx * dx + dy * dy;
        finite &= qe.is_finite();
    }
    finite
}

#[cfg(test)]
mod tests {
    use super::super::simd::{Isa, isa, squared_distances};
    use super::*;

    #[test]
    fn the_same_bits_as_squared_distances() {
        if isa() < Isa::Avx2 {
            return; // nothing to run on this CPU
        }
        let special = [
            0.0,
            -0.0,
            1e-45,
            3.4e38,
            -3.4e38,
            f32::INFINITY,
            f32::NAN,
            1e-20,
        ];
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
}
