//! The clean channel of a whole sequence in one pass: static paths shadowed
//! per frame plus body paths per packet, plus the far static paths (a fixed
//! response), as complex64 `H [frames, packets, links, subcarriers]`.
//!
//! It computes what `multipath_response` over the rows
//! `[static paths | body paths]` of every packet computes, to the bit, with
//! less work: a static path's delay is the same in every packet and its gain
//! (shadowing) changes per frame, so its phasors along the subcarriers are the
//! same for every packet of a frame. `multipath_response` adds path `i` of a
//! row into vector lane `i % 8`, chunk by chunk; the static paths come first,
//! so each lane's running sum after them is a per-frame prefix. Here that
//! prefix is swept once per frame and link, and each packet only continues the
//! lanes with its body paths (shifted by `statics % 8` zero phasors so every
//! path lands in its old lane). A lane starts at +0.0 and so is never -0.0,
//! which makes the extra `+ 0.0` of the padding exact. Per-path sines and
//! cosines depend only on the delay and are taken once per call.

use rayon::prelude::*;

use crate::metrics::simd::multiversion;
use crate::threads::install;
use crate::{Error, Result};

/// The inputs of [`synthesize`]; all arrays row-major.
#[derive(Debug, Clone, Copy)]
pub struct Channel<'a> {
    /// Near static paths: delays (s) and complex gains `[links, statics]`.
    pub static_tau: &'a [f64],
    pub static_re: &'a [f64],
    pub static_im: &'a [f64],
    /// Amplitude factor of each near static path per frame `[frames, links, statics]`.
    pub shadow: &'a [f64],
    /// Body paths per packet: delays and gains `[frames * packets, links, bodies]`.
    pub body_tau: &'a [f64],
    pub body_re: &'a [f64],
    pub body_im: &'a [f64],
    /// The response of the far static paths `[links, subcarriers]` (float32, as
    /// `multipath_response` returns it).
    pub fixed_re: &'a [f32],
    pub fixed_im: &'a [f32],
    /// `[frames, packets, links, statics, bodies]`.
    pub dims: [usize; 5],
    pub fc: f64,
    pub df: f64,
    pub index: &'a [i32],
}

