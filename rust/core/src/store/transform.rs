//! Load-time transforms of CSI frames, applied while gathering.
//!
//! The store keeps values as recorded; scaling and resampling are declared
//! transforms applied to each `[antennas, subcarriers, packets]` frame in a
//! fixed order: (1) per-frame min-max to [0, 1] over the whole frame (the
//! MM-Fi toolkit's rule; a constant frame becomes 0, never a division by
//! zero), (2) a subcarrier map, (3) a z-score per (antenna, output
//! subcarrier). The load path runs them in float32 within a stated bound of
//! this float64 arithmetic ([`super::fused`]); the float64 form remains for
//! the z-score moments and for frames beyond float32's range.

use crate::signal::SubcarrierMap;
use crate::{Error, Result};

/// The transform of one frame. `Default` is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct CsiTransform<'a> {
    /// Scale each frame to [0, 1] by its own minimum and maximum.
    pub minmax: bool,
    /// Map the subcarriers.
    pub map: Option<SubcarrierMap<'a>>,
    /// Subtract `mean` and divide by `std` (both `[antennas * output subcarriers]`).
    pub zscore: Option<(&'a [f64], &'a [f64])>,
}

impl CsiTransform<'_> {
    /// Output subcarriers for `s` input subcarriers.
    pub fn out_subcarriers(&self, s: usize) -> usize {
        self.map.map_or(s, |m| m.n_out())
    }

    /// True when the transform copies frames unchanged.
    pub fn is_identity(&self) -> bool {
        !self.minmax && self.map.is_none() && self.zscore.is_none()
    }

    /// Check the transform against frames of `a` antennas and `s` subcarriers.
    pub fn check(&self, a: usize, s: usize) -> Result<()> {
        // Empty frames would be zero-sized chunks in the kernels: refuse them here.
        if a == 0 || self.out_subcarriers(s) == 0 {
            return Err(Error::Shape(format!(
                "the transform makes frames of {a} antennas x {} subcarriers: nothing to compute",
                self.out_subcarriers(s)
            )));
        }
        if let Some(m) = self.map
            && m.n_src() != s
        {
            return Err(Error::Shape(format!(
                "the subcarrier map takes {} subcarriers, the frames have {s}",
                m.n_src()
            )));
        }
        if let Some((mean, std)) = self.zscore {
            let n = a * self.out_subcarriers(s);
            if mean.len() != n || std.len() != n {
                return Err(Error::Shape(format!(
                    "z-score statistics hold {} means and {} stds, expected antennas x subcarriers = {n}",
                    mean.len(),
                    std.len()
                )));
            }
            if let Some(i) = std.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(Error::Value(format!(
                    "z-score std {} at position {i} must be finite and > 0",
                    std[i]
                )));
            }
            if mean.iter().any(|v| !v.is_finite()) {
                return Err(Error::Value("z-score means must be finite".into()));
            }
        }
        Ok(())
    }

    /// Transform one frame `src` `[a, s, p]` into `dst` `[a, t, p]` with the
    /// float32 kernel (error bound: [`super::fused`]). It prepares the
    /// kernel on every call; loops over many frames build one
    /// [`FusedTransform`](super::FusedTransform) and call its `frame`.
    /// `scratch` is kept for the callers' interface and is unused.
    #[inline]
    pub(crate) fn apply(
        &self,
        src: &[f32],
        shape: [usize; 3],
        _scratch: &mut Vec<f64>,
        dst: &mut [f32],
    ) {
        super::FusedTransform::new(self, shape).frame(src, dst, &[]);
    }

    /// Transform one frame in float64 arithmetic, rounding only the output.
    pub(crate) fn apply_exact(&self, src: &[f32], shape: [usize; 3], dst: &mut [f32]) {
        let t = self.out_subcarriers(shape[1]);
        let z = self.zscore;
        let mut scratch = Vec::new();
        self.apply_with(src, shape, &mut scratch, dst, move |ant| {
            move |k: usize, v: f64| match z {
                Some((mean, std)) => ((v - mean[ant * t + k]) / std[ant * t + k]) as f32,
                None => v as f32,
            }
        });
    }

    /// Min-max and map one frame into float64 (the z-score, if any, is not applied).
    #[inline]
    pub(crate) fn apply_f64(
        &self,
        src: &[f32],
        shape: [usize; 3],
        scratch: &mut Vec<f64>,
        dst: &mut [f64],
    ) {
        self.apply_with(src, shape, scratch, dst, |_| |_, v| v);
    }

    #[inline]
    fn apply_with<O, F: Fn(usize, f64) -> O>(
        &self,
        src: &[f32],
        [a, s, p]: [usize; 3],
        scratch: &mut Vec<f64>,
        dst: &mut [O],
        finish: impl Fn(usize) -> F,
    ) {
        let t = self.out_subcarriers(s);
        if self.minmax {
            let (lo, hi) = src
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (if v < lo { v } else { lo }, if v > hi { v } else { hi })
                });
            let (lo, range) = (f64::from(lo), f64::from(hi) - f64::from(lo));
            scratch.clear();
            scratch.extend(src.iter().map(|&v| {
                if range > 0.0 {
                    (f64::from(v) - lo) / range
                } else {
                    0.0
                }
            }));
            self.blocks(scratch, [a, s, p], t, dst, finish);
        } else {
            self.blocks(src, [a, s, p], t, dst, finish);
        }
    }

    #[inline]
    fn blocks<T: Copy + Into<f64>, O, F: Fn(usize, f64) -> O>(
        &self,
        src: &[T],
        [a, s, p]: [usize; 3],
        t: usize,
        dst: &mut [O],
        finish: impl Fn(usize) -> F,
    ) {
        for (ant, (x, y)) in src
            .chunks_exact(s * p)
            .zip(dst.chunks_exact_mut(t * p))
            .enumerate()
            .take(a)
        {
            let f = finish(ant);
            match self.map {
                Some(m) => m.apply_block_with(x, p, y, f),
                None => {
                    for (k, (xs, ys)) in x.chunks_exact(p).zip(y.chunks_exact_mut(p)).enumerate() {
                        for (v, o) in xs.iter().zip(ys) {
                            *o = f(k, (*v).into());
                        }
                    }
                }
            }
        }
    }
}

