//! Output heads. WiFlow-STD: 3x3 conv + BN (folded) + SiLU, 1x1 conv + BN
//! (folded) + optional SiLU, then AdaptiveAvgPool2d((K, 1)). The MM-Fi variant:
//! on the last time step only, 1x1 conv + BN (folded) + SiLU, 1x1 conv.

use super::activation::silu_all;
use super::conv::{Conv1d, Work};
use super::gemm::gemm;
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

    /// Decoder: `x` `[c, windows, h, t]` -> `out` `[windows, K, D]`.
    #[allow(clippy::too_many_arguments)]
    pub fn decode(
        &self,
        x: &[f32],
        windows: usize,
        h: usize,
        t: usize,
        out: &mut [f32],
        y: &mut Vec<f32>,
        z: &mut Vec<f32>,
        wk: &mut Work,
    ) {
        let Head::Decoder {
            conv3,
            conv1,
            activation,
            keypoints,
        } = self
        else {
            return;
        };
        conv3x3(conv3, x, windows, h, t, y, wk);
        silu_all(y);
        conv1.forward_rows(y, windows, h * t, z, wk);
        if *activation {
            silu_all(z);
        }
        // AdaptiveAvgPool2d((K, 1)): row bin k is [floor(k h / K), ceil((k + 1) h / K)).
        let (k, d) = (*keypoints, conv1.cout);
        for (b, o) in out.chunks_exact_mut(k * d).enumerate().take(windows) {
            for kk in 0..k {
                let (lo, hi) = (kk * h / k, ((kk + 1) * h).div_ceil(k));
                let n = ((hi - lo) * t) as f32;
                for dd in 0..d {
                    let img = (dd * windows + b) * h;
                    let s: f32 = z[(img + lo) * t..(img + hi) * t].iter().sum();
                    o[kk * d + dd] = s / n;
                }
            }
        }
    }

    /// Last-step head: `x` `[c, windows, K]` -> `out` `[windows, K, D]`.
    #[allow(clippy::too_many_arguments)]
    pub fn last_step(
        &self,
        x: &[f32],
        windows: usize,
        k: usize,
        out: &mut [f32],
        y: &mut Vec<f32>,
        z: &mut Vec<f32>,
        wk: &mut Work,
    ) {
        let Head::Last { conv1, conv2 } = self else {
            return;
        };
        conv1.forward_rows(x, windows, k, y, wk);
        silu_all(y);
        conv2.forward_rows(y, windows, k, z, wk);
        let d = conv2.cout;
        for (b, o) in out.chunks_exact_mut(k * d).enumerate().take(windows) {
            for kk in 0..k {
                for dd in 0..d {
                    o[kk * d + dd] = z[(dd * windows + b) * k + kk];
                }
            }
        }
    }
}

/// 3x3 convolution, padding 1, of every image of `x` `[cin, images, h, w]`
/// into `out` `[cout, images, h, w]` (weights `[cout, cin, 3, 3]` in `conv`):
/// im2col over all images, then one matrix product.
fn conv3x3(
    conv: &Conv1d,
    x: &[f32],
    images: usize,
    h: usize,
    w: usize,
    out: &mut Vec<f32>,
    wk: &mut Work,
) {
    let hw = h * w;
    let n = images * hw;
    out.clear();
    out.resize(conv.cout * n, 0.0);
    let Some(a) = conv.packed.first() else {
        return;
    };
    if n == 0 || x.len() < conv.cin * n {
        return;
    }
    let cols = &mut wk.cols;
    cols.clear();
    cols.resize(conv.cin * 9 * n, 0.0);
    for (tap, dst) in cols.chunks_exact_mut(n).enumerate() {
        let (ci, dr, dc) = (tap / 9, tap % 9 / 3, tap % 3);
        for img in 0..images {
            let src = &x[(ci * images + img) * hw..(ci * images + img + 1) * hw];
            let dimg = &mut dst[img * hw..(img + 1) * hw];
            // Output (r, c) reads input (r + dr - 1, c + dc - 1).
            for r in 0..h {
                let sr = r + dr;
                if sr < 1 || sr > h {
                    continue;
                }
                let srow = &src[(sr - 1) * w..sr * w];
                let drow = &mut dimg[r * w..(r + 1) * w];
                match dc {
                    0 if w > 1 => drow[1..].copy_from_slice(&srow[..w - 1]),
                    1 => drow.copy_from_slice(srow),
                    2 if w > 1 => drow[..w - 1].copy_from_slice(&srow[1..]),
                    _ => {}
                }
            }
        }
    }
    gemm(a, &conv.b, cols, n, out, &mut wk.panel);
}
