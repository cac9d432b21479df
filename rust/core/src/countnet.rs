//! CountNet inference on the CPU: person count (0..7) and a confidence from
//! one CSI window.
//!
//! The forward runs on the pose models' kernels (`posenet::conv::Conv1d`,
//! `posenet::gemm`): each chunk of windows is stacked along the matrix
//! products' columns (`[channels, windows, frames]`), so a batch of one is
//! three GEMMs and four small ones with reused scratch (no per-op tensor or
//! dispatch), and a large batch is GEMMs over stacked windows, chunks in
//! parallel on csipose's pool (`set_num_threads`). candle only reads the
//! safetensors file.
//!
//! The checkpoint contract is the tensor names of the upstream cog (see
//! `docs/counting.md`): the 14 weight tensors of [`WEIGHTS`] plus the
//! preprocessing and calibration tensors of [`EXTRAS`], all F32, in one
//! `model.safetensors`. Every name, dtype, shape and value is checked when the
//! file is loaded; a missing or mis-shaped tensor is an [`Error::Checkpoint`]
//! naming the tensor and the file, never a fallback.
//!
//! Forward (identical to `csipose.models.CountNet` in torch):
//!
//! ```text
//! x [B, 56, 20]  (subcarriers x frames, raw amplitude after the declared subcarrier map)
//! z = (x - preprocess.mean[s]) / preprocess.std[s]
//! h = relu(conv1d(z, enc.c1, pad 1, dil 1)); relu(conv enc.c2, pad 2, dil 2); relu(conv enc.c3, pad 4, dil 4)
//! p = mean of h over the 20 frames                                   [B, 128]
//! count_logits = fc2(relu(fc1(p)))  (count_head)                     [B, 8]
//! conf_logit   = fc2(relu(fc1(p)))  (conf_head)                      [B]
//! probabilities = softmax(count_logits / calibration.temperature)
//! confidence    = sigmoid(conf_logit / calibration.confidence_temperature)
//! count         = argmax(probabilities) (the first maximum)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use rayon::prelude::*;

use crate::posenet::activation::relu_all;
use crate::posenet::conv::{Conv1d, Work};
use crate::posenet::gemm::{Packed, gemm};
use crate::threads::install;
use crate::{Error, Result};

/// Subcarriers of the input window (channels of the first convolution).
pub const SUBCARRIERS: usize = 56;
/// Frames of the input window (length of the convolutions).
pub const FRAMES: usize = 20;
/// Count classes: 0..=7 people.
pub const CLASSES: usize = 8;
/// Floats in one window.
pub const WINDOW: usize = SUBCARRIERS * FRAMES;
/// Most windows per chunk: 8 x 20 = 160 columns per matrix product reads each
/// weight panel once per 160 columns while the im2col buffer of the widest
/// layer (384 x 160 floats) stays in L2. Fewer when that would leave a thread
/// of csipose's pool idle.
const CHUNK: usize = 8;

/// The weight tensors (name, shape): upstream `cog-person-count`'s names.
pub const WEIGHTS: [(&str, &[usize]); 14] = [
    ("enc.c1.weight", &[64, 56, 3]),
    ("enc.c1.bias", &[64]),
    ("enc.c2.weight", &[128, 64, 3]),
    ("enc.c2.bias", &[128]),
    ("enc.c3.weight", &[128, 128, 3]),
    ("enc.c3.bias", &[128]),
    ("count_head.fc1.weight", &[64, 128]),
    ("count_head.fc1.bias", &[64]),
    ("count_head.fc2.weight", &[8, 64]),
    ("count_head.fc2.bias", &[8]),
    ("conf_head.fc1.weight", &[32, 128]),
    ("conf_head.fc1.bias", &[32]),
    ("conf_head.fc2.weight", &[1, 32]),
    ("conf_head.fc2.bias", &[1]),
];

/// Preprocessing and calibration tensors (name, shape), csipose's additions:
/// the training split's per-subcarrier z-score and the temperatures fitted
/// on the validation split.
pub const EXTRAS: [(&str, &[usize]); 4] = [
    ("preprocess.mean", &[56]),
    ("preprocess.std", &[56]),
    ("calibration.temperature", &[1]),
    ("calibration.confidence_temperature", &[1]),
];

