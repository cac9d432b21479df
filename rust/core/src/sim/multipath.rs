//! The channel frequency response of a sum of propagation paths:
//!
//! H[n, k] = sum_p g[n, p] * exp(-j 2 pi (f_c + df * s_k) tau[n, p])
//!
//! for rows n (packets x links), paths p and subcarriers with integer indices
//! s_k. Along the subcarriers a path's phasor is a geometric sequence, so each
//! path costs two complex exponentials and one complex multiplication per
//! subcarrier of the index range.

use rayon::prelude::*;

use crate::threads::install;
use crate::{Error, Result};

/// Fill `out_re`, `out_im` `[n, k]` with the response of `p` paths per row:
/// delays `tau` `[n, p]` (seconds), complex gains `gain_re`, `gain_im` `[n, p]`,
/// carrier `fc` and spacing `df` (Hz), subcarrier indices `index` `[k]`.
#[allow(clippy::too_many_arguments)]
pub fn multipath_response(
    tau: &[f64],
    gain_re: &[f64],
    gain_im: &[f64],
    [n, p]: [usize; 2],
    fc: f64,
    df: f64,
    index: &[i32],
    out_re: &mut [f32],
    out_im: &mut [f32],
) -> Result<()> {
    let k = index.len();
    let np = n
        .checked_mul(p)
        .ok_or_else(|| Error::Shape("too many paths".into()))?;
    if tau.len() != np || gain_re.len() != np || gain_im.len() != np {
        return Err(Error::Shape(format!(
            "delays and gains must hold [{n}, {p}] values"
        )));
    }
    if out_re.len() != n * k || out_im.len() != n * k {
        return Err(Error::Shape(format!("outputs must hold [{n}, {k}] values")));
    }
    if !(fc.is_finite() && df.is_finite()) || tau.iter().any(|t| !t.is_finite()) {
        return Err(Error::Value("frequencies and delays must be finite".into()));
    }
    if k == 0 || n == 0 {
        return Ok(());
    }
    let lo = index.iter().copied().min().unwrap_or(0);
    let hi = index.iter().copied().max().unwrap_or(0);
    let span = (i64::from(hi) - i64::from(lo) + 1) as usize;
    if span > 1 << 16 {
        return Err(Error::Value(format!(
            "subcarrier indices span {span} values"
        )));
    }
    let slots: Vec<usize> = index.iter().map(|&s| (s - lo) as usize).collect();
    let two_pi = std::f64::consts::TAU;
    install(|| {
        out_re
            .par_chunks_mut(k)
            .zip(out_im.par_chunks_mut(k))
            .enumerate()
            .with_min_len(64)
            .for_each_init(
                || (vec![0.0f64; span], vec![0.0f64; span]),
                |(acc_re, acc_im), (row, (ore, oim))| {
                    acc_re.fill(0.0);
                    acc_im.fill(0.0);
                    for q in row * p..(row + 1) * p {
                        let (g_re, g_im, t) = (gain_re[q], gain_im[q], tau[q]);
                        if g_re == 0.0 && g_im == 0.0 {
                            continue;
                        }
                        // Phasor at the lowest index, and the step between indices.
                        let (s0, c0) = (-two_pi * (fc + df * f64::from(lo)) * t).sin_cos();
                        let (s1, c1) = (-two_pi * df * t).sin_cos();
                        let (mut z_re, mut z_im) = (g_re * c0 - g_im * s0, g_re * s0 + g_im * c0);
                        for (a_re, a_im) in acc_re.iter_mut().zip(acc_im.iter_mut()) {
                            *a_re += z_re;
                            *a_im += z_im;
                            (z_re, z_im) = (z_re * c1 - z_im * s1, z_re * s1 + z_im * c1);
                        }
                    }
                    for ((r, i), &slot) in ore.iter_mut().zip(oim.iter_mut()).zip(&slots) {
                        *r = acc_re[slot] as f32;
                        *i = acc_im[slot] as f32;
                    }
                },
            );
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_direct_sum() {
        let (n, p) = (3, 4);
        let tau: Vec<f64> = (0..n * p).map(|i| 1e-9 * (3.0 + i as f64 * 2.7)).collect();
        let g_re: Vec<f64> = (0..n * p).map(|i| 0.1 + 0.05 * i as f64).collect();
        let g_im: Vec<f64> = (0..n * p).map(|i| 0.02 * i as f64 - 0.1).collect();
        let index = [-58, -57, -2, 2, 57, 58];
        let (fc, df) = (5.32e9, 312_500.0);
        let (mut re, mut im) = (vec![0.0f32; n * 6], vec![0.0f32; n * 6]);
        multipath_response(&tau, &g_re, &g_im, [n, p], fc, df, &index, &mut re, &mut im).unwrap();
        for row in 0..n {
            for (kk, &s) in index.iter().enumerate() {
                let (mut er, mut ei) = (0.0f64, 0.0f64);
                for q in row * p..(row + 1) * p {
                    let (sn, cs) =
                        (-std::f64::consts::TAU * (fc + df * f64::from(s)) * tau[q]).sin_cos();
                    er += g_re[q] * cs - g_im[q] * sn;
                    ei += g_re[q] * sn + g_im[q] * cs;
                }
                assert!(
                    (f64::from(re[row * 6 + kk]) - er).abs() < 1e-5,
                    "{} vs {er}",
                    re[row * 6 + kk]
                );
                assert!((f64::from(im[row * 6 + kk]) - ei).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn sizes_and_values_are_checked() {
        let (mut re, mut im) = (vec![0.0f32; 2], vec![0.0f32; 2]);
        assert!(
            multipath_response(
                &[1.0],
                &[1.0],
                &[0.0],
                [1, 2],
                1.0,
                1.0,
                &[0, 1],
                &mut re,
                &mut im
            )
            .is_err()
        );
        assert!(
            multipath_response(
                &[f64::NAN],
                &[1.0],
                &[0.0],
                [1, 1],
                1.0,
                1.0,
                &[0, 1],
                &mut re,
                &mut im
            )
            .is_err()
        );
    }
}
