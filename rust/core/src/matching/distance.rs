//! The distance cost of person matching for many frames at once: for every
//! (prediction, true person) pair of a frame, the mean Euclidean distance
//! over the true person's visible joints (NaN when a prediction's visible
//! joint is NaN, so the pair can never be matched).

use std::ops::Range;

use crate::metrics::simd::multiversion;
use crate::threads::map_chunks;
use crate::{Error, Result};

/// Frames per parallel chunk: a frame of 8 x 8 people is about 1,000 joint distances.
const FRAMES_PER_CHUNK: usize = 64;

/// Poses of one side: `[people, joints, dims]` row-major float32 (the
/// library's pose type; each coordinate is widened to float64 exactly as it
/// is read), with per-frame offsets `[frames + 1]` into the people.
#[derive(Debug, Clone, Copy)]
pub struct People<'a> {
    pub poses: &'a [f32],
    pub offsets: &'a [usize],
}

/// The `[P_f, G_f]` blocks of every frame `f`, concatenated in frame order:
/// `pred` and `gt` of `joints` x `dims` values per person, `visible`
/// `[G, joints]` for the true people.
pub fn pair_distances(
    pred: &People<'_>,
    gt: &People<'_>,
    visible: &[bool],
    joints: usize,
    dims: usize,
) -> Result<Vec<f64>> {
    let per = joints
        .checked_mul(dims)
        .ok_or_else(|| Error::Shape("too many joints".into()))?;
    if per == 0 {
        return Err(Error::Shape("people need at least one joint".into()));
    }
    let frames = pred.offsets.len().saturating_sub(1);
    if gt.offsets.len() != pred.offsets.len() || pred.offsets.is_empty() {
        return Err(Error::Shape(
            "prediction and ground-truth offsets must be [frames + 1]".into(),
        ));
    }
    for (name, side) in [("prediction", pred), ("ground-truth", gt)] {
        let n = side.poses.len() / per;
        let o = side.offsets;
        let ok = side.poses.len() % per == 0
            && o.first() == Some(&0)
            && o.last() == Some(&n)
            && o.windows(2).all(|w| w[0] <= w[1]);
        if !ok {
            return Err(Error::Shape(format!(
                "{name} offsets must start at 0, never decrease and end at the {n} people"
            )));
        }
    }
    let n_gt = gt.poses.len() / per;
    if visible.len() != n_gt * joints {
        return Err(Error::Shape(format!("visible must be [{n_gt}, {joints}]")));
    }
    // Where each frame's block starts, checked for overflow.
    let mut starts = vec![0usize; frames + 1];
    for f in 0..frames {
        let pairs = (pred.offsets[f + 1] - pred.offsets[f])
            .checked_mul(gt.offsets[f + 1] - gt.offsets[f])
            .and_then(|n| n.checked_add(starts[f]))
            .ok_or_else(|| Error::Shape("too many pairs".into()))?;
        starts[f + 1] = pairs;
    }
    let parts = map_chunks(frames, FRAMES_PER_CHUNK, |range| {
        frame_blocks(pred, gt, visible, [joints, dims], range)
    })?;
    Ok(parts.concat())
}

multiversion! {
    fn frame_blocks<'a>(pred: &People<'a>, gt: &People<'a>, visible: &[bool], shape: [usize; 2], range: Range<usize>) -> Vec<f64>;
    wide = blocks(pred, gt, visible, shape, range);
    base = blocks(pred, gt, visible, shape, range);
}

/// The blocks of frames `range`, one after another.
#[inline(always)]
fn blocks(
    pred: &People<'_>,
    gt: &People<'_>,
    visible: &[bool],
    [joints, dims]: [usize; 2],
    range: Range<usize>,
) -> Vec<f64> {
    let per = joints * dims;
    let (first, last) = (range.start, range.end);
    let pairs =
        |f: usize| (pred.offsets[f + 1] - pred.offsets[f]) * (gt.offsets[f + 1] - gt.offsets[f]);
    let mut out = Vec::with_capacity((first..last).map(pairs).sum());
    let mut root = vec![0.0f64; joints];
    for f in range {
        for p in pred.offsets[f]..pred.offsets[f + 1] {
            let a = &pred.poses[p * per..(p + 1) * per];
            for g in gt.offsets[f]..gt.offsets[f + 1] {
                let b = &gt.poses[g * per..(g + 1) * per];
                let vis = &visible[g * joints..(g + 1) * joints];
                match dims {
                    2 => roots::<2>(a, b, &mut root),
                    3 => roots::<3>(a, b, &mut root),
                    _ => roots_any(a, b, dims, &mut root),
                }
                out.push(mean_visible(&root, vis));
            }
        }
    }
    out
}

