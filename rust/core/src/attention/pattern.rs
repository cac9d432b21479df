//! Which keys each query attends to: the index lists the kernels walk.
//!
//! For query i of a sequence of T tokens (w = window, s = block size):
//! - window: real tokens j with i - w <= j <= i (causal) or |i - j| <= w;
//! - global tokens: each listed g < T (causal: only g <= i);
//! - log-stride: j = i - 2^m for m >= 0 (bidirectional also i + 2^m), j in 0..T;
//! - landmarks: the mean key/value of complete blocks [b s, (b + 1) s) that lie
//!   entirely before the window (last token < i - w): the newest such block P
//!   and P - 1, P - 2, P - 4, ...; bidirectionally also the first complete
//!   block Q entirely after the window (first token > i + w) and Q + 1, Q + 2,
//!   Q + 4, ... A trailing partial block never becomes a landmark.
//!
//! - horizon (optional) h: no real token farther than h steps away (window and
//!   log-stride alike; global tokens stay) and no landmark block with a token
//!   farther than h away. It bounds a stream's cache to h + 1 tokens, the
//!   global tokens and the block means inside the horizon.
//!
//! Real keys are deduplicated (a log-stride link inside the window counts
//! once). The query itself is always in its window, so no softmax is empty.
//! [`KeySet::iter`] is the one order every kernel (forward, backward, stream)
//! walks the keys in.

use std::ops::Range;

use crate::{Error, Result};

/// The sparse pattern (mirrors `csipose.nn.SparsePattern`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// Local window w (keys i - w ..= i, or ..= i + w bidirectionally).
    pub window: usize,
    /// Landmark block size s (ignored when `landmarks` is false).
    pub block: usize,
    /// Attend to landmark block means.
    pub landmarks: bool,
    /// Global token positions every query attends to.
    pub globals: Vec<usize>,
    /// Attend to i -/+ 2^m.
    pub log_stride: bool,
    /// Only earlier tokens (and the query itself).
    pub causal: bool,
    /// No key (except global tokens) farther than this many steps away.
    pub horizon: Option<usize>,
}

/// Sizes of q [B, T, Hq, D] and k, v [B, T, Hk, D].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Batch size.
    pub b: usize,
    /// Sequence length.
    pub t: usize,
    /// Query heads (a multiple of `hk`).
    pub hq: usize,
    /// Key/value heads.
    pub hk: usize,
    /// Head dimension.
    pub d: usize,
}

impl Shape {
    /// Check the head counts and that every buffer size fits in memory.
    pub fn validate(&self) -> Result<()> {
        if self.hk == 0 || self.hq == 0 || self.d == 0 {
            return Err(Error::Shape(format!(
                "heads and head dim must be positive, got q heads {}, kv heads {}, dim {}",
                self.hq, self.hk, self.d
            )));
        }
        if !self.hq.is_multiple_of(self.hk) {
            return Err(Error::Shape(format!(
                "q heads ({}) must be a multiple of kv heads ({})",
                self.hq, self.hk
            )));
        }
        self.b
            .checked_mul(self.t)
            .and_then(|n| n.checked_mul(self.hq.max(self.hk)))
            .and_then(|n| n.checked_mul(self.d))
            .ok_or_else(|| Error::Shape("attention tensors are too large".into()))?;
        Ok(())
    }

    /// Values in q (and the output).
    pub fn q_len(&self) -> usize {
        self.b * self.t * self.hq * self.d
    }

    /// Values in k or v.
    pub fn kv_len(&self) -> usize {
        self.b * self.t * self.hk * self.d
    }

    /// Query heads per kv head.
    pub fn group(&self) -> usize {
        self.hq / self.hk
    }
}

/// One key of a query: a real token or the mean of a landmark block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Real token j.
    Token(usize),
    /// Mean key/value of block m (tokens m s .. (m + 1) s).
    Block(usize),
}