/// Fill `out` (`[frames, packets, links, subcarriers, 2]`, real and imaginary
/// parts) with the clean channel.
pub fn synthesize(ch: &Channel<'_>, out: &mut [f32]) -> Result<()> {
    let [frames, packets, links, statics, bodies] = ch.dims;
    let k = ch.index.len();
    let size = |dims: &[usize]| dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let too_big = || Error::Shape("the channel is too large".into());
    let n_static = size(&[links, statics]).ok_or_else(too_big)?;
    let n_shadow = size(&[frames, links, statics]).ok_or_else(too_big)?;
    let n_body = size(&[frames, packets, links, bodies]).ok_or_else(too_big)?;
    let n_fixed = size(&[links, k]).ok_or_else(too_big)?;
    let n_out = size(&[frames, packets, links, k, 2]).ok_or_else(too_big)?;
    if [ch.static_tau.len(), ch.static_re.len(), ch.static_im.len()] != [n_static; 3] {
        return Err(Error::Shape(format!(
            "static delays and gains must hold [{links}, {statics}] values"
        )));
    }
    if ch.shadow.len() != n_shadow {
        return Err(Error::Shape(format!(
            "shadow must hold [{frames}, {links}, {statics}] values"
        )));
    }
    if [ch.body_tau.len(), ch.body_re.len(), ch.body_im.len()] != [n_body; 3] {
        return Err(Error::Shape(format!(
            "body delays and gains must hold [{frames} x {packets}, {links}, {bodies}] values"
        )));
    }
    if ch.fixed_re.len() != n_fixed || ch.fixed_im.len() != n_fixed {
        return Err(Error::Shape(format!(
            "the fixed response must hold [{links}, {k}] values"
        )));
    }
    if out.len() != n_out {
        return Err(Error::Shape(format!(
            "the output must hold [{frames}, {packets}, {links}, {k}, 2] values"
        )));
    }
    let finite = |v: &[f64]| v.iter().all(|t| t.is_finite());
    if !(ch.fc.is_finite() && ch.df.is_finite() && finite(ch.static_tau) && finite(ch.body_tau)) {
        return Err(Error::Value("frequencies and delays must be finite".into()));
    }
    if n_out == 0 {
        return Ok(());
    }
    let lo = ch.index.iter().copied().min().unwrap_or(0);
    let hi = ch.index.iter().copied().max().unwrap_or(0);
    let span = (i64::from(hi) - i64::from(lo) + 1) as usize;
    if span > 1 << 16 {
        return Err(Error::Value(format!(
            "subcarrier indices span {span} values"
        )));
    }
    let slots: Vec<usize> = ch.index.iter().map(|&s| (s - lo) as usize).collect();
    let two_pi = std::f64::consts::TAU;
    // The rotation to the lowest index (c0, s0) and the step between indices (c1, s1) of a delay.
    let turns = |t: f64| {
        let (s0, c0) = (-two_pi * (ch.fc + ch.df * f64::from(lo)) * t).sin_cos();
        let (s1, c1) = (-two_pi * ch.df * t).sin_cos();
        [c0, s0, c1, s1]
    };
    let static_turns: Vec<[f64; 4]> = ch.static_tau.iter().map(|&t| turns(t)).collect();
    // Body paths sit behind `shift` zero phasors so that each keeps its old lane.
    let shift = statics % 8;
    let static_lanes = statics.div_ceil(8) * 8;
    let body_lanes = (shift + bodies).div_ceil(8) * 8;
    let frame_len = packets * links * k * 2;
    install(|| {
        out.par_chunks_mut(frame_len).enumerate().for_each_init(
            || Work::new(static_lanes, body_lanes, span),
            |w, (f, frame_out)| {
                for l in 0..links {
                    // This frame's static phasors at the lowest index, shadowed as
                    // numpy multiplied them: (s + 0j) * g.
                    w.statics.clear_from(0);
                    for p in 0..statics {
                        let j = l * statics + p;
                        let s = ch.shadow[(f * links + l) * statics + p];
                        let (g_re, g_im) = (
                            s * ch.static_re[j] - 0.0 * ch.static_im[j],
                            s * ch.static_im[j] + 0.0 * ch.static_re[j],
                        );
                        w.statics.set(p, g_re, g_im, static_turns[j]);
                    }
                    w.prefix_re.fill(0.0);
                    w.prefix_im.fill(0.0);
                    sweep(&mut w.statics, &mut w.prefix_re, &mut w.prefix_im);
                    for pk in 0..packets {
                        let row = (f * packets + pk) * links + l;
                        w.bodies.clear_from(0);
                        for b in 0..bodies {
                            let j = row * bodies + b;
                            let (g_re, g_im) = (ch.body_re[j], ch.body_im[j]);
                            w.bodies.set(shift + b, g_re, g_im, turns(ch.body_tau[j]));
                        }
                        w.lanes_re.copy_from_slice(&w.prefix_re);
                        w.lanes_im.copy_from_slice(&w.prefix_im);
                        sweep(&mut w.bodies, &mut w.lanes_re, &mut w.lanes_im);
                        let o = &mut frame_out[(pk * links + l) * k * 2..][..k * 2];
                        let fixed = (
                            &ch.fixed_re[l * k..(l + 1) * k],
                            &ch.fixed_im[l * k..(l + 1) * k],
                        );
                        let cells = o.chunks_exact_mut(2).zip(fixed.0.iter().zip(fixed.1));
                        for ((cell, (&fr, &fi)), &slot) in cells.zip(&slots) {
                            let lanes = slot * 8..slot * 8 + 8;
                            let re: f64 = w.lanes_re[lanes.clone()].iter().sum();
                            let im: f64 = w.lanes_im[lanes].iter().sum();
                            // float32 sums, then numpy's complex128 addition of the
                            // fixed part, then complex64.
                            cell[0] = (f64::from(re as f32) + f64::from(fr)) as f32;
                            cell[1] = (f64::from(im as f32) + f64::from(fi)) as f32;
                        }
                    }
                }
            },
        );
    })
}

/// Phasors advanced together along the subcarrier index range, 8 paths to a
/// vector of lanes; unused lanes hold zero phasors, which add nothing.
struct Phasors {
    z_re: Vec<f64>,
    z_im: Vec<f64>,
    step_re: Vec<f64>,
    step_im: Vec<f64>,
}

