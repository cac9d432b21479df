//! Random draws of the simulator's receiver impairments (VERSION 2): uniform
//! and standard normal numbers from one seeded SplitMix64 stream, the same on
//! every machine and whatever the thread count (each sequence has its own
//! stream, drawn in order).
//!
//! Normals come from the ziggurat of Marsaglia and Tsang (2000) in Doornik's
//! form (2005, "An improved ziggurat method to generate normal random
//! samples"): 128 layers of equal area, the layer index and the uniform taken
//! from disjoint bits of one 64-bit word, the tail sampled as in Marsaglia
//! (1964). About 99% of draws take one word, a compare and a multiply.

use std::sync::OnceLock;

use crate::shuffle::SplitMix64;

/// Number of layers, and the start of the tail and each layer's area for 128
/// layers of the unnormalised density exp(-x^2 / 2) (Marsaglia and Tsang).
const LAYERS: usize = 128;
const TAIL: f64 = 3.442_619_855_899;
const AREA: f64 = 9.912_563_035_262_17e-3;
/// 2^-53: a 53-bit integer times this is a double in [0, 1).
const UNIT: f64 = 1.0 / (1u64 << 53) as f64;

/// `x[i]` the right edge of layer i (`x[0]` the base's equivalent width,
/// `x[1]` = TAIL, `x[LAYERS]` = 0), `f[i]` the density there, `ratio[i]` =
/// `x[i + 1] / x[i]`: below it a point is inside the curve for sure.
struct Table {
    x: [f64; LAYERS + 1],
    f: [f64; LAYERS + 1],
    ratio: [f64; LAYERS],
}

fn density(x: f64) -> f64 {
    (-0.5 * x * x).exp()
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut x = [0.0; LAYERS + 1];
        x[0] = AREA / density(TAIL);
        x[1] = TAIL;
        for i in 2..LAYERS {
            // Layer i - 1 spans [f(x[i-1]), f(x[i])] with area x[i-1] (f(x[i]) - f(x[i-1])).
            x[i] = (-2.0 * (AREA / x[i - 1] + density(x[i - 1])).ln()).sqrt();
        }
        let f = x.map(density);
        let ratio = std::array::from_fn(|i| x[i + 1] / x[i]);
        Table { x, f, ratio }
    })
}

/// The simulator's random stream.
#[derive(Debug, Clone)]
pub struct Draws(SplitMix64);

impl Draws {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        Self(SplitMix64::new(seed))
    }

    /// Uniform in [0, 1): the top 53 bits of one word.
    pub fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * UNIT
    }

    /// Uniform in (0, 1), for logarithms.
    fn open_uniform(&mut self) -> f64 {
        ((self.0.next_u64() >> 11) as f64 + 0.5) * UNIT
    }

    /// A standard normal number.
    pub fn normal(&mut self) -> f64 {
        let t = table();
        loop {
            let w = self.0.next_u64();
            let i = (w & (LAYERS as u64 - 1)) as usize; // the low 7 bits: the layer
            let u = 2.0 * ((w >> 11) as f64 * UNIT) - 1.0; // the top 53: where in it
            if u.abs() < t.ratio[i] {
                return u * t.x[i];
            }
            if i == 0 {
                return self.tail(u < 0.0);
            }
            // The wedge of layer i: accept under the curve.
            let x = u * t.x[i];
            let y = t.f[i] + self.uniform() * (t.f[i + 1] - t.f[i]);
            if y < density(x) {
                return x;
            }
        }
    }

    /// Beyond TAIL (Marsaglia 1964): TAIL + e / TAIL for exponential e,
    /// accepted with probability exp(-e^2 / (2 TAIL^2)).
    fn tail(&mut self, negative: bool) -> f64 {
        loop {
            let x = -self.open_uniform().ln() / TAIL;
            let y = -self.open_uniform().ln();
            if 2.0 * y >= x * x {
                return if negative { -(TAIL + x) } else { TAIL + x };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layer_has_the_same_area_and_the_top_one_closes_at_zero() {
        let t = table();
        // The base: the rectangle up to TAIL plus the tail's area.
        let tail = (std::f64::consts::PI / 2.0).sqrt() * libm_erfc(TAIL / 2f64.sqrt());
        assert!((TAIL * density(TAIL) + tail - AREA).abs() < 1e-12);
        for i in 1..LAYERS {
            let area = t.x[i] * (t.f[i + 1] - t.f[i]);
            // Built to hold for every layer but the top, which closes at x = 0
            // only as well as the 13 digits of TAIL allow (1.2e-9 relative).
            let tol = if i == LAYERS - 1 { 2e-9 } else { 1e-13 };
            assert!((area / AREA - 1.0).abs() < tol, "layer {i}: {area}");
        }
        assert_eq!(t.x[LAYERS], 0.0);
        assert!(t.x[LAYERS - 1] > 0.0 && t.x[LAYERS - 1] < 0.3);
    }

    /// erfc by its continued fraction, enough for x > 2 (the tail's start).
    fn libm_erfc(x: f64) -> f64 {
        let mut d = 0.0;
        for n in (1..200).rev() {
            d = (n as f64 / 2.0) / (x + d);
        }
        (-x * x).exp() / (std::f64::consts::PI.sqrt() * (x + d))
    }

    #[test]
    fn normals_have_the_moments_and_tail_of_a_standard_normal() {
        let mut d = Draws::new(12345);
        let n = 1_000_000;
        let (mut s1, mut s2, mut s4, mut beyond) = (0.0, 0.0, 0.0, 0usize);
        for _ in 0..n {
            let x = d.normal();
            s1 += x;
            s2 += x * x;
            s4 += x * x * x * x;
            beyond += usize::from(x.abs() > TAIL);
        }
        let nf = n as f64;
        assert!((s1 / nf).abs() < 5e-3, "mean {}", s1 / nf);
        assert!((s2 / nf - 1.0).abs() < 5e-3, "variance {}", s2 / nf);
        assert!((s4 / nf - 3.0).abs() < 3e-2, "fourth moment {}", s4 / nf);
        // P(|x| > TAIL) = 5.76e-4: 576 expected, sd 24.
        assert!(
            (480..=672).contains(&beyond),
            "{beyond} beyond the tail start"
        );
    }

    #[test]
    fn uniforms_lie_in_the_unit_interval_and_a_seed_repeats_its_stream() {
        let (mut a, mut b) = (Draws::new(7), Draws::new(7));
        for _ in 0..10_000 {
            let u = a.uniform();
            assert!((0.0..1.0).contains(&u));
            assert_eq!(u.to_bits(), b.uniform().to_bits());
            assert_eq!(a.normal().to_bits(), b.normal().to_bits());
        }
        assert_ne!(Draws::new(8).uniform(), Draws::new(7).uniform());
    }
}
