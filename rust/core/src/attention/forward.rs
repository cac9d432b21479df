//! Forward pass: softmax over each query's sparse key set, saving the
//! log-sum-exp so the backward pass can recompute probabilities.

use super::pattern::{KeySet, Pattern, Shape, block_means};
use super::real::{Real, axpy, dot};
use crate::{Error, Result, threads};

/// Query rows (one row = one (batch, position) with all its heads) per task.
const ROWS_PER_TASK: usize = 32;

pub(crate) fn check_len<F>(name: &str, x: &[F], want: usize) -> Result<()> {
    if x.len() != want {
        return Err(Error::Shape(format!(
            "{name} holds {} values, expected {want}",
            x.len()
        )));
    }
    Ok(())
}

/// Read-only inputs shared by the forward and backward passes.
pub(crate) struct Inputs<'a, F> {
    pub k: &'a [F],
    pub kbar: Vec<F>,
    pub vbar: Vec<F>,
    pub shape: Shape,
    pub scale: F,
}

impl<F: Real> Inputs<'_, F> {
    /// Key (or value) vector of token j of kv head `h` in batch `b`.
    #[inline]
    pub fn kv<'s>(&self, x: &'s [F], b: usize, j: usize, h: usize) -> &'s [F] {
        let s = self.shape;
        let o = ((b * s.t + j) * s.hk + h) * s.d;
        &x[o..o + s.d]
    }

    /// Landmark mean key (or value) of block `blk`.
    #[inline]
    pub fn bar<'s>(&self, x: &'s [F], b: usize, blk: usize, h: usize, nb: usize) -> &'s [F] {
        let s = self.shape;
        let o = ((b * nb + blk) * s.hk + h) * s.d;
        &x[o..o + s.d]
    }

    /// Scaled scores of query `qi` against every key of `ks`, in the order
    /// window, extra, landmarks.
    pub fn scores(&self, qi: &[F], b: usize, h: usize, nb: usize, ks: &KeySet, out: &mut Vec<F>) {
        out.clear();
        for j in ks.window.clone().chain(ks.extra.iter().copied()) {
            out.push(self.scale * dot(qi, self.kv(self.k, b, j, h)));
        }
        for &l in &ks.landmarks {
            out.push(self.scale * dot(qi, self.bar(&self.kbar, b, l, h, nb)));
        }
    }
}

pub(crate) fn inputs<'a, F: Real>(
    q: &'a [F],
    k: &'a [F],
    v: &'a [F],
    shape: Shape,
    pattern: &Pattern,
    scale: F,
) -> Result<Inputs<'a, F>> {
    shape.validate()?;
    pattern.validate()?;
    check_len("q", q, shape.q_len())?;
    check_len("k", k, shape.kv_len())?;
    check_len("v", v, shape.kv_len())?;
    let (kbar, vbar) = block_means(k, v, shape, pattern);
    Ok(Inputs {
        k,
        kbar,
        vbar,
        shape,
        scale,
    })
}

