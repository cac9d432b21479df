//! What a real receiver does to the clean channel (simulator VERSION 2; the
//! equations are `channel.impair`'s, docs/simulator.md), in place, in one pass
//! over a sequence, with the draws of its own stream ([`Draws`]).
//!
//! Per packet, for each receiver (NIC): a common phase U(0, 2 pi) (carrier
//! frequency offset), a sampling time offset U(-0.5, 0.5) samples (a phase
//! slope over subcarriers) and an AGC gain of N(0, 1) dB; then whether the
//! packet is lost (p = [`LOST_PACKET`]). Per value, in (link, subcarrier)
//! order: the real and imaginary noise N(0, sigma^2) and one uniform that
//! makes it NaN or +Inf with a small probability. The draws are taken in this
//! order whatever is kept (a null subcarrier or lost packet draws too), so
//! [`impairment_draws`] gives exactly what the kernel used.

use crate::sim::draws::Draws;
use crate::{Error, Result};

/// Probability that a packet is lost (all its values NaN).
pub const LOST_PACKET: f64 = 0.003;
/// Probability that one value is bad: NaN below [`NAN_VALUE`], else +Inf.
pub const BAD_VALUE: f64 = 2.5e-5;
pub const NAN_VALUE: f64 = 2e-5;

/// The most receivers [`impair`] takes.
pub const MAX_RECEIVERS: usize = 1024;

/// The receivers behind a channel's links.
#[derive(Debug, Clone, Copy)]
pub struct Receivers<'a> {
    /// The receiver (NIC) of each link `[links]`, each below `nics`.
    pub nic_of_link: &'a [u32],
    pub nics: usize,
    /// Each subcarrier's index in the FFT `[subcarriers]` (the phase slope's abscissa).
    pub subcarriers: &'a [f64],
    /// Subcarriers that read as exact zeros `[subcarriers]`.
    pub null: &'a [bool],
    /// FFT size of the sampling time offset's slope.
    pub n_fft: f64,
    /// Signal-to-noise ratio (dB) against the clean channel's mean power.
    pub snr_db: f64,
}

/// One packet's draws for each receiver: (phase U[0, 1), offset U[0, 1), AGC N(0, 1)).
fn packet_draws(d: &mut Draws, nics: &mut [[f64; 3]]) -> f64 {
    for n in nics.iter_mut() {
        *n = [d.uniform(), d.uniform(), d.normal()];
    }
    d.uniform() // lost when below LOST_PACKET
}

/// One value's draws: (real noise N(0, 1), imaginary noise N(0, 1), bad value U[0, 1)).
fn value_draws(d: &mut Draws) -> [f64; 3] {
    [d.normal(), d.normal(), d.uniform()]
}

