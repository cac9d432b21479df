//! The float types the kernels run in: f32 for speed, f64 for gradcheck.

use std::ops::{Add, AddAssign, Div, Mul, Sub};

/// What the attention kernels need from a float type.
pub trait Real:
    Copy
    + Send
    + Sync
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + AddAssign
    + std::fmt::Debug
    + 'static
{
    /// Zero.
    const ZERO: Self;
    /// Negative infinity (the max over an empty set).
    const NEG_INF: Self;
    /// e^self.
    fn exp(self) -> Self;
    /// ln(self).
    fn ln(self) -> Self;
    /// The larger value; NaN-ignoring like `f32::max`.
    fn max(self, other: Self) -> Self;
    /// Conversion from a count or scale.
    fn from_f64(x: f64) -> Self;
}

macro_rules! real {
    ($t:ty) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const NEG_INF: Self = <$t>::NEG_INFINITY;
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
        }
    };
}
real!(f32);
real!(f64);

/// Lanes of the dot product: eight independent sums the compiler keeps in one
/// vector register (no nightly SIMD needed).
const LANES: usize = 8;

/// a . b over equal-length slices.
#[inline]
pub(crate) fn dot<F: Real>(a: &[F], b: &[F]) -> F {
    let mut acc = [F::ZERO; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    let mut s = F::ZERO;
    for a in acc {
        s += a;
    }
    for (&x, &y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// y += a * x.
#[inline]
pub(crate) fn axpy<F: Real>(a: F, x: &[F], y: &mut [F]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}
