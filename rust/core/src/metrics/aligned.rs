//! MPJPE after a per-sample alignment of the prediction to the ground truth:
//! N-MPJPE (optimal scale) and PA-MPJPE (optimal similarity transform).

use super::batch::{PoseBatch, first_nonfinite_gt};
use super::procrustes::best_rotation;
use super::samples_per_chunk;
use crate::Result;
use crate::threads::map_chunks_out;

/// Which alignment precedes the MPJPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alignment {
    /// N-MPJPE: scale s = <P, G> / <P, P> (mmpose `alignment='scale'`).
    Scale,
    /// PA-MPJPE: similarity Procrustes (rotation with the reflection fix,
    /// isotropic scale, translation), as MM-Fi's `compute_similarity_transform`.
    Similarity,
}

impl std::str::FromStr for Alignment {
    type Err = crate::Error;

    /// `"scale"` or `"similarity"`, the names the Python API uses.
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "scale" => Ok(Self::Scale),
            "similarity" => Ok(Self::Similarity),
            other => Err(crate::Error::Value(format!(
                "unknown alignment {other:?}; expected 'scale' or 'similarity'"
            ))),
        }
    }
}

/// Sums of an aligned MPJPE.
#[derive(Debug, Clone, PartialEq)]
pub struct AlignedErrors {
    /// Sum of the aligned joint distances over the scored entries.
    pub dist_sum: f64,
    /// Entries scored.
    pub dist_count: u64,
    /// Samples with visible joints left out because the alignment is undefined
    /// (zero-extent prediction or ground truth).
    pub degenerate: u64,
}

/// Align each sample on its visible joints and measure the aligned distances.
///
/// A degenerate sample is left out and counted, never a NaN in the sum; its
/// `per_sample` entry (if asked for) is NaN, as is that of a sample with no
/// visible joint. A NaN prediction makes its sample's error NaN.
pub fn aligned_errors(
    batch: &PoseBatch<'_>,
    alignment: Alignment,
    per_sample: Option<&mut [f64]>,
) -> Result<AlignedErrors> {
    let (n, k, d) = (batch.n(), batch.k(), batch.d());
    let mut scratch;
    let (out, width) = match per_sample {
        Some(o) => (o, 1),
        None => {
            scratch = Vec::new();
            (scratch.as_mut_slice(), 0)
        }
    };
    let parts = map_chunks_out(n, samples_per_chunk(k), width, out, |range, out| {
        let mut acc = (0.0f64, 0u64, 0u64, None);
        let (mut xs, mut ys) = (Vec::with_capacity(k), Vec::with_capacity(k));
        for (row, i) in range.enumerate() {
            let (p, g, vis) = batch.sample(i);
            if acc.3.is_none() {
                acc.3 = first_nonfinite_gt(i, g, vis, d);
            }
            xs.clear();
            ys.clear();
            for (j, (pj, gj)) in p.chunks_exact(d).zip(g.chunks_exact(d)).enumerate() {
                if vis.is_none_or(|v| v[j]) {
                    let mut x = [0.0; 3];
                    let mut y = [0.0; 3];
                    for c in 0..d {
                        x[c] = f64::from(gj[c]);
                        y[c] = f64::from(pj[c]);
                    }
                    xs.push(x);
                    ys.push(y);
                }
            }
            let result = match alignment {
                Alignment::Scale => scale_aligned(&xs, &ys, d),
                Alignment::Similarity => similarity_aligned(&mut xs, &mut ys, d),
            };
            let mean = match result {
                Some(sum) if !xs.is_empty() => {
                    acc.0 += sum;
                    acc.1 += xs.len() as u64;
                    sum / xs.len() as f64
                }
                Some(_) => f64::NAN,
                None => {
                    acc.2 += 1;
                    f64::NAN
                }
            };
            if let Some(o) = out.get_mut(row) {
                *o = mean;
            }
        }
        acc
    })?;
    let mut res = AlignedErrors {
        dist_sum: 0.0,
        dist_count: 0,
        degenerate: 0,
    };
    let mut first_bad = None;
    for (sum, count, degenerate, bad) in parts {
        res.dist_sum += sum;
        res.dist_count += count;
        res.degenerate += degenerate;
        first_bad = first_bad.or(bad);
    }
    batch.check_gt_finite(first_bad)?;
    Ok(res)
}

fn distance(a: &[f64; 3], b: &[f64; 3], d: usize) -> f64 {
    (0..d)
        .map(|c| (a[c] - b[c]) * (a[c] - b[c]))
        .sum::<f64>()
        .sqrt()
}

