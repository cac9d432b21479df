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
    install(|| {
        out.par_chunks_mut(lp).enumerate().for_each_init(
            || Scratch::new(q, segments),
            |sc, (frame, o)| {
                // The frame's points as x, y, z columns: the point loop below runs in vector lanes.
                let pts = &body.points[frame * q * 3..(frame + 1) * q * 3];
                for (i, pt) in pts.chunks_exact(3).enumerate() {
                    (sc.x[i], sc.y[i], sc.z[i]) = (pt[0], pt[1], pt[2]);
                }
                for (path, factor) in o.iter_mut().enumerate() {
                    // Largest -(h / w)^2 per segment: one exp per segment afterwards.
                    sc.best.fill(f64::NEG_INFINITY);
                    for piece in &pieces[path * 2..path * 2 + 2] {
                        piece_args(piece, sc, &radius, wavelength);
                        for (&arg, &s) in sc.arg.iter().zip(body.point_segment) {
                            let slot = &mut sc.best[s as usize];
                            if arg > *slot {
                                *slot = arg;
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
}

impl Scratch {
    fn new(points: usize, segments: usize) -> Self {
        Self {
            x: vec![0.0; points],
            y: vec![0.0; points],
            z: vec![0.0; points],
            arg: vec![0.0; points],
            best: vec![0.0; segments],
        }
    }
}

multiversion! {
    fn piece_args(pc: &Piece, sc: &mut Scratch, radius: &[f64], wavelength: f64) -> ();
    wide = piece_args_lanes(pc, sc, radius, wavelength);
    base = piece_args_lanes(pc, sc, radius, wavelength);
}

/// -(h / w)^2 of every point for one piece. The operations and their order are
/// those of the per-point formula (no fused multiply-add), so the result is the
/// same to the bit whatever the vector width.
#[inline(always)]
fn piece_args_lanes(pc: &Piece, sc: &mut Scratch, radius: &[f64], wavelength: f64) {
    let (a, ab, ab2, len, before, total) = (pc.a, pc.ab, pc.ab2, pc.len, pc.before, pc.total);
    let points = sc.x.iter().zip(&sc.y).zip(&sc.z).zip(radius);
    for (out, (((&x, &y), &z), &r)) in sc.arg.iter_mut().zip(points) {
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
}