/// (padding = dilation) of the three convolutions.
const DILATIONS: [usize; 3] = [1, 2, 4];

/// What CountNet says about a batch of `n` windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Calibrated class probabilities, `[n, 8]` row-major.
    pub probabilities: Vec<f32>,
    /// The most probable count of each window (first maximum), `[n]`; -1 for a
    /// window with a non-finite value.
    pub counts: Vec<i64>,
    /// Calibrated probability that the count is right, `[n]`.
    pub confidences: Vec<f32>,
}

/// A linear layer `[out, in]` packed for [`gemm`], with its bias.
#[derive(Debug, Clone)]
struct Linear {
    w: Packed,
    b: Vec<f32>,
}

/// A loaded CountNet (weights copied out of the memory-mapped file).
#[derive(Debug, Clone)]
pub struct CountNet {
    path: PathBuf,
    /// enc.c1..c3 (kernel 3, padding = dilation).
    convs: Vec<Conv1d>,
    /// count fc1, count fc2, conf fc1, conf fc2.
    linears: Vec<Linear>,
    mean: Vec<f32>,
    std: Vec<f32>,
    temperature: f32,
    confidence_temperature: f32,
    parameters: usize,
    extra_tensors: Vec<String>,
}

/// Scratch of one worker, reused for every chunk it runs.
#[derive(Debug, Default)]
struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
    work: Work,
}

