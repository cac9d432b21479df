//! Output heads. WiFlow-STD: 3x3 conv + BN (folded) + SiLU, 1x1 conv + BN
//! (folded) + optional SiLU, then AdaptiveAvgPool2d((K, 1)). The MM-Fi variant:
//! on the last time step only, 1x1 conv + BN (folded) + SiLU, 1x1 conv.

use super::conv::{Conv1d, silu, silu_all};
use super::weights::Weights;
use crate::Result;

#[derive(Debug, Clone)]
pub(crate) enum Head {
    /// `[c, H, T]` -> pooled `[D, K]`.
    Decoder {
        conv3: Conv1d,
        conv1: Conv1d,
        activation: bool,
        keypoints: usize,
    },
    /// `[c, K]` (last time step) -> `[D, K]`.
    Last { conv1: Conv1d, conv2: Conv1d },
}

impl Head {
    pub fn decoder(
        w: &Weights<'_>,
        c: usize,
        dims: usize,
        keypoints: usize,
        activation: bool,
    ) -> Result<Self> {
        let m = match w.shape("decoder.0.weight").as_deref() {
            Some([m, ..]) if *m > 0 => *m,
            _ => return Err(w.err("missing or empty tensor decoder.0.weight")),
        };
        Ok(Head::Decoder {
            conv3: w.conv(
                "decoder.0",
                true,
                Some("decoder.1"),
                [c, m, 1],
                &[3, 3],
                [1, 1, 1, 1],
            )?,
            conv1: w.conv(
                "decoder.3",
                true,
                Some("decoder.4"),
                [m, dims, 1],
                &[1, 1],
                [1, 1, 0, 0],
            )?,
            activation,
            keypoints,
        })
    }

    pub fn last(w: &Weights<'_>, c: usize, dims: usize) -> Result<Self> {
        let h = match w.shape("final_conv.0.weight").as_deref() {
            Some([h, ..]) if *h > 0 => *h,
            _ => return Err(w.err("missing or empty tensor final_conv.0.weight")),
        };
        Ok(Head::Last {
            conv1: w.conv(
                "final_conv.0",
                true,
                Some("final_conv.1"),
                [c, h, 1],
                &[1, 1],
                [1, 1, 0, 0],
            )?,
            conv2: w.conv(
                "final_conv.3",
                true,
                None,
                [h, dims, 1],
                &[1, 1],
                [1, 1, 0, 0],
            )?,
        })
    }

    pub fn parameters(&self) -> usize {
        match self {
            Head::Decoder { conv3, conv1, .. } => {
                conv3.w.len() + 3 * conv3.cout + conv1.w.len() + 3 * conv1.cout
            }
            Head::Last { conv1, conv2 } => {
                conv1.w.len() + 3 * conv1.cout + conv2.w.len() + conv2.cout
            }
        }
    }

    /// Decoder: `x` `[c, h, t]` -> `out` `[K, D]`.
    pub fn decode(&self, x: &[f32], h: usize, t: usize, out: &mut [f32]) {
        let Head::Decoder {
            conv3,
            conv1,
            activation,
            keypoints,
        } = self
        else {
            return;
        };
        let mut y = Vec::new();
        conv3x3(conv3, x, h, t, &mut y);
        silu_all(&mut y);
        let mut z = Vec::new();
        conv1.forward(&y, h * t, &mut z);
        if *activation {
            silu_all(&mut z);
        }
        // AdaptiveAvgPool2d((K, 1)): row bin k is [floor(k h / K), ceil((k + 1) h / K)).
        let (k, d) = (*keypoints, conv1.cout);
        for kk in 0..k {
            let (lo, hi) = (kk * h / k, ((kk + 1) * h).div_ceil(k));
            let n = ((hi - lo) * t) as f32;
            for dd in 0..d {
                let s: f32 = z[(dd * h + lo) * t..(dd * h + hi) * t].iter().sum();
                out[kk * d + dd] = s / n;
            }
        }
    }

    /// Last-step head: `x` `[c, K]` -> `out` `[K, D]`.
    pub fn last_step(&self, x: &[f32], k: usize, out: &mut [f32]) {
        let Head::Last { conv1, conv2 } = self else {
            return;
        };
        let (mut y, mut z) = (Vec::new(), Vec::new());
        conv1.forward(x, k, &mut y);
        for v in y.iter_mut() {
            *v = silu(*v);
        }
        conv2.forward(&y, k, &mut z);
        let d = conv2.cout;
        for kk in 0..k {
            for dd in 0..d {
                out[kk * d + dd] = z[dd * k + kk];
            }
        }
    }
}

/// 3x3 convolution, padding 1, of `x` `[cin, h, w]` into `out` `[cout, h, w]`
/// (weights `[cout, cin, 3, 3]` in `conv.w`).
fn conv3x3(conv: &Conv1d, x: &[f32], h: usize, w: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(conv.cout * h * w, 0.0);
    for (co, plane) in out
        .chunks_exact_mut((h * w).max(1))
        .enumerate()
        .take(conv.cout)
    {
        plane.fill(conv.b[co]);
        for ci in 0..conv.cin {
            let src = &x[ci * h * w..(ci + 1) * h * w];
            let k = &conv.w[(co * conv.cin + ci) * 9..(co * conv.cin + ci + 1) * 9];
            for r in 0..h {
                let dst = &mut plane[r * w..(r + 1) * w];
                for dr in 0..3 {
                    let sr = r + dr;
                    if sr < 1 || sr > h {
                        continue;
                    }
                    let row = &src[(sr - 1) * w..sr * w];
                    let (k0, k1, k2) = (k[dr * 3], k[dr * 3 + 1], k[dr * 3 + 2]);
                    for (c, o) in dst.iter_mut().enumerate() {
                        let mut s = k1 * row[c];
                        if c > 0 {
                            s += k0 * row[c - 1];
                        }
                        if c + 1 < w {
                            s += k2 * row[c + 1];
                        }
                        *o += s;
                    }
                }
            }
        }
    }
}
