//! Body shadowing of static propagation paths (the Fresnel-zone model).
//!
//! A body segment s obstructs a path by o_s = b_s max exp(-(h / w)^2) over the
//! segment's sample points, where h is the distance from a point to the path
//! (two straight pieces) and w = F / 2 + r_s, F the first Fresnel radius at
//! the nearest point of the path and r_s the segment radius. Obstructions
//! combine as o = 1 - prod_s (1 - o_s) and the path keeps 1 - (1 - floor) o
//! of its amplitude.

use rayon::prelude::*;

use crate::metrics::simd::multiversion;
use crate::threads::install;
use crate::{Error, Result};

/// Static paths of every link: `pieces` `[links, paths, 2 pieces, 2 ends, 3]`,
/// `offset` `[links, paths, 2]` (path length before each piece) and `length` `[links, paths]`.
#[derive(Debug, Clone, Copy)]
pub struct PathGeometry<'a> {
    pub pieces: &'a [f64],
    pub offset: &'a [f64],
    pub length: &'a [f64],
    pub links: usize,
    pub paths: usize,
}

/// Body segments: for each of `points` `[n, q, 3]`, its segment in `point_segment`
/// `[q]`; per segment a radius and a blocking strength (`[segments]`).
#[derive(Debug, Clone, Copy)]
pub struct Bodies<'a> {
    pub points: &'a [f64],
    pub point_segment: &'a [u32],
    pub radius: &'a [f64],
    pub block: &'a [f64],
    pub n: usize,
}

/// The shapes and values both forms need; returns (links x paths, points, segments).
fn check(
    geo: &PathGeometry<'_>,
    body: &Bodies<'_>,
    wavelength: f64,
    floor: f64,
    out: &[f64],
) -> Result<(usize, usize, usize)> {
    let (l, p, n) = (geo.links, geo.paths, body.n);
    let q = body.point_segment.len();
    let segments = body.radius.len();
    let lp = l * p;
    if geo.pieces.len() != lp * 12 || geo.offset.len() != lp * 2 || geo.length.len() != lp {
        return Err(Error::Shape(format!(
            "path geometry must describe [{l}, {p}] paths"
        )));
    }
    if body.points.len() != n * q * 3 || body.block.len() != segments || out.len() != n * lp {
        return Err(Error::Shape(format!(
            "bodies and output must match [{n}] frames of {q} points"
        )));
    }
    if body.point_segment.iter().any(|&s| s as usize >= segments) {
        return Err(Error::Value(
            "a point refers to a segment that does not exist".into(),
        ));
    }
    if wavelength.is_nan() || wavelength <= 0.0 || !(0.0..=1.0).contains(&floor) {
        return Err(Error::Value(
            "wavelength must be > 0 and floor in [0, 1]".into(),
        ));
    }
    Ok((lp, q, segments))
}

/// Fill `out` `[n, links, paths]` with the amplitude factor of every path.
pub fn shadowing(
    geo: &PathGeometry<'_>,
    body: &Bodies<'_>,
    wavelength: f64,
    floor: f64,
    out: &mut [f64],
) -> Result<()> {
    let (lp, q, segments) = check(geo, body, wavelength, floor, out)?;
    if lp == 0 {
        // No paths: nothing to fill (and par_chunks_mut(0) would panic).
        return Ok(());
    }
    // Per piece, hoisted out of the frame loop: its start, direction, squared
    // length and length (the same values the per-point formula used to recompute).
    let pieces: Vec<Piece> = (0..lp * 2)
        .map(|i| {
            let g = &geo.pieces[i * 6..i * 6 + 6];
            let ab = [g[3] - g[0], g[4] - g[1], g[5] - g[2]];
            let ab2 = (ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2]).max(1e-12);
            Piece {
                a: [g[0], g[1], g[2]],
                ab,
                ab2,
                len: ab2.sqrt(),
                before: geo.offset[i],
                total: geo.length[i / 2],
            }
        })
        .collect();
    let radius: Vec<f64> = body
        .point_segment
        .iter()
        .map(|&s| body.radius[s as usize])
        .collect();
    // Skipping is exact only while every skipped term is too small to move
    // 1 - b exp(arg) off 1.0: b exp(arg) < 2^-54 for arg below -(40 + ln b).
    let b_max = body.block.iter().fold(1.0f64, |m, &b| m.max(b.abs()));
    let far = 40.0 + b_max.ln();
    let cull = far.is_finite() && body.block.iter().all(|b| b.is_finite());
    install(|| {
        out.par_chunks_mut(lp).enumerate().for_each_init(
            || Scratch::new(q, segments),
            |sc, (frame, o)| {
                // The frame's points as x, y, z columns: the point loop below runs in vector lanes.
                let pts = &body.points[frame * q * 3..(frame + 1) * q * 3];
                for (i, pt) in pts.chunks_exact(3).enumerate() {
                    (sc.x[i], sc.y[i], sc.z[i]) = (pt[0], pt[1], pt[2]);
                }
                sc.spheres(&radius);
                for (path, factor) in o.iter_mut().enumerate() {
                    // Largest -(h / w)^2 per segment: one exp per segment afterwards.
                    sc.best.fill(f64::NEG_INFINITY);
                    for piece in &pieces[path * 2..path * 2 + 2] {
                        for b in 0..sc.centre.len() {
                            if cull && sc.beyond(piece, b, wavelength, far) {
                                continue;
                            }
                            let (lo, hi) = (b * BLOCK, ((b + 1) * BLOCK).min(q));
                            piece_args(piece, sc, &radius, wavelength, lo, hi);
                            let segs = &body.point_segment[lo..hi];
                            for (&arg, &s) in sc.arg[lo..hi].iter().zip(segs) {
                                let slot = &mut sc.best[s as usize];
                                if arg > *slot {
                                    *slot = arg;
                                }
                            }
                        }
                    }
                    let kept: f64 = sc
                        .best
                        .iter()
                        .zip(body.block)
                        .map(|(&x, &b)| 1.0 - b * x.exp())
                        .product();
                    *factor = 1.0 - (1.0 - floor) * (1.0 - kept);
                }
            },
        );
    })
}

