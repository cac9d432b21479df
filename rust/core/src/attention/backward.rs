//! Backward pass (FlashAttention style): probabilities are recomputed from the
//! saved log-sum-exp, so nothing of size T x keys is kept between passes.
//!
//! Keys are shared by many queries, so one task owns one (batch, kv head):
//! it walks every query of its query-head group and accumulates dk, dv (and
//! the landmark gradients, spread evenly over their block) in its own buffers,
//! in a fixed order, so results do not depend on the thread count.

use super::forward::{check_len, inputs};
use super::pattern::{KeySet, Pattern, Shape};
use super::real::{Real, axpy, dot};
use crate::{Result, threads};

/// Gradients of one (batch, kv head): dq [T, G, D], dk [T, D], dv [T, D].
struct Part<F> {
    dq: Vec<F>,
    dk: Vec<F>,
    dv: Vec<F>,
}

/// dq, dk, dv of `forward` given its output `out`, its log-sum-exp `lse` and
/// the output gradient `dout` (same layouts as `forward`).
#[allow(clippy::too_many_arguments)]
pub fn backward<F: Real>(
    q: &[F],
    k: &[F],
    v: &[F],
    out: &[F],
    lse: &[F],
    dout: &[F],
    shape: Shape,
    pattern: &Pattern,
    scale: F,
    dq: &mut [F],
    dk: &mut [F],
    dv: &mut [F],
) -> Result<()> {
    let inp = inputs(q, k, v, shape, pattern, scale)?;
    check_len("out", out, shape.q_len())?;
    check_len("dout", dout, shape.q_len())?;
    check_len("lse", lse, shape.b * shape.t * shape.hq)?;
    check_len("dq", dq, shape.q_len())?;
    check_len("dk", dk, shape.kv_len())?;
    check_len("dv", dv, shape.kv_len())?;
    let (t, hq, hk, d) = (shape.t, shape.hq, shape.hk, shape.d);
    let group = shape.group();
    let nb = pattern.n_blocks(t);
    let parts = threads::map_chunks(shape.b * hk, 1, |tasks| {
        let mut res = Vec::with_capacity(tasks.len());
        for task in tasks {
            let (b, kh) = (task / hk, task % hk);
            let mut p = Part {
                dq: vec![F::ZERO; t * group * d],
                dk: vec![F::ZERO; t * d],
                dv: vec![F::ZERO; t * d],
            };
            let mut dkbar = vec![F::ZERO; nb * d];
            let mut dvbar = vec![F::ZERO; nb * d];
            let mut ks = KeySet::default();
            let mut sc = Vec::new();
            for i in 0..t {
                pattern.keys(i, t, &mut ks);
                let n_real = ks.window.len() + ks.extra.len();
                for g in 0..group {
                    let h = kh * group + g;
                    let qo = ((b * t + i) * hq + h) * d;
                    let (qi, oi, doi) = (&q[qo..qo + d], &out[qo..qo + d], &dout[qo..qo + d]);
                    let l = lse[(b * t + i) * hq + h];
                    let delta = dot(doi, oi);
                    inp.scores(qi, b, kh, nb, &ks, &mut sc);
                    let dqo = (i * group + g) * d;
                    let dqi = &mut p.dq[dqo..dqo + d];
                    let reals = ks.window.clone().chain(ks.extra.iter().copied());
                    for (&s, j) in sc.iter().zip(reals) {
                        let pr = (s - l).exp();
                        let ds = pr * (dot(doi, inp.kv(v, b, j, kh)) - delta);
                        axpy(scale * ds, inp.kv(k, b, j, kh), dqi);
                        axpy(scale * ds, qi, &mut p.dk[j * d..(j + 1) * d]);
                        axpy(pr, doi, &mut p.dv[j * d..(j + 1) * d]);
                    }
                    for (&s, &m) in sc.iter().skip(n_real).zip(&ks.landmarks) {
                        let pr = (s - l).exp();
                        let vb = inp.bar(&inp.vbar, b, m, kh, nb);
                        let ds = pr * (dot(doi, vb) - delta);
                        axpy(scale * ds, inp.bar(&inp.kbar, b, m, kh, nb), dqi);
                        axpy(scale * ds, qi, &mut dkbar[m * d..(m + 1) * d]);
                        axpy(pr, doi, &mut dvbar[m * d..(m + 1) * d]);
                    }
                }
            }
            // A block mean's gradient reaches each of its tokens divided by s.
            if nb > 0 {
                let inv = F::from_f64(1.0 / pattern.block as f64);
                for m in 0..nb {
                    for j in m * pattern.block..(m + 1) * pattern.block {
                        axpy(
                            inv,
                            &dkbar[m * d..(m + 1) * d],
                            &mut p.dk[j * d..(j + 1) * d],
                        );
                        axpy(
                            inv,
                            &dvbar[m * d..(m + 1) * d],
                            &mut p.dv[j * d..(j + 1) * d],
                        );
                    }
                }
            }
            res.push(p);
        }
        res
    })?;
    for (task, p) in parts.into_iter().flatten().enumerate() {
        let (b, kh) = (task / hk, task % hk);
        for i in 0..t {
            let ko = ((b * t + i) * hk + kh) * d;
            dk[ko..ko + d].copy_from_slice(&p.dk[i * d..(i + 1) * d]);
            dv[ko..ko + d].copy_from_slice(&p.dv[i * d..(i + 1) * d]);
            let qo = ((b * t + i) * hq + kh * group) * d;
            dq[qo..qo + group * d].copy_from_slice(&p.dq[i * group * d..(i + 1) * group * d]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::forward;
    use super::*;

    fn lcg(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    /// sum(out * w) for fixed weights w: its gradient is backward(dout = w).
    fn loss(q: &[f64], k: &[f64], v: &[f64], w: &[f64], s: Shape, p: &Pattern) -> f64 {
        let mut out = vec![0.0; s.q_len()];
        let mut lse = vec![0.0; s.b * s.t * s.hq];
        forward(q, k, v, s, p, 0.3, &mut out, &mut lse).unwrap();
        out.iter().zip(w).map(|(a, b)| a * b).sum()
    }

    #[test]
    fn gradients_match_finite_differences() {
        let s = Shape {
            b: 2,
            t: 19,
            hq: 4,
            hk: 2,
            d: 5,
        };
        for causal in [true, false] {
            let p = Pattern {
                window: 2,
                block: 3,
                landmarks: true,
                globals: vec![0],
                log_stride: true,
                causal,
            };
            let (q, k, v, w) = (
                lcg(s.q_len(), 4),
                lcg(s.kv_len(), 5),
                lcg(s.kv_len(), 6),
                lcg(s.q_len(), 7),
            );
            let mut out = vec![0.0; s.q_len()];
            let mut lse = vec![0.0; s.b * s.t * s.hq];
            forward(&q, &k, &v, s, &p, 0.3, &mut out, &mut lse).unwrap();
            let (mut dq, mut dk, mut dv) = (
                vec![0.0; s.q_len()],
                vec![0.0; s.kv_len()],
                vec![0.0; s.kv_len()],
            );
            backward(
                &q, &k, &v, &out, &lse, &w, s, &p, 0.3, &mut dq, &mut dk, &mut dv,
            )
            .unwrap();
            let eps = 1e-6;
            for which in 0..3 {
                let (base, grad) = match which {
                    0 => (&q, &dq),
                    1 => (&k, &dk),
                    _ => (&v, &dv),
                };
                for idx in (0..base.len()).step_by(7) {
                    let mut plus = base.clone();
                    let mut minus = base.clone();
                    plus[idx] += eps;
                    minus[idx] -= eps;
                    let f = |x: &Vec<f64>| match which {
                        0 => loss(x, &k, &v, &w, s, &p),
                        1 => loss(&q, x, &v, &w, s, &p),
                        _ => loss(&q, &k, x, &w, s, &p),
                    };
                    let num = (f(&plus) - f(&minus)) / (2.0 * eps);
                    assert!(
                        (num - grad[idx]).abs() < 1e-7,
                        "tensor {which} index {idx}: {num} vs {}",
                        grad[idx]
                    );
                }
            }
        }
    }
}
