//! One-dimensional convolutions of one window, `[channels, length]` row-major,
//! with BatchNorm already folded into weight and bias.
//!
//! Every convolution of the WiFlow family is one of these: the TCN's causal
//! grouped dilated convs and pointwise convs over time, and the conv blocks'
//! (1 x 3) and (1 x 1) Conv2d, which never mix time and so are 1-D convs over
//! the width of each time row. Dense pointwise convs (the bulk of the work)
//! take a register-blocked matrix product; the rest a direct loop whose inner
//! axis is contiguous.

/// A folded convolution: `out[o, l] = b[o] + sum w[o, i, k] x[i, l s + k d - pad_l]`.
#[derive(Debug, Clone)]
pub(crate) struct Conv1d {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub groups: usize,
    pub dilation: usize,
    pub stride: usize,
    pub pad_l: usize,
    pub pad_r: usize,
    /// `[cout, cin / groups, k]`.
    pub w: Vec<f32>,
    /// `[cout]`.
    pub b: Vec<f32>,
}

/// SiLU as torch computes it: x * sigmoid(x).
#[inline]
pub(crate) fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

pub(crate) fn silu_all(x: &mut [f32]) {
    for v in x {
        *v = silu(*v);
    }
}

impl Conv1d {
    /// Output length for input length `l`.
    pub fn out_len(&self, l: usize) -> usize {
        let span = self.dilation * (self.k - 1) + 1;
        let padded = l + self.pad_l + self.pad_r;
        if padded < span {
            0
        } else {
            (padded - span) / self.stride + 1
        }
    }

    /// Convolve `x` `[cin, l]` into `out` (resized to `[cout, out_len]`).
    pub fn forward(&self, x: &[f32], l: usize, out: &mut Vec<f32>) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::metrics::simd::{Isa, isa};
            if isa() >= Isa::Avx2 {
                // SAFETY: the CPU has AVX2 and FMA (checked at run time by `isa`).
                return unsafe { self.forward_avx2(x, l, out) };
            }
        }
        self.forward_body(x, l, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_avx2(&self, x: &[f32], l: usize, out: &mut Vec<f32>) -> usize {
        self.forward_body(x, l, out)
    }

    #[inline(always)]
    fn forward_body(&self, x: &[f32], l: usize, out: &mut Vec<f32>) -> usize {
        let lo = self.out_len(l);
        out.clear();
        out.resize(self.cout * lo, 0.0);
        if self.k == 1 && self.groups == 1 && self.stride == 1 && self.pad_l == 0 {
            matmul_bias(&self.w, &self.b, x, self.cout, self.cin, l, out);
            return lo;
        }
        let (cin_g, cout_g) = (self.cin / self.groups, self.cout / self.groups);
        let (s, d, pl) = (self.stride, self.dilation, self.pad_l);
        for (co, row) in out.chunks_exact_mut(lo.max(1)).enumerate().take(self.cout) {
            row.fill(self.b[co]);
            let g = co / cout_g;
            for i in 0..cin_g {
                let xi = &x[(g * cin_g + i) * l..(g * cin_g + i + 1) * l];
                for kk in 0..self.k {
                    let wv = self.w[(co * cin_g + i) * self.k + kk];
                    let off = kk * d;
                    // Valid outputs: 0 <= t s + off - pl < l.
                    let first = if pl > off { (pl - off).div_ceil(s) } else { 0 };
                    let end = if l + pl > off {
                        ((l + pl - off).div_ceil(s)).min(lo)
                    } else {
                        0
                    };
                    if first >= end {
                        continue;
                    }
                    if s == 1 {
                        let src = &xi[first + off - pl..end + off - pl];
                        for (o, v) in row[first..end].iter_mut().zip(src) {
                            *o += wv * v;
                        }
                    } else {
                        for (t, o) in row[first..end].iter_mut().enumerate() {
                            *o += wv * xi[(t + first) * s + off - pl];
                        }
                    }
                }
            }
        }
        lo
    }
}

const MR: usize = 4;
const NR: usize = 16;

