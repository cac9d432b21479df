//! The distance cost of person matching for many frames at once: for every
//! (prediction, true person) pair of a frame, the mean Euclidean distance
//! over the true person's visible joints (NaN when a prediction's visible
//! joint is NaN, so the pair can never be matched).

use crate::threads::map_chunks;
use crate::{Error, Result};

/// Frames per parallel chunk: a frame of 8 x 8 people is about 1,000 joint distances.
const FRAMES_PER_CHUNK: usize = 64;

/// Poses of one side: `[people, joints, dims]` row-major, with per-frame
/// offsets `[frames + 1]` into the people.
#[derive(Debug, Clone, Copy)]
pub struct People<'a> {
    pub poses: &'a [f64],
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
        let mut out = Vec::with_capacity(starts[range.end] - starts[range.start]);
        for f in range {
            for p in pred.offsets[f]..pred.offsets[f + 1] {
                let a = &pred.poses[p * per..(p + 1) * per];
                for g in gt.offsets[f]..gt.offsets[f + 1] {
                    let b = &gt.poses[g * per..(g + 1) * per];
                    let vis = &visible[g * joints..(g + 1) * joints];
                    let (mut sum, mut count) = (0.0f64, 0usize);
                    let pairs = a.chunks_exact(dims).zip(b.chunks_exact(dims)).zip(vis);
                    for ((x, y), &v) in pairs {
                        if v {
                            let d2: f64 = x.iter().zip(y).map(|(s, t)| (s - t) * (s - t)).sum();
                            sum += d2.sqrt();
                            count += 1;
                        }
                    }
                    // No visible joint: 0 / 0, NaN, as numpy gives (never matched).
                    out.push(sum / count as f64);
                }
            }
        }
        out
    })?;
    Ok(parts.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_distance_over_visible_joints_per_frame_block() {
        // Frame 0: 2 predictions x 1 person; frame 1: 1 prediction x 2 people. 2 joints, 2-D.
        let pred = [0.0, 0.0, 3.0, 4.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0];
        let gt = [0.0, 0.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0, 6.0, 8.0, 9.0, 9.0];
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

    #[test]
    fn shapes_are_checked() {
        let p = People {
            poses: &[0.0; 4],
            offsets: &[0, 1],
        };
        assert!(pair_distances(&p, &p, &[true], 2, 2).is_err());
        assert!(pair_distances(&p, &p, &[true, true], 0, 2).is_err());
        let bad = People {
            poses: &[0.0; 4],
            offsets: &[0, 2],
        };
        assert!(pair_distances(&bad, &p, &[true, true], 2, 2).is_err());
        assert!(pair_distances(&p, &p, &[true, true], 2, 2).is_ok());
    }
}
