//! The matrix product every convolution of the batched forward reduces to:
//! `out [m, n] = a [m, k] b [k, n] + bias` (bias per row), single-threaded
//! (the caller's rayon task is the unit of parallelism, so the thread count is
//! `set_num_threads`'s).
//!
//! `a` (weights) is packed once at load time into panels of [`MR`] rows,
//! k-major, zero-padded; `b` (activations, the batch stacked along n) is
//! packed one panel of 16 (or, for a last narrow panel, 8) columns at a time
//! into a scratch buffer that stays in L1/L2 while every row panel of `a`
//! streams past it. The 6 x 16 microkernel keeps its 12 accumulators in AVX2
//! registers (explicit FMA intrinsics, chosen at run time); other CPUs take a
//! plain-Rust kernel of the same shape (separate multiply and add: a CPU
//! without FMA would emulate `mul_add` slowly).

/// Rows of a packed panel of `a`.
pub(crate) const MR: usize = 6;
/// Columns of a full panel of `b`.
const NR: usize = 16;
/// Columns of a narrow panel (a last panel of at most 8 columns).
const NR_TAIL: usize = 8;

/// A weight matrix `[m, k]` packed into `ceil(m / MR)` panels, each `[k, MR]`.
#[derive(Debug, Clone)]
pub(crate) struct Packed {
    pub m: usize,
    pub k: usize,
    data: Vec<f32>,
}

impl Packed {
    /// Pack row-major `a` `[m, k]` (`a.len() == m * k`).
    pub fn new(a: &[f32], m: usize, k: usize) -> Self {
        let mut data = vec![0f32; m.div_ceil(MR) * k * MR];
        for (r, row) in a.chunks_exact(k.max(1)).take(m).enumerate() {
            let (p, ri) = (r / MR, r % MR);
            for (kk, v) in row.iter().enumerate() {
                data[(p * k + kk) * MR + ri] = *v;
            }
        }
        Self { m, k, data }
    }
}

