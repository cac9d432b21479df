//! The (1 x 3) Conv2d blocks (upstream's ConvBlock1 and AsymmetricConvBlock):
//! three (1 x 3) convs with bias, each followed by BatchNorm (folded), SiLU
//! between them, a 1x1 residual conv (no bias) + BatchNorm (folded), SiLU of
//! the sum. The first conv and the residual stride the width.
//!
//! They never mix time, so each time row of each window is a 1-D problem; the
//! activations are kept as `[channels, windows x time, width]`.

use super::activation::{silu_all, silu_sum};
use super::conv::{Conv1d, Work};
use super::weights::Weights;
use crate::Result;

#[derive(Debug, Clone)]
pub(crate) struct ConvBlock {
    convs: [Conv1d; 3],
    down: Conv1d,
}

impl ConvBlock {
    /// Block `prefix` from `c_in` channels with width stride `stride`; the output
    /// channels are read from `{prefix}.block.0.weight`.
    pub fn load(w: &Weights<'_>, prefix: &str, c_in: usize, stride: usize) -> Result<Self> {
        let first = format!("{prefix}.block.0.weight");
        let c_out = match w.shape(&first).as_deref() {
            Some([c, ..]) if *c > 0 => *c,
            _ => return Err(w.err(format!("missing or empty tensor {first}"))),
        };
        let conv = |i: usize, ci: usize, s: usize| {
            w.conv(
                &format!("{prefix}.block.{i}"),
                true,
                Some(&format!("{prefix}.block.{}", i + 1)),
                [ci, c_out, 1],
                &[1, 3],
                [1, s, 1, 1],
            )
        };
        Ok(Self {
            convs: [
                conv(0, c_in, stride)?,
                conv(4, c_out, 1)?,
                conv(8, c_out, 1)?,
            ],
            down: w.conv(
                &format!("{prefix}.downsample.0"),
                false,
                Some(&format!("{prefix}.downsample.1")),
                [c_in, c_out, 1],
                &[1, 1],
                [1, stride, 0, 0],
            )?,
        })
    }

    pub fn out_channels(&self) -> usize {
        self.down.cout
    }

    pub fn parameters(&self) -> usize {
        self.convs
            .iter()
            .map(|c| c.w.len() + 3 * c.cout)
            .sum::<usize>()
            + self.down.w.len()
            + 2 * self.down.cout
    }

    /// `x` `[c_in, rows, width]` -> `out` `[c_out, rows, width']`; returns width'.
    pub fn forward(
        &self,
        x: &[f32],
        rows: usize,
        width: usize,
        out: &mut Vec<f32>,
        tmp: &mut Vec<f32>,
        wk: &mut Work,
    ) -> usize {
        let [c0, c1, c2] = &self.convs;
        let w2 = c0.forward_rows(x, rows, width, out, wk);
        silu_all(out);
        c1.forward_rows(out, rows, w2, tmp, wk);
        silu_all(tmp);
        c2.forward_rows(tmp, rows, w2, out, wk);
        self.down.forward_rows(x, rows, width, tmp, wk);
        silu_sum(out, tmp);
        w2
    }
}
