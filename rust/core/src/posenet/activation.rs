//! ReLU and SiLU over whole slices and the attention's exp, with an exp the
//! compiler vectorises (libm's `expf` is a scalar call per element, which
//! cost more than the matrix products around it).
//!
//! `exp` is Cephes' `expf` reduction and polynomial (relative error about
//! 1e-7 over the float range), branch-free so that a loop of it becomes AVX2
//! code where the CPU has it (compiled twice, chosen at run time).

use crate::metrics::simd::multiversion;

/// exp(x) for finite x; inputs are clamped to [-87.3, 88.7] (results between
/// about 1e-38 and 3e38), NaN stays NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.7);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let k = t.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^k through the exponent field (k in [-126, 128]: split in two halves).
    let h = k >> 1;
    let s1 = f32::from_bits(((h + 127) as u32) << 23);
    let s2 = f32::from_bits(((k - h + 127) as u32) << 23);
    e * s1 * s2
}

#[inline(always)]
fn silu_body(x: &mut [f32]) {
    for v in x {
        *v /= 1.0 + exp(-*v);
    }
}

multiversion! {
    fn silu_slice(x: &mut [f32]) -> ();
    wide = silu_body(x);
    base = silu_body(x);
}

/// SiLU in place: x * sigmoid(x), as x / (1 + exp(-x)).
pub(crate) fn silu_all(x: &mut [f32]) {
    silu_slice(x);
}

/// ReLU in place; NaN becomes 0 (`f32::max` returns the non-NaN operand).
pub(crate) fn relu_all(x: &mut [f32]) {
    for v in x {
        *v = v.max(0.0);
    }
}

/// `x + r`, then SiLU, in place (the residual joins of both block kinds).
pub(crate) fn silu_sum(x: &mut [f32], r: &[f32]) {
    for (o, v) in x.iter_mut().zip(r) {
        *o += v;
    }
    silu_slice(x);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_a_few_ulp_of_libm() {
        let mut worst = 0f64;
        for i in -87_000..88_000 {
            let x = i as f32 * 1e-3 + 1.234e-4;
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 3e-7, "relative error {worst}");
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(-1e4) > 0.0 && exp(-1e4) < 1e-37);
        assert!(exp(1e4).is_finite());
    }

    #[test]
    fn relu_clamps_negatives_and_maps_nan_to_zero() {
        let mut x = [-2.0, -0.0, 0.5, 3.0, f32::NAN, f32::NEG_INFINITY];
        relu_all(&mut x);
        assert_eq!(x, [0.0, 0.0, 0.5, 3.0, 0.0, 0.0]);
    }

    #[test]
    fn silu_matches_the_plain_formula() {
        let mut x: Vec<f32> = (0..200).map(|i| (i as f32 - 100.0) * 0.37).collect();
        let want: Vec<f32> = x.iter().map(|v| v / (1.0 + (-v).exp())).collect();
        silu_all(&mut x);
        for (a, b) in x.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}