/// The keys of one query: a contiguous window, extra real tokens outside it,
/// and landmark block indices.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    /// Local window of real tokens.
    pub window: Range<usize>,
    /// Global and log-stride tokens outside the window, sorted, unique.
    pub extra: Vec<usize>,
    /// Landmark blocks, unique.
    pub landmarks: Vec<usize>,
}

impl KeySet {
    /// Number of keys (real and landmark).
    pub fn len(&self) -> usize {
        self.window.len() + self.extra.len() + self.landmarks.len()
    }

    /// True when there are no keys (never, for a query inside the sequence).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Real tokens (window, then extra), then landmark blocks: the order
    /// scores, probabilities and gradients are indexed in.
    pub fn iter(&self) -> impl Iterator<Item = Key> + Clone + '_ {
        self.window
            .clone()
            .chain(self.extra.iter().copied())
            .map(Key::Token)
            .chain(self.landmarks.iter().copied().map(Key::Block))
    }
}

impl Pattern {
    /// Check the pattern's own settings.
    pub fn validate(&self) -> Result<()> {
        if self.landmarks && self.block == 0 {
            return Err(Error::Value(
                "block size must be positive when landmarks are on".into(),
            ));
        }
        Ok(())
    }

    /// Complete landmark blocks in a sequence of `t` tokens.
    pub fn n_blocks(&self, t: usize) -> usize {
        if self.landmarks && self.block > 0 {
            t / self.block
        } else {
            0
        }
    }

    /// Fill `ks` with the keys of query `i` in a sequence of `t` tokens.
    pub fn keys(&self, i: usize, t: usize, ks: &mut KeySet) {
        let h = self.horizon.unwrap_or(usize::MAX);
        // The window never reaches past the horizon.
        let w = self.window.min(h);
        let lo = i.saturating_sub(w);
        let hi = if self.causal {
            i + 1
        } else {
            i.saturating_add(w).saturating_add(1).min(t)
        };
        ks.window = lo..hi;
        ks.extra.clear();
        for &g in &self.globals {
            if g < t && (!self.causal || g <= i) && !ks.window.contains(&g) {
                ks.extra.push(g);
            }
        }
        if self.log_stride {
            let mut step = 1usize;
            while step <= i && step <= h {
                if i - step < lo {
                    ks.extra.push(i - step);
                }
                step = match step.checked_mul(2) {
                    Some(s) => s,
                    None => break,
                };
            }
            if !self.causal {
                let mut step = 1usize;
                while let Some(j) = i.checked_add(step).filter(|&j| j < t && step <= h) {
                    if j >= hi {
                        ks.extra.push(j);
                    }
                    step = match step.checked_mul(2) {
                        Some(s) => s,
                        None => break,
                    };
                }
            }
        }
        ks.extra.sort_unstable();
        ks.extra.dedup();
        ks.landmarks.clear();
        let nb = self.n_blocks(t);
        if nb == 0 {
            return;
        }
        let s = self.block;
        // Landmarks follow the unclipped window; the horizon then drops any
        // block with a token more than h away.
        let w = self.window;
        // Newest complete block ending before the window: (P + 1) s <= i - w.
        if i >= w && (i - w) >= s {
            let p = (i - w) / s - 1;
            ks.landmarks.push(p);
            let mut d = 1usize;
            while d <= p {
                ks.landmarks.push(p - d);
                d *= 2;
            }
        }
        if !self.causal {
            // Oldest complete block starting after the window: Q s > i + w.
            let q = i.saturating_add(w) / s + 1;
            if q < nb {
                ks.landmarks.push(q);
                let mut d = 1usize;
                while q + d < nb {
                    ks.landmarks.push(q + d);
                    d *= 2;
                }
            }
        }
        if h != usize::MAX {
            ks.landmarks.retain(|&m| {
                m.saturating_mul(s).saturating_add(h) >= i
                    && (m + 1).saturating_mul(s) - 1 <= i.saturating_add(h)
            });
        }
    }
}