/// `(start, index, weight, n_src)` of a checked map.
type OwnedMap = (Vec<u32>, Vec<u32>, Vec<f64>, usize);

/// A [`CsiTransform`] owning its map and statistics, for a transform
/// prepared once and kept across calls (a store's gathers).
#[derive(Debug, Clone, Default)]
pub(super) struct OwnedTransform {
    pub(super) minmax: bool,
    map: Option<OwnedMap>,
    zscore: Option<(Vec<f64>, Vec<f64>)>,
}

impl OwnedTransform {
    pub(super) fn new(t: &CsiTransform<'_>) -> Self {
        Self {
            minmax: t.minmax,
            map: t.map.map(|m| {
                let (st, ix, w) = m.parts();
                (st.to_vec(), ix.to_vec(), w.to_vec(), m.n_src())
            }),
            zscore: t.zscore.map(|(m, s)| (m.to_vec(), s.to_vec())),
        }
    }

    /// The transform as borrowed parts.
    pub(super) fn view(&self) -> CsiTransform<'_> {
        CsiTransform {
            minmax: self.minmax,
            map: self
                .map
                .as_ref()
                .map(|(st, ix, w, n)| SubcarrierMap::from_checked(st, ix, w, *n)),
            zscore: self.zscore.as_ref().map(|(m, s)| (&m[..], &s[..])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minmax_then_map_then_zscore() {
        // One antenna, 3 subcarriers, 1 packet: x = [2, 4, 6].
        let (start, index, weight) = ([0u32, 2], [0u32, 2], [0.5, 0.5]);
        let map = SubcarrierMap::new(&start, &index, &weight, 3).unwrap();
        let (mean, std) = ([0.25], [0.5]);
        let t = CsiTransform {
            minmax: true,
            map: Some(map),
            zscore: Some((&mean, &std)),
        };
        t.check(1, 3).unwrap();
        let mut out = [0.0f32];
        t.apply(&[2.0, 4.0, 6.0], [1, 3, 1], &mut Vec::new(), &mut out);
        // minmax -> [0, 0.5, 1]; map -> 0.5; z -> (0.5 - 0.25) / 0.5
        assert_eq!(out, [0.5]);
    }

    #[test]
    fn constant_frames_scale_to_zero() {
        let t = CsiTransform {
            minmax: true,
            ..Default::default()
        };
        let mut out = [9.0f32; 4];
        t.apply(&[3.0; 4], [1, 2, 2], &mut Vec::new(), &mut out);
        assert_eq!(out, [0.0; 4]);
    }

    #[test]
    fn bad_statistics_are_errors() {
        let (mean, std) = ([0.0, 0.0], [1.0, 0.0]);
        let t = CsiTransform {
            zscore: Some((&mean, &std)),
            ..Default::default()
        };
        assert!(
            t.check(1, 2)
                .unwrap_err()
                .to_string()
                .contains("position 1")
        );
        assert!(t.check(2, 2).is_err());
    }

    #[test]
    fn empty_frames_are_errors() {
        // A map with no output subcarriers once reached a zero chunk size (a panic).
        let map = SubcarrierMap::new(&[0u32], &[], &[], 8).unwrap();
        let t = CsiTransform {
            map: Some(map),
            ..Default::default()
        };
        assert!(t.check(3, 8).unwrap_err().to_string().contains("nothing"));
        assert!(CsiTransform::default().check(0, 8).is_err());
    }
}
