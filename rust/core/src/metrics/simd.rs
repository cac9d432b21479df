//! Helpers for the vectorised inner loops: runtime CPU dispatch, a
//! vectorisable exp, and flat squared distances.

/// Define `fn $name(args) -> ret` that runs `$wide` compiled for the best
/// instruction set the CPU has (x86-64: AVX-512, then AVX2 + FMA) and `$base`
/// otherwise. `$wide` and `$base` call `#[inline(always)]` bodies, which are
/// compiled once per instruction set. Floating-point results do not depend on
/// the choice except where a body asks for fused multiply-adds explicitly
/// (`$wide` may; `$base` must not, as a CPU without FMA emulates it slowly).
macro_rules! multiversion {
    (
        $(#[$meta:meta])*
        fn $name:ident $(<$lt:lifetime>)? ($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty;
        wide = $wide:expr;
        base = $base:expr;
    ) => {
        $(#[$meta])*
        fn $name $(<$lt>)? ($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512dq")]
                fn avx512 $(<$lt>)? ($($arg: $ty),*) -> $ret {
                    $wide
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2 $(<$lt>)? ($($arg: $ty),*) -> $ret {
                    $wide
                }
                use $crate::metrics::simd::{Isa, isa};
                match isa() {
                    // SAFETY: isa() reports only features the CPU has.
                    Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    Isa::Base => {}
                }
            }
            $base
        }
    };
}
pub(crate) use multiversion;

/// The instruction sets the kernels are built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// The target's baseline (x86-64: SSE2).
    Base,
    /// AVX2 and FMA.
    Avx2,
    /// AVX-512 F, VL and DQ (with AVX2 and FMA).
    Avx512,
}

/// The best instruction set the CPU has, capped by the environment variable
/// `CSIPOSE_SIMD` (`base`, `avx2` or `avx512`; read once) so that every build
/// can be tested on one machine.
pub fn isa() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        let cap = match std::env::var("CSIPOSE_SIMD").as_deref() {
            Ok("base") => Isa::Base,
            Ok("avx2") => Isa::Avx2,
            _ => Isa::Avx512,
        };
        detected().min(cap)
    })
}

fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx512vl") && has!("avx512dq") && has!("avx2") && has!("fma") {
            return Isa::Avx512;
        }
        if has!("avx2") && has!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Base
}

/// `None` when every entry of `vis` is true, so the cheaper unmasked loops run.
#[inline(always)]
pub(crate) fn drop_full_mask(vis: Option<&[bool]>) -> Option<&[bool]> {
    vis.filter(|v| !v.iter().fold(true, |all, &b| all & b))
}

/// Squared Euclidean distance of each joint, summed left to right
/// (dx*dx + dy*dy + dz*dz) in float64: `q[e]` for `p`, `g` of `q.len() * d` values.
#[inline(always)]
pub(crate) fn squared_distances(p: &[f32], g: &[f32], d: usize, q: &mut [f64]) {
    #[inline(always)]
    fn go<const D: usize>(p: &[f32], g: &[f32], q: &mut [f64]) {
        for ((qe, pe), ge) in q.iter_mut().zip(p.chunks_exact(D)).zip(g.chunks_exact(D)) {
            *qe = square::<D>(pe, ge);
        }
    }
    if d == 2 {
        go::<2>(p, g, q)
    } else {
        go::<3>(p, g, q)
    }
}

/// [`squared_distances`] of 2-D joints, with explicit AVX2 where the `WIDE`
/// builds run (the same bits); returns whether every distance is finite.
#[inline(always)]
pub(crate) fn squared_distances_2d<const WIDE: bool>(p: &[f32], g: &[f32], q: &mut [f64]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if WIDE && isa() >= Isa::Avx2 {
        // SAFETY: isa() reports only features the CPU has.
        return unsafe { super::distances_avx2::squared_distances_2d(p, g, q) };
    }
    squared_distances(p, g, 2, q);
    q.iter().fold(true, |ok, x| ok & x.is_finite())
}

