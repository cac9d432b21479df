//! Backward pass (FlashAttention style): probabilities are recomputed from the
//! saved log-sum-exp, so nothing of size T x keys is kept between passes.
//!
//! One task owns one (batch, kv head, block of queries): it writes its
//! queries' dq directly and accumulates dk, dv (and the landmark gradients)
//! of the keys it touches in its own partial buffer. Partials are added into
//! the (batch, kv head) totals in task order, after each wave of query blocks,
//! so the sums never depend on the thread count and memory stays bounded by
//! the wave, not by T x keys.

use std::cell::RefCell;

use super::forward::{check_len, inputs, scores};
use super::pattern::{Key, KeySet, Pattern, Shape};
use super::real::{Real, axpy, dot};
use crate::{Result, threads};

/// Queries per task.
const QUERIES_PER_TASK: usize = 64;
/// Query blocks per (batch, kv head) whose partials live at once.
const BLOCKS_PER_WAVE: usize = 16;

thread_local! {
    /// Key index -> row of the current task's partial (usize::MAX: none yet).
    /// Kept per thread and reset after each task, so a task costs what it
    /// touches, not T.
    static SLOTS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// What one task computed: dq of its queries [n, G, D] and the dk, dv
/// contributions to the keys it touched (token j is index j, block m is t + m).
struct Part<F> {
    dq: Vec<F>,
    keys: Vec<usize>,
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
    let inp = inputs(q, k, v, shape, pattern)?;
    check_len("out", out, shape.q_len())?;
    check_len("dout", dout, shape.q_len())?;
    check_len("lse", lse, shape.b * shape.t * shape.hq)?;
    check_len("dq", dq, shape.q_len())?;
    check_len("dk", dk, shape.kv_len())?;
    check_len("dv", dv, shape.kv_len())?;
    let (t, hq, hk, d) = (shape.t, shape.hq, shape.hk, shape.d);
    let group = shape.group();
    let nb = inp.nb;
    let n_keys = t + nb;
    let heads = shape.b * hk;
    let nqb = t.div_ceil(QUERIES_PER_TASK);
    // Per (batch, kv head): dk then dv over tokens and blocks.
    let width = 2 * n_keys * d;
    let mut acc = vec![F::ZERO; heads * width];

    // One task: (batch, kv head) `bh`, query block `qb`.
    let task = |bh: usize, qb: usize| -> Part<F> {
        let (b, kh) = (bh / hk, bh % hk);
        let (q0, q1) = (qb * QUERIES_PER_TASK, t.min((qb + 1) * QUERIES_PER_TASK));
        let mut p = Part {
            dq: vec![F::ZERO; (q1 - q0) * group * d],
            keys: Vec::new(),
            dk: Vec::new(),
            dv: Vec::new(),
        };
        let mut ks = KeySet::default();
        let mut sc = Vec::new();
        SLOTS.with_borrow_mut(|slots| {
            if slots.len() < n_keys {
                slots.resize(n_keys, usize::MAX);
            }
            for i in q0..q1 {
                pattern.keys(i, t, &mut ks);
                for g in 0..group {
                    let h = kh * group + g;
                    let qo = ((b * t + i) * hq + h) * d;
                    let (qi, oi, doi) = (&q[qo..qo + d], &out[qo..qo + d], &dout[qo..qo + d]);
                    let l = lse[(b * t + i) * hq + h];
                    let delta = dot(doi, oi);
                    scores(qi, scale, inp.pairs(b, kh, &ks), &mut sc);
                    let dqo = ((i - q0) * group + g) * d;
                    let dqi = &mut p.dq[dqo..dqo + d];
                    for (&s, key) in sc.iter().zip(ks.iter()) {
                        let pr = (s - l).exp();
                        let ds = pr * (dot(doi, inp.vec(true, b, kh, key)) - delta);
                        axpy(scale * ds, inp.vec(false, b, kh, key), dqi);
                        let idx = match key {
                            Key::Token(j) => j,
                            Key::Block(m) => t + m,
                        };
                        let mut row = slots[idx];
                        if row == usize::MAX {
                            row = p.keys.len();
                            slots[idx] = row;
                            p.keys.push(idx);
                            p.dk.resize(p.dk.len() + d, F::ZERO);
                            p.dv.resize(p.dv.len() + d, F::ZERO);
                        }
                        axpy(scale * ds, qi, &mut p.dk[row * d..(row + 1) * d]);
                        axpy(pr, doi, &mut p.dv[row * d..(row + 1) * d]);
                    }
                }
            }
            for &idx in &p.keys {
                slots[idx] = usize::MAX;
            }
        });
        p
    };

    for wave in (0..nqb).step_by(BLOCKS_PER_WAVE) {
        let wlen = BLOCKS_PER_WAVE.min(nqb - wave);
        let parts = threads::map_chunks(heads * wlen, 1, |r| {
            r.map(|n| task(n / wlen, wave + n % wlen))
                .collect::<Vec<_>>()
        })?;
        let parts: Vec<Part<F>> = parts.into_iter().flatten().collect();
        // Reduce in query-block order, one (batch, kv head) per task.
        threads::map_chunks_out(heads, 1, width, &mut acc, |r, a| {
            for (bh, a) in r.zip(a.chunks_exact_mut(width)) {
                let (adk, adv) = a.split_at_mut(n_keys * d);
                for p in &parts[bh * wlen..(bh + 1) * wlen] {
                    for (n, &idx) in p.keys.iter().enumerate() {
                        let src = n * d..(n + 1) * d;
                        let dst = idx * d..(idx + 1) * d;
                        axpy(F::from_f64(1.0), &p.dk[src.clone()], &mut adk[dst.clone()]);
                        axpy(F::from_f64(1.0), &p.dv[src], &mut adv[dst]);
                    }
                }
            }
        })?;
        for (n, p) in parts.iter().enumerate() {
            let (bh, qb) = (n / wlen, wave + n % wlen);
            let (b, kh) = (bh / hk, bh % hk);
            let q0 = qb * QUERIES_PER_TASK;
            for (r, src) in p.dq.chunks_exact(group * d).enumerate() {
                let qo = ((b * t + q0 + r) * hq + kh * group) * d;
                dq[qo..qo + group * d].copy_from_slice(src);
            }
        }
    }

    // A block mean's gradient reaches each of its tokens divided by s.
    let inv = F::from_f64(1.0 / pattern.block.max(1) as f64);
    for (bh, a) in acc.chunks_exact_mut(width).enumerate() {
        let (b, kh) = (bh / hk, bh % hk);
        let (adk, adv) = a.split_at_mut(n_keys * d);
        for m in 0..nb {
            for j in m * pattern.block..(m + 1) * pattern.block {
                // Tokens precede blocks in each buffer: [tokens | blocks].
                let (tokens, blocks) = adk.split_at_mut((t + m) * d);
                axpy(inv, &blocks[..d], &mut tokens[j * d..(j + 1) * d]);
                let (tokens, blocks) = adv.split_at_mut((t + m) * d);
                axpy(inv, &blocks[..d], &mut tokens[j * d..(j + 1) * d]);
            }
        }
        for i in 0..t {
            let ko = ((b * t + i) * hk + kh) * d;
            dk[ko..ko + d].copy_from_slice(&adk[i * d..(i + 1) * d]);
            dv[ko..ko + d].copy_from_slice(&adv[i * d..(i + 1) * d]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::forward;
    use super::*;

    use super::super::test_values as lcg;

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
        for (causal, horizon) in [
            (true, None),
            (false, None),
            (true, Some(5)),
            (false, Some(4)),
        ] {
            let p = Pattern {
                window: 2,
                block: 3,
                landmarks: true,
                globals: vec![0],
                log_stride: true,
                causal,
                horizon,
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