impl Phasors {
    fn new(lanes: usize) -> Self {
        let z = || vec![0.0; lanes];
        Self {
            z_re: z(),
            z_im: z(),
            step_re: z(),
            step_im: z(),
        }
    }

    fn clear_from(&mut self, at: usize) {
        for v in [
            &mut self.z_re,
            &mut self.z_im,
            &mut self.step_re,
            &mut self.step_im,
        ] {
            v.iter_mut().skip(at).for_each(|x| *x = 0.0);
        }
    }

    /// Path `i` with gain `g` at the lowest index and the rotations `[c0, s0, c1, s1]`.
    fn set(&mut self, i: usize, g_re: f64, g_im: f64, [c0, s0, c1, s1]: [f64; 4]) {
        if let (Some(zr), Some(zi), Some(sr), Some(si)) = (
            self.z_re.get_mut(i),
            self.z_im.get_mut(i),
            self.step_re.get_mut(i),
            self.step_im.get_mut(i),
        ) {
            *zr = g_re * c0 - g_im * s0;
            *zi = g_re * s0 + g_im * c0;
            *sr = c1;
            *si = s1;
        }
    }
}

/// Per-thread buffers: the static and body phasors, the per-frame lane
/// prefix `[span, 8]` and a packet's lanes.
struct Work {
    statics: Phasors,
    bodies: Phasors,
    prefix_re: Vec<f64>,
    prefix_im: Vec<f64>,
    lanes_re: Vec<f64>,
    lanes_im: Vec<f64>,
}

impl Work {
    fn new(static_lanes: usize, body_lanes: usize, span: usize) -> Self {
        let z = || vec![0.0; span * 8];
        Self {
            statics: Phasors::new(static_lanes),
            bodies: Phasors::new(body_lanes),
            prefix_re: z(),
            prefix_im: z(),
            lanes_re: z(),
            lanes_im: z(),
        }
    }
}

multiversion! {
    fn sweep(ph: &mut Phasors, lanes_re: &mut [f64], lanes_im: &mut [f64]) -> ();
    wide = sweep_lanes(ph, lanes_re, lanes_im);
    base = sweep_lanes(ph, lanes_re, lanes_im);
}