/// [`squared_distances`] into `q` and their square roots into `dist`, in one
/// loop: the square roots (throughput-bound on the divider) then overlap the
/// loads and conversions instead of running as a pass of their own.
#[inline(always)]
pub(crate) fn distances(p: &[f32], g: &[f32], d: usize, q: &mut [f64], dist: &mut [f64]) {
    #[inline(always)]
    fn go<const D: usize>(p: &[f32], g: &[f32], q: &mut [f64], dist: &mut [f64]) {
        let entries = q.iter_mut().zip(dist.iter_mut());
        for (((qe, de), pe), ge) in entries.zip(p.chunks_exact(D)).zip(g.chunks_exact(D)) {
            *qe = square::<D>(pe, ge);
            *de = qe.sqrt();
        }
    }
    if d == 2 {
        go::<2>(p, g, q, dist)
    } else {
        go::<3>(p, g, q, dist)
    }
}

/// dx*dx + dy*dy (+ dz*dz) of one joint in float64, left to right.
#[inline(always)]
pub(crate) fn square<const D: usize>(pe: &[f32], ge: &[f32]) -> f64 {
    let mut s = 0.0;
    for c in 0..D {
        let x = f64::from(pe[c]) - f64::from(ge[c]);
        s += x * x;
    }
    s
}

/// Sum of `x` where `keep` is set (all of `x` when `keep` is `None`), in eight
/// fixed lanes so the loop vectorises; the order is fixed, so the result is
/// deterministic.
#[inline(always)]
pub(crate) fn masked_sum(x: &[f64], keep: Option<&[bool]>) -> (f64, u64) {
    let mut lanes = [0.0f64; 8];
    let mut count = 0u64;
    match keep {
        None => {
            let mut it = x.chunks_exact(8);
            for c in &mut it {
                for l in 0..8 {
                    lanes[l] += c[l];
                }
            }
            for (l, v) in it.remainder().iter().enumerate() {
                lanes[l] += v;
            }
            count = x.len() as u64;
        }
        Some(keep) => {
            let mut it = x.chunks_exact(8).zip(keep.chunks_exact(8));
            for (c, k) in &mut it {
                for l in 0..8 {
                    lanes[l] += if k[l] { c[l] } else { 0.0 };
                    count += u64::from(k[l]);
                }
            }
            let done = x.len() - x.len() % 8;
            for (l, (v, k)) in x[done..].iter().zip(&keep[done..]).enumerate() {
                if *k {
                    lanes[l] += v;
                    count += 1;
                }
            }
        }
    }
    (lanes.iter().sum(), count)
}

// fdlibm's split of ln 2 (high part with trailing zero bits) and 1 / ln 2.
pub(crate) const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
pub(crate) const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
pub(crate) const INV_LN2: f64 = f64::from_bits(0x3ff7_1547_652b_82fe);
pub(crate) const SHIFT: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52: adding it rounds to an integer
// Degree-11 interpolant of exp at the Chebyshev nodes of [-ln(2)/2, ln(2)/2]
// (computed with mpmath at 50 digits; error 4.2e-18 before rounding),
// highest degree first.
pub(crate) const EXP_C: [f64; 12] = [
    f64::from_bits(0x3e5a_f631_d005_9bec),
    f64::from_bits(0x3e92_8b40_57f4_4145),
    f64::from_bits(0x3ec7_1ddf_5749_d126),
    f64::from_bits(0x3efa_0199_1ac8_730a),
    f64::from_bits(0x3f2a_01a0_1b14_378f),
    f64::from_bits(0x3f56_c16c_187f_be02),
    f64::from_bits(0x3f81_1111_1110_f225),
    f64::from_bits(0x3fa5_5555_5554_f0cf),
    f64::from_bits(0x3fc5_5555_5555_555a),
    f64::from_bits(0x3fe0_0000_0000_0011),
    f64::from_bits(0x3ff0_0000_0000_0000),
    f64::from_bits(0x3ff0_0000_0000_0000),
];

/// The coefficient of r^(11 - i) of the polynomial evaluated at -r: odd
/// powers change sign.
#[inline(always)]
pub(crate) const fn exp_c_mirrored(i: usize) -> f64 {
    if i.is_multiple_of(2) {
        -EXP_C[i]
    } else {
        EXP_C[i]
    }
}

/// exp_neg(e) is 0 for e above this (and for NaN): 2^n stays a normal number.
pub(crate) const EXP_LAST: f64 = 707.0;

