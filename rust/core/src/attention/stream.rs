//! Streaming: one frame at a time from a KV cache, equal to row t of the
//! causal full pass (the same key order and the same row arithmetic,
//! `forward::attend_row`, and block means summed in the same order).
//!
//! The cache holds, per stream of the batch and kv head:
//! - real tokens: a ring of `horizon + 1` slots when the pattern has a
//!   horizon; without one it grows with t, because a log-stride link makes
//!   every past token some future query's key (i - 2^m);
//! - global tokens, kept once they arrive (they never leave the pattern);
//! - landmark block means: a ring of the blocks inside the horizon (or all of
//!   them), and the running sum of the block in progress.

use super::forward::{attend_row, check_len};
use super::pattern::{Key, KeySet, Pattern};
use super::real::{Real, axpy};
use crate::{Error, Result, threads};

/// (batch, query head) rows per task.
const ROWS_PER_TASK: usize = 16;

/// Where a key's vectors live in the cache.
#[derive(Debug, Clone, Copy)]
enum Loc {
    Token(usize),
    Global(usize),
    Block(usize),
}

/// Streaming state of `b` independent sequences, q [B, Hq, D], k, v [B, Hk, D].
#[derive(Debug, Clone)]
pub struct Stream<F> {
    pattern: Pattern,
    b: usize,
    hq: usize,
    hk: usize,
    d: usize,
    scale: F,
    t: usize,
    /// Token slots when bounded (horizon + 1), block slots likewise.
    token_slots: Option<usize>,
    block_slots: Option<usize>,
    /// [slot, B, Hk, D].
    k: Vec<F>,
    v: Vec<F>,
    /// Global tokens seen so far: positions and [n, B, Hk, D].
    global_pos: Vec<usize>,
    gk: Vec<F>,
    gv: Vec<F>,
    /// Landmark means [slot, B, Hk, D] and the block in progress, already / s.
    kbar: Vec<F>,
    vbar: Vec<F>,
    ksum: Vec<F>,
    vsum: Vec<F>,
    blocks: usize,
    ks: KeySet,
    locs: Vec<Loc>,
}

/// Write `x` into slot `slot` of `buf` (rows of `x.len()`), growing by one row
/// when the slot is the next new one.
fn put<F: Real>(buf: &mut Vec<F>, slot: usize, x: &[F]) -> Result<()> {
    let r = x.len();
    let at = slot * r;
    if buf.len() == at {
        buf.extend_from_slice(x);
    } else if let Some(dst) = buf.get_mut(at..at + r) {
        dst.copy_from_slice(x);
    } else {
        return Err(Error::Value(format!(
            "stream cache slot {slot} is out of order"
        )));
    }
    Ok(())
}

impl<F: Real> Stream<F> {
    /// A fresh state (t = 0). The pattern must be causal.
    pub fn new(
        pattern: Pattern,
        b: usize,
        hq: usize,
        hk: usize,
        d: usize,
        scale: F,
    ) -> Result<Self> {
        pattern.validate()?;
        if !pattern.causal {
            return Err(Error::Value("streaming needs a causal pattern".into()));
        }
        let shape = super::Shape { b, t: 1, hq, hk, d };
        shape.validate()?;
        let token_slots = pattern.horizon.map(|h| h.saturating_add(1));
        let block_slots = match (pattern.horizon, pattern.landmarks) {
            // Blocks m with m s >= i - h and (m + 1) s <= i + 1: at most (h + 1) / s + 1.
            (Some(h), true) => Some(h.saturating_add(1) / pattern.block.max(1) + 2),
            _ => None,
        };
        Ok(Self {
            pattern,
            b,
            hq,
            hk,
            d,
            scale,
            t: 0,
            token_slots,
            block_slots,
            k: Vec::new(),
            v: Vec::new(),
            global_pos: Vec::new(),
            gk: Vec::new(),
            gv: Vec::new(),
            kbar: Vec::new(),
            vbar: Vec::new(),
            // Sized at the first step, once k proves the row fits in memory.
            ksum: Vec::new(),
            vsum: Vec::new(),
            blocks: 0,
            ks: KeySet::default(),
            locs: Vec::new(),
        })
    }

    /// (B, Hq, Hk, D).
    pub fn dims(&self) -> (usize, usize, usize, usize) {
        (self.b, self.hq, self.hk, self.d)
    }

    /// Frames appended so far.
    pub fn len(&self) -> usize {
        self.t
    }

    /// True before the first step.
    pub fn is_empty(&self) -> bool {
        self.t == 0
    }

    /// Cached (token rows, global token rows, block-mean rows), each row
    /// [B, Hk, D] for keys and again for values.
    pub fn cache_rows(&self) -> (usize, usize, usize) {
        let row = (self.b * self.hk * self.d).max(1);
        (
            self.k.len() / row,
            self.gk.len() / row,
            self.kbar.len() / row,
        )
    }

    fn token_slot(&self, j: usize) -> usize {
        self.token_slots.map_or(j, |c| j % c)
    }

    fn block_slot(&self, m: usize) -> usize {
        self.block_slots.map_or(m, |c| m % c)
    }

