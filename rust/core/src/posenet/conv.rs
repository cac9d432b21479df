//! One-dimensional convolutions of many rows at once, `[channels, rows,
//! length]` row-major, with BatchNorm already folded into weight and bias.
//!
//! Every convolution of the WiFlow family is one of these: the TCN's causal
//! grouped dilated convs and pointwise convs over time (a row per window),
//! and the conv blocks' (1 x 3) and (1 x 1) Conv2d, which never mix time and
//! so are 1-D convs over the width of each time row (a row per window and
//! time step). Each group is one matrix product over all rows (im2col where
//! the kernel is wider than 1 or strided); depthwise convs, whose product
//! would have one row, take a direct loop.

use super::gemm::{Packed, gemm};

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
    /// Per group, `[cout / groups, cin / groups * k]` packed; empty for depthwise.
    pub packed: Vec<Packed>,
}

/// Scratch of the matrix products (im2col columns, packed panel of `b`),
/// reused across layers and calls.
#[derive(Debug, Default)]
pub(crate) struct Work {
    pub cols: Vec<f32>,
    pub panel: Vec<f32>,
}

impl Conv1d {
    /// A folded convolution; the weights of each group are packed for [`gemm`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        [cin, cout, k, groups]: [usize; 4],
        [dilation, stride, pad_l, pad_r]: [usize; 4],
        w: Vec<f32>,
        b: Vec<f32>,
    ) -> Self {
        let g = groups.max(1);
        let (cout_g, kg) = (cout / g, cin / g * k);
        let packed = if g > 1 && cin / g == 1 && cout_g == 1 && k > 1 {
            Vec::new() // depthwise: a direct loop, no matrix product
        } else {
            w.chunks_exact((cout_g * kg).max(1))
                .take(g)
                .map(|wg| Packed::new(wg, cout_g, kg))
                .collect()
        };
        Self {
            cin,
            cout,
            k,
            groups: g,
            dilation,
            stride,
            pad_l,
            pad_r,
            w,
            b,
            packed,
        }
    }

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

    /// Convolve every row of `x` `[cin, rows, l]` along `l` into `out`
    /// (resized to `[cout, rows, l']`); returns `l'`. The rows (windows, or
    /// time rows of a batch) are stacked along the matrix product's n, so the
    /// weights are read once per call, not once per row.
    pub fn forward_rows(
        &self,
        x: &[f32],
        rows: usize,
        l: usize,
        out: &mut Vec<f32>,
        work: &mut Work,
    ) -> usize {
        let Work { cols, panel } = work;
        let lo = self.out_len(l);
        let n = rows * lo;
        out.clear();
        out.resize(self.cout * n, 0.0);
        if n == 0 || x.len() < self.cin * rows * l {
            return lo;
        }
        if self.packed.is_empty() {
            self.depthwise(x, rows, l, lo, out);
            return lo;
        }
        let (cin_g, cout_g) = (self.cin / self.groups, self.cout / self.groups);
        let direct = self.k == 1 && self.stride == 1 && self.pad_l == 0 && self.pad_r == 0;
        for (g, a) in self.packed.iter().enumerate() {
            let xg = &x[g * cin_g * rows * l..(g + 1) * cin_g * rows * l];
            let bias = &self.b[g * cout_g..(g + 1) * cout_g];
            let dst = &mut out[g * cout_g * n..(g + 1) * cout_g * n];
            if direct {
                gemm(a, bias, xg, n, dst, panel);
            } else {
                self.im2col(xg, cin_g, rows, l, lo, cols);
                gemm(a, bias, cols, n, dst, panel);
            }
        }
        lo
    }

    /// `cols [(i k + kk), r lo + t] = x [i, r, t s + kk d - pad_l]` (0 outside).
    fn im2col(&self, x: &[f32], cin: usize, rows: usize, l: usize, lo: usize, cols: &mut Vec<f32>) {
        let n = rows * lo;
        cols.clear();
        cols.resize(cin * self.k * n, 0.0);
        let (s, d, pl) = (self.stride, self.dilation, self.pad_l);
        for (ik, dst) in cols.chunks_exact_mut(n).enumerate() {
            let (i, kk) = (ik / self.k, ik % self.k);
            let off = kk * d;
            let (first, end) = valid(l, lo, s, off, pl);
            if first >= end {
                continue; // the tap reads only padding
            }
            for r in 0..rows {
                let src = &x[(i * rows + r) * l..(i * rows + r + 1) * l];
                let row = &mut dst[r * lo..(r + 1) * lo];
                if s == 1 {
                    row[first..end].copy_from_slice(&src[first + off - pl..end + off - pl]);
                } else {
                    for (t, o) in row[first..end].iter_mut().enumerate() {
                        *o = src[(t + first) * s + off - pl];
                    }
                }
            }
        }
    }

    /// One input and one output channel per group: a direct loop.
    fn depthwise(&self, x: &[f32], rows: usize, l: usize, lo: usize, out: &mut [f32]) {
        let (s, d, pl) = (self.stride, self.dilation, self.pad_l);
        for (c, dst) in out.chunks_exact_mut(rows * lo).enumerate().take(self.cout) {
            let wc = &self.w[c * self.k..(c + 1) * self.k];
            for r in 0..rows {
                let src = &x[(c * rows + r) * l..(c * rows + r + 1) * l];
                let row = &mut dst[r * lo..(r + 1) * lo];
                row.fill(self.b[c]);
                for (kk, wv) in wc.iter().enumerate() {
                    let off = kk * d;
                    let (first, end) = valid(l, lo, s, off, pl);
                    for (t, o) in row[first..end].iter_mut().enumerate() {
                        *o += wv * src[(t + first) * s + off - pl];
                    }
                }
            }
        }
    }
}

/// Outputs `t` of a tap at offset `off` that read inside the input:
/// `0 <= t s + off - pl < l`, as the range `first..end` (empty if none).
fn valid(l: usize, lo: usize, s: usize, off: usize, pl: usize) -> (usize, usize) {
    let first = if pl > off { (pl - off).div_ceil(s) } else { 0 };
    let end = if l + pl > off {
        (l + pl - off).div_ceil(s).min(lo)
    } else {
        0
    };
    (first.min(end), end)
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
            (7, 7, 3, 7, 2, 1, 4, 0, 9),
            (1, 8, 3, 1, 1, 2, 1, 1, 10),
            (16, 24, 9, 1, 1, 1, 0, 0, 4),
            (12, 12, 3, 4, 8, 1, 16, 0, 10),
        ] {
            let c = Conv1d::new(
                [cin, cout, k, groups],
                [dilation, stride, pl, pr],
                vals(cout * cin / groups * k, 3),
                vals(cout, 5),
            );
            // Three rows in the batched layout [cin, rows, l].
            let rows = 3;
            let x = vals(cin * rows * l, 7);
            let (mut out, mut work) = (Vec::new(), Work::default());
            let lo = c.forward_rows(&x, rows, l, &mut out, &mut work);
            assert_eq!(lo, c.out_len(l));
            for r in 0..rows {
                let xr: Vec<f32> = (0..cin)
                    .flat_map(|i| x[(i * rows + r) * l..(i * rows + r + 1) * l].to_vec())
                    .collect();
                let want = naive(&c, &xr, l);
                for co in 0..cout {
                    for t in 0..lo {
                        let (a, b) = (out[(co * rows + r) * lo + t], want[co * lo + t]);
                        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
                    }
                }
            }
        }
    }
}