/// Continue the running lane sums `[span, 8]` with the phasors, advancing
/// them one index at a time (the loop of `multipath_response`).
#[inline(always)]
fn sweep_lanes(ph: &mut Phasors, lanes_re: &mut [f64], lanes_im: &mut [f64]) {
    for (a_re, a_im) in lanes_re
        .chunks_exact_mut(8)
        .zip(lanes_im.chunks_exact_mut(8))
    {
        let (mut l_re, mut l_im) = ([0.0f64; 8], [0.0f64; 8]);
        l_re.copy_from_slice(a_re);
        l_im.copy_from_slice(a_im);
        let lanes = ph
            .z_re
            .chunks_exact_mut(8)
            .zip(ph.z_im.chunks_exact_mut(8))
            .zip(ph.step_re.chunks_exact(8).zip(ph.step_im.chunks_exact(8)));
        for ((zr, zi), (sr, si)) in lanes {
            for l in 0..8 {
                l_re[l] += zr[l];
                l_im[l] += zi[l];
                let (r, i) = (zr[l] * sr[l] - zi[l] * si[l], zr[l] * si[l] + zi[l] * sr[l]);
                zr[l] = r;
                zi[l] = i;
            }
        }
        a_re.copy_from_slice(&l_re);
        a_im.copy_from_slice(&l_im);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::multipath_response;

    /// The old way: every packet's row `[static (shadowed) | body]` through
    /// `multipath_response`, plus the fixed part, as numpy added them.
    #[test]
    fn equals_the_per_packet_sum_to_the_bit() {
        let (frames, packets, links, statics, bodies) = (3, 4, 2, 11, 5);
        let index = [-5, -4, -1, 1, 3, 6];
        let k = index.len();
        let (fc, df) = (5.32e9, 312_500.0);
        let wave = |i: usize, a: f64| a * ((i as f64) * 0.7).sin() + 0.1 * (i % 3) as f64;
        let static_tau: Vec<f64> = (0..links * statics)
            .map(|i| 1e-8 * (1.0 + wave(i, 0.5)))
            .collect();
        let static_re: Vec<f64> = (0..links * statics).map(|i| wave(i, 0.3)).collect();
        let static_im: Vec<f64> = (0..links * statics).map(|i| wave(i + 7, 0.2)).collect();
        let shadow: Vec<f64> = (0..frames * links * statics)
            .map(|i| 0.5 + wave(i, 0.4))
            .collect();
        let nb = frames * packets * links * bodies;
        let body_tau: Vec<f64> = (0..nb).map(|i| 2e-8 * (1.0 + wave(i + 3, 0.5))).collect();
        let body_re: Vec<f64> = (0..nb).map(|i| wave(i + 1, 0.01)).collect();
        let body_im: Vec<f64> = (0..nb).map(|i| wave(i + 2, 0.01)).collect();
        let fixed_re: Vec<f32> = (0..links * k).map(|i| wave(i, 0.2) as f32).collect();
        let fixed_im: Vec<f32> = (0..links * k).map(|i| wave(i + 5, 0.2) as f32).collect();
        let ch = Channel {
            static_tau: &static_tau,
            static_re: &static_re,
            static_im: &static_im,
            shadow: &shadow,
            body_tau: &body_tau,
            body_re: &body_re,
            body_im: &body_im,
            fixed_re: &fixed_re,
            fixed_im: &fixed_im,
            dims: [frames, packets, links, statics, bodies],
            fc,
            df,
            index: &index,
        };
        let mut out = vec![0.0f32; frames * packets * links * k * 2];
        synthesize(&ch, &mut out).unwrap();

        let rows = frames * packets * links;
        let p = statics + bodies;
        let (mut tau, mut g_re, mut g_im) = (vec![], vec![], vec![]);
        for row in 0..rows {
            let (f, l) = (row / (packets * links), row % links);
            for s in 0..statics {
                let (j, sh) = (l * statics + s, shadow[(f * links + l) * statics + s]);
                tau.push(static_tau[j]);
                g_re.push(sh * static_re[j] - 0.0 * static_im[j]);
                g_im.push(sh * static_im[j] + 0.0 * static_re[j]);
            }
            for b in 0..bodies {
                tau.push(body_tau[row * bodies + b]);
                g_re.push(body_re[row * bodies + b]);
                g_im.push(body_im[row * bodies + b]);
            }
        }
        let (mut re, mut im) = (vec![0.0f32; rows * k], vec![0.0f32; rows * k]);
        multipath_response(
            &tau,
            &g_re,
            &g_im,
            [rows, p],
            fc,
            df,
            &index,
            &mut re,
            &mut im,
        )
        .unwrap();
        for row in 0..rows {
            let l = row % links;
            for kk in 0..k {
                let want_re =
                    (f64::from(re[row * k + kk]) + f64::from(fixed_re[l * k + kk])) as f32;
                let want_im =
                    (f64::from(im[row * k + kk]) + f64::from(fixed_im[l * k + kk])) as f32;
                assert_eq!(
                    out[(row * k + kk) * 2].to_bits(),
                    want_re.to_bits(),
                    "row {row}"
                );
                assert_eq!(out[(row * k + kk) * 2 + 1].to_bits(), want_im.to_bits());
            }
        }
    }

    #[test]
    fn shapes_and_values_are_checked() {
        let ch = Channel {
            static_tau: &[1e-8],
            static_re: &[1.0],
            static_im: &[0.0],
            shadow: &[1.0],
            body_tau: &[],
            body_re: &[],
            body_im: &[],
            fixed_re: &[0.0],
            fixed_im: &[0.0],
            dims: [1, 1, 1, 1, 0],
            fc: 5e9,
            df: 1e5,
            index: &[0],
        };
        let mut out = vec![0.0f32; 2];
        assert!(synthesize(&ch, &mut out).is_ok());
        assert!(synthesize(&ch, &mut out[..1]).is_err());
        let bad = Channel {
            static_tau: &[f64::NAN],
            ..ch
        };
        assert!(synthesize(&bad, &mut out).is_err());
        let short = Channel { shadow: &[], ..ch };
        assert!(synthesize(&short, &mut out).is_err());
    }
}