/// exp(-e) for e >= 0 in a form the compiler can vectorise (relative error
/// below 4e-16; pycocotools uses numpy's exp). Results below 1e-307 (e > 707)
/// and NaN inputs give 0. `FMA` evaluates the polynomial with fused
/// multiply-adds: only for builds where the CPU has them.
#[inline(always)]
pub(crate) fn exp_neg<const FMA: bool>(e: f64) -> f64 {
    // The reduction runs on e itself: with n = round(e / ln 2) and
    // r = e - n ln 2, exp(-e) = 2^-n p(-r), and p(-r) is the polynomial with
    // its odd coefficients negated evaluated at r. Every rounding is the
    // mirror image of the one for -e, so the bits are those of reducing -e,
    // without negating e or clamping it (e > 707 and NaN are replaced below,
    // whatever the reduction made of them).
    let (kd, r) = if FMA {
        let kd = e.mul_add(-INV_LN2, SHIFT);
        let n = kd - SHIFT;
        (kd, n.mul_add(LN2_LO, n.mul_add(LN2_HI, e)))
    } else {
        let kd = e * -INV_LN2 + SHIFT;
        let n = kd - SHIFT;
        (kd, (e + n * LN2_HI) + n * LN2_LO)
    }; // |r| <= ln(2) / 2
    let c = |i: usize| exp_c_mirrored(i);
    // Estrin's scheme: pairs, then powers r^2 and r^4. Its dependency chain
    // is 5 operations deep against Horner's 11, which kept the loop
    // latency-bound (the same operations in every build, so builds agree).
    let fma = |a: f64, b: f64, c: f64| if FMA { a.mul_add(b, c) } else { a * b + c };
    let r2 = r * r;
    let r4 = r2 * r2;
    let pair = |i: usize| fma(c(10 - i), r, c(11 - i)); // a_{i+1} r + a_i
    let (p01, p23, p45) = (pair(0), pair(2), pair(4));
    let (p67, p89, p1011) = (pair(6), pair(8), pair(10));
    let high = fma(fma(p1011, r2, p89), r4, fma(p67, r2, p45));
    let p = fma(high, r4, fma(p23, r2, p01));
    // p 2^n by adding n to p's exponent: n sits in kd's low bits (SHIFT's
    // low 12 bits are 0), and for e <= EXP_LAST the result is a normal
    // number, so this is exactly the product with 2^n.
    let scaled = f64::from_bits(p.to_bits().wrapping_add(kd.to_bits() << 52));
    if e <= EXP_LAST { scaled } else { 0.0 }
}

/// `q[e] = exp_neg(q[e] * w[e])` over the common length: with explicit AVX2
/// and FMA where `FMA` builds run (the same bits as the loop below).
#[inline(always)]
pub(crate) fn exp_neg_products<const FMA: bool>(q: &mut [f64], w: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    if FMA && isa() >= Isa::Avx2 {
        // SAFETY: isa() reports only features the CPU has.
        unsafe { super::exp_avx2::exp_neg_products(q, w) };
        return;
    }
    for (qe, we) in q.iter_mut().zip(w) {
        *qe = exp_neg::<FMA>(*qe * we);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_neg_matches_std() {
        let mut worst = 0.0f64;
        for i in 0..200_000 {
            let e = f64::from(i) * 0.003_5;
            let want = (-e).exp();
            for got in [exp_neg::<false>(e), exp_neg::<true>(e)] {
                worst = worst.max(((got - want) / want).abs());
            }
        }
        assert!(worst < 4e-16, "worst relative error {worst}");
        assert_eq!(exp_neg::<false>(0.0), 1.0);
        assert_eq!(exp_neg::<false>(f64::NAN), 0.0);
        assert_eq!(exp_neg::<true>(1e300), 0.0);
        assert_eq!(exp_neg::<true>(f64::INFINITY), 0.0);
    }

    #[test]
    fn masked_sum_counts_and_sums() {
        let x: Vec<f64> = (0..19).map(f64::from).collect();
        let keep: Vec<bool> = (0..19).map(|i| i % 3 != 0).collect();
        assert_eq!(masked_sum(&x, None), (171.0, 19));
        assert_eq!(masked_sum(&x, Some(&keep)), (171.0 - 63.0, 12));
    }
}