/// Impair `h` (`[packets, links, subcarriers, 2]` float32 real and imaginary
/// parts, the clean channel) in place with the stream of `seed`.
pub fn impair(h: &mut [f32], packets: usize, rx: &Receivers<'_>, seed: u64) -> Result<()> {
    let (links, k) = (rx.nic_of_link.len(), rx.subcarriers.len());
    let per_packet = links
        .checked_mul(k)
        .and_then(|v| v.checked_mul(2))
        .ok_or_else(|| Error::Shape("the channel is too large".into()))?;
    if Some(h.len()) != packets.checked_mul(per_packet) {
        return Err(Error::Shape(format!(
            "h must hold [{packets}, {links}, {k}, 2] values, got {}",
            h.len()
        )));
    }
    if rx.null.len() != k {
        return Err(Error::Shape(format!(
            "null must hold one flag per subcarrier ({k}), got {}",
            rx.null.len()
        )));
    }
    // Buffers are sized by it: a wild number is an error, not an abort.
    if rx.nics > MAX_RECEIVERS {
        return Err(Error::Value(format!(
            "nics = {} is more than {MAX_RECEIVERS} receivers",
            rx.nics
        )));
    }
    if let Some(l) = rx.nic_of_link.iter().position(|&n| n as usize >= rx.nics) {
        return Err(Error::Value(format!(
            "nic_of_link[{l}] = {} is not below nics = {}",
            rx.nic_of_link[l], rx.nics
        )));
    }
    if !(rx.n_fft.is_finite() && rx.n_fft > 0.0 && rx.snr_db.is_finite()) {
        return Err(Error::Value(format!(
            "n_fft must be positive and snr_db finite, got {} and {}",
            rx.n_fft, rx.snr_db
        )));
    }
    if !rx.subcarriers.iter().all(|s| s.is_finite()) {
        return Err(Error::Value("subcarriers must be finite".into()));
    }
    let mut power = 0.0f64;
    for v in h.iter() {
        power += f64::from(*v) * f64::from(*v);
    }
    if !power.is_finite() {
        return Err(Error::Value(
            "h, the clean channel, must be finite (its power is not)".into(),
        ));
    }
    let values = (h.len() / 2).max(1) as f64;
    let sigma = (power / values * 10f64.powf(-rx.snr_db / 10.0) / 2.0).sqrt();

    let mut d = Draws::new(seed);
    let mut nics = vec![[0.0; 3]; rx.nics];
    // Each receiver's rotation times AGC gain per subcarrier: [nics, k, 2].
    let mut turn = vec![0.0f64; rx.nics * k * 2];
    let two_pi = 2.0 * std::f64::consts::PI;
    if per_packet == 0 {
        return Ok(());
    }
    for packet in h.chunks_exact_mut(per_packet) {
        let lost = packet_draws(&mut d, &mut nics);
        for (n, t) in nics.iter().zip(turn.chunks_exact_mut(2 * k)) {
            let [phase, offset, agc_db] = *n;
            let (phase, sto, agc) = (two_pi * phase, offset - 0.5, 10f64.powf(agc_db / 20.0));
            for (s, c) in rx.subcarriers.iter().zip(t.chunks_exact_mut(2)) {
                let (sin, cos) = (phase - two_pi * sto * s / rx.n_fft).sin_cos();
                c[0] = cos * agc;
                c[1] = sin * agc;
            }
        }
        for (&nic, row) in rx.nic_of_link.iter().zip(packet.chunks_exact_mut(2 * k)) {
            let t = &turn[nic as usize * 2 * k..][..2 * k];
            for ((v, c), &null) in row.chunks_exact_mut(2).zip(t.chunks_exact(2)).zip(rx.null) {
                let [nr, ni, bad] = value_draws(&mut d);
                let (hr, hi) = (f64::from(v[0]), f64::from(v[1]));
                let re = (hr * c[0] - hi * c[1]) as f32 + (sigma * nr) as f32;
                let im = (hr * c[1] + hi * c[0]) as f32 + (sigma * ni) as f32;
                v[0] = re;
                v[1] = im;
                if bad < BAD_VALUE {
                    v[0] = if bad < NAN_VALUE {
                        f32::NAN
                    } else {
                        f32::INFINITY
                    };
                    v[1] = 0.0;
                }
                if null {
                    v.fill(0.0);
                }
            }
        }
        if lost < LOST_PACKET {
            for v in packet.chunks_exact_mut(2) {
                v[0] = f32::NAN;
                v[1] = 0.0;
            }
        }
    }
    Ok(())
}

