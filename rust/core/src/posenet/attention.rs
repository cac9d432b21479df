//! Axial attention of one sequence `[channels, length]` (upstream's
//! AxialAttention): qkv = BN(1x1 conv(x)) (BN folded into the conv), per group
//! logits q_i . k_j without 1/sqrt(d), BatchNorm2d over the G logit maps (an
//! affine map per group, applied to the logits, not foldable into a conv),
//! softmax over j, out_i = sum_j p_ij v_j, then BatchNorm1d over the output
//! channels (applied as an affine map). No residual.

use super::activation::exp;
use super::conv::{Conv1d, Work};
use super::weights::Weights;
use crate::Result;
use crate::metrics::simd::multiversion;

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

    /// `x` `[c, l, seqs]` (`seqs` sequences of length `l`, sequences innermost)
    /// -> `out` `[c, l, seqs]`. The qkv projection is one matrix product over
    /// every position; the logits, softmax and weighted sums run on blocks of
    /// [`SB`] sequences at once, vectorised across the sequences (the
    /// sequences are only 10-20 long).
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
        p.resize(l * l * SB, 0.0);
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

/// Sequences per block of the attention: its logits `[l, l, SB]` stay in L1.
const SB: usize = 16;

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
    let n = l * seqs;
    // Row i of channel ch (`[channels, l, seqs]`), sequences s0.. of the block.
    let row = |ch: usize, i: usize, s0: usize| ch * n + i * seqs + s0;
    let p = &mut p[..l * l * SB];
    let mut s0 = 0;
    while s0 < seqs {
        let sb = SB.min(seqs - s0);
        for g in 0..groups {
            // p[i, j, s] = sum_c q[c, i, s] k[c, j, s]
            p.fill(0.0);
            for ch in g * cg..(g + 1) * cg {
                for i in 0..l {
                    let q = &qkv[row(ch, i, s0)..row(ch, i, s0) + sb];
                    for j in 0..l {
                        let k = &qkv[row(c + ch, j, s0)..row(c + ch, j, s0) + sb];
                        let pr = &mut p[(i * l + j) * SB..(i * l + j) * SB + sb];
                        for ((o, a), b) in pr.iter_mut().zip(q).zip(k) {
                            *o += a * b;
                        }
                    }
                }
            }
            // BatchNorm over the logits, softmax over j, per (i, s).
            let (sc, sh) = (sim.0[g], sim.1[g]);
            for pi in p.chunks_exact_mut(l * SB) {
                let mut max = [f32::NEG_INFINITY; SB];
                for pj in pi.chunks_exact_mut(SB) {
                    for (m, v) in max.iter_mut().zip(pj.iter_mut()) {
                        *v = *v * sc + sh;
                        *m = m.max(*v);
                    }
                }
                let mut sum = [0f32; SB];
                for pj in pi.chunks_exact_mut(SB) {
                    for ((t, m), v) in sum.iter_mut().zip(&max).zip(pj.iter_mut()) {
                        *v = exp(*v - m);
                        *t += *v;
                    }
                }
                let inv = sum.map(|t| 1.0 / t);
                for pj in pi.chunks_exact_mut(SB) {
                    for (v, r) in pj.iter_mut().zip(&inv) {
                        *v *= r;
                    }
                }
            }
            // out[c, i, s] = sum_j p[i, j, s] v[c, j, s], then BatchNorm over the output.
            for ch in g * cg..(g + 1) * cg {
                let (osc, osh) = (bn.0[ch], bn.1[ch]);
                for (i, pi) in p.chunks_exact(l * SB).enumerate() {
                    let mut acc = [0f32; SB];
                    for (j, pj) in pi.chunks_exact(SB).enumerate() {
                        let v = &qkv[row(2 * c + ch, j, s0)..row(2 * c + ch, j, s0) + sb];
                        for ((a, w), x) in acc.iter_mut().zip(pj).zip(v) {
                            *a += w * x;
                        }
                    }
                    let o = &mut out[row(ch, i, s0)..row(ch, i, s0) + sb];
                    for (o, a) in o.iter_mut().zip(&acc) {
                        *o = a * osc + osh;
                    }
                }
            }
        }
        s0 += sb;
    }
}

multiversion! {
    /// The attention of every sequence and group from the projected `qkv`
    /// `[3c, l, seqs]` into `out` `[c, l, seqs]`; `p` holds `l^2 SB` scratch.
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
