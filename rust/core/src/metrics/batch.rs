//! A validated view of predicted and ground-truth poses.

use crate::{Error, Result};

/// Predictions and ground truth `[n, k, d]` (row-major float32) with an
/// optional visibility mask `[n, k]` (true = labelled in the ground truth).
#[derive(Debug, Clone, Copy)]
pub struct PoseBatch<'a> {
    pred: &'a [f32],
    gt: &'a [f32],
    visible: Option<&'a [bool]>,
    n: usize,
    k: usize,
    d: usize,
}

impl<'a> PoseBatch<'a> {
    /// Check that the slices hold `n * k * d` values with `d` in {2, 3} and `k >= 1`.
    pub fn new(
        pred: &'a [f32],
        gt: &'a [f32],
        visible: Option<&'a [bool]>,
        [n, k, d]: [usize; 3],
    ) -> Result<Self> {
        if d != 2 && d != 3 {
            return Err(Error::Shape(format!(
                "poses must have 2 or 3 coordinates per joint, got {d}"
            )));
        }
        if k == 0 {
            return Err(Error::Shape("poses must have at least one joint".into()));
        }
        let len = n
            .checked_mul(k)
            .and_then(|nk| nk.checked_mul(d))
            .ok_or_else(|| Error::Shape(format!("shape [{n}, {k}, {d}] is too large")))?;
        for (name, s) in [("pred", pred), ("gt", gt)] {
            if s.len() != len {
                return Err(Error::Shape(format!(
                    "{name} holds {} values, expected [{n}, {k}, {d}] = {len}",
                    s.len()
                )));
            }
        }
        if let Some(v) = visible
            && v.len() != n * k
        {
            return Err(Error::Shape(format!(
                "visible holds {} values, expected [{n}, {k}] = {}",
                v.len(),
                n * k
            )));
        }
        Ok(Self {
            pred,
            gt,
            visible,
            n,
            k,
            d,
        })
    }

    /// Number of samples.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Joints per sample.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Coordinates per joint.
    pub fn d(&self) -> usize {
        self.d
    }

    /// Prediction, ground truth and visibility of sample `i < n`.
    pub(crate) fn sample(&self, i: usize) -> (&'a [f32], &'a [f32], Option<&'a [bool]>) {
        let w = self.k * self.d;
        let r = i * w..(i + 1) * w;
        (
            &self.pred[r.clone()],
            &self.gt[r],
            self.visible.map(|v| &v[i * self.k..(i + 1) * self.k]),
        )
    }

    /// Prediction, ground truth and visibility of the samples in `rows`, flat.
    pub(crate) fn rows(
        &self,
        rows: std::ops::Range<usize>,
    ) -> (&'a [f32], &'a [f32], Option<&'a [bool]>) {
        let w = self.k * self.d;
        let r = rows.start * w..rows.end * w;
        (
            &self.pred[r.clone()],
            &self.gt[r],
            self.visible
                .map(|v| &v[rows.start * self.k..rows.end * self.k]),
        )
    }

    /// Error for the first visible ground-truth joint with a NaN or infinite
    /// coordinate: ground truth must be finite wherever it is labelled.
    pub(crate) fn check_gt_finite(&self, first_bad: Option<usize>) -> Result<()> {
        match first_bad {
            None => Ok(()),
            Some(e) => Err(Error::Value(format!(
                "gt has a NaN or infinite coordinate at sample {}, joint {}; \
                 clean it or mark the joint invisible",
                e / self.k,
                e % self.k
            ))),
        }
    }
}

/// Index `i * k + j` of the first visible non-finite ground-truth joint among
/// the samples from `start` whose flat ground truth is `g`.
#[inline(always)]
pub(crate) fn first_nonfinite_gt_rows(
    start: usize,
    g: &[f32],
    vis: Option<&[bool]>,
    k: usize,
    d: usize,
) -> Option<usize> {
    // Branch-free scan first: ground truth is almost always finite.
    if g.iter().fold(true, |ok, x| ok & x.is_finite()) {
        return None;
    }
    g.chunks_exact(k * d).enumerate().find_map(|(row, gi)| {
        first_nonfinite_gt(start + row, gi, vis.map(|v| &v[row * k..(row + 1) * k]), d)
    })
}

/// Index `i * k + j` of the first visible joint of sample `i` whose ground truth is not finite.
pub(crate) fn first_nonfinite_gt(
    i: usize,
    gt: &[f32],
    vis: Option<&[bool]>,
    d: usize,
) -> Option<usize> {
    let k = gt.len() / d;
    gt.chunks_exact(d)
        .enumerate()
        .find(|(j, g)| vis.is_none_or(|v| v[*j]) && g.iter().any(|x| !x.is_finite()))
        .map(|(j, _)| i * k + j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_shapes() {
        let a = [0f32; 12];
        assert!(PoseBatch::new(&a, &a, None, [2, 3, 2]).is_ok());
        assert!(PoseBatch::new(&a, &a, None, [1, 3, 4]).is_err());
        assert!(PoseBatch::new(&a, &a, None, [2, 0, 2]).is_err());
        assert!(PoseBatch::new(&a, &a[..10], None, [2, 3, 2]).is_err());
        assert!(PoseBatch::new(&a, &a, Some(&[true; 5]), [2, 3, 2]).is_err());
        assert!(PoseBatch::new(&a, &a, None, [usize::MAX, 3, 2]).is_err());
    }

    #[test]
    fn finds_nonfinite_visible_gt_only() {
        let g = [0.0, 0.0, f32::NAN, 1.0];
        assert_eq!(first_nonfinite_gt(3, &g, None, 2), Some(3 * 2 + 1));
        assert_eq!(first_nonfinite_gt(3, &g, Some(&[true, false]), 2), None);
    }
}
