//! Linear maps along the subcarrier axis: resampling and selection.
//!
//! Every subcarrier transform csipose offers (linear align-corners 114 -> 56,
//! resampling from hardware subcarrier indices to a target grid, dropping
//! null subcarriers, the Gaussian-basis regularised least-squares fit) is a
//! fixed sparse matrix W `[t, s]`: out[t] = sum_k W[t, k] x[k]. It is built
//! once (in Python, see `csipose.signal`) and applied here in float64.

use rayon::prelude::*;

use crate::threads::install;
use crate::{Error, Result};

/// A sparse `[n_out, n_src]` matrix in compressed rows: output `t` is
/// `sum(weight[k] * x[index[k]] for k in start[t]..start[t + 1])`.
#[derive(Debug, Clone, Copy)]
pub struct SubcarrierMap<'a> {
    start: &'a [u32],
    index: &'a [u32],
    weight: &'a [f64],
    n_src: usize,
}

impl<'a> SubcarrierMap<'a> {
    /// Check the rows: `start` ascends from 0 to `index.len()`, every index is `< n_src`.
    pub fn new(
        start: &'a [u32],
        index: &'a [u32],
        weight: &'a [f64],
        n_src: usize,
    ) -> Result<Self> {
        if start.first() != Some(&0) || start.last().map(|&e| e as usize) != Some(index.len()) {
            return Err(Error::Value(format!(
                "map rows must start at 0 and end at {} entries",
                index.len()
            )));
        }
        if start.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::Value("map row starts must not decrease".into()));
        }
        if index.len() != weight.len() {
            return Err(Error::Shape(format!(
                "{} indices but {} weights",
                index.len(),
                weight.len()
            )));
        }
        if let Some(i) = index.iter().find(|&&i| i as usize >= n_src) {
            return Err(Error::Value(format!(
                "map index {i} is out of range for {n_src} subcarriers"
            )));
        }
        if weight.iter().any(|w| !w.is_finite()) {
            return Err(Error::Value("map weights must be finite".into()));
        }
        Ok(Self {
            start,
            index,
            weight,
            n_src,
        })
    }

    /// The map of parts taken from a map [`new`](Self::new) checked (an
    /// owned copy's view): no check again.
    pub(crate) fn from_checked(
        start: &'a [u32],
        index: &'a [u32],
        weight: &'a [f64],
        n_src: usize,
    ) -> Self {
        Self {
            start,
            index,
            weight,
            n_src,
        }
    }

    /// Subcarriers in.
    pub fn n_src(&self) -> usize {
        self.n_src
    }

    /// Subcarriers out.
    pub fn n_out(&self) -> usize {
        self.start.len() - 1
    }

    /// The compressed rows: `(start, index, weight)`.
    pub fn parts(&self) -> (&'a [u32], &'a [u32], &'a [f64]) {
        (self.start, self.index, self.weight)
    }

    /// Map one `[n_src, p]` block (packet innermost) to `[n_out, p]`.
    #[inline]
    pub(crate) fn apply_block(&self, src: &[f32], p: usize, dst: &mut [f32]) {
        self.apply_block_with(src, p, dst, |_, v| v as f32);
    }

    /// Like [`apply_block`](Self::apply_block) from any float input, passing each
    /// output value (float64) with its output subcarrier through `finish`.
    #[inline]
    pub(crate) fn apply_block_with<T: Copy + Into<f64>, O>(
        &self,
        src: &[T],
        p: usize,
        dst: &mut [O],
        finish: impl Fn(usize, f64) -> O,
    ) {
        let mut acc = [0.0f64; 16];
        for (t, row) in dst.chunks_exact_mut(p).enumerate() {
            let taps = self.start[t] as usize..self.start[t + 1] as usize;
            // Packets in groups of 16 so the accumulators stay in registers.
            for (g, out) in row.chunks_mut(16).enumerate() {
                let acc = &mut acc[..out.len()];
                acc.fill(0.0);
                for k in taps.clone() {
                    let w = self.weight[k];
                    let base = self.index[k] as usize * p + g * 16;
                    for (a, x) in acc.iter_mut().zip(&src[base..base + out.len()]) {
                        *a += w * (*x).into();
                    }
                }
                for (o, a) in out.iter_mut().zip(acc.iter()) {
                    *o = finish(t, *a);
                }
            }
        }
    }
}

/// Apply `map` along the subcarrier axis of `x` `[n, a, s, p]` into `out` `[n, a, t, p]`.
pub fn apply_map(
    x: &[f32],
    [n, a, s, p]: [usize; 4],
    map: &SubcarrierMap<'_>,
    out: &mut [f32],
) -> Result<()> {
    if s != map.n_src() {
        return Err(Error::Shape(format!(
            "the map takes {} subcarriers, the input has {s}",
            map.n_src()
        )));
    }
    let t = map.n_out();
    let (src_block, dst_block) = (s.saturating_mul(p), t.saturating_mul(p));
    let blocks = n.saturating_mul(a);
    if x.len() != blocks.saturating_mul(src_block) || out.len() != blocks.saturating_mul(dst_block)
    {
        return Err(Error::Shape(format!(
            "input holds {} values for [{n}, {a}, {s}, {p}] and output {} for [{n}, {a}, {t}, {p}]",
            x.len(),
            out.len()
        )));
    }
    if src_block == 0 || dst_block == 0 {
        return Ok(());
    }
    install(|| {
        out.par_chunks_mut(dst_block)
            .zip(x.par_chunks(src_block))
            .with_min_len(64)
            .for_each(|(dst, src)| map.apply_block(src, p, dst));
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_tap_interpolation() {
        // 3 -> 2 subcarriers: out0 = x0, out1 = 0.25 x1 + 0.75 x2; two packets.
        let (start, index, weight) = ([0u32, 1, 3], [0u32, 1, 2], [1.0, 0.25, 0.75]);
        let map = SubcarrierMap::new(&start, &index, &weight, 3).unwrap();
        let x = [1.0f32, 10.0, 2.0, 20.0, 6.0, 60.0];
        let mut out = [0.0f32; 4];
        apply_map(&x, [1, 1, 3, 2], &map, &mut out).unwrap();
        assert_eq!(out, [1.0, 10.0, 5.0, 50.0]);
    }

    #[test]
    fn long_packet_rows_use_several_groups() {
        let (start, index, weight) = ([0u32, 1], [1u32], [2.0]);
        let map = SubcarrierMap::new(&start, &index, &weight, 2).unwrap();
        let x: Vec<f32> = (0..40).map(|v| v as f32).collect();
        let mut out = vec![0.0f32; 20];
        apply_map(&x, [1, 1, 2, 20], &map, &mut out).unwrap();
        assert_eq!(out, (20..40).map(|v| 2.0 * v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn bad_maps_are_errors() {
        assert!(SubcarrierMap::new(&[0, 2], &[0, 5], &[1.0, 1.0], 3).is_err());
        assert!(SubcarrierMap::new(&[1, 2], &[0, 1], &[1.0, 1.0], 3).is_err());
        assert!(SubcarrierMap::new(&[0, 2, 1], &[0, 1], &[1.0, 1.0], 3).is_err());
        assert!(SubcarrierMap::new(&[0, 1], &[0], &[f64::NAN], 3).is_err());
        let map = SubcarrierMap::new(&[0, 1], &[0], &[1.0], 3).unwrap();
        assert!(apply_map(&[0.0; 6], [1, 1, 2, 3], &map, &mut [0.0; 3]).is_err());
    }
}
