//! Checked reading of a pose checkpoint's tensors, and BatchNorm folding.
//!
//! Every tensor the architecture needs is read by name from the memory-mapped
//! `model.safetensors` and must be F32, of the exact shape, and finite; any
//! other tensor in the file (except BatchNorm's `num_batches_tracked`) is an
//! error too, because it means the checkpoint holds another architecture.
//! Errors are [`Error::Checkpoint`] naming the tensor and the file.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device};

use super::conv::Conv1d;
use crate::{Error, Result};

/// torch's BatchNorm default; the WiFlow models never change it.
pub(crate) const BN_EPS: f64 = 1e-5;

/// The tensors of one checkpoint file, read on demand and checked.
pub(crate) struct Weights<'a> {
    st: &'a MmapedSafetensors,
    file: &'a Path,
    used: RefCell<BTreeSet<String>>,
    /// Prepended to every name read (`frame.` for a temporal model's frame model).
    prefix: String,
}

impl<'a> Weights<'a> {
    pub fn new(st: &'a MmapedSafetensors, file: &'a Path) -> Self {
        Self {
            st,
            file,
            used: RefCell::new(BTreeSet::new()),
            prefix: String::new(),
        }
    }

    /// The same file, every name read under `prefix`.
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self
    }

    pub fn err(&self, m: impl std::fmt::Display) -> Error {
        Error::Checkpoint(format!("{}: {m}", self.file.display()))
    }

    /// The shape of tensor `name`, if the file has it.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let name = format!("{}{name}", self.prefix);
        self.st
            .tensors()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.shape().to_vec())
    }

    /// Tensor `name` (F32, shape `shape`, finite) as a flat vector.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let name = &format!("{}{name}", self.prefix);
        let t = self.st.load(name, &Device::Cpu).map_err(|e| {
            self.err(format!(
                "missing or unreadable tensor {name} (expected shape {shape:?}): {e}"
            ))
        })?;
        if t.dtype() != DType::F32 {
            return Err(self.err(format!(
                "tensor {name} is {:?}, the pose runtime needs F32",
                t.dtype()
            )));
        }
        if t.dims() != shape {
            return Err(self.err(format!(
                "tensor {name} has shape {:?}, the architecture needs {shape:?}",
                t.dims()
            )));
        }
        let v = t
            .flatten_all()
            .and_then(|v| v.to_vec1::<f32>())
            .map_err(|e| self.err(format!("tensor {name}: {e}")))?;
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(self.err(format!(
                "tensor {name} holds a non-finite value ({} at flat index {i})",
                v[i]
            )));
        }
        self.used.borrow_mut().insert(name.clone());
        Ok(v)
    }

    /// BatchNorm `prefix` over `c` channels as (scale, shift) in float64:
    /// `y = x scale + shift` in eval mode.
    pub fn bn(&self, prefix: &str, c: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        let g = self.get(&format!("{prefix}.weight"), &[c])?;
        let b = self.get(&format!("{prefix}.bias"), &[c])?;
        let m = self.get(&format!("{prefix}.running_mean"), &[c])?;
        let v = self.get(&format!("{prefix}.running_var"), &[c])?;
        if let Some(i) = v.iter().position(|x| *x < 0.0) {
            return Err(self.err(format!(
                "tensor {prefix}.running_var holds a negative variance ({} at channel {i})",
                v[i]
            )));
        }
        let tracked = format!("{}{prefix}.num_batches_tracked", self.prefix);
        self.used.borrow_mut().insert(tracked);
        let scale: Vec<f64> = g
            .iter()
            .zip(&v)
            .map(|(g, v)| f64::from(*g) / (f64::from(*v) + BN_EPS).sqrt())
            .collect();
        let shift = b
            .iter()
            .zip(&m)
            .zip(&scale)
            .map(|((b, m), s)| f64::from(*b) - f64::from(*m) * s)
            .collect();
        Ok((scale, shift))
    }

    /// BatchNorm `prefix` as float32 (scale, shift), for maps that are not folded.
    pub fn bn_f32(&self, prefix: &str, c: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let (s, h) = self.bn(prefix, c)?;
        Ok((
            s.iter().map(|v| *v as f32).collect(),
            h.iter().map(|v| *v as f32).collect(),
        ))
    }

    /// Convolution `conv` (weight `[cout, cin / groups, ...kernel]`, bias when
    /// `bias`) followed by BatchNorm `bn` (if any), folded into one [`Conv1d`].
    /// `kernel` is the weight's trailing shape (`[3]`, `[1, 3]`, `[1]`, `[1, 1]`).
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &self,
        conv: &str,
        bias: bool,
        bn: Option<&str>,
        [cin, cout, groups]: [usize; 3],
        kernel: &[usize],
        [dilation, stride, pad_l, pad_r]: [usize; 4],
    ) -> Result<Conv1d> {
        if groups == 0 || !cin.is_multiple_of(groups) || !cout.is_multiple_of(groups) {
            return Err(self.err(format!(
                "{conv}: {groups} groups do not divide {cin} input and {cout} output channels"
            )));
        }
        let mut shape = vec![cout, cin / groups];
        shape.extend_from_slice(kernel);
        let w = self.get(&format!("{conv}.weight"), &shape)?;
        let b = if bias {
            self.get(&format!("{conv}.bias"), &[cout])?
        } else {
            vec![0.0; cout]
        };
        let k: usize = kernel.iter().product();
        let (w, b) = match bn {
            None => (w, b),
            Some(p) => {
                let (s, h) = self.bn(p, cout)?;
                let w = w
                    .chunks_exact(w.len() / cout.max(1))
                    .zip(&s)
                    .flat_map(|(row, s)| row.iter().map(move |v| (f64::from(*v) * s) as f32))
                    .collect();
                let b = b
                    .iter()
                    .zip(s.iter().zip(&h))
                    .map(|(b, (s, h))| (f64::from(*b) * s + h) as f32)
                    .collect();
                (w, b)
            }
        };
        Ok(Conv1d::new(
            [cin, cout, k, groups],
            [dilation, stride, pad_l, pad_r],
            w,
            b,
        ))
    }

    /// Names under the prefix that the architecture did not read.
    pub fn unused(&self) -> Vec<String> {
        let used = self.used.borrow();
        let mut names: Vec<String> = self
            .st
            .tensors()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with(&self.prefix) && !used.contains(n))
            .collect();
        names.sort();
        names
    }
}
