//! Body shadowing of static propagation paths (the Fresnel-zone model).
//!
//! A body segment s obstructs a path by o_s = b_s max exp(-(h / w)^2) over the
//! segment's sample points, where h is the distance from a point to the path
//! (two straight pieces) and w = F / 2 + r_s, F the first Fresnel radius at
//! the nearest point of the path and r_s the segment radius. Obstructions
//! combine as o = 1 - prod_s (1 - o_s) and the path keeps 1 - (1 - floor) o
//! of its amplitude.

use rayon::prelude::*;

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

/// Fill `out` `[n, links, paths]` with the amplitude factor of every path.
pub fn shadowing(
    geo: &PathGeometry<'_>,
    body: &Bodies<'_>,
    wavelength: f64,
    floor: f64,
    out: &mut [f64],
) -> Result<()> {
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
    if lp == 0 {
        // No paths: nothing to fill (and par_chunks_mut(0) would panic).
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
}