impl CountNet {
    /// Load `path` (a `model.safetensors` file), memory-mapped, and check every tensor.
    pub fn load(path: &Path) -> Result<Self> {
        let file = crate::checkpoint::checkpoint_file(path)?;
        let bad = |m: String| Error::Checkpoint(format!("{}: {m}", file.display()));
        // SAFETY: the map is read while the file stays as it is. Checkpoints are
        // written into a temporary directory and renamed into place, never
        // modified in place; the tensors are copied out before this returns.
        let st = unsafe { MmapedSafetensors::new(&file) }
            .map_err(|e| bad(format!("not a readable safetensors file: {e}")))?;
        let views = st.tensors();
        let present: BTreeMap<&str, &[usize]> = views
            .iter()
            .map(|(name, view)| (name.as_str(), view.shape()))
            .collect();
        let missing: Vec<&str> = WEIGHTS
            .iter()
            .chain(EXTRAS.iter())
            .map(|(name, _)| *name)
            .filter(|name| !present.contains_key(name))
            .collect();
        if !missing.is_empty() {
            return Err(bad(format!(
                "missing tensor{} {} (a CountNet checkpoint holds {} and {})",
                if missing.len() > 1 { "s" } else { "" },
                missing.join(", "),
                WEIGHTS.len(),
                EXTRAS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut tensors = BTreeMap::new();
        for (name, shape) in WEIGHTS.iter().chain(EXTRAS.iter()) {
            let t = st
                .load(name, &Device::Cpu)
                .map_err(|e| bad(format!("tensor {name}: cannot read: {e}")))?;
            if t.dtype() != DType::F32 {
                return Err(bad(format!(
                    "tensor {name} is {:?}, CountNet needs F32",
                    t.dtype()
                )));
            }
            if t.dims() != *shape {
                return Err(bad(format!(
                    "tensor {name} has shape {:?}, CountNet needs {:?}",
                    t.dims(),
                    shape
                )));
            }
            let values = t
                .flatten_all()
                .and_then(|v| v.to_vec1::<f32>())
                .map_err(|e| bad(format!("tensor {name}: {e}")))?;
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(bad(format!(
                    "tensor {name} holds a non-finite value ({} at flat index {i})",
                    values[i]
                )));
            }
            tensors.insert(*name, (t, values));
        }
        let extra_tensors = present
            .keys()
            .filter(|n| !WEIGHTS.iter().chain(EXTRAS.iter()).any(|(w, _)| w == *n))
            .map(|n| n.to_string())
            .collect();
        let get = |name: &str| -> Result<&(Tensor, Vec<f32>)> {
            tensors
                .get(name)
                .ok_or_else(|| bad(format!("missing tensor {name}")))
        };
        let scalar = |name: &str| -> Result<f32> {
            let v = get(name)?.1.first().copied().unwrap_or(f32::NAN);
            if v > 0.0 && v.is_finite() {
                Ok(v)
            } else {
                Err(bad(format!(
                    "tensor {name} must be a positive temperature, got {v}"
                )))
            }
        };
        let temperature = scalar("calibration.temperature")?;
        let confidence_temperature = scalar("calibration.confidence_temperature")?;
        let (_, std_values) = get("preprocess.std")?;
        if let Some(i) = std_values.iter().position(|v| *v <= 0.0) {
            return Err(bad(format!(
                "tensor preprocess.std must be > 0 everywhere, subcarrier {i} holds {}",
                std_values[i]
            )));
        }
        let values = |name: &str| -> Result<Vec<f32>> { Ok(get(name)?.1.clone()) };
        let mean = values("preprocess.mean")?;
        let std = std_values.clone();
        let mut convs = Vec::with_capacity(DILATIONS.len());
        for (i, d) in DILATIONS.into_iter().enumerate() {
            let w = get(&format!("enc.c{}.weight", i + 1))?;
            let b = values(&format!("enc.c{}.bias", i + 1))?;
            let (cout, cin, k) =
                w.0.dims3()
                    .map_err(|e| bad(format!("enc.c{}: {e}", i + 1)))?;
            convs.push(Conv1d::new([cin, cout, k, 1], [d, 1, d, d], w.1.clone(), b));
        }
        let linears = [
            "count_head.fc1",
            "count_head.fc2",
            "conf_head.fc1",
            "conf_head.fc2",
        ]
        .iter()
        .map(|layer| {
            let w = get(&format!("{layer}.weight"))?;
            let (m, k) = w.0.dims2().map_err(|e| bad(format!("{layer}: {e}")))?;
            Ok(Linear {
                w: Packed::new(&w.1, m, k),
                b: values(&format!("{layer}.bias"))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let parameters = WEIGHTS
            .iter()
            .map(|(_, shape)| shape.iter().product::<usize>())
            .sum();
        Ok(Self {
            path: file,
            convs,
            linears,
            mean,
            std,
            temperature,
            confidence_temperature,
            parameters,
            extra_tensors,
        })
    }

    /// The `model.safetensors` file the weights came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Learned parameters (97,737).
    pub fn parameters(&self) -> usize {
        self.parameters
    }

    /// The count-logit temperature.
    pub fn temperature(&self) -> f32 {
        self.temperature
    }

    /// The confidence-logit temperature.
    pub fn confidence_temperature(&self) -> f32 {
        self.confidence_temperature
    }

    /// Tensors in the file that CountNet does not use.
    pub fn extra_tensors(&self) -> &[String] {
        &self.extra_tensors
    }

    /// Uncalibrated count logits `[n, 8]` and confidence logits `[n]` of the
    /// `n` windows of `windows` into `count` and `conf`.
    fn logits(
        &self,
        windows: &[f32],
        n: usize,
        s: &mut Scratch,
        count: &mut [f32],
        conf: &mut [f32],
    ) {
        let Scratch { a, b, work } = s;
        // z-score into the stacked layout [subcarriers, windows, frames].
        a.clear();
        a.resize(SUBCARRIERS * n * FRAMES, 0.0);
        for (r, x) in windows.chunks_exact(WINDOW).take(n).enumerate() {
            for (sc, row) in x.chunks_exact(FRAMES).enumerate() {
                let (m, sd) = (self.mean[sc], self.std[sc]);
                let dst = &mut a[(sc * n + r) * FRAMES..(sc * n + r + 1) * FRAMES];
                for (o, v) in dst.iter_mut().zip(row) {
                    *o = (v - m) / sd;
                }
            }
        }
        for conv in &self.convs {
            conv.forward_rows(a, n, FRAMES, b, work);
            relu_all(b);
            std::mem::swap(a, b);
        }
        // Mean over frames: [channels, windows, frames] -> [channels, windows].
        let pooled: Vec<f32> = a
            .chunks_exact(FRAMES)
            .map(|f| f.iter().sum::<f32>() / FRAMES as f32)
            .collect();
        let mut head = |first: usize, out: &mut [f32]| {
            let (fc1, fc2) = (&self.linears[first], &self.linears[first + 1]);
            b.clear();
            b.resize(fc1.w.m * n, 0.0);
            gemm(&fc1.w, &fc1.b, &pooled, n, b, &mut work.panel);
            relu_all(b);
            a.clear();
            a.resize(fc2.w.m * n, 0.0);
            gemm(&fc2.w, &fc2.b, b, n, a, &mut work.panel);
            // [outputs, windows] -> [windows, outputs].
            for (o, row) in a.chunks_exact(n).enumerate() {
                for (w, v) in row.iter().enumerate() {
                    out[w * fc2.w.m + o] = *v;
                }
            }
        };
        head(0, count);
        head(2, conf);
    }

    /// Predict `n` windows given as `n * 1120` floats, each `[56 subcarriers, 20 frames]`
    /// row-major (raw amplitude after the checkpoint's declared subcarrier map).
    pub fn predict(&self, windows: &[f32], n: usize) -> Result<Prediction> {
        let want = n.checked_mul(WINDOW).ok_or_else(|| {
            Error::Shape(format!(
                "{n} windows of {WINDOW} values overflow the address space"
            ))
        })?;
        if windows.len() != want {
            return Err(Error::Shape(format!(
                "CountNet takes windows of {SUBCARRIERS} subcarriers x {FRAMES} frames \
                 ({WINDOW} values each); got {} values for {n} windows",
                windows.len()
            )));
        }
        let mut out = Prediction {
            probabilities: Vec::with_capacity(n * CLASSES),
            counts: Vec::with_capacity(n),
            confidences: Vec::with_capacity(n),
        };
        let mut count = vec![0f32; n * CLASSES];
        let mut conf = vec![0f32; n];
        if n > 0 {
            let nb = CHUNK.min(n.div_ceil(crate::threads::num_threads()?));
            if nb >= n {
                // One chunk: run it here, without waking the pool.
                self.logits(windows, n, &mut Scratch::default(), &mut count, &mut conf);
            } else {
                install(|| {
                    count
                        .par_chunks_mut(nb * CLASSES)
                        .zip(conf.par_chunks_mut(nb))
                        .zip(windows.par_chunks(nb * WINDOW))
                        .for_each_init(Scratch::default, |s, ((c, f), x)| {
                            self.logits(x, f.len(), s, c, f);
                        });
                })?;
            }
        }
        let windows = windows.chunks_exact(WINDOW);
        for ((row, &c), x) in count.chunks_exact(CLASSES).zip(&conf).zip(windows) {
            // The ReLU maps NaN to 0 (f32::max, as candle's relu did): a window
            // with a NaN or an infinity would get a finite, meaningless answer.
            // It gets NaN and count -1.
            if x.iter().all(|v| v.is_finite()) {
                let (p, k) = softmax(row, self.temperature);
                out.probabilities.extend_from_slice(&p);
                out.counts.push(k as i64);
                out.confidences
                    .push(sigmoid(c / self.confidence_temperature));
            } else {
                out.probabilities.extend_from_slice(&[f32::NAN; CLASSES]);
                out.counts.push(-1);
                out.confidences.push(f32::NAN);
            }
        }
        Ok(out)
    }
}

/// softmax(row / t) in f32 as torch computes it (max subtracted), and the
/// index of the first maximum probability.
fn softmax(row: &[f32], t: f32) -> ([f32; CLASSES], usize) {
    let mut z = [0f32; CLASSES];
    for (o, &v) in z.iter_mut().zip(row) {
        *o = v / t;
    }
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let mut best = 0;
    for k in 0..CLASSES {
        z[k] /= sum;
        if z[k] > z[best] {
            best = k;
        }
    }
    (z, best)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Deterministic pseudo-random values in [-scale, scale).
    fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    fn tensors(seed: u64) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, shape)) in WEIGHTS.iter().chain(EXTRAS.iter()).enumerate() {
            let n: usize = shape.iter().product();
            let v = match *name {
                "preprocess.mean" => values(n, seed + 100, 1.0),
                "preprocess.std" => values(n, seed + 101, 0.5).iter().map(|v| v + 1.0).collect(),
                "calibration.temperature" => vec![1.3],
                "calibration.confidence_temperature" => vec![0.8],
                _ => values(n, seed + i as u64, 0.15),
            };
            out.insert(
                name.to_string(),
                Tensor::from_vec(v, *shape, &Device::Cpu).unwrap(),
            );
        }
        out
    }

    fn write(dir: &Path, t: &HashMap<String, Tensor>) -> PathBuf {
        let p = dir.join("model.safetensors");
        candle_core::safetensors::save(t, &p).unwrap();
        p
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("csipose-countnet-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The forward pass with plain loops over row-major slices.
    fn reference(t: &HashMap<String, Tensor>, x: &[f32]) -> (Vec<f32>, f32) {
        let v = |n: &str| t[n].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (mean, std) = (v("preprocess.mean"), v("preprocess.std"));
        let mut h: Vec<f32> = (0..WINDOW)
            .map(|i| (x[i] - mean[i / FRAMES]) / std[i / FRAMES])
            .collect();
        let mut cin = SUBCARRIERS;
        for (i, d) in DILATIONS.iter().enumerate() {
            let (w, b) = (
                v(&format!("enc.c{}.weight", i + 1)),
                v(&format!("enc.c{}.bias", i + 1)),
            );
            let cout = b.len();
            let mut o = vec![0f32; cout * FRAMES];
            for co in 0..cout {
                for l in 0..FRAMES {
                    let mut s = b[co];
                    for ci in 0..cin {
                        for k in 0..3 {
                            let src = l as isize + (k as isize - 1) * *d as isize;
                            if (0..FRAMES as isize).contains(&src) {
                                s += w[(co * cin + ci) * 3 + k] * h[ci * FRAMES + src as usize];
                            }
                        }
                    }
                    o[co * FRAMES + l] = s.max(0.0);
                }
            }
            h = o;
            cin = cout;
        }
        let pooled: Vec<f32> = (0..128)
            .map(|c| h[c * FRAMES..(c + 1) * FRAMES].iter().sum::<f32>() / FRAMES as f32)
            .collect();
        let linear = |x: &[f32], layer: &str, relu: bool| -> Vec<f32> {
            let (w, b) = (v(&format!("{layer}.weight")), v(&format!("{layer}.bias")));
            (0..b.len())
                .map(|o| {
                    let s = b[o] + (0..x.len()).map(|i| w[o * x.len() + i] * x[i]).sum::<f32>();
                    if relu { s.max(0.0) } else { s }
                })
                .collect()
        };
        let count = linear(
            &linear(&pooled, "count_head.fc1", true),
            "count_head.fc2",
            false,
        );
        let conf = linear(
            &linear(&pooled, "conf_head.fc1", true),
            "conf_head.fc2",
            false,
        );
        (count, conf[0])
    }

    #[test]
    fn forward_matches_plain_loops() {
        let dir = tmpdir("forward");
        let t = tensors(1);
        let net = CountNet::load(&write(&dir, &t)).unwrap();
        assert_eq!(net.parameters(), 97_737);
        let n = 3;
        let x = values(n * WINDOW, 7, 2.0);
        let p = net.predict(&x, n).unwrap();
        assert_eq!(
            (p.probabilities.len(), p.counts.len(), p.confidences.len()),
            (24, 3, 3)
        );
        for b in 0..n {
            let (logits, conf) = reference(&t, &x[b * WINDOW..(b + 1) * WINDOW]);
            let z: Vec<f64> = logits.iter().map(|&l| f64::from(l) / 1.3).collect();
            let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = z.iter().map(|v| (v - m).exp()).sum();
            for (k, zk) in z.iter().enumerate() {
                let want = (zk - m).exp() / s;
                let got = f64::from(p.probabilities[b * CLASSES + k]);
                assert!(
                    (want - got).abs() < 1e-5,
                    "window {b} class {k}: {got} vs {want}"
                );
            }
            let want_conf = 1.0 / (1.0 + (-f64::from(conf) / 0.8).exp());
            assert!((f64::from(p.confidences[b]) - want_conf).abs() < 1e-5);
            let row = &p.probabilities[b * CLASSES..(b + 1) * CLASSES];
            let best = (0..CLASSES).fold(0, |a, k| if row[k] > row[a] { k } else { a });
            assert_eq!(p.counts[b], best as i64);
        }
        // More windows than one chunk: the same answers as one window at a time.
        let n = CHUNK + 3;
        let x = values(n * WINDOW, 9, 2.0);
        let all = net.predict(&x, n).unwrap();
        let last = net.predict(&x[(n - 1) * WINDOW..], 1).unwrap();
        assert_eq!(
            &all.probabilities[(n - 1) * CLASSES..],
            &last.probabilities[..]
        );
        assert_eq!(net.predict(&[], 0).unwrap().counts.len(), 0);
    }

    #[test]
    fn directory_is_refused_and_its_file_loads() {
        let dir = tmpdir("dir");
        write(&dir, &tensors(2));
        assert!(matches!(CountNet::load(&dir), Err(Error::Checkpoint(_))));
        let net = CountNet::load(&dir.join("model.safetensors")).unwrap();
        assert!(net.path().ends_with("model.safetensors"));
        assert!(net.extra_tensors().is_empty());
    }

    fn load_err(name: &str, t: &HashMap<String, Tensor>) -> String {
        let dir = tmpdir(name);
        match CountNet::load(&write(&dir, t)) {
            Err(Error::Checkpoint(m)) => m,
            other => panic!("expected a checkpoint error, got {other:?}"),
        }
    }

    #[test]
    fn bad_checkpoints_are_errors_naming_tensor_and_file() {
        let mut t = tensors(3);
        t.remove("enc.c2.bias");
        t.remove("calibration.temperature");
        let m = load_err("missing", &t);
        assert!(
            m.contains("enc.c2.bias") && m.contains("calibration.temperature"),
            "{m}"
        );
        assert!(m.contains("model.safetensors"), "{m}");

        let mut t = tensors(3);
        t.insert(
            "count_head.fc2.weight".into(),
            Tensor::zeros((7, 64), DType::F32, &Device::Cpu).unwrap(),
        );
        let m = load_err("shape", &t);
        assert!(
            m.contains("count_head.fc2.weight") && m.contains("[7, 64]"),
            "{m}"
        );

        let mut t = tensors(3);
        t.insert(
            "enc.c1.bias".into(),
            Tensor::zeros(64, DType::F64, &Device::Cpu).unwrap(),
        );
        assert!(load_err("dtype", &t).contains("F64"));

        let mut t = tensors(3);
        t.insert(
            "calibration.temperature".into(),
            Tensor::new(&[0f32], &Device::Cpu).unwrap(),
        );
        assert!(load_err("temperature", &t).contains("positive temperature"));

        let mut t = tensors(3);
        t.insert(
            "preprocess.std".into(),
            Tensor::zeros(56, DType::F32, &Device::Cpu).unwrap(),
        );
        assert!(load_err("std", &t).contains("preprocess.std"));

        let mut t = tensors(3);
        t.insert(
            "enc.c3.bias".into(),
            Tensor::new(&[f32::NAN; 128], &Device::Cpu).unwrap(),
        );
        assert!(load_err("nan", &t).contains("non-finite"));

        let dir = tmpdir("garbage");
        std::fs::write(dir.join("model.safetensors"), b"not a safetensors file").unwrap();
        assert!(matches!(
            CountNet::load(&dir.join("model.safetensors")),
            Err(Error::Checkpoint(_))
        ));
        let nowhere = dir.join("absent");
        match CountNet::load(&nowhere) {
            Err(Error::Checkpoint(m)) => assert!(m.contains("absent"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_input_length_is_a_shape_error() {
        let dir = tmpdir("input");
        let net = CountNet::load(&write(&dir, &tensors(4))).unwrap();
        assert!(matches!(
            net.predict(&[0.0; WINDOW - 1], 1),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            net.predict(&[0.0; WINDOW], 2),
            Err(Error::Shape(_))
        ));
        assert!(matches!(net.predict(&[], usize::MAX), Err(Error::Shape(_))));
    }

    #[test]
    fn non_finite_windows_give_nan_and_count_minus_one() {
        let dir = tmpdir("nan");
        let net = CountNet::load(&write(&dir, &tensors(5))).unwrap();
        let mut x = values(3 * WINDOW, 11, 1.0);
        x[WINDOW + 17] = f32::NAN;
        x[2 * WINDOW] = f32::INFINITY;
        let p = net.predict(&x, 3).unwrap();
        assert_eq!(&p.counts[1..], &[-1, -1]);
        assert!(p.counts[0] >= 0 && p.confidences[0].is_finite());
        assert!(p.probabilities[CLASSES..].iter().all(|v| v.is_nan()));
        assert!(p.confidences[1].is_nan() && p.confidences[2].is_nan());
    }
}
