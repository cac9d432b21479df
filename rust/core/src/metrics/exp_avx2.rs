//! exp(-q w) over flat buffers with explicit AVX2 + FMA: the same operations
//! as [`super::simd::exp_neg`]`::<true>`, so the same bits, on several
//! vectors per iteration. Autovectorised, the loop ran one vector per
//! iteration with most constants reloaded, well above the FMA pipes' bound.

use super::simd::{EXP_LAST, INV_LN2, LN2_HI, LN2_LO, SHIFT, exp_c_mirrored, exp_neg};

/// Vectors of four entries per iteration.
const V: usize = 4;

/// `q[e] = exp(-(q[e] * w[e]))` for `e < q.len().min(w.len())`.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn exp_neg_products(q: &mut [f64], w: &[f64]) {
    use std::arch::x86_64::{
        __m256d, _CMP_LE_OQ, _mm256_add_epi64, _mm256_and_pd, _mm256_castpd_si256,
        _mm256_castsi256_pd, _mm256_cmp_pd, _mm256_fmadd_pd, _mm256_loadu_pd, _mm256_mul_pd,
        _mm256_set1_pd, _mm256_setzero_pd, _mm256_slli_epi64, _mm256_storeu_pd, _mm256_sub_pd,
    };
    let m = q.len().min(w.len());
    let (q, w) = (&mut q[..m], &w[..m]);
    let c = |i: usize| _mm256_set1_pd(exp_c_mirrored(i));
    let (shift, neg_inv_ln2) = (_mm256_set1_pd(SHIFT), _mm256_set1_pd(-INV_LN2));
    let (ln2_hi, ln2_lo, last) = (
        _mm256_set1_pd(LN2_HI),
        _mm256_set1_pd(LN2_LO),
        _mm256_set1_pd(EXP_LAST),
    );
    let mut qc = q.chunks_exact_mut(4 * V);
    let mut wc = w.chunks_exact(4 * V);
    for (qv, wv) in (&mut qc).zip(&mut wc) {
        let mut e = [_mm256_setzero_pd(); V];
        for (v, x) in e.iter_mut().enumerate() {
            // SAFETY: both chunks hold 4 * V values, so 4 from 4 * v are in bounds.
            *x = unsafe {
                _mm256_mul_pd(
                    _mm256_loadu_pd(qv.as_ptr().add(4 * v)),
                    _mm256_loadu_pd(wv.as_ptr().add(4 * v)),
                )
            };
        }
        // Each step for every vector before the next step: independent work
        // side by side, each constant loaded once for all of them.
        let kd = e.map(|e| _mm256_fmadd_pd(e, neg_inv_ln2, shift));
        let mut r = [_mm256_setzero_pd(); V];
        for v in 0..V {
            let n = _mm256_sub_pd(kd[v], shift);
            r[v] = _mm256_fmadd_pd(n, ln2_lo, _mm256_fmadd_pd(n, ln2_hi, e[v]));
        }
        let r2 = r.map(|r| _mm256_mul_pd(r, r));
        let r4 = r2.map(|r2| _mm256_mul_pd(r2, r2));
        let pair = |i: usize, r: __m256d| _mm256_fmadd_pd(c(10 - i), r, c(11 - i));
        let mut out = [_mm256_setzero_pd(); V];
        for v in 0..V {
            let (p01, p23, p45) = (pair(0, r[v]), pair(2, r[v]), pair(4, r[v]));
            let (p67, p89, p1011) = (pair(6, r[v]), pair(8, r[v]), pair(10, r[v]));
            let high = _mm256_fmadd_pd(
                _mm256_fmadd_pd(p1011, r2[v], p89),
                r4[v],
                _mm256_fmadd_pd(p67, r2[v], p45),
            );
            let p = _mm256_fmadd_pd(high, r4[v], _mm256_fmadd_pd(p23, r2[v], p01));
            let n_up = _mm256_slli_epi64::<52>(_mm256_castpd_si256(kd[v]));
            let scaled = _mm256_castsi256_pd(_mm256_add_epi64(_mm256_castpd_si256(p), n_up));
            // NaN and e > EXP_LAST compare false: 0.
            let keep = _mm256_cmp_pd::<_CMP_LE_OQ>(e[v], last);
            out[v] = _mm256_and_pd(keep, scaled);
        }
        for (v, x) in out.iter().enumerate() {
            // SAFETY: the chunk holds 4 * V values.
            unsafe { _mm256_storeu_pd(qv.as_mut_ptr().add(4 * v), *x) };
        }
    }
    for (qe, we) in qc.into_remainder().iter_mut().zip(wc.remainder()) {
        *qe = exp_neg::<true>(*qe * we);
    }
}

#[cfg(test)]
mod tests {
    use super::super::simd::{Isa, isa};
    use super::*;

    #[test]
    fn the_same_bits_as_exp_neg() {
        if isa() < Isa::Avx2 {
            return; // nothing to run on this CPU
        }
        // Products over the whole range, both ends, and what gives 0.
        let mut q: Vec<f64> = (0..100_003).map(|i| f64::from(i) * 0.007_3).collect();
        q.extend([0.0, 706.9, 707.0, 707.000_000_1, 708.0, 1e300, f64::MAX]);
        q.extend([f64::INFINITY, f64::NAN, 5e-324, 1e-300]);
        let w: Vec<f64> = (0..q.len())
            .map(|i| [1.0, 0.37, 2.5, f64::INFINITY, 1e-5][i % 5])
            .collect();
        for len in [q.len(), q.len() - 1, 7, 3, 0] {
            let mut got = q[..len].to_vec();
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { exp_neg_products(&mut got, &w) };
            for ((g, qe), we) in got.iter().zip(&q).zip(&w) {
                let want = exp_neg::<true>(qe * we);
                assert_eq!(g.to_bits(), want.to_bits(), "q {qe} w {we}");
            }
        }
    }
}