/// Points per bounding sphere: one person's 16 segments x 3 points in the
/// simulator's layout (any size is correct; people make the spheres tight).
const BLOCK: usize = 48;

/// [`shadowing`] one point at a time, as it was before the vector form: the
/// reference the vector form must equal to the bit, and the benchmark's baseline.
pub fn shadowing_pointwise(
    geo: &PathGeometry<'_>,
    body: &Bodies<'_>,
    wavelength: f64,
    floor: f64,
    out: &mut [f64],
) -> Result<()> {
    let (lp, q, segments) = check(geo, body, wavelength, floor, out)?;
    if lp == 0 {
        return Ok(());
    }
    install(|| {
        out.par_chunks_mut(lp).enumerate().for_each_init(
            || vec![0.0f64; segments],
            |best, (frame, o)| {
                let pts = &body.points[frame * q * 3..(frame + 1) * q * 3];
                for (path, factor) in o.iter_mut().enumerate() {
                    // Largest -(h / w)^2 per segment: one exp per segment afterwards.
                    best.fill(f64::NEG_INFINITY);
                    let total = geo.length[path];
                    for piece in 0..2 {
                        let g = &geo.pieces[(path * 2 + piece) * 6..(path * 2 + piece) * 6 + 6];
                        let (a, e) = ([g[0], g[1], g[2]], [g[3], g[4], g[5]]);
                        let ab = [e[0] - a[0], e[1] - a[1], e[2] - a[2]];
                        let ab2 = (ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2]).max(1e-12);
                        let before = geo.offset[path * 2 + piece];
                        for (pt, &s) in pts.chunks_exact(3).zip(body.point_segment) {
                            let ap = [pt[0] - a[0], pt[1] - a[1], pt[2] - a[2]];
                            let u = ((ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / ab2)
                                .clamp(0.0, 1.0);
                            let c = [ap[0] - u * ab[0], ap[1] - u * ab[1], ap[2] - u * ab[2]];
                            let h2 = c[0] * c[0] + c[1] * c[1] + c[2] * c[2];
                            let d1 = before + u * ab2.sqrt();
                            let fresnel =
                                (wavelength * (d1 * (total - d1)).max(0.0) / total).sqrt();
                            let w = 0.5 * fresnel + body.radius[s as usize];
                            let arg = -h2 / (w * w);
                            let slot = &mut best[s as usize];
                            if arg > *slot {
                                *slot = arg;
                            }
                        }
                    }
                    let kept: f64 = best
                        .iter()
                        .zip(body.block)
                        .map(|(&x, &b)| 1.0 - b * x.exp())
                        .product();
                    *factor = 1.0 - (1.0 - floor) * (1.0 - kept);
                }
            },
        );
    })
}

/// One straight piece of a path, with what every point's distance to it needs.
struct Piece {
    a: [f64; 3],
    ab: [f64; 3],
    ab2: f64,
    len: f64,
    before: f64,
    total: f64,
}

/// Per-thread buffers: one frame's points by coordinate, their arguments, the per-segment maxima.
struct Scratch {
    x: Vec<f64>,
    y: Vec<f64>,
    z: Vec<f64>,
    arg: Vec<f64>,
    best: Vec<f64>,
    /// Per block of points: the centre of a sphere holding them, its radius,
    /// and the largest |segment radius| among them.
    centre: Vec<[f64; 3]>,
    reach: Vec<f64>,
    r_max: Vec<f64>,
}