    /// Append frame t's k, v [B, Hk, D] and write the attention output of its
    /// q [B, Hq, D] into `out` [B, Hq, D].
    pub fn step(&mut self, q: &[F], k: &[F], v: &[F], out: &mut [F]) -> Result<()> {
        let row = self.b * self.hk * self.d;
        check_len("q", q, self.b * self.hq * self.d)?;
        check_len("k", k, row)?;
        check_len("v", v, row)?;
        check_len("out", out, self.b * self.hq * self.d)?;
        let i = self.t;
        let slot = self.token_slot(i);
        put(&mut self.k, slot, k)?;
        put(&mut self.v, slot, v)?;
        if self.pattern.globals.contains(&i) && !self.global_pos.contains(&i) {
            self.global_pos.push(i);
            self.gk.extend_from_slice(k);
            self.gv.extend_from_slice(v);
        }
        if self.pattern.landmarks {
            self.ksum.resize(row, F::ZERO);
            self.vsum.resize(row, F::ZERO);
            let s = self.pattern.block;
            let inv = F::from_f64(1.0 / s as f64);
            axpy(inv, k, &mut self.ksum);
            axpy(inv, v, &mut self.vsum);
            if (i + 1).is_multiple_of(s) {
                let bs = self.block_slot(self.blocks);
                put(&mut self.kbar, bs, &self.ksum)?;
                put(&mut self.vbar, bs, &self.vsum)?;
                self.ksum.fill(F::ZERO);
                self.vsum.fill(F::ZERO);
                self.blocks += 1;
            }
        }
        self.t += 1;
        // Causal keys of query i do not depend on the sequence length.
        self.pattern.keys(i, i + 1, &mut self.ks);
        self.locs.clear();
        for key in self.ks.iter() {
            let loc = match key {
                Key::Token(j) if self.token_slots.is_none_or(|c| i - j < c) => {
                    Loc::Token(self.token_slot(j))
                }
                Key::Token(j) => match self.global_pos.iter().position(|&g| g == j) {
                    Some(n) => Loc::Global(n),
                    None => {
                        return Err(Error::Value(format!(
                            "stream key {j} of query {i} left the cache"
                        )));
                    }
                },
                Key::Block(m) => Loc::Block(self.block_slot(m)),
            };
            self.locs.push(loc);
        }
        let this = &*self;
        let (hq, hk, d) = (this.hq, this.hk, this.d);
        let group = hq / hk;
        threads::map_chunks_out(this.b * hq, ROWS_PER_TASK, d, out, |range, o| {
            let mut sc = Vec::new();
            for (r, oh) in range.zip(o.chunks_exact_mut(d)) {
                let (b, h) = (r / hq, r % hq);
                let off = (b * hk + h / group) * d;
                let pairs = this.locs.iter().map(move |&loc| {
                    let (kb, vb, s) = match loc {
                        Loc::Token(s) => (&this.k, &this.v, s),
                        Loc::Global(s) => (&this.gk, &this.gv, s),
                        Loc::Block(s) => (&this.kbar, &this.vbar, s),
                    };
                    let o = s * row + off;
                    (&kb[o..o + d], &vb[o..o + d])
                });
                attend_row(&q[r * d..(r + 1) * d], this.scale, pairs, &mut sc, oh);
            }
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Shape, forward};
    use super::*;

    fn lcg(n: usize, seed: u64) -> Vec<f32> {
        super::super::test_values(n, seed)
            .into_iter()
            .map(|x| x as f32)
            .collect()
    }

    /// [B, T, H, D] -> the [B, H, D] slice of frame t.
    fn frame(x: &[f32], b: usize, t: usize, h: usize, d: usize, i: usize) -> Vec<f32> {
        (0..b)
            .flat_map(|bb| {
                let o = ((bb * t + i) * h) * d;
                x[o..o + h * d].to_vec()
            })
            .collect()
    }

    #[test]
    fn stream_equals_the_full_causal_pass_and_stays_bounded() {
        let s = Shape {
            b: 2,
            t: 150,
            hq: 4,
            hk: 2,
            d: 8,
        };
        for horizon in [None, Some(40), Some(3)] {
            let p = Pattern {
                window: 5,
                block: 4,
                landmarks: true,
                globals: vec![0, 7],
                log_stride: true,
                causal: true,
                horizon,
            };
            let (q, k, v) = (lcg(s.q_len(), 1), lcg(s.kv_len(), 2), lcg(s.kv_len(), 3));
            let mut full = vec![0.0; s.q_len()];
            let mut lse = vec![0.0; s.b * s.t * s.hq];
            forward(&q, &k, &v, s, &p, 0.35, &mut full, &mut lse).unwrap();
            let mut st = Stream::new(p.clone(), s.b, s.hq, s.hk, s.d, 0.35f32).unwrap();
            let mut o = vec![0.0; s.b * s.hq * s.d];
            for i in 0..s.t {
                st.step(
                    &frame(&q, s.b, s.t, s.hq, s.d, i),
                    &frame(&k, s.b, s.t, s.hk, s.d, i),
                    &frame(&v, s.b, s.t, s.hk, s.d, i),
                    &mut o,
                )
                .unwrap();
                // Same keys, same order, same arithmetic: bit-identical.
                assert_eq!(o, frame(&full, s.b, s.t, s.hq, s.d, i), "t {i} {horizon:?}");
            }
            let (tok, glob, blk) = st.cache_rows();
            match horizon {
                Some(h) => {
                    assert_eq!(tok, h + 1);
                    assert!(blk <= (h + 1) / 4 + 2, "{blk}");
                }
                None => assert_eq!((tok, blk), (150, 150 / 4)),
            }
            assert_eq!(glob, 2);
        }
    }

    #[test]
    fn bad_lengths_and_bidirectional_patterns_are_errors() {
        let p = Pattern {
            window: 2,
            block: 2,
            landmarks: true,
            globals: vec![],
            log_stride: true,
            causal: false,
            horizon: None,
        };
        assert!(Stream::<f32>::new(p.clone(), 1, 2, 1, 4, 1.0).is_err());
        let mut st = Stream::<f32>::new(Pattern { causal: true, ..p }, 1, 2, 1, 4, 1.0).unwrap();
        let mut o = vec![0.0; 8];
        assert!(st.step(&[0.0; 8], &[0.0; 3], &[0.0; 4], &mut o).is_err());
        assert!(st.is_empty());
    }
}