/// Sum of |s * y - x| with s = <y, x> / <y, y>; `None` when <y, y> = 0 (and
/// there is something to align).
fn scale_aligned(xs: &[[f64; 3]], ys: &[[f64; 3]], d: usize) -> Option<f64> {
    let dot = |a: &[[f64; 3]], b: &[[f64; 3]]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(u, v)| (0..d).map(|c| u[c] * v[c]).sum::<f64>())
            .sum()
    };
    let yy = dot(ys, ys);
    if yy == 0.0 && !ys.is_empty() {
        return None;
    }
    let s = dot(ys, xs) / yy;
    let sum = xs
        .iter()
        .zip(ys)
        .map(|(x, y)| distance(&[s * y[0], s * y[1], s * y[2]], x, d))
        .sum();
    Some(sum)
}

/// Centre both sets in place and return the sum of |b Q y0 + mu_x - x|;
/// `None` when either set has zero extent.
fn similarity_aligned(xs: &mut [[f64; 3]], ys: &mut [[f64; 3]], d: usize) -> Option<f64> {
    if xs.is_empty() {
        return Some(0.0);
    }
    // Centre and normalise both sets, as the reference does before its SVD.
    let centre = |pts: &mut [[f64; 3]]| -> f64 {
        let m = pts.len() as f64;
        for c in 0..d {
            let mean = pts.iter().map(|p| p[c]).sum::<f64>() / m;
            pts.iter_mut().for_each(|p| p[c] -= mean);
        }
        pts.iter()
            .map(|p| (0..d).map(|c| p[c] * p[c]).sum::<f64>())
            .sum::<f64>()
            .sqrt()
    };
    let nx = centre(xs);
    let ny = centre(ys);
    if nx == 0.0 || ny == 0.0 {
        return None;
    }
    let mut s = [[0.0; 3]; 3];
    for (x, y) in xs.iter().zip(ys.iter()) {
        for a in 0..d {
            for b in 0..d {
                s[a][b] += (y[a] / ny) * (x[b] / nx);
            }
        }
    }
    let (q, trace) = best_rotation(&s, d);
    let scale = trace * nx / ny;
    let sum = xs
        .iter()
        .zip(ys.iter())
        .map(|(x, y)| {
            let mut aligned = [0.0; 3];
            for (r, slot) in aligned.iter_mut().enumerate().take(d) {
                *slot = scale * (0..d).map(|c| q[r][c] * y[c]).sum::<f64>();
            }
            distance(&aligned, x, d)
        })
        .sum();
    Some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pa(pred: &[f32], gt: &[f32], shape: [usize; 3]) -> AlignedErrors {
        let b = PoseBatch::new(pred, gt, None, shape).unwrap();
        aligned_errors(&b, Alignment::Similarity, None).unwrap()
    }

    #[test]
    fn similarity_transformed_prediction_scores_zero() {
        let gt = [
            0.0f32, 0.0, 0.0, 1.0, 0.2, 0.1, 0.3, 1.1, -0.2, -0.5, 0.4, 0.9,
        ];
        // pred = 2.5 * Rz(0.7) * gt + (1, -2, 3)
        let (c, s) = (0.7f64.cos(), 0.7f64.sin());
        let pred: Vec<f32> = gt
            .chunks(3)
            .flat_map(|p| {
                let (x, y, z) = (f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
                [
                    2.5 * (c * x - s * y) + 1.0,
                    2.5 * (s * x + c * y) - 2.0,
                    2.5 * z + 3.0,
                ]
            })
            .map(|v| v as f32)
            .collect();
        let r = pa(&pred, &gt, [1, 4, 3]);
        assert!(r.dist_sum / r.dist_count as f64 <= 1e-6, "{r:?}");
    }

    #[test]
    fn collapsed_prediction_is_degenerate_not_nan() {
        let gt = [
            0.0f32, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 3.0, 3.0, 3.0, 3.0,
        ];
        let pred = [7.0f32; 12];
        let r = pa(&pred, &gt, [2, 2, 3]);
        assert_eq!(r.degenerate, 2);
        assert_eq!((r.dist_sum, r.dist_count), (0.0, 0));
    }

    #[test]
    fn scale_alignment_fixes_a_scaled_prediction() {
        let gt = [1.0f32, 2.0, 3.0, 4.0];
        let pred = [0.5f32, 1.0, 1.5, 2.0];
        let b = PoseBatch::new(&pred, &gt, None, [1, 2, 2]).unwrap();
        let r = aligned_errors(&b, Alignment::Scale, None).unwrap();
        assert!(r.dist_sum < 1e-12);
    }
}