impl Scratch {
    fn new(points: usize, segments: usize) -> Self {
        Self {
            x: vec![0.0; points],
            y: vec![0.0; points],
            z: vec![0.0; points],
            arg: vec![0.0; points],
            best: vec![0.0; segments],
            centre: vec![[0.0; 3]; points.div_ceil(BLOCK)],
            reach: vec![0.0; points.div_ceil(BLOCK)],
            r_max: vec![0.0; points.div_ceil(BLOCK)],
        }
    }

    /// The bounding sphere of each block of this frame's points (NaN or
    /// infinite points give a NaN sphere, which is never skipped).
    fn spheres(&mut self, radius: &[f64]) {
        let q = self.x.len();
        for b in 0..self.centre.len() {
            let (lo, hi) = (b * BLOCK, ((b + 1) * BLOCK).min(q));
            let n = (hi - lo) as f64;
            let mean = |v: &[f64]| v[lo..hi].iter().sum::<f64>() / n;
            let c = [mean(&self.x), mean(&self.y), mean(&self.z)];
            let mut r2 = 0.0f64;
            for i in lo..hi {
                let d = [self.x[i] - c[0], self.y[i] - c[1], self.z[i] - c[2]];
                let e = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
                r2 = if e > r2 || e.is_nan() { e } else { r2 };
            }
            self.centre[b] = c;
            // A little slack for rounding in the distances below.
            self.reach[b] = r2.sqrt() * (1.0 + 1e-9) + 1e-12;
            self.r_max[b] = radius[lo..hi].iter().fold(0.0f64, |m, r| m.max(r.abs()));
        }
    }

