//! The MM-Fi toolkit's repair of non-finite CSI values, with a report.
//!
//! Toolkit rule (`mmfi_lib/mmfi.py`, reference section 2.3): +-Inf becomes
//! NaN; in each packet slice (the antennas x subcarriers values of one packet)
//! NaN becomes the mean of the slice's finite values. The toolkit then
//! min-max scales each frame, which divides by zero on a constant frame and
//! leaves an all-NaN slice NaN. Here min-max is a load-time transform, and a
//! frame with an all-NaN slice or with one value everywhere is reported so it
//! can be excluded instead.

use rayon::prelude::*;

use crate::threads::install;
use crate::{Error, Result};

/// What the repair found in one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameStatus {
    /// Finite after the repair and not constant.
    Ok = 0,
    /// A packet slice had no finite value; the slice is set to 0.
    AllNanSlice = 1,
    /// Every value of the frame is the same (min-max would divide by zero).
    Constant = 2,
}

/// Repair `frames` `[n, a, s, p]` in place; writes each frame's number of
/// repaired values to `repaired` and its status to `status` (both `[n]`).
pub fn sanitize_mmfi(
    frames: &mut [f32],
    [n, a, s, p]: [usize; 4],
    repaired: &mut [u32],
    status: &mut [u8],
) -> Result<()> {
    let frame = a
        .checked_mul(s)
        .and_then(|x| x.checked_mul(p))
        .ok_or_else(|| Error::Shape("frame size overflows".into()))?;
    if frames.len() != n.saturating_mul(frame) || repaired.len() != n || status.len() != n {
        return Err(Error::Shape(format!(
            "frames hold {} values for [{n}, {a}, {s}, {p}], with {} and {} report slots",
            frames.len(),
            repaired.len(),
            status.len()
        )));
    }
    if frame == 0 {
        repaired.fill(0);
        status.fill(FrameStatus::Constant as u8);
        return Ok(());
    }
    let mut report: Vec<(u32, u8)> = vec![(0, 0); n];
    install(|| {
        frames
            .par_chunks_mut(frame)
            .zip(report.par_iter_mut())
            .with_min_len(64)
            .for_each(|(f, r)| *r = repair_frame(f, p));
    })?;
    for ((r, st), (count, code)) in repaired.iter_mut().zip(status.iter_mut()).zip(report) {
        *r = count;
        *st = code;
    }
    Ok(())
}

/// Repair one frame laid out `[a * s, p]` (packet innermost).
fn repair_frame(f: &mut [f32], p: usize) -> (u32, u8) {
    let mut count = 0u32;
    let mut status = FrameStatus::Ok;
    for packet in 0..p {
        let (mut sum, mut finite, mut bad) = (0.0f64, 0u32, 0u32);
        for v in f.iter().skip(packet).step_by(p) {
            if v.is_finite() {
                sum += f64::from(*v);
                finite += 1;
            } else {
                bad += 1;
            }
        }
        if bad == 0 {
            continue;
        }
        count += bad;
        let fill = if finite > 0 {
            (sum / f64::from(finite)) as f32
        } else {
            status = FrameStatus::AllNanSlice;
            0.0
        };
        for v in f.iter_mut().skip(packet).step_by(p) {
            if !v.is_finite() {
                *v = fill;
            }
        }
    }
    if status == FrameStatus::Ok && f.iter().all(|v| *v == f[0]) {
        status = FrameStatus::Constant;
    }
    (count, status as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_each_packet_slice_with_its_finite_mean() {
        // a = 1, s = 3, p = 2: packet 0 is [1, NaN, 3], packet 1 is [inf, 5, 7].
        let mut x = [1.0, f32::INFINITY, f32::NAN, 5.0, 3.0, 7.0];
        let (mut r, mut st) = ([0u32], [9u8]);
        sanitize_mmfi(&mut x, [1, 1, 3, 2], &mut r, &mut st).unwrap();
        assert_eq!(x, [1.0, 6.0, 2.0, 5.0, 3.0, 7.0]);
        assert_eq!((r[0], st[0]), (2, FrameStatus::Ok as u8));
    }

    #[test]
    fn all_nan_slices_and_constant_frames_are_reported() {
        let mut x = [f32::NAN, 1.0, f32::NAN, 2.0, 4.0, 4.0, 4.0, 4.0];
        let (mut r, mut st) = ([0u32; 2], [0u8; 2]);
        sanitize_mmfi(&mut x, [2, 1, 2, 2], &mut r, &mut st).unwrap();
        assert_eq!(&x[..4], &[0.0, 1.0, 0.0, 2.0]);
        assert_eq!(
            st,
            [FrameStatus::AllNanSlice as u8, FrameStatus::Constant as u8]
        );
        assert_eq!(r, [2, 0]);
    }

    #[test]
    fn sizes_are_checked() {
        let mut x = [0.0f32; 5];
        assert!(sanitize_mmfi(&mut x, [1, 1, 3, 2], &mut [0], &mut [0]).is_err());
    }
}
