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

/// Body segments: `points` `[n, u, 3]` per frame; the segments' sample points
/// `[q]`, each the point `point_index[i]` (or the i-th point when `None`, u = q)
/// of segment `point_segment[i]`; per segment a radius and a blocking strength
/// (`[segments]`). A point shared by segments (a joint) is given once, so its
/// distance to a path and the Fresnel radius there are computed once.
#[derive(Debug, Clone, Copy)]
pub struct Bodies<'a> {
    pub points: &'a [f64],
    pub point_segment: &'a [u32],
    pub point_index: Option<&'a [u32]>,
    pub radius: &'a [f64],
    pub block: &'a [f64],
    pub n: usize,
}

/// The shapes and values both forms need; returns (links x paths, distinct
/// points per frame, the sample points' indices into them, segments).
fn check(
    geo: &PathGeometry<'_>,
    body: &Bodies<'_>,
    wavelength: f64,
    floor: f64,
    out: &[f64],
) -> Result<(usize, usize, Vec<u32>, usize)> {
    let (l, p, n) = (geo.links, geo.paths, body.n);
    let q = body.point_segment.len();
    let segments = body.radius.len();
    let (u, index) = match body.point_index {
        None => (q, (0..q as u32).collect()),
        Some(index) => {
            let u = if n == 0 {
                0
            } else {
                body.points.len() / (n * 3)
            };
            if index.len() != q || (n > 0 && index.iter().any(|&i| i as usize >= u)) {
                return Err(Error::Shape(format!(
                    "point_index must have {q} entries, each < {u} (the points per frame)"
                )));
            }
            (u, index.to_vec())
        }
    };
    let lp = l * p;
    if geo.pieces.len() != lp * 12 || geo.offset.len() != lp * 2 || geo.length.len() != lp {
        return Err(Error::Shape(format!(
            "path geometry must describe [{l}, {p}] paths"
        )));
    }
    if body.points.len() != n * u * 3 || body.block.len() != segments || out.len() != n * lp {
        return Err(Error::Shape(format!(
            "bodies and output must match [{n}] frames of {u} points"
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
    Ok((lp, u, index, segments))
}

/// Fill `out` `[n, links, paths]` with the amplitude factor of every path.
pub fn shadowing(
    geo: &PathGeometry<'_>,
    body: &Bodies<'_>,
    wavelength: f64,
    floor: f64,
    out: &mut [f64],
) -> Result<()> {
    let (lp, u, index, segments) = check(geo, body, wavelength, floor, out)?;
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
    let q = index.len();
    // Runs of consecutive sample points on the same segment (a segment's ends and middle).
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for (i, &s) in body.point_segment.iter().enumerate() {
        match runs.last_mut() {
            Some(run) if run.2 == s as usize => run.1 = i + 1,
            _ => runs.push((i, i + 1, s as usize)),
        }
    }
    // The simulator's layout: segment s is sampled by points 3 s, 3 s + 1, 3 s + 2.
    // Then each segment's largest argument is a vector loop over segments, with
    // no per-point scatter: the three points' indices as three planes.
    let triples = (q == 3 * segments
        && body
            .point_segment
            .iter()
            .enumerate()
            .all(|(i, &s)| s as usize == i / 3))
    .then(|| {
        [0, 1, 2].map(|j| {
            index
                .iter()
                .skip(j)
                .step_by(3)
                .map(|&i| i as usize)
                .collect::<Vec<usize>>()
        })
    });
    install(|| {
        out.par_chunks_mut(lp).enumerate().for_each_init(
            || Scratch::new(u, q, segments),
            |sc, (frame, o)| {
                // The frame's points as x, y, z columns: the point loop below runs in vector lanes.
                let pts = &body.points[frame * u * 3..(frame + 1) * u * 3];
                for (i, pt) in pts.chunks_exact(3).enumerate() {
                    (sc.x[i], sc.y[i], sc.z[i]) = (pt[0], pt[1], pt[2]);
                }
                for (path, factor) in o.iter_mut().enumerate() {
                    // Largest -(h / w)^2 per segment: one exp per segment afterwards.
                    sc.best.fill(f64::NEG_INFINITY);
                    for piece in &pieces[path * 2..path * 2 + 2] {
                        if let Some(planes) = &triples {
                            piece_best(piece, sc, planes, body.radius, wavelength);
                            continue;
                        }
                        piece_args(piece, sc, &index, &radius, wavelength);
                        // The largest of each run first, without branches (maxsd keeps the
                        // same value as the comparison below: the largest, NaN never taken).
                        for &(lo, hi, s) in &runs {
                            let most = sc
                                .arg
                                .get(lo..hi)
                                .unwrap_or_default()
                                .iter()
                                .fold(f64::NEG_INFINITY, |m, &a| if a > m { a } else { m });
                            if let Some(slot) = sc.best.get_mut(s)
                                && most > *slot
                            {
                                *slot = most;
                            }
                        }
                    }
                    let kept: f64 = sc
                        .best
                        .iter()
                        .zip(body.block)
                        .map(|(&x, &b)| unshadowed(x, b))
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
    let (lp, u, index, segments) = check(geo, body, wavelength, floor, out)?;
    if lp == 0 {
        return Ok(());
    }
    install(|| {
        out.par_chunks_mut(lp).enumerate().for_each_init(
            || vec![0.0f64; segments],
            |best, (frame, o)| {
                let pts = &body.points[frame * u * 3..(frame + 1) * u * 3];
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
                        for (&i, &s) in index.iter().zip(body.point_segment) {
                            let pt = &pts[i as usize * 3..i as usize * 3 + 3];
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

/// The part 1 - b exp(x) of a path a segment leaves. Below x = -40, |b| <= 1,
/// |b| exp(x) < 4.3e-18 is under half an ulp of 1 (2^-54 = 5.6e-17), so the
/// rounded result is exactly 1.0: skipping the exp there changes no bit.
#[inline(always)]
fn unshadowed(x: f64, b: f64) -> f64 {
    if x < -40.0 && b.abs() <= 1.0 {
        1.0
    } else {
        1.0 - b * x.exp()
    }
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

/// Per-thread buffers: one frame's distinct points by coordinate, their squared
/// distance to the piece and half Fresnel radius there, the sample points'
/// arguments, the per-segment maxima.
struct Scratch {
    x: Vec<f64>,
    y: Vec<f64>,
    z: Vec<f64>,
    h2: Vec<f64>,
    half: Vec<f64>,
    arg: Vec<f64>,
    gathered: Vec<f64>,
    best: Vec<f64>,
}

impl Scratch {
    fn new(points: usize, samples: usize, segments: usize) -> Self {
        Self {
            x: vec![0.0; points],
            y: vec![0.0; points],
            z: vec![0.0; points],
            h2: vec![0.0; points],
            half: vec![0.0; points],
            arg: vec![0.0; samples],
            gathered: vec![0.0; samples],
            best: vec![0.0; segments],
        }
    }
}

multiversion! {
    fn piece_args(pc: &Piece, sc: &mut Scratch, index: &[u32], radius: &[f64], wavelength: f64) -> ();
    wide = piece_args_lanes(pc, sc, index, radius, wavelength);
    base = piece_args_lanes(pc, sc, index, radius, wavelength);
}

multiversion! {
    fn piece_best(pc: &Piece, sc: &mut Scratch, planes: &[Vec<usize>; 3], radius: &[f64], wavelength: f64) -> ();
    wide = piece_best_lanes(pc, sc, planes, radius, wavelength);
    base = piece_best_lanes(pc, sc, planes, radius, wavelength);
}

/// Raise each segment's largest -(h / w)^2 with its three sample points'
/// arguments for one piece, in the points' order with the same comparison as
/// the per-point loop (the same bits, ties and NaN included).
#[inline(always)]
fn piece_best_lanes(
    pc: &Piece,
    sc: &mut Scratch,
    planes: &[Vec<usize>; 3],
    radius: &[f64],
    wavelength: f64,
) {
    distinct_terms(pc, sc, wavelength);
    let s = sc.best.len();
    let last = sc.h2.len().min(sc.half.len());
    if last == 0 {
        return; // no points (then no segment samples any)
    }
    // Gather the points' terms into planes (scalar), then one contiguous vector loop.
    for (j, plane) in planes.iter().enumerate() {
        let (gh2, ghalf) = (
            &mut sc.arg[j * s..(j + 1) * s],
            &mut sc.gathered[j * s..(j + 1) * s],
        );
        // check() proved every index < the points per frame; min() only keeps a
        // panic out, without the two branches per point that get() cost.
        let (h2, half) = (&sc.h2[..last], &sc.half[..last]);
        for ((g2, gh), &i) in gh2.iter_mut().zip(ghalf.iter_mut()).zip(plane) {
            let i = i.min(last - 1);
            (*g2, *gh) = (h2[i], half[i]);
        }
    }
    let (h2, half) = (&sc.arg[..], &sc.gathered[..]);
    let (h2, half) = (
        (&h2[..s], &h2[s..2 * s], &h2[2 * s..3 * s]),
        (&half[..s], &half[s..2 * s], &half[2 * s..3 * s]),
    );
    let terms = radius
        .iter()
        .zip(h2.0.iter().zip(h2.1).zip(h2.2))
        .zip(half.0.iter().zip(half.1).zip(half.2));
    for (best, (&r, ((&a0, &a1), &a2), ((&f0, &f1), &f2))) in
        sc.best.iter_mut().zip(terms.map(|((r, h), f)| (r, h, f)))
    {
        let mut m = *best;
        for (h2, half) in [(a0, f0), (a1, f1), (a2, f2)] {
            let w = half + r;
            let arg = -h2 / (w * w);
            m = if arg > m { arg } else { m };
        }
        *best = m;
    }
}

/// h^2 and F / 2 of every distinct point for one piece (the per-point formula's operations).
#[inline(always)]
fn distinct_terms(pc: &Piece, sc: &mut Scratch, wavelength: f64) {
    let (a, ab, ab2, len, before, total) = (pc.a, pc.ab, pc.ab2, pc.len, pc.before, pc.total);
    let points = sc.x.iter().zip(&sc.y).zip(&sc.z);
    for ((h2, half), ((&x, &y), &z)) in sc.h2.iter_mut().zip(sc.half.iter_mut()).zip(points) {
        let ap = [x - a[0], y - a[1], z - a[2]];
        let u = ((ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / ab2).clamp(0.0, 1.0);
        let c = [ap[0] - u * ab[0], ap[1] - u * ab[1], ap[2] - u * ab[2]];
        *h2 = c[0] * c[0] + c[1] * c[1] + c[2] * c[2];
        let d1 = before + u * len;
        *half = 0.5 * (wavelength * (d1 * (total - d1)).max(0.0) / total).sqrt();
    }
}

/// -(h / w)^2 of every sample point for one piece: h^2 and F / 2 once per
/// distinct point, then w = F / 2 + r per sample. The operations and their
/// order are those of the per-point formula (no fused multiply-add), so the
/// result is the same to the bit whatever the vector width or sharing.
#[inline(always)]
fn piece_args_lanes(pc: &Piece, sc: &mut Scratch, index: &[u32], radius: &[f64], wavelength: f64) {
    distinct_terms(pc, sc, wavelength);
    let (h2, half) = (&sc.h2, &sc.half);
    for ((out, &i), &r) in sc.arg.iter_mut().zip(index).zip(radius) {
        // check() proved every index < the points per frame; get() keeps a panic out regardless.
        let (Some(&h2), Some(&half)) = (h2.get(i as usize), half.get(i as usize)) else {
            continue;
        };
        let w = half + r;
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
            point_index: None,
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
            point_index: None,
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
            point_index: None,
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
    fn shared_points_equal_the_points_written_out_to_the_bit() {
        // Two frames of 4 distinct points sampled by 3 segments, a joint in several of them:
        // any layout (the generic scatter) and three points per segment (the planes).
        let wave = |i: usize, a: f64| a * ((i as f64) * 0.41).sin();
        let pieces: Vec<f64> = (0..4 * 12).map(|i| 1.5 + wave(i, 1.4)).collect();
        let length: Vec<f64> = (0..4).map(|i| 4.0 + wave(i, 1.0)).collect();
        let offset: Vec<f64> = (0..8)
            .map(|i| if i % 2 == 0 { 0.0 } else { 2.0 + wave(i, 0.5) })
            .collect();
        let geo = PathGeometry {
            pieces: &pieces,
            offset: &offset,
            length: &length,
            links: 1,
            paths: 4,
        };
        let distinct: Vec<f64> = (0..2 * 4 * 3).map(|i| 1.5 + wave(i + 5, 1.2)).collect();
        let layouts: [(&[u32], &[u32]); 2] = [
            (&[0, 1, 1, 2, 2, 3, 0], &[0, 0, 1, 1, 2, 2, 2]),
            (&[0, 3, 1, 1, 2, 2, 2, 0, 3], &[0, 0, 0, 1, 1, 1, 2, 2, 2]),
        ];
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (index, segs) in layouts {
            let written: Vec<f64> = (0..2)
                .flat_map(|f| index.iter().map(move |&i| (f * 4 + i as usize) * 3))
                .flat_map(|at| distinct[at..at + 3].to_vec())
                .collect();
            let body = |points, point_index| Bodies {
                points,
                point_segment: segs,
                point_index,
                radius: &[0.05, 0.1, 0.2],
                block: &[0.5, 0.9, 1.0],
                n: 2,
            };
            let mut want = vec![0.0; 8];
            shadowing_pointwise(&geo, &body(&written, None), 0.057, 0.15, &mut want).unwrap();
            assert!(want.iter().any(|&x| x < 0.999), "{want:?}");
            for kernel in [shadowing, shadowing_pointwise] {
                let mut got = vec![0.0; 8];
                kernel(&geo, &body(&distinct, Some(index)), 0.057, 0.15, &mut got).unwrap();
                assert_eq!(bits(&got), bits(&want));
                kernel(&geo, &body(&written, None), 0.057, 0.15, &mut got).unwrap();
                assert_eq!(bits(&got), bits(&want));
            }
            let mut bad = index.to_vec();
            bad[1] = 4;
            let mut out = vec![0.0; 8];
            let err = shadowing(&geo, &body(&distinct, Some(&bad)), 0.057, 0.15, &mut out);
            assert!(matches!(err, Err(Error::Shape(_))), "{err:?}");
        }
    }
}