/// `out [m, n] = w [m, k] x [k, n] + b` (b per row), register-blocked in
/// MR x NR tiles so that the accumulators stay in vector registers; partial
/// tiles are zero-padded so that every tile takes the same fixed-size loop.
/// Inlined into [`Conv1d::forward`]'s AVX2+FMA build where the CPU has it.
#[inline(always)]
pub(crate) fn matmul_bias(
    w: &[f32],
    b: &[f32],
    x: &[f32],
    m: usize,
    k: usize,
    n: usize,
    out: &mut [f32],
) {
    let mut r0 = 0;
    while r0 < m {
        let rows = MR.min(m - r0);
        let row = |r: usize| -> &[f32] {
            if r < rows {
                &w[(r0 + r) * k..(r0 + r + 1) * k]
            } else {
                &w[r0 * k..(r0 + 1) * k] // a padding row: computed, never stored
            }
        };
        let (w0, w1, w2, w3) = (row(0), row(1), row(2), row(3));
        let mut c0 = 0;
        while c0 < n {
            let cols = NR.min(n - c0);
            let mut acc = [[0f32; NR]; MR];
            for (r, a) in acc.iter_mut().enumerate() {
                *a = [b[r0 + r.min(rows - 1)]; NR];
            }
            let mut xs = [0f32; NR];
            for i in 0..k {
                xs[..cols].copy_from_slice(&x[i * n + c0..i * n + c0 + cols]);
                let (a0, a1, a2, a3) = (w0[i], w1[i], w2[i], w3[i]);
                for j in 0..NR {
                    let v = xs[j];
                    acc[0][j] += a0 * v;
                    acc[1][j] += a1 * v;
                    acc[2][j] += a2 * v;
                    acc[3][j] += a3 * v;
                }
            }
            for (r, a) in acc.iter().enumerate().take(rows) {
                out[(r0 + r) * n + c0..(r0 + r) * n + c0 + cols].copy_from_slice(&a[..cols]);
            }
            c0 += NR;
        }
        r0 += MR;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(c: &Conv1d, x: &[f32], l: usize) -> Vec<f32> {
        let lo = c.out_len(l);
        let (cin_g, cout_g) = (c.cin / c.groups, c.cout / c.groups);
        let mut out = vec![0f32; c.cout * lo];
        for co in 0..c.cout {
            for t in 0..lo {
                let mut s = c.b[co];
                for i in 0..cin_g {
                    for kk in 0..c.k {
                        let p = (t * c.stride + kk * c.dilation) as i64 - c.pad_l as i64;
                        if p >= 0 && (p as usize) < l {
                            let ci = (co / cout_g) * cin_g + i;
                            s += c.w[(co * cin_g + i) * c.k + kk] * x[ci * l + p as usize];
                        }
                    }
                }
                out[co * lo + t] = s;
            }
        }
        out
    }

    fn vals(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn every_variant_matches_the_naive_loop() {
        for (cin, cout, k, groups, dilation, stride, pl, pr, l) in [
            (6, 4, 3, 2, 2, 1, 4, 0, 11),
            (5, 9, 1, 1, 1, 1, 0, 0, 37),
            (8, 8, 1, 4, 1, 1, 0, 0, 5),
            (3, 5, 3, 1, 1, 2, 1, 1, 15),
            (3, 5, 1, 1, 1, 2, 0, 0, 15),
            (4, 4, 3, 4, 8, 1, 16, 0, 3),
            (1, 2, 3, 1, 1, 1, 1, 1, 1),
        ] {
            let c = Conv1d {
                cin,
                cout,
                k,
                groups,
                dilation,
                stride,
                pad_l: pl,
                pad_r: pr,
                w: vals(cout * cin / groups * k, 3),
                b: vals(cout, 5),
            };
            let x = vals(cin * l, 7);
            let mut out = Vec::new();
            let lo = c.forward(&x, l, &mut out);
            assert_eq!(lo, c.out_len(l));
            let want = naive(&c, &x, l);
            for (a, b) in out.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
    }
}
