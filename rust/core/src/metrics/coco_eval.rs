//! COCO keypoint evaluation per image, as `pycocotools` `COCOeval`:
//! `computeOks` (the OKS of every detection against every ground truth of an
//! image) and `evaluateImg` (greedy matching at each OKS threshold).
//!
//! Unlike [`super::oks`], which scores one prediction per ground truth on
//! float32 poses, these take float64 coordinates and keep pycocotools'
//! operation order (three divisions), because AP must reproduce COCOeval's
//! threshold decisions on COCO's float64 data.
//!
//! Images are ragged: image `i` owns detections `dt[i]..dt[i + 1]` and ground
//! truths `gt[i]..gt[i + 1]` of the flat arrays; its OKS block is
//! `D_i x G_i`, row-major, the blocks one after another in image order.

use crate::threads::map_chunks;
use crate::{Error, Result};

/// Images per parallel chunk (fixed, so results never depend on the thread count).
const IMAGES_PER_CHUNK: usize = 64;

/// Where each image's detections and ground truths start and end.
#[derive(Debug, Clone, Copy)]
pub struct Images<'a> {
    dt: &'a [usize],
    gt: &'a [usize],
}

impl<'a> Images<'a> {
    /// Offsets `[I + 1]` into `n_dt` detections and `n_gt` ground truths:
    /// starting at 0, non-decreasing, ending at the totals.
    pub fn new(dt: &'a [usize], gt: &'a [usize], n_dt: usize, n_gt: usize) -> Result<Self> {
        for (name, o, n) in [("detection", dt, n_dt), ("ground-truth", gt, n_gt)] {
            let ok =
                o.first() == Some(&0) && o.last() == Some(&n) && o.windows(2).all(|w| w[0] <= w[1]);
            if !ok {
                return Err(Error::Shape(format!(
                    "{name} offsets must start at 0, never decrease and end at {n}"
                )));
            }
        }
        if dt.len() != gt.len() {
            return Err(Error::Shape(format!(
                "{} detection offsets but {} ground-truth offsets",
                dt.len(),
                gt.len()
            )));
        }
        Ok(Images { dt, gt })
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.dt.len() - 1
    }

    /// True when there is no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Detections and ground truths of image `i`.
    fn ranges(&self, i: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        (self.dt[i]..self.dt[i + 1], self.gt[i]..self.gt[i + 1])
    }

    /// Start of each image's OKS block, and the total size.
    fn blocks(&self) -> Result<Vec<usize>> {
        let mut at = vec![0usize; self.len() + 1];
        for i in 0..self.len() {
            let (d, g) = self.ranges(i);
            at[i + 1] = d
                .len()
                .checked_mul(g.len())
                .and_then(|n| n.checked_add(at[i]))
                .ok_or_else(|| Error::Shape("too many detection / ground-truth pairs".into()))?;
        }
        Ok(at)
    }
}

/// The ground truth and constants of [`oks_matrices`].
#[derive(Debug, Clone, Copy)]
pub struct OksGt<'a> {
    /// `[G, K, 2]` keypoints.
    pub keypoints: &'a [f64],
    /// `[G, K]`, true where a keypoint is labelled (COCO v > 0).
    pub labelled: &'a [bool],
    /// `[G]` object areas s^2.
    pub area: &'a [f64],
    /// `[G, 4]` (x, y, w, h); needed only for a ground truth without a labelled keypoint.
    pub bbox: Option<&'a [f64]>,
    /// `[K]` per-keypoint sigmas (kappa = 2 sigma).
    pub sigmas: &'a [f64],
}