/// Each joint's distance |x - y|: the squares summed over the dimensions in
/// order, then the square root, for every joint in one vector loop (visible
/// or not: the sum below adds only the visible ones).
#[inline(always)]
fn roots<const D: usize>(a: &[f32], b: &[f32], root: &mut [f64]) {
    for ((r, x), y) in root
        .iter_mut()
        .zip(a.chunks_exact(D))
        .zip(b.chunks_exact(D))
    {
        let mut d2 = 0.0;
        for c in 0..D {
            let t = f64::from(x[c]) - f64::from(y[c]);
            d2 += t * t;
        }
        *r = d2.sqrt();
    }
}

/// [`roots`] for any dimension.
#[inline(always)]
fn roots_any(a: &[f32], b: &[f32], dims: usize, root: &mut [f64]) {
    for ((r, x), y) in root
        .iter_mut()
        .zip(a.chunks_exact(dims))
        .zip(b.chunks_exact(dims))
    {
        let d2: f64 = x
            .iter()
            .zip(y)
            .map(|(&s, &t)| f64::from(s) - f64::from(t))
            .map(|t| t * t)
            .sum();
        *r = d2.sqrt();
    }
}

/// The mean of the visible joints' distances, summed in joint order (adding
/// 0 for a hidden joint leaves the sum's bits as skipping it would). No
/// visible joint: 0 / 0, NaN, as numpy gives (never matched).
#[inline(always)]
fn mean_visible(root: &[f64], vis: &[bool]) -> f64 {
    let (mut sum, mut count) = (0.0f64, 0usize);
    for (&r, &v) in root.iter().zip(vis) {
        sum += if v { r } else { 0.0 };
        count += usize::from(v);
    }
    sum / count as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_distance_over_visible_joints_per_frame_block() {
        // Frame 0: 2 predictions x 1 person; frame 1: 1 prediction x 2 people. 2 joints, 2-D.
        let pred = [
            0.0f32, 0.0, 3.0, 4.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0,
        ];
        let gt = [
            0.0f32, 0.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0, 6.0, 8.0, 9.0, 9.0,
        ];
        let vis = [true, true, true, true, true, false];
        let out = pair_distances(
            &People {
                poses: &pred,
                offsets: &[0, 2, 3],
            },
            &People {
                poses: &gt,
                offsets: &[0, 1, 3],
            },
            &vis,
            2,
            2,
        )
        .unwrap();
        let s2 = 2f64.sqrt();
        assert_eq!(out, vec![2.5, s2, 2.5, 10.0]);
    }

    /// The per-joint loop this kernel replaced (each visible joint's distance
    /// added in turn): the vector form must give the same bits, NaN included.
    #[test]
    fn equals_the_joint_by_joint_loop_to_the_bit() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for (joints, dims) in [(17, 2), (5, 3), (3, 4), (1, 2)] {
            let per = joints * dims;
            let (np, ng) = ([0usize, 3, 3, 7, 9], [0usize, 2, 5, 5, 9]);
            let mut value = |i: usize| match i % 23 {
                0 => f32::NAN,
                5 => 0.0,
                _ => (next() * 100.0 - 50.0) as f32,
            };
            let pred: Vec<f32> = (0..np[4] * per).map(&mut value).collect();
            let gt: Vec<f32> = (0..ng[4] * per).map(&mut value).collect();
            let visible: Vec<bool> = (0..ng[4] * joints)
                .map(|i| i % 4 != 1 && i % 9 != 0)
                .collect();
            let got = pair_distances(
                &People {
                    poses: &pred,
                    offsets: &np,
                },
                &People {
                    poses: &gt,
                    offsets: &ng,
                },
                &visible,
                joints,
                dims,
            )
            .unwrap();
            let mut want = Vec::new();
            for f in 0..4 {
                for p in np[f]..np[f + 1] {
                    for g in ng[f]..ng[f + 1] {
                        let (mut sum, mut count) = (0.0f64, 0usize);
                        for j in 0..joints {
                            if visible[g * joints + j] {
                                let (x, y) = (
                                    &pred[(p * joints + j) * dims..],
                                    &gt[(g * joints + j) * dims..],
                                );
                                let d2: f64 = (0..dims)
                                    .map(|c| f64::from(x[c]) - f64::from(y[c]))
                                    .map(|t| t * t)
                                    .sum();
                                sum += d2.sqrt();
                                count += 1;
                            }
                        }
                        want.push(sum / count as f64);
                    }
                }
            }
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{joints} x {dims}");
        }
    }

    #[test]
    fn shapes_are_checked() {
        let p = People {
            poses: &[0.0f32; 4],
            offsets: &[0, 1],
        };
        assert!(pair_distances(&p, &p, &[true], 2, 2).is_err());
        assert!(pair_distances(&p, &p, &[true, true], 0, 2).is_err());
        let bad = People {
            poses: &[0.0f32; 4],
            offsets: &[0, 2],
        };
        assert!(pair_distances(&bad, &p, &[true, true], 2, 2).is_err());
        assert!(pair_distances(&p, &p, &[true, true], 2, 2).is_ok());
    }
}