/// out[b, i, h] = sum_j softmax_j(scale q[b, i, h] . key_j) value_j over the
/// keys `pattern` gives query i, with key/value head h / (Hq / Hk).
///
/// q and out are [B, T, Hq, D]; k and v are [B, T, Hk, D]; lse is
/// [B, T, Hq], the log-sum-exp of each query's scaled scores.
#[allow(clippy::too_many_arguments)]
pub fn forward<F: Real>(
    q: &[F],
    k: &[F],
    v: &[F],
    shape: Shape,
    pattern: &Pattern,
    scale: F,
    out: &mut [F],
    lse: &mut [F],
) -> Result<()> {
    let inp = inputs(q, k, v, shape, pattern, scale)?;
    check_len("out", out, shape.q_len())?;
    check_len("lse", lse, shape.b * shape.t * shape.hq)?;
    let (t, hq, d) = (shape.t, shape.hq, shape.d);
    let nb = pattern.n_blocks(t);
    let group = shape.group();
    let rows = shape.b * t;
    let parts = threads::map_chunks_out(rows, ROWS_PER_TASK, hq * d, out, |range, o| {
        let mut ks = KeySet::default();
        let mut sc = Vec::new();
        let mut lse_part = Vec::with_capacity(range.len() * hq);
        for (row, orow) in range.zip(o.chunks_exact_mut(hq * d)) {
            let (b, i) = (row / t, row % t);
            pattern.keys(i, t, &mut ks);
            for (h, oh) in orow.chunks_exact_mut(d).enumerate() {
                let kh = h / group;
                let qo = (row * hq + h) * d;
                let qi = &q[qo..qo + d];
                inp.scores(qi, b, kh, nb, &ks, &mut sc);
                let m = sc.iter().fold(F::NEG_INF, |m, &x| m.max(x));
                let mut sum = F::ZERO;
                oh.fill(F::ZERO);
                let reals = ks.window.clone().chain(ks.extra.iter().copied());
                for (s, j) in sc.iter().zip(reals) {
                    let p = (*s - m).exp();
                    sum += p;
                    axpy(p, inp.kv(v, b, j, kh), oh);
                }
                let n_real = ks.window.len() + ks.extra.len();
                for (s, &l) in sc.iter().skip(n_real).zip(&ks.landmarks) {
                    let p = (*s - m).exp();
                    sum += p;
                    axpy(p, inp.bar(&inp.vbar, b, l, kh, nb), oh);
                }
                for x in oh.iter_mut() {
                    *x = *x / sum;
                }
                lse_part.push(m + sum.ln());
            }
        }
        lse_part
    })?;
    for (dst, src) in lse.iter_mut().zip(parts.into_iter().flatten()) {
        *dst = src;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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

    /// Plain softmax over an explicit key list, for one (b, i, h).
    #[allow(clippy::too_many_arguments)]
    fn naive(
        q: &[f64],
        k: &[f64],
        v: &[f64],
        s: Shape,
        p: &Pattern,
        b: usize,
        i: usize,
        h: usize,
    ) -> Vec<f64> {
        let mut ks = KeySet::default();
        p.keys(i, s.t, &mut ks);
        let kh = h / s.group();
        let d = s.d;
        let at = |x: &[f64], j: usize| {
            let o = ((b * s.t + j) * s.hk + kh) * d;
            x[o..o + d].to_vec()
        };
        let mean = |x: &[f64], m: usize| {
            let mut acc = vec![0.0; d];
            for j in m * p.block..(m + 1) * p.block {
                for (a, y) in acc.iter_mut().zip(at(x, j)) {
                    *a += y / p.block as f64;
                }
            }
            acc
        };
        let mut keys: Vec<(Vec<f64>, Vec<f64>)> = ks
            .window
            .clone()
            .chain(ks.extra.iter().copied())
            .map(|j| (at(k, j), at(v, j)))
            .collect();
        keys.extend(ks.landmarks.iter().map(|&m| (mean(k, m), mean(v, m))));
        let qo = ((b * s.t + i) * s.hq + h) * d;
        let qi = &q[qo..qo + d];
        let sc: Vec<f64> = keys
            .iter()
            .map(|(kk, _)| qi.iter().zip(kk).map(|(a, b)| a * b).sum::<f64>() / (d as f64).sqrt())
            .collect();
        let z: f64 = sc.iter().map(|x| x.exp()).sum();
        let mut o = vec![0.0; d];
        for (x, (_, vv)) in sc.iter().zip(&keys) {
            for (a, y) in o.iter_mut().zip(vv) {
                *a += x.exp() / z * y;
            }
        }
        o
    }

    #[test]
    fn forward_matches_naive_softmax() {
        let s = Shape {
            b: 2,
            t: 37,
            hq: 4,
            hk: 2,
            d: 11,
        };
        for causal in [true, false] {
            let p = Pattern {
                window: 3,
                block: 4,
                landmarks: true,
                globals: vec![0, 5],
                log_stride: true,
                causal,
            };
            let (q, k, v) = (lcg(s.q_len(), 1), lcg(s.kv_len(), 2), lcg(s.kv_len(), 3));
            let mut out = vec![0.0; s.q_len()];
            let mut lse = vec![0.0; s.b * s.t * s.hq];
            forward(
                &q,
                &k,
                &v,
                s,
                &p,
                1.0 / (s.d as f64).sqrt(),
                &mut out,
                &mut lse,
            )
            .unwrap();
            for b in 0..s.b {
                for i in 0..s.t {
                    for h in 0..s.hq {
                        let o = ((b * s.t + i) * s.hq + h) * s.d;
                        let want = naive(&q, &k, &v, s, &p, b, i, h);
                        for (x, y) in out[o..o + s.d].iter().zip(&want) {
                            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn wrong_lengths_are_errors_not_panics() {
        let s = Shape {
            b: 1,
            t: 4,
            hq: 2,
            hk: 1,
            d: 3,
        };
        let p = Pattern {
            window: 1,
            block: 2,
            landmarks: true,
            globals: vec![],
            log_stride: false,
            causal: true,
        };
        let mut out = vec![0.0f32; s.q_len()];
        let mut lse = vec![0.0f32; 8];
        let short = vec![0.0f32; 3];
        let q = vec![0.0f32; s.q_len()];
        assert!(forward(&q, &short, &short, s, &p, 1.0, &mut out, &mut lse).is_err());
    }
}