/// `out [m, n] = a b + bias` for `b` `[k, n]` row-major; `panel` is scratch.
/// Slices too short for the shapes leave `out` untouched (callers size them).
pub(crate) fn gemm(
    a: &Packed,
    bias: &[f32],
    b: &[f32],
    n: usize,
    out: &mut [f32],
    panel: &mut Vec<f32>,
) {
    let (m, k) = (a.m, a.k);
    if m == 0 || n == 0 || b.len() < k * n || out.len() < m * n || bias.len() < m {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use crate::metrics::simd::{Isa, isa};
        if isa() >= Isa::Avx2 {
            // SAFETY: the CPU has AVX2 and FMA (checked at run time by `isa`).
            let wide = |a: &[f32], b: &[f32], acc: &mut [[f32; NR]; MR]| unsafe {
                kernel16_avx2(a, b, acc)
            };
            // SAFETY: as above.
            let tail = |a: &[f32], b: &[f32], acc: &mut [[f32; NR_TAIL]; MR]| unsafe {
                kernel8_avx2(a, b, acc)
            };
            return drive(a, bias, b, n, out, panel, wide, tail);
        }
    }
    drive(a, bias, b, n, out, panel, kernel_base, kernel_base);
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn drive(
    a: &Packed,
    bias: &[f32],
    b: &[f32],
    n: usize,
    out: &mut [f32],
    panel: &mut Vec<f32>,
    wide: impl Fn(&[f32], &[f32], &mut [[f32; NR]; MR]),
    tail: impl Fn(&[f32], &[f32], &mut [[f32; NR_TAIL]; MR]),
) {
    let (m, k) = (a.m, a.k);
    let mut j0 = 0;
    while j0 < n {
        let cols = NR.min(n - j0);
        let w = if cols <= NR_TAIL { NR_TAIL } else { NR };
        panel.resize(k * w, 0.0); // every value is written below
        for (kk, dst) in panel[..k * w].chunks_exact_mut(w).enumerate() {
            dst[..cols].copy_from_slice(&b[kk * n + j0..kk * n + j0 + cols]);
            dst[cols..].fill(0.0);
        }
        for (p, ap) in a.data.chunks_exact((k * MR).max(1)).enumerate() {
            let rows = MR.min(m - p * MR);
            let mut store = |r: usize, acc: &[f32]| {
                let row = p * MR + r;
                let dst = &mut out[row * n + j0..row * n + j0 + cols];
                for (o, v) in dst.iter_mut().zip(acc) {
                    *o = v + bias[row];
                }
            };
            if w == NR {
                let mut acc = [[0f32; NR]; MR];
                wide(ap, &panel[..k * w], &mut acc);
                (0..rows).for_each(|r| store(r, &acc[r]));
            } else {
                let mut acc = [[0f32; NR_TAIL]; MR];
                tail(ap, &panel[..k * w], &mut acc);
                (0..rows).for_each(|r| store(r, &acc[r]));
            }
        }
        j0 += cols;
    }
}

/// `acc = a_panel [k, MR]^T b_panel [k, W]`, portable.
fn kernel_base<const W: usize>(a: &[f32], b: &[f32], acc: &mut [[f32; W]; MR]) {
    *acc = [[0.0; W]; MR];
    for (ak, bk) in a.as_chunks::<MR>().0.iter().zip(b.as_chunks::<W>().0) {
        for (row, av) in acc.iter_mut().zip(ak) {
            for (c, bv) in row.iter_mut().zip(bk) {
                *c += av * bv;
            }
        }
    }
}

/// The AVX2 + FMA microkernel `acc = a_panel^T b_panel` over `$nv` vectors of
/// 8 columns: `MR x $nv` accumulators in registers, one broadcast per row and
/// step.
macro_rules! avx2_kernel {
    ($name:ident, $nv:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $name(a: &[f32], b: &[f32], acc: &mut [[f32; 8 * $nv]; MR]) {
            use std::arch::x86_64::{
                __m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps,
                _mm256_storeu_ps,
            };
            let mut c: [[__m256; $nv]; MR] = [[_mm256_setzero_ps(); $nv]; MR];
            for (ak, bk) in a
                .as_chunks::<MR>()
                .0
                .iter()
                .zip(b.as_chunks::<{ 8 * $nv }>().0)
            {
                let mut bv: [__m256; $nv] = [_mm256_setzero_ps(); $nv];
                for (v, x) in bv.iter_mut().enumerate() {
                    // SAFETY: `bk` holds 8 * $nv floats, so 8 from 8 * v are in bounds.
                    *x = unsafe { _mm256_loadu_ps(bk.as_ptr().add(8 * v)) };
                }
                for (cr, av) in c.iter_mut().zip(ak) {
                    let av = _mm256_set1_ps(*av);
                    for (cv, x) in cr.iter_mut().zip(&bv) {
                        *cv = _mm256_fmadd_ps(av, *x, *cv);
                    }
                }
            }
            for (dst, cr) in acc.iter_mut().zip(&c) {
                for (v, cv) in cr.iter().enumerate() {
                    // SAFETY: each row of `acc` holds 8 * $nv floats.
                    unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(8 * v), *cv) };
                }
            }
        }
    };
}

avx2_kernel!(kernel16_avx2, 2);
avx2_kernel!(kernel8_avx2, 1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_naive_product_at_every_edge_shape() {
        for (m, k, n) in [
            (1, 1, 1),
            (6, 3, 16),
            (7, 5, 17),
            (13, 31, 8),
            (5, 2, 9),
            (12, 40, 41),
            (2, 9, 3),
        ] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 11) as f32) - 5.0).collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5 % 13) as f32) / 4.0 - 1.5)
                .collect();
            let bias: Vec<f32> = (0..m).map(|i| i as f32 * 0.5).collect();
            let mut out = vec![f32::NAN; m * n];
            gemm(
                &Packed::new(&a, m, k),
                &bias,
                &b,
                n,
                &mut out,
                &mut Vec::new(),
            );
            for i in 0..m {
                for j in 0..n {
                    let want: f32 =
                        bias[i] + (0..k).map(|kk| a[i * k + kk] * b[kk * n + j]).sum::<f32>();
                    let got = out[i * n + j];
                    assert!(
                        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{m}x{k}x{n}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
