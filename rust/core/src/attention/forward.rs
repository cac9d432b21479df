//! Forward pass: softmax over each query's sparse key set, saving the
//! log-sum-exp so the backward pass can recompute probabilities.

use super::pattern::{Key, KeySet, Pattern, Shape, block_means};
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
    pub v: &'a [F],
    pub kbar: Vec<F>,
    pub vbar: Vec<F>,
    pub shape: Shape,
    pub nb: usize,
}

impl<F: Real> Inputs<'_, F> {
    /// Key (`value == false`) or value vector of `key` for kv head `h` in batch `b`.
    #[inline]
    pub fn vec(&self, value: bool, b: usize, h: usize, key: Key) -> &[F] {
        let s = self.shape;
        let (x, o) = match (key, value) {
            (Key::Token(j), false) => (self.k, ((b * s.t + j) * s.hk + h) * s.d),
            (Key::Token(j), true) => (self.v, ((b * s.t + j) * s.hk + h) * s.d),
            (Key::Block(m), false) => (&self.kbar[..], ((b * self.nb + m) * s.hk + h) * s.d),
            (Key::Block(m), true) => (&self.vbar[..], ((b * self.nb + m) * s.hk + h) * s.d),
        };
        &x[o..o + s.d]
    }

    /// (key, value) pairs of `ks` in [`KeySet::iter`] order.
    pub fn pairs<'s>(
        &'s self,
        b: usize,
        h: usize,
        ks: &'s KeySet,
    ) -> impl Iterator<Item = (&'s [F], &'s [F])> + Clone + 's {
        ks.iter()
            .map(move |key| (self.vec(false, b, h, key), self.vec(true, b, h, key)))
    }
}

/// Scaled scores of `qi` against every key of `keys` into `sc`.
pub(crate) fn scores<'a, F: Real + 'a>(
    qi: &[F],
    scale: F,
    keys: impl Iterator<Item = (&'a [F], &'a [F])>,
    sc: &mut Vec<F>,
) {
    sc.clear();
    sc.extend(keys.map(|(k, _)| scale * dot(qi, k)));
}

/// One query row: `out` = softmax-weighted sum of the values of `keys`
/// (running max subtracted first, so no exp overflows); returns the
/// log-sum-exp. Forward and stream both call this, so a streamed row is the
/// full pass's row operation for operation.
pub(crate) fn attend_row<'a, F: Real + 'a>(
    qi: &[F],
    scale: F,
    keys: impl Iterator<Item = (&'a [F], &'a [F])> + Clone,
    sc: &mut Vec<F>,
    out: &mut [F],
) -> F {
    scores(qi, scale, keys.clone(), sc);
    let m = sc.iter().fold(F::NEG_INF, |m, &x| m.max(x));
    let mut sum = F::ZERO;
    out.fill(F::ZERO);
    for (s, (_, v)) in sc.iter().zip(keys) {
        let p = (*s - m).exp();
        sum += p;
        axpy(p, v, out);
    }
    for x in out.iter_mut() {
        *x = *x / sum;
    }
    m + sum.ln()
}

pub(crate) fn inputs<'a, F: Real>(
    q: &'a [F],
    k: &'a [F],
    v: &'a [F],
    shape: Shape,
    pattern: &Pattern,
) -> Result<Inputs<'a, F>> {
    shape.validate()?;
    pattern.validate()?;
    check_len("q", q, shape.q_len())?;
    check_len("k", k, shape.kv_len())?;
    check_len("v", v, shape.kv_len())?;
    let (kbar, vbar) = block_means(k, v, shape, pattern);
    Ok(Inputs {
        k,
        v,
        kbar,
        vbar,
        shape,
        nb: pattern.n_blocks(shape.t),
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
    let inp = inputs(q, k, v, shape, pattern)?;
    check_len("out", out, shape.q_len())?;
    check_len("lse", lse, shape.b * shape.t * shape.hq)?;
    let (t, hq, d) = (shape.t, shape.hq, shape.d);
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
                let qo = (row * hq + h) * d;
                let pairs = inp.pairs(b, h / group, &ks);
                lse_part.push(attend_row(&q[qo..qo + d], scale, pairs, &mut sc, oh));
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

    use super::super::test_values as lcg;

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
        for (causal, horizon) in [
            (true, None),
            (false, None),
            (true, Some(6)),
            (false, Some(9)),
        ] {
            let p = Pattern {
                window: 3,
                block: 4,
                landmarks: true,
                globals: vec![0, 5],
                log_stride: true,
                causal,
                horizon,
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
            horizon: None,
        };
        let mut out = vec![0.0f32; s.q_len()];
        let mut lse = vec![0.0f32; 8];
        let short = vec![0.0f32; 3];
        let q = vec![0.0f32; s.q_len()];
        assert!(forward(&q, &short, &short, s, &p, 1.0, &mut out, &mut lse).is_err());
    }
}
