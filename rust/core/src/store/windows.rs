//! A store's windows: the first frame of each, and the frames inside a window
//! that label it. Turns a batch of window indices into the frames to gather.

use crate::{Error, Result};

/// The window -> first frame table and the labelling frames of a window.
#[derive(Debug, Clone)]
pub struct Windows {
    /// First frame of each window.
    starts: Vec<i64>,
    /// Labelling frames of a window, relative to its first frame.
    offsets: Vec<i64>,
}

impl Windows {
    /// Windows starting at `starts`, labelled by the frames at `offsets`
    /// from their start (at least one).
    pub fn new(starts: Vec<i64>, offsets: Vec<i64>) -> Result<Self> {
        if offsets.is_empty() {
            return Err(Error::Value("a window needs a labelling frame".into()));
        }
        Ok(Self { starts, offsets })
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// True when there are no windows.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The first frame of each window in `indices`.
    pub fn starts(&self, indices: &[i64]) -> Result<Vec<i64>> {
        indices
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.starts.get(i).copied())
                    .ok_or_else(|| {
                        Error::Index(format!(
                            "window {i} is out of range for {} windows",
                            self.starts.len()
                        ))
                    })
            })
            .collect()
    }

    /// The label rows of windows starting at `starts`: each window's
    /// labelling frames, window by window (checked by the row gather).
    pub fn label_rows(&self, starts: &[i64]) -> Vec<i64> {
        starts
            .iter()
            .flat_map(|&s| self.offsets.iter().map(move |&o| s.saturating_add(o)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_map_indices_to_frames_and_refuse_the_rest() {
        let w = Windows::new(vec![0, 4, 9], vec![0, 2]).unwrap();
        assert_eq!((w.len(), w.is_empty()), (3, false));
        assert_eq!(w.starts(&[2, 0, 2]).unwrap(), vec![9, 0, 9]);
        assert_eq!(w.label_rows(&[9, 0]), vec![9, 11, 0, 2]);
        for bad in [3, -1, i64::MAX] {
            assert_eq!(
                w.starts(&[0, bad]),
                Err(Error::Index(format!(
                    "window {bad} is out of range for 3 windows"
                )))
            );
        }
        assert_eq!(w.label_rows(&[i64::MAX]), vec![i64::MAX, i64::MAX]);
        assert!(Windows::new(vec![0], vec![]).is_err());
    }
}
