//! The temporal convolution network (upstream's InnerGroupedTemporalBlock):
//! per block two rounds of (causal grouped dilated conv, BN, SiLU, pointwise
//! conv, BN, SiLU) plus a residual (identity, or 1x1 conv + BN), SiLU of the sum.
//!
//! Every BatchNorm here follows a bias-free convolution and is folded into it.
//! Channel counts and group counts are read from the weight shapes (the
//! configuration decides them; the file carries them) and cross-checked.

use super::activation::{silu_all, silu_sum};
use super::conv::{Conv1d, Work};
use super::weights::Weights;
use crate::Result;

const KERNEL: usize = 3;

#[derive(Debug, Clone)]
pub(crate) struct TemporalBlock {
    convs: [Conv1d; 4],
    down: Option<Conv1d>,
}

/// Groups of a conv over `c` channels whose weight has `per_group` inputs per output.
fn groups_of(w: &Weights<'_>, name: &str, c: usize, per_group: usize) -> Result<usize> {
    if per_group == 0 || !c.is_multiple_of(per_group) {
        return Err(w.err(format!(
            "tensor {name}.weight takes {per_group} input channels per group, which does not divide {c}"
        )));
    }
    Ok(c / per_group)
}

fn dims(w: &Weights<'_>, name: &str, rank: usize) -> Result<Vec<usize>> {
    let full = format!("{name}.weight");
    match w.shape(&full) {
        Some(s) if s.len() == rank && s.iter().all(|&d| d > 0) => Ok(s),
        Some(s) => Err(w.err(format!(
            "tensor {full} has shape {s:?}, expected {rank} non-zero dimensions"
        ))),
        None => Err(w.err(format!("missing tensor {full}"))),
    }
}

impl TemporalBlock {
    /// Block `prefix` (`tcn.network.{level}`) taking `c_in` channels.
    pub fn load(w: &Weights<'_>, prefix: &str, c_in: usize, level: usize) -> Result<Self> {
        let dilation = 1usize << level;
        let pad = (KERNEL - 1) * dilation;
        let causal = [dilation, 1, pad, 0];
        let point = [1, 1, 0, 0];
        let n1g = format!("{prefix}.conv1_group");
        let g1 = groups_of(w, &n1g, c_in, dims(w, &n1g, 3)?[1])?;
        let n1p = format!("{prefix}.conv1_pw");
        let s1p = dims(w, &n1p, 3)?;
        let c_out = s1p[0];
        let pw = groups_of(w, &n1p, c_in, s1p[1])?;
        let n2g = format!("{prefix}.conv2_group");
        let g2 = groups_of(w, &n2g, c_out, dims(w, &n2g, 3)?[1])?;
        let bn = |n: &str| Some(format!("{prefix}.{n}"));
        let convs = [
            w.conv(
                &n1g,
                false,
                bn("bn1_group").as_deref(),
                [c_in, c_in, g1],
                &[KERNEL],
                causal,
            )?,
            w.conv(
                &n1p,
                false,
                bn("bn1_pw").as_deref(),
                [c_in, c_out, pw],
                &[1],
                point,
            )?,
            w.conv(
                &n2g,
                false,
                bn("bn2_group").as_deref(),
                [c_out, c_out, g2],
                &[KERNEL],
                causal,
            )?,
            w.conv(
                &format!("{prefix}.conv2_pw"),
                false,
                bn("bn2_pw").as_deref(),
                [c_out, c_out, 1],
                &[1],
                point,
            )?,
        ];
        let down = if c_in != c_out {
            Some(w.conv(
                &format!("{prefix}.downsample.0"),
                false,
                Some(&format!("{prefix}.downsample.1")),
                [c_in, c_out, pw],
                &[1],
                point,
            )?)
        } else {
            None
        };
        Ok(Self { convs, down })
    }

    pub fn out_channels(&self) -> usize {
        self.convs[3].cout
    }

    pub fn parameters(&self) -> usize {
        self.convs
            .iter()
            .chain(self.down.iter())
            .map(|c| c.w.len() + 2 * c.cout)
            .sum()
    }

    /// `x` `[c_in, windows, t]` -> `out` `[c_out, windows, t]`.
    pub fn forward(
        &self,
        x: &[f32],
        windows: usize,
        t: usize,
        out: &mut Vec<f32>,
        tmp: &mut Vec<f32>,
        wk: &mut Work,
    ) {
        let [c1, p1, c2, p2] = &self.convs;
        c1.forward_rows(x, windows, t, tmp, wk);
        silu_all(tmp);
        p1.forward_rows(tmp, windows, t, out, wk);
        silu_all(out);
        c2.forward_rows(out, windows, t, tmp, wk);
        silu_all(tmp);
        p2.forward_rows(tmp, windows, t, out, wk);
        silu_all(out);
        match &self.down {
            Some(d) => {
                d.forward_rows(x, windows, t, tmp, wk);
                silu_sum(out, tmp);
            }
            None => silu_sum(out, x),
        }
    }
}