impl OksGt<'_> {
    fn validate(&self, n_gt: usize) -> Result<usize> {
        let k = self.sigmas.len();
        if k == 0 {
            return Err(Error::Shape("sigmas must not be empty".into()));
        }
        if let Some(s) = self.sigmas.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(Error::Value(format!(
                "sigmas must be finite and > 0, got {s}"
            )));
        }
        let sizes = [
            (
                "keypoints",
                self.keypoints.len(),
                n_gt.saturating_mul(k * 2),
            ),
            ("labelled", self.labelled.len(), n_gt.saturating_mul(k)),
            ("area", self.area.len(), n_gt),
            (
                "bbox",
                self.bbox.map_or(n_gt.saturating_mul(4), <[f64]>::len),
                n_gt.saturating_mul(4),
            ),
        ];
        for (name, got, want) in sizes {
            if got != want {
                return Err(Error::Shape(format!(
                    "ground-truth {name} holds {got} values, expected {want}"
                )));
            }
        }
        if let Some(g) = self.area.iter().position(|a| !(a.is_finite() && *a >= 0.0)) {
            return Err(Error::Value(format!(
                "area of ground truth {g} must be finite and >= 0, got {}",
                self.area[g]
            )));
        }
        for g in 0..n_gt {
            let vis = &self.labelled[g * k..(g + 1) * k];
            let kp = &self.keypoints[g * 2 * k..(g + 1) * 2 * k];
            let bad = kp
                .chunks_exact(2)
                .zip(vis)
                .any(|(xy, &v)| v && !(xy[0].is_finite() && xy[1].is_finite()));
            if bad {
                return Err(Error::Value(format!(
                    "ground truth {g} has a non-finite labelled keypoint"
                )));
            }
            if !vis.contains(&true) {
                match self.bbox.map(|b| &b[4 * g..4 * g + 4]) {
                    None => {
                        return Err(Error::Value(format!(
                            "ground truth {g} has no labelled keypoint; COCO then scores \
                             against its bounding box, so pass bboxes"
                        )));
                    }
                    Some(b) if !b.iter().all(|x| x.is_finite()) => {
                        return Err(Error::Value(format!(
                            "bbox of ground truth {g} must be finite, got {b:?}"
                        )));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(k)
    }

    /// `computeOks` for one detection `d` `[K, 2]` and ground truth `g`.
    /// A non-finite term (a NaN or infinite detected keypoint) counts as 0.
    fn oks(&self, d: &[f64], g: usize, vars: &[f64]) -> f64 {
        let k = vars.len();
        let vis = &self.labelled[g * k..(g + 1) * k];
        let kp = &self.keypoints[g * 2 * k..(g + 1) * 2 * k];
        let s2 = self.area[g] + f64::EPSILON;
        let term = |dx: f64, dy: f64, var: f64| {
            let x = (-((dx * dx + dy * dy) / var / s2 / 2.0)).exp();
            if x.is_finite() { x } else { 0.0 }
        };
        let labelled = vis.iter().filter(|&&v| v).count();
        if labelled > 0 {
            let sum: f64 = (0..k)
                .filter(|&j| vis[j])
                .map(|j| term(d[2 * j] - kp[2 * j], d[2 * j + 1] - kp[2 * j + 1], vars[j]))
                .sum();
            return sum / labelled as f64;
        }
        // No labelled keypoint: distances to an ignore box twice the bbox
        // (validate() made sure the bbox exists).
        let b = self.bbox.map_or([0.0; 4], |b| {
            [b[4 * g], b[4 * g + 1], b[4 * g + 2], b[4 * g + 3]]
        });
        let (x0, x1) = (b[0] - b[2], b[0] + b[2] * 2.0);
        let (y0, y1) = (b[1] - b[3], b[1] + b[3] * 2.0);
        let sum: f64 = (0..k)
            .map(|j| {
                let (xd, yd) = (d[2 * j], d[2 * j + 1]);
                let dx = 0f64.max(x0 - xd) + 0f64.max(xd - x1);
                let dy = 0f64.max(y0 - yd) + 0f64.max(yd - y1);
                term(dx, dy, vars[j])
            })
            .sum();
        sum / k as f64
    }
}

/// The OKS of every detection against every ground truth of each image:
/// `dt` `[D, K, 2]`, the blocks `D_i x G_i` concatenated in image order.
pub fn oks_matrices(dt: &[f64], gt: &OksGt<'_>, images: &Images<'_>) -> Result<Vec<f64>> {
    let (n_dt, n_gt) = (images.dt[images.len()], images.gt[images.len()]);
    let k = gt.validate(n_gt)?;
    if dt.len() != n_dt.saturating_mul(k * 2) {
        return Err(Error::Shape(format!(
            "detections hold {} values, expected [{n_dt}, {k}, 2]",
            dt.len()
        )));
    }
    let blocks = images.blocks()?;
    let vars: Vec<f64> = gt.sigmas.iter().map(|s| (s * 2.0) * (s * 2.0)).collect();
    let parts = map_chunks(images.len(), IMAGES_PER_CHUNK, |range| {
        let mut out = Vec::with_capacity(blocks[range.end] - blocks[range.start]);
        for i in range {
            let (ds, gs) = images.ranges(i);
            for d in ds {
                let det = &dt[d * 2 * k..(d + 1) * 2 * k];
                out.extend(gs.clone().map(|g| gt.oks(det, g, &vars)));
            }
        }
        out
    })?;
    Ok(parts.concat())
}

/// COCOeval's match of one detection at one threshold.
pub const UNMATCHED: u8 = 0;
/// Matched to a ground truth that counts (a true positive).
pub const MATCHED: u8 = 1;
/// Matched to an ignored ground truth (neither true nor false positive).
pub const MATCHED_IGNORED: u8 = 2;

/// `evaluateImg`'s greedy matching, for every image, area range and threshold.
///
/// `oks` are the blocks of [`oks_matrices`] with each image's detections
/// already sorted by descending score (and cut at maxDets). `gt_ignore`
/// `[A, G]` flags the ground truths ignored in each area range
/// (`A = n_area`), `crowd` `[G]` the crowd ones (which may match many
/// detections). Returns `[D, A, T]`:
/// [`UNMATCHED`], [`MATCHED`] or [`MATCHED_IGNORED`].
///
/// Each detection in turn takes the unmatched ground truth of highest OKS
/// (at least the threshold, capped at 1 - 1e-10; the last of equal ones),
/// preferring any that counts over an ignored one.
pub fn greedy_match(
    oks: &[f64],
    images: &Images<'_>,
    gt_ignore: &[bool],
    n_area: usize,
    crowd: &[bool],
    thresholds: &[f64],
) -> Result<Vec<u8>> {
    let (n_dt, n_gt) = (images.dt[images.len()], images.gt[images.len()]);
    let blocks = images.blocks()?;
    if oks.len() != blocks[images.len()] {
        return Err(Error::Shape(format!(
            "oks holds {} values, the images need {}",
            oks.len(),
            blocks[images.len()]
        )));
    }
    if let Some(x) = oks.iter().find(|x| x.is_nan()) {
        return Err(Error::Value(format!("oks must not be NaN, got {x}")));
    }
    if crowd.len() != n_gt || Some(gt_ignore.len()) != n_area.checked_mul(n_gt) {
        return Err(Error::Shape(format!(
            "crowd must hold {n_gt} flags and gt_ignore [{n_area}, {n_gt}], got {} and {}",
            crowd.len(),
            gt_ignore.len()
        )));
    }
    let n_t = thresholds.len();
    let width = n_area
        .checked_mul(n_t)
        .filter(|w| w.checked_mul(n_dt).is_some())
        .ok_or_else(|| Error::Shape("too many area ranges x thresholds".into()))?;
    let parts = map_chunks(images.len(), IMAGES_PER_CHUNK, |range| {
        let (d0, d1) = (images.dt[range.start], images.dt[range.end]);
        let mut out = vec![UNMATCHED; (d1 - d0) * width];
        let (mut order, mut taken) = (Vec::new(), Vec::new());
        for i in range {
            let (ds, gs) = images.ranges(i);
            let (nd, ng) = (ds.len(), gs.len());
            let block = &oks[blocks[i]..blocks[i + 1]];
            for a in 0..n_area {
                let ign = &gt_ignore[a * n_gt + gs.start..a * n_gt + gs.end];
                // Ground truths that count first, ignored ones last, each in input order.
                order.clear();
                order.extend((0..ng).filter(|&g| !ign[g]));
                order.extend((0..ng).filter(|&g| ign[g]));
                for (t, &thr) in thresholds.iter().enumerate() {
                    taken.clear();
                    taken.resize(ng, false);
                    for d in 0..nd {
                        let row = &block[d * ng..(d + 1) * ng];
                        let mut best = thr.min(1.0 - 1e-10);
                        let mut m: Option<usize> = None;
                        for &g in &order {
                            if taken[g] && !crowd[gs.start + g] {
                                continue;
                            }
                            if m.is_some_and(|m| !ign[m]) && ign[g] {
                                break;
                            }
                            if row[g] < best {
                                continue;
                            }
                            best = row[g];
                            m = Some(g);
                        }
                        if let Some(m) = m {
                            taken[m] = true;
                            let slot = (ds.start - d0 + d) * width + a * n_t + t;
                            out[slot] = if ign[m] { MATCHED_IGNORED } else { MATCHED };
                        }
                    }
                }
            }
        }
        out
    })?;
    let out = parts.concat();
    debug_assert_eq!(out.len(), n_dt * width);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oks_matrix_follows_compute_oks() {
        // One image, two detections, one ground truth with one labelled keypoint.
        let gt = OksGt {
            keypoints: &[0.0, 0.0, 5.0, 5.0],
            labelled: &[true, false],
            area: &[100.0],
            bbox: None,
            sigmas: &[0.5, 0.5],
        };
        let dt = [0.0, 0.0, 9.0, 9.0, 1.0, 0.0, 5.0, 5.0];
        let out = oks_matrices(&dt, &gt, &Images::new(&[0, 2], &[0, 1], 2, 1).unwrap()).unwrap();
        let e = 1.0 / 1.0 / (100.0 + f64::EPSILON) / 2.0;
        assert_eq!(out, vec![1.0, (-e).exp()]);
    }

    #[test]
    fn greedy_prefers_counted_ground_truth_and_respects_thresholds() {
        // One image: 2 detections x 2 ground truths; gt 1 is ignored.
        let images = Images::new(&[0, 2], &[0, 2], 2, 2).unwrap();
        let oks = [0.6, 0.9, 0.97, 0.2];
        let m = greedy_match(
            &oks,
            &images,
            &[false, true],
            1,
            &[false, false],
            &[0.5, 0.95],
        )
        .unwrap();
        // [D, A, T]: det 0 takes gt 0 at 0.5 although the ignored gt 1 scores higher;
        // at 0.95 it finds nothing; det 1 gets gt 0 at 0.95 (free there) but not at 0.5.
        assert_eq!(m, vec![MATCHED, UNMATCHED, UNMATCHED, MATCHED]);
    }

    #[test]
    fn bad_offsets_and_missing_bbox_are_errors() {
        assert!(Images::new(&[0, 2], &[0, 1], 3, 1).is_err());
        assert!(Images::new(&[0, 2, 1], &[0, 1, 1], 1, 1).is_err());
        let gt = OksGt {
            keypoints: &[0.0; 4],
            labelled: &[false, false],
            area: &[1.0],
            bbox: None,
            sigmas: &[0.5, 0.5],
        };
        let images = Images::new(&[0, 1], &[0, 1], 1, 1).unwrap();
        let e = oks_matrices(&[0.0; 4], &gt, &images).unwrap_err();
        assert!(e.to_string().contains("pass bboxes"), "{e}");
    }
}