/// The draws [`impair`] takes for `packets` packets of `nics` receivers and
/// `values` values each: per packet `[nics, 3]` (phase, offset, AGC), the
/// lost-packet uniform, and per value `[values, 3]` (noise, noise, bad value).
/// For tests that recompute the impairments from them; at most
/// [`MAX_RECEIVERS`] receivers and [`MAX_DRAWS`] numbers in all.
pub fn impairment_draws(
    seed: u64,
    packets: usize,
    nics: usize,
    values: usize,
) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let total = nics
        .checked_add(values)
        .and_then(|v| v.checked_mul(3))
        .and_then(|v| v.checked_add(1))
        .and_then(|v| v.checked_mul(packets));
    if nics > MAX_RECEIVERS || total.is_none_or(|t| t > MAX_DRAWS) {
        return Err(Error::Value(format!(
            "impairment_draws: {packets} packets x ({nics} receivers + {values} values) \
             are more than {MAX_DRAWS} draws or {MAX_RECEIVERS} receivers"
        )));
    }
    let mut d = Draws::new(seed);
    let mut n = vec![[0.0; 3]; nics];
    let (mut per_nic, mut lost, mut per_value) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..packets {
        lost.push(packet_draws(&mut d, &mut n));
        per_nic.extend(n.iter().flatten());
        for _ in 0..values {
            per_value.extend(value_draws(&mut d));
        }
    }
    Ok((per_nic, lost, per_value))
}

/// The most numbers [`impairment_draws`] returns (2^27, 1 GiB of float64).
pub const MAX_DRAWS: usize = 1 << 27;

#[cfg(test)]
mod tests {
    use super::*;

    fn receivers<'a>(nic_of_link: &'a [u32], s: &'a [f64], null: &'a [bool]) -> Receivers<'a> {
        Receivers {
            nic_of_link,
            nics: 2,
            subcarriers: s,
            null,
            n_fft: 64.0,
            snr_db: 20.0,
        }
    }

    #[test]
    fn bad_arguments_are_errors_naming_the_field() {
        let (s, null) = ([-2.0, 1.0, 3.0], [false, true, false]);
        let rx = receivers(&[0, 1, 1], &s, &null);
        let mut h = vec![1.0f32; 2 * 3 * 3 * 2];
        assert!(
            matches!(impair(&mut h[1..], 2, &rx, 1), Err(Error::Shape(m)) if m.contains("h must hold"))
        );
        let bad_nic = receivers(&[0, 2, 1], &s, &null);
        assert!(
            matches!(impair(&mut h, 2, &bad_nic, 1), Err(Error::Value(m)) if m.contains("nic_of_link[1]"))
        );
        let many = Receivers {
            nics: usize::MAX / 2,
            ..rx
        };
        assert!(
            matches!(impair(&mut h, 2, &many, 1), Err(Error::Value(m)) if m.contains("more than"))
        );
        let short = receivers(&[0, 1, 1], &s, &null[..2]);
        assert!(matches!(impair(&mut h, 2, &short, 1), Err(Error::Shape(m)) if m.contains("null")));
        h[5] = f32::INFINITY;
        let before = h.clone();
        assert!(matches!(impair(&mut h, 2, &rx, 1), Err(Error::Value(m)) if m.contains("finite")));
        assert_eq!(
            h.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            before.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "h untouched on error"
        );
        assert!(impairment_draws(1, usize::MAX / 2, 1, 1).is_err());
        assert!(impairment_draws(1, 0, 1 << 61, 0).is_err());
    }

    #[test]
    fn a_seed_gives_the_same_bytes_and_nulls_read_zero() {
        let (s, null) = ([-2.0, 1.0, 3.0], [false, true, false]);
        let rx = receivers(&[0, 1, 1], &s, &null);
        let clean: Vec<f32> = (0..400 * 18).map(|i| (i % 7) as f32 - 3.0).collect();
        let (mut a, mut b, mut c) = (clean.clone(), clean.clone(), clean.clone());
        assert!(impair(&mut a, 400, &rx, 5).is_ok());
        assert!(impair(&mut b, 400, &rx, 5).is_ok());
        assert!(impair(&mut c, 400, &rx, 6).is_ok());
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
        assert_ne!(bits(&a), bits(&c));
        for value in a.chunks_exact(2).skip(1).step_by(3) {
            // Subcarrier 1 is null: zero, or NaN + 0j where the packet is lost.
            assert!(value == [0.0, 0.0] || (value[0].is_nan() && value[1] == 0.0));
        }
    }
}
