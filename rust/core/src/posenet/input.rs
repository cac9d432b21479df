//! From raw store windows to the model's `[channels, time]`: the store's own
//! per-frame transform ([`CsiTransform`], the code `Store.gather` runs:
//! min-max, subcarrier map, z-score), then the antennas' relative phase as cos
//! and sin when the checkpoint was trained on amplitude+phase, laid out as
//! `csipose.models.to_channels_time` does (channel = antenna * S + subcarrier,
//! time = frame * P + packet).

use crate::signal::SubcarrierMap;
use crate::store::CsiTransform;
use crate::{Error, Result};

/// A subcarrier map as owned arrays (see [`SubcarrierMap`]).
#[derive(Debug, Clone)]
pub struct MapSpec {
    pub start: Vec<u32>,
    pub index: Vec<u32>,
    pub weight: Vec<f64>,
    pub n_src: usize,
}

/// The preprocessing a checkpoint declares (its metadata `data`).
#[derive(Debug, Clone, Default)]
pub struct Preprocess {
    /// Per-frame min-max to [0, 1].
    pub minmax: bool,
    /// Subcarrier map of the amplitude.
    pub map: Option<MapSpec>,
    /// z-score (mean, std + eps), each `[antennas * output subcarriers]`.
    pub zscore: Option<(Vec<f64>, Vec<f64>)>,
    /// Frames per window (the store's window length).
    pub frames: usize,
    /// Append cos, sin of the phase of antennas 1.. relative to antenna 0.
    pub phase: bool,
}

impl Preprocess {
    /// The store transform these settings describe.
    pub fn transform(&self) -> Result<CsiTransform<'_>> {
        let map = match &self.map {
            Some(m) => Some(SubcarrierMap::new(&m.start, &m.index, &m.weight, m.n_src)?),
            None => None,
        };
        Ok(CsiTransform {
            minmax: self.minmax,
            map,
            zscore: self
                .zscore
                .as_ref()
                .map(|(m, s)| (m.as_slice(), s.as_slice())),
        })
    }

    /// Model input channels for windows of `a` antennas and `s` subcarriers.
    pub fn channels(&self, t: &CsiTransform<'_>, a: usize, s: usize) -> usize {
        a * t.out_subcarriers(s)
            + if self.phase {
                2 * a.saturating_sub(1) * s
            } else {
                0
            }
    }

    /// Check windows `[frames, a, s, p]` against the transform and the model's
    /// `[channels, time]`.
    pub fn check(
        &self,
        t: &CsiTransform<'_>,
        [l, a, s, p]: [usize; 4],
        channels: usize,
        time: usize,
    ) -> Result<()> {
        if l != self.frames {
            return Err(Error::Shape(format!(
                "the checkpoint's windows hold {} frames, these hold {l}",
                self.frames
            )));
        }
        if l * p != time {
            return Err(Error::Shape(format!(
                "the model reads {time} time steps (frames x packets); windows of {l} frames x {p} packets give {}",
                l * p
            )));
        }
        if self.phase && a < 2 {
            return Err(Error::Shape(format!(
                "the checkpoint reads the relative phase of 2 or more antennas; these windows have {a}"
            )));
        }
        t.check(a, s)?;
        let c = self.channels(t, a, s);
        if c != channels {
            return Err(Error::Shape(format!(
                "windows of {a} antennas x {s} subcarriers give {c} model channels, the checkpoint reads {channels}"
            )));
        }
        Ok(())
    }

    /// One window: `amp` (and `phase`) `[l, a, s, p]` into `out` `[channels, l * p]`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn window(
        &self,
        t: &CsiTransform<'_>,
        amp: &[f32],
        phase: Option<&[f32]>,
        [l, a, s, p]: [usize; 4],
        scratch: &mut Vec<f64>,
        frame: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        let so = t.out_subcarriers(s);
        let time = l * p;
        frame.clear();
        frame.resize(a * so * p, 0.0);
        for (fi, src) in amp.chunks_exact(a * s * p).enumerate().take(l) {
            t.apply(src, [a, s, p], scratch, frame);
            for (ch, row) in frame.chunks_exact(p).enumerate() {
                out[ch * time + fi * p..ch * time + (fi + 1) * p].copy_from_slice(row);
            }
        }
        let Some(ph) = phase else { return };
        let base = a * so;
        let pairs = a - 1;
        for (fi, src) in ph.chunks_exact(a * s * p).enumerate().take(l) {
            for ant in 1..a {
                for sc in 0..s {
                    let cos_ch = base + (ant - 1) * s + sc;
                    let sin_ch = base + (pairs + ant - 1) * s + sc;
                    for pk in 0..p {
                        let rel = src[(ant * s + sc) * p + pk] - src[sc * p + pk];
                        let at = fi * p + pk;
                        out[cos_ch * time + at] = rel.cos();
                        out[sin_ch * time + at] = rel.sin();
                    }
                }
            }
        }
    }
}