/// Mean key and value of every complete block: [B, nb, Hk, D] each.
pub(crate) fn block_means<F: super::Real>(
    k: &[F],
    v: &[F],
    shape: Shape,
    pattern: &Pattern,
) -> (Vec<F>, Vec<F>) {
    let nb = pattern.n_blocks(shape.t);
    let row = shape.hk * shape.d;
    let mut kbar = vec![F::ZERO; shape.b * nb * row];
    let mut vbar = vec![F::ZERO; shape.b * nb * row];
    if nb == 0 {
        return (kbar, vbar);
    }
    let s = pattern.block;
    let inv = F::from_f64(1.0 / s as f64);
    for b in 0..shape.b {
        for blk in 0..nb {
            let o = (b * nb + blk) * row;
            for j in blk * s..(blk + 1) * s {
                let src = (b * shape.t + j) * row;
                super::real::axpy(inv, &k[src..src + row], &mut kbar[o..o + row]);
                super::real::axpy(inv, &v[src..src + row], &mut vbar[o..o + row]);
            }
        }
    }
    (kbar, vbar)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_pattern() -> Pattern {
        Pattern {
            window: 4,
            block: 2,
            landmarks: true,
            globals: vec![0],
            log_stride: true,
            causal: true,
            horizon: None,
        }
    }

    #[test]
    fn causal_keys_follow_the_definition() {
        let p = default_pattern();
        let mut ks = KeySet::default();
        p.keys(20, 32, &mut ks);
        assert_eq!(ks.window, 16..21);
        // global 0, log-stride 20-8=12, 20-16=4 (1, 2, 4 are in the window).
        assert_eq!(ks.extra, vec![0, 4, 12]);
        // Blocks ending before 16: P = 16/2 - 1 = 7, then 6, 5, 3.
        assert_eq!(ks.landmarks, vec![7, 6, 5, 3]);
    }

    #[test]
    fn first_query_sees_only_itself() {
        let p = default_pattern();
        let mut ks = KeySet::default();
        p.keys(0, 5, &mut ks);
        assert_eq!(ks.window, 0..1);
        assert!(ks.extra.is_empty() && ks.landmarks.is_empty());
    }

    #[test]
    fn bidirectional_keys_look_both_ways() {
        let p = Pattern {
            causal: false,
            ..default_pattern()
        };
        let mut ks = KeySet::default();
        p.keys(3, 20, &mut ks);
        assert_eq!(ks.window, 0..8);
        assert_eq!(ks.extra, vec![11, 19]);
        // Q = 7 / 2 + 1 = 4 (tokens 8, 9), then 5, 6, 8; 20 / 2 = 10 blocks.
        assert_eq!(ks.landmarks, vec![4, 5, 6, 8]);
    }

    #[test]
    fn horizon_drops_far_keys_but_keeps_globals() {
        let p = Pattern {
            horizon: Some(9),
            ..default_pattern()
        };
        let mut ks = KeySet::default();
        p.keys(20, 32, &mut ks);
        assert_eq!(ks.window, 16..21);
        // 20-8 = 12 stays, 20-16 = 4 is 16 away; global 0 stays.
        assert_eq!(ks.extra, vec![0, 12]);
        // Blocks 7 (14, 15) and 6 (12, 13) lie within 9 steps; 5 and 3 do not.
        assert_eq!(ks.landmarks, vec![7, 6]);
        let tight = Pattern {
            horizon: Some(2),
            ..default_pattern()
        };
        tight.keys(20, 32, &mut ks);
        assert_eq!(ks.window, 18..21);
        assert_eq!(ks.extra, vec![0]);
        assert!(ks.landmarks.is_empty());
    }

    #[test]
    fn zero_block_with_landmarks_is_rejected() {
        let p = Pattern {
            block: 0,
            ..default_pattern()
        };
        assert!(p.validate().is_err());
    }

    #[test]
    fn heads_must_group() {
        let s = Shape {
            b: 1,
            t: 1,
            hq: 3,
            hk: 2,
            d: 4,
        };
        assert!(s.validate().is_err());
    }
}
