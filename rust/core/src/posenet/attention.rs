//! Axial attention of one sequence `[channels, length]` (upstream's
//! AxialAttention): qkv = BN(1x1 conv(x)) (BN folded into the conv), per group
//! logits q_i . k_j without 1/sqrt(d), BatchNorm2d over the G logit maps (an
//! affine map per group, applied to the logits, not foldable into a conv),
//! softmax over j, out_i = sum_j p_ij v_j, then BatchNorm1d over the output
//! channels (applied as an affine map). No residual.

use super::activation::softmax_body;
use crate::metrics::simd::multiversion;
use super::conv::{Conv1d, Work};
use super::weights::Weights;
use crate::Result;

#[derive(Debug, Clone)]
pub(crate) struct Axial {
    qkv: Conv1d,
    groups: usize,
    sim: (Vec<f32>, Vec<f32>),
    out: (Vec<f32>, Vec<f32>),
}

impl Axial {
    pub fn load(w: &Weights<'_>, prefix: &str, c: usize) -> Result<Self> {
        let sim_name = format!("{prefix}.bn_similarity.weight");
        let groups = match w.shape(&sim_name).as_deref() {
            Some([g]) if *g > 0 && c.is_multiple_of(*g) => *g,
            Some(s) => {
                return Err(w.err(format!(
                    "tensor {sim_name} has shape {s:?}: the attention groups must divide {c} channels"
                )));
            }
            None => return Err(w.err(format!("missing tensor {sim_name}"))),
        };
        Ok(Self {
            qkv: w.conv(
                &format!("{prefix}.qkv_transform"),
                false,
                Some(&format!("{prefix}.bn_qkv")),
                [c, 3 * c, 1],
                &[1],
                [1, 1, 0, 0],
            )?,
            groups,
            sim: w.bn_f32(&format!("{prefix}.bn_similarity"), groups)?,
            out: w.bn_f32(&format!("{prefix}.bn_output"), c)?,
        })
    }

    pub fn parameters(&self) -> usize {
        self.qkv.w.len() + 2 * self.qkv.cout + 2 * self.groups + 2 * self.qkv.cin
    }

    /// `x` `[c, seqs, l]` (`seqs` sequences of length `l`) -> `out` `[c, seqs, l]`.
    /// The qkv projection is one matrix product over every position of every
    /// sequence; the logits and the weighted sums are small per sequence.
    pub fn forward(
        &self,
        x: &[f32],
        seqs: usize,
        l: usize,
        out: &mut Vec<f32>,
        qkv: &mut Vec<f32>,
        wk: &mut Work,
    ) {
        let c = self.qkv.cin;
        let n = seqs * l;
        self.qkv.forward_rows(x, seqs, l, qkv, wk);
        out.clear();
        out.resize(c * n, 0.0);
        if n == 0 {
            return;
        }
        let p = &mut wk.cols;
        p.clear();
        p.resize(2 * l * l, 0.0);
        attend(
            qkv,
            out,
            p,
            [c, self.groups, seqs, l],
            (&self.sim.0, &self.sim.1),
            (&self.out.0, &self.out.1),
        );
    }
}

/// Channel `ch` of sequence `s` in `[channels, seqs, l]`.
#[inline(always)]
fn at(ch: usize, s: usize, seqs: usize, l: usize) -> std::ops::Range<usize> {
    (ch * seqs + s) * l..(ch * seqs + s + 1) * l
}

#[inline(always)]
fn attend_body(
    qkv: &[f32],
    out: &mut [f32],
    p: &mut [f32],
    [c, groups, seqs, l]: [usize; 4],
    sim: (&[f32], &[f32]),
    bn: (&[f32], &[f32]),
) {
    let cg = c / groups;
    let (p, pt) = p.split_at_mut(l * l);
    for s in 0..seqs {
        for g in 0..groups {
            // p[i, j] = sum_c q[c, i] k[c, j]
            p.fill(0.0);
            for ch in g * cg..(g + 1) * cg {
                let (qr, kr) = (&qkv[at(ch, s, seqs, l)], &qkv[at(c + ch, s, seqs, l)]);
                for (qi, row) in qr.iter().zip(p.chunks_exact_mut(l)) {
                    for (o, kv) in row.iter_mut().zip(kr) {
                        *o += qi * kv;
                    }
                }
            }
            softmax_body(p, l, sim.0[g], sim.1[g]);
            // pt = p transposed, so that the weighted sum runs along i.
            for (i, row) in p.chunks_exact(l).enumerate() {
                for (j, v) in row.iter().enumerate() {
                    pt[j * l + i] = *v;
                }
            }
            // out[c, i] = sum_j p[i, j] v[c, j], then BatchNorm over the output.
            for ch in g * cg..(g + 1) * cg {
                let vr = &qkv[at(2 * c + ch, s, seqs, l)];
                let o = &mut out[at(ch, s, seqs, l)];
                o.fill(0.0);
                for (vj, col) in vr.iter().zip(pt.chunks_exact(l)) {
                    for (oi, pij) in o.iter_mut().zip(col) {
                        *oi += vj * pij;
                    }
                }
                let (sc, sh) = (bn.0[ch], bn.1[ch]);
                for v in o.iter_mut() {
                    *v = *v * sc + sh;
                }
            }
        }
    }
}

multiversion! {
    /// The attention of every sequence and group from the projected `qkv`
    /// `[3c, seqs, l]` into `out` `[c, seqs, l]`; `p` holds `2 l^2` scratch.
    fn attend(
        qkv: &[f32],
        out: &mut [f32],
        p: &mut [f32],
        shape: [usize; 4],
        sim: (&[f32], &[f32]),
        bn: (&[f32], &[f32]),
    ) -> ();
    wide = attend_body(qkv, out, p, shape, sim, bn);
    base = attend_body(qkv, out, p, shape, sim, bn);
}