    /// Whether every point of block `b` is so far from the piece that its
    /// -(h / w)^2 is below -`far`: h >= |centre - piece| - reach, and
    /// w <= F_max / 2 + max |r| with F_max = sqrt(lambda total / 4), the
    /// largest first Fresnel radius anywhere on the path.
    fn beyond(&self, pc: &Piece, b: usize, wavelength: f64, far: f64) -> bool {
        let c = self.centre[b];
        let ap = [c[0] - pc.a[0], c[1] - pc.a[1], c[2] - pc.a[2]];
        let ab = pc.ab;
        let u = ((ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / pc.ab2).clamp(0.0, 1.0);
        let d = [ap[0] - u * ab[0], ap[1] - u * ab[1], ap[2] - u * ab[2]];
        let h = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt() - self.reach[b];
        let w = (0.5 * (wavelength * pc.total / 4.0).sqrt() + self.r_max[b]) * (1.0 + 1e-9);
        // NaN anywhere compares false: such a block is computed, as before.
        h > 0.0 && h * h > far * (1.0 + 1e-9) * w * w
    }
}

multiversion! {
    fn piece_args(pc: &Piece, sc: &mut Scratch, radius: &[f64], wavelength: f64, lo: usize, hi: usize) -> ();
    wide = piece_args_lanes(pc, sc, radius, wavelength, lo, hi);
    base = piece_args_lanes(pc, sc, radius, wavelength, lo, hi);
}

/// -(h / w)^2 of points `lo..hi` for one piece. The operations and their order are
/// those of the per-point formula (no fused multiply-add), so the result is the
/// same to the bit whatever the vector width.
#[inline(always)]
fn piece_args_lanes(
    pc: &Piece,
    sc: &mut Scratch,
    radius: &[f64],
    wavelength: f64,
    lo: usize,
    hi: usize,
) {
    let (a, ab, ab2, len, before, total) = (pc.a, pc.ab, pc.ab2, pc.len, pc.before, pc.total);
    let points = sc.x[lo..hi]
        .iter()
        .zip(&sc.y[lo..hi])
        .zip(&sc.z[lo..hi])
        .zip(&radius[lo..hi]);
    for (out, (((&x, &y), &z), &r)) in sc.arg[lo..hi].iter_mut().zip(points) {
        let ap = [x - a[0], y - a[1], z - a[2]];
        let u = ((ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / ab2).clamp(0.0, 1.0);
        let c = [ap[0] - u * ab[0], ap[1] - u * ab[1], ap[2] - u * ab[2]];
        let h2 = c[0] * c[0] + c[1] * c[1] + c[2] * c[2];
        let d1 = before + u * len;
        let fresnel = (wavelength * (d1 * (total - d1)).max(0.0) / total).sqrt();
        let w = 0.5 * fresnel + r;
        *out = -h2 / (w * w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_paths_is_an_empty_answer_not_a_panic() {
        // Found by tests/test_bindings_fuzz.py: zero paths made par_chunks_mut(0) panic.
        let geo = PathGeometry {
            pieces: &[],
            offset: &[],
            length: &[],
            links: 2,
            paths: 0,
        };
        let body = Bodies {
            points: &[0.0; 6],
            point_segment: &[0],
            radius: &[0.1],
            block: &[1.0],
            n: 2,
        };
        assert_eq!(shadowing(&geo, &body, 0.05, 0.1, &mut []), Ok(()));
    }

    #[test]
    fn a_segment_on_the_line_of_sight_blocks_it_and_one_far_away_does_not() {
        // One path: a straight line from (0,0,1) to (4,0,1) as two pieces meeting at the receiver.
        let pieces = [0.0, 0.0, 1.0, 4.0, 0.0, 1.0, 4.0, 0.0, 1.0, 4.0, 0.0, 1.0];
        let geo = PathGeometry {
            pieces: &pieces,
            offset: &[0.0, 4.0],
            length: &[4.0],
            links: 1,
            paths: 1,
        };
        let (radius, block) = ([0.1], [0.8]);
        let mut out = [0.0; 2];
        let points = [2.0, 0.0, 1.0, 2.0, 3.0, 1.0]; // frame 0 on the line, frame 1 3 m away
        let body = Bodies {
            points: &points,
            point_segment: &[0],
            radius: &radius,
            block: &block,
            n: 2,
        };
        shadowing(&geo, &body, 0.06, 0.15, &mut out).unwrap();
        assert!((out[0] - (1.0 - 0.85 * 0.8)).abs() < 1e-12, "{out:?}");
        assert!(out[1] > 0.999_999);
    }
    #[test]
    fn the_vector_form_equals_the_pointwise_form_to_the_bit() {
        // Two links of three paths (two pieces each) and 2 frames of 7 points on 3 segments.
        let wave = |i: usize, a: f64| a * ((i as f64) * 0.37).sin();
        let pieces: Vec<f64> = (0..6 * 12).map(|i| 1.5 + wave(i, 1.4)).collect();
        let length: Vec<f64> = (0..6).map(|i| 4.0 + wave(i, 1.0)).collect();
        let offset: Vec<f64> = (0..12)
            .map(|i| if i % 2 == 0 { 0.0 } else { 2.0 + wave(i, 0.5) })
            .collect();
        let geo = PathGeometry {
            pieces: &pieces,
            offset: &offset,
            length: &length,
            links: 2,
            paths: 3,
        };
        let points: Vec<f64> = (0..2 * 7 * 3).map(|i| 1.5 + wave(i + 11, 1.2)).collect();
        let body = Bodies {
            points: &points,
            point_segment: &[0, 0, 1, 1, 1, 2, 2],
            radius: &[0.05, 0.1, 0.2],
            block: &[0.5, 0.9, 1.0],
            n: 2,
        };
        let (mut a, mut b) = (vec![0.0; 12], vec![0.0; 12]);
        shadowing(&geo, &body, 0.057, 0.15, &mut a).unwrap();
        shadowing_pointwise(&geo, &body, 0.057, 0.15, &mut b).unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
        assert!(a.iter().any(|&x| x < 0.999), "{a:?}");
    }
    #[test]
    fn skipping_far_people_changes_no_bit() {
        // 5 "people" of 48 points each, some near the paths and some far away.
        let wave = |i: usize, a: f64| a * ((i as f64) * 0.61).sin();
        let pieces: Vec<f64> = (0..4 * 12).map(|i| 2.0 + wave(i, 1.5)).collect();
        let length: Vec<f64> = (0..4).map(|i| 5.0 + wave(i, 1.0)).collect();
        let offset: Vec<f64> = (0..8).map(|i| if i % 2 == 0 { 0.0 } else { 2.5 }).collect();
        let geo = PathGeometry {
            pieces: &pieces,
            offset: &offset,
            length: &length,
            links: 1,
            paths: 4,
        };
        let q = 5 * 48;
        let points: Vec<f64> = (0..3 * q * 3)
            .map(|i| {
                let person = (i / 3) % q / 48;
                2.0 + wave(i, 0.4) + 3.0 * person as f64
            })
            .collect();
        let point_segment: Vec<u32> = (0..q as u32).map(|i| i / 3).collect();
        let radius: Vec<f64> = (0..q / 3).map(|i| 0.05 + 0.01 * (i % 7) as f64).collect();
        let block: Vec<f64> = (0..q / 3).map(|i| 0.3 + 0.05 * (i % 9) as f64).collect();
        let body = Bodies {
            points: &points,
            point_segment: &point_segment,
            radius: &radius,
            block: &block,
            n: 3,
        };
        let (mut a, mut b) = (vec![0.0; 12], vec![0.0; 12]);
        shadowing(&geo, &body, 0.125, 0.15, &mut a).unwrap();
        shadowing_pointwise(&geo, &body, 0.125, 0.15, &mut b).unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
        assert!(a.iter().any(|&x| x < 0.999), "{a:?}");
    }
}
