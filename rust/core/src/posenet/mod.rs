//! Pose inference on the CPU: the WiFlow-STD presets and WiFlow's MM-Fi
//! variant as `csipose train` builds them, from the checkpoint's
//! `model.safetensors` (memory-mapped with candle-core's safetensors reader).
//!
//! The kernels are plain Rust: a batch is cut into chunks of windows that run
//! in parallel on csipose's own rayon pool, so `set_num_threads` is the
//! thread count (candle's CPU ops keep their own thread pool, sized once from
//! the environment, which would not follow it). Within a chunk every
//! convolution and projection is one single-threaded, cache-blocked matrix
//! product (`gemm`) with the chunk's windows stacked along its columns.
//!
//! Structure: the model kind, keypoints, dims, output activation and the
//! width plan's `min_feature_width` come from the checkpoint's metadata
//! (config); channel and group counts are read from the tensor shapes and
//! every tensor is checked (name, F32, shape, finite; an unknown tensor is an
//! error). Folded BatchNorms (eval mode, eps 1e-5): every BN that follows a
//! convolution (TCN, projection, conv blocks, residual projections, the
//! attention's qkv, decoder, MM-Fi head). Not folded, applied as affine maps:
//! the attention's BN over the logits and BN over its output.
//!
//! ```text
//! WiFlow-STD:  x [C, T] -> TCN -> [C', T] -> rows [T, 1, C'] -> conv blocks -> [T, c, W]
//!              -> attention along T, then along W -> 3x3 decoder -> pool (K, 1) -> [K, D]
//! MM-Fi:       x [C, T] -> TCN -> 1x1 proj [16K, T] -> rows -> 4 stride-2 blocks -> [T, c, K]
//!              -> attention along T, along K (last step) -> 1x1 head -> [K, D]
//! ```

pub(crate) mod activation;
mod attention;
mod blocks;
pub(crate) mod conv;
pub(crate) mod gemm;
mod heads;
mod input;
mod tcn;
mod temporal;
mod weights;

use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use rayon::prelude::*;

use crate::threads::install;
use crate::{Error, Result};
use activation::silu_all;
use attention::Axial;
use blocks::ConvBlock;
use conv::{Conv1d, Work};
use heads::Head;
pub use input::{MapSpec, Preprocess};
use tcn::TemporalBlock;
pub use temporal::{TemporalHead, TemporalOptions, TemporalStream};
use weights::Weights;

/// Which model the checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// WiFlow-STD (any preset): decoder + adaptive pooling head.
    WiFlowStd,
    /// WiFlow's MM-Fi variant: projection, last-step head.
    WiFlowMmfi,
}

/// What the metadata says about the architecture.
#[derive(Debug, Clone)]
pub struct Arch {
    pub kind: Kind,
    /// Time steps T of the model input (frames x packets).
    pub window: usize,
    pub keypoints: usize,
    pub dims: usize,
    /// WiFlow-STD: SiLU on the output.
    pub output_activation: bool,
    /// WiFlow-STD: a block halves the width while it stays >= this.
    pub min_feature_width: usize,
}

/// A loaded pose model with its preprocessing and de-standardisation.
#[derive(Debug, Clone)]
pub struct PoseNet {
    path: PathBuf,
    arch: Arch,
    in_channels: usize,
    tcn: Vec<TemporalBlock>,
    proj: Option<Conv1d>,
    up: ConvBlock,
    blocks: Vec<ConvBlock>,
    width_axis: Axial,
    height_axis: Axial,
    head: Head,
    parameters: usize,
    pre: Preprocess,
    mean_pose: Vec<f32>,
    target_scale: f32,
}

/// Scratch buffers of one worker, reused for every chunk it runs.
#[derive(Default)]
struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    work: Work,
    input: Vec<f32>,
    frame: Vec<f32>,
    f64s: Vec<f64>,
}

/// Windows per chunk: enough columns (windows x time) that the weights are
/// read once per ~128 columns, but no more chunks' worth than keeps every
/// thread busy.
fn chunk_windows(n: usize, t: usize, threads: usize) -> usize {
    let per = 128usize.div_ceil(t.max(1));
    per.min(n.div_ceil(threads.max(1))).max(1)
}

/// `src` `[outer, p, q, r]` -> `dst` `[outer, q, p, r]`.
fn swap_axes(src: &[f32], [outer, p, q, r]: [usize; 4], dst: &mut Vec<f32>) {
    dst.clear();
    dst.resize(outer * p * q * r, 0.0);
    for (s, d) in src
        .chunks_exact((p * q * r).max(1))
        .zip(dst.chunks_exact_mut((p * q * r).max(1)))
    {
        for i in 0..p {
            for j in 0..q {
                d[(j * p + i) * r..(j * p + i + 1) * r]
                    .copy_from_slice(&s[(i * q + j) * r..(i * q + j + 1) * r]);
            }
        }
    }
}

/// Width strides of `blocks` conv blocks (csipose.models.wiflow.conv_strides).
fn std_strides(mut width: usize, blocks: usize, min_width: usize) -> Vec<usize> {
    (0..blocks)
        .map(|_| {
            let half = width.div_ceil(2);
            if half >= min_width {
                width = half;
                2
            } else {
                1
            }
        })
        .collect()
}

impl PoseNet {
    /// Load `path` (a `model.safetensors` or a checkpoint directory) for `arch`,
    /// with the preprocessing `pre` and the de-standardisation
    /// `y * target_scale + mean_pose` (`mean_pose` `[K, D]`).
    pub fn load(
        path: &Path,
        arch: Arch,
        pre: Preprocess,
        mean_pose: Vec<f32>,
        target_scale: f32,
    ) -> Result<Self> {
        Self::load_prefixed(path, arch, pre, mean_pose, target_scale, "")
    }

    /// [`PoseNet::load`] of the tensors named `prefix` + the usual names (a
    /// temporal model's frame model is `frame.`); tensors outside the prefix
    /// are left to their own loader.
    pub fn load_prefixed(
        path: &Path,
        arch: Arch,
        pre: Preprocess,
        mean_pose: Vec<f32>,
        target_scale: f32,
        prefix: &str,
    ) -> Result<Self> {
        let file = crate::checkpoint::checkpoint_file(path)?;
        let bad = |m: String| Error::Checkpoint(format!("{}: {m}", file.display()));
        if arch.keypoints == 0 || arch.dims == 0 || arch.window == 0 {
            return Err(bad(format!(
                "the metadata describes {} keypoints x {} dims over {} time steps; all must be > 0",
                arch.keypoints, arch.dims, arch.window
            )));
        }
        if mean_pose.len() != arch.keypoints * arch.dims || mean_pose.iter().any(|v| !v.is_finite())
        {
            return Err(bad(format!(
                "metadata mean_pose must be {} x {} finite values, got {}",
                arch.keypoints,
                arch.dims,
                mean_pose.len()
            )));
        }
        if !(target_scale.is_finite() && target_scale > 0.0) {
            return Err(bad(format!(
                "metadata target_scale must be finite and > 0, got {target_scale}"
            )));
        }
        if pre.frames == 0 || !arch.window.is_multiple_of(pre.frames) {
            return Err(bad(format!(
                "metadata: {} time steps are not a whole number of packets per {}-frame window",
                arch.window, pre.frames
            )));
        }
        pre.transform()
            .map_err(|e| bad(format!("metadata transform: {e}")))?;
        // SAFETY: the map is read while the file stays as it is. Checkpoints are
        // written into a temporary directory and renamed into place, never
        // modified in place; the tensors are copied out before this returns.
        let st = unsafe { MmapedSafetensors::new(&file) }
            .map_err(|e| bad(format!("not a readable safetensors file: {e}")))?;
        let w = Weights::new(&st, &file).with_prefix(prefix);
        let in_channels = match w.shape("tcn.network.0.conv1_group.weight").as_deref() {
            Some([c, ..]) if *c > 0 => *c,
            _ => {
                return Err(bad(
                    "missing tensor tcn.network.0.conv1_group.weight (not a WiFlow checkpoint)"
                        .into(),
                ));
            }
        };
        let mut tcn = Vec::new();
        let mut c = in_channels;
        while w
            .shape(&format!("tcn.network.{}.conv1_group.weight", tcn.len()))
            .is_some()
        {
            let block =
                TemporalBlock::load(&w, &format!("tcn.network.{}", tcn.len()), c, tcn.len())?;
            c = block.out_channels();
            tcn.push(block);
        }
        let mut blocks_n = 0;
        while w
            .shape(&format!("residual_blocks.{blocks_n}.block.0.weight"))
            .is_some()
        {
            blocks_n += 1;
        }
        let (proj, width, strides, att) = match arch.kind {
            Kind::WiFlowStd => (
                None,
                c,
                std_strides(c, blocks_n, arch.min_feature_width.max(1)),
                "attention",
            ),
            Kind::WiFlowMmfi => {
                let p = match w.shape("tcn_proj.0.weight").as_deref() {
                    Some([p, ..]) => *p,
                    _ => return Err(bad("missing tensor tcn_proj.0.weight".into())),
                };
                if blocks_n >= usize::BITS as usize || p != arch.keypoints << blocks_n {
                    return Err(bad(format!(
                        "tensor tcn_proj.0.weight projects to {p} channels; {blocks_n} stride-2 blocks need {} x 2^{blocks_n}",
                        arch.keypoints
                    )));
                }
                let proj = w.conv(
                    "tcn_proj.0",
                    false,
                    Some("tcn_proj.1"),
                    [c, p, 1],
                    &[1],
                    [1, 1, 0, 0],
                )?;
                (Some(proj), p, vec![2; blocks_n], "att")
            }
        };
        let up = ConvBlock::load(&w, "up", 1, 1)?;
        let mut cc = up.out_channels();
        let mut blocks = Vec::with_capacity(blocks_n);
        let mut wf = width;
        for (j, s) in strides.iter().enumerate() {
            let b = ConvBlock::load(&w, &format!("residual_blocks.{j}"), cc, *s)?;
            cc = b.out_channels();
            wf = if *s == 2 { wf.div_ceil(2) } else { wf };
            blocks.push(b);
        }
        if arch.kind == Kind::WiFlowMmfi && wf != arch.keypoints {
            return Err(bad(format!(
                "the conv blocks end at width {wf}, the MM-Fi head needs one row per keypoint ({})",
                arch.keypoints
            )));
        }
        let width_axis = Axial::load(&w, &format!("{att}.width_axis"), cc)?;
        let height_axis = Axial::load(&w, &format!("{att}.height_axis"), cc)?;
        let head = match arch.kind {
            Kind::WiFlowStd => {
                Head::decoder(&w, cc, arch.dims, arch.keypoints, arch.output_activation)?
            }
            Kind::WiFlowMmfi => Head::last(&w, cc, arch.dims)?,
        };
        let unused = w.unused();
        if !unused.is_empty() {
            return Err(bad(format!(
                "tensor{} {} not part of the {:?} architecture the metadata and shapes describe",
                if unused.len() > 1 { "s" } else { "" },
                unused.join(", "),
                arch.kind
            )));
        }
        let parameters = tcn.iter().map(TemporalBlock::parameters).sum::<usize>()
            + proj.as_ref().map_or(0, |p| p.w.len() + 2 * p.cout)
            + up.parameters()
            + blocks.iter().map(ConvBlock::parameters).sum::<usize>()
            + width_axis.parameters()
            + height_axis.parameters()
            + head.parameters();
        Ok(Self {
            path: file,
            arch,
            in_channels,
            tcn,
            proj,
            up,
            blocks,
            width_axis,
            height_axis,
            head,
            parameters,
            pre,
            mean_pose,
            target_scale,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Learned parameters (BatchNorm weights and biases included, running statistics not).
    pub fn parameters(&self) -> usize {
        self.parameters
    }

    /// Model input `[channels, time]`.
    pub fn input_shape(&self) -> [usize; 2] {
        [self.in_channels, self.arch.window]
    }

    /// Output `[keypoints, dims]`.
    pub fn output_shape(&self) -> [usize; 2] {
        [self.arch.keypoints, self.arch.dims]
    }

    pub fn preprocess(&self) -> &Preprocess {
        &self.pre
    }

    /// Model inputs `x` `[nb, C, T]` -> `out` `[nb, K, D]`, standardised units.
    /// The chunk's windows run together: every convolution is one matrix
    /// product with the windows stacked along its columns.
    fn forward_chunk(&self, x: &[f32], nb: usize, s: &mut Scratch, out: &mut [f32]) {
        let t = self.arch.window;
        let wk = &mut s.work;
        let mut c = self.in_channels;
        // [nb, C, T] -> [C, nb, T]
        swap_axes(x, [1, nb, c, t], &mut s.a);
        for block in &self.tcn {
            block.forward(&s.a, nb, t, &mut s.b, &mut s.c, wk);
            std::mem::swap(&mut s.a, &mut s.b);
            c = block.out_channels();
        }
        if let Some(p) = &self.proj {
            p.forward_rows(&s.a, nb, t, &mut s.b, wk);
            silu_all(&mut s.b);
            std::mem::swap(&mut s.a, &mut s.b);
            c = p.cout;
        }
        // [C', nb * T] -> rows [1, nb * T, C'].
        let rows = nb * t;
        swap_axes(&s.a, [1, c, rows, 1], &mut s.b);
        let mut width = self.up.forward(&s.b, rows, c, &mut s.a, &mut s.c, wk);
        for b in &self.blocks {
            width = b.forward(&s.a, rows, width, &mut s.b, &mut s.c, wk);
            std::mem::swap(&mut s.a, &mut s.b);
        }
        let cc = self.up_channels_out();
        // The attention wants its sequences innermost: [cc, l, seqs].
        // Along time, one sequence per (window, width row): [cc, T, nb, W].
        swap_axes(&s.a, [cc, nb, t, width], &mut s.b);
        self.width_axis
            .forward(&s.b, nb * width, t, &mut s.a, &mut s.c, wk);
        match self.arch.kind {
            Kind::WiFlowStd => {
                // Along the width, one sequence per (window, time step): [cc, W, nb, T].
                swap_axes(&s.a, [cc, t, nb, width], &mut s.b);
                swap_axes(&s.b, [cc, nb * t, width, 1], &mut s.a);
                self.height_axis
                    .forward(&s.a, nb * t, width, &mut s.b, &mut s.c, wk);
                // The decoder's images [cc, nb, W, T].
                swap_axes(&s.b, [cc, width, nb, t], &mut s.a);
                self.head
                    .decode(&s.a, nb, width, t, out, &mut s.b, &mut s.c, wk);
            }
            Kind::WiFlowMmfi => {
                // The head reads the last step only: [cc, W, nb] at t = T - 1.
                s.b.clear();
                for ch in s.a.chunks_exact(t * nb * width) {
                    s.b.extend_from_slice(&ch[(t - 1) * nb * width..]);
                }
                swap_axes(&s.b, [cc, nb, width, 1], &mut s.a);
                self.height_axis
                    .forward(&s.a, nb, width, &mut s.b, &mut s.c, wk);
                // [cc, K, nb] -> [cc, nb, K] for the head.
                swap_axes(&s.b, [cc, width, nb, 1], &mut s.a);
                self.head
                    .last_step(&s.a, nb, width, out, &mut s.b, &mut s.c, wk);
            }
        }
    }

    /// Channels the attention and the head see.
    fn up_channels_out(&self) -> usize {
        self.blocks
            .last()
            .map_or(self.up.out_channels(), ConvBlock::out_channels)
    }

    /// Model inputs `x` `[n, C, T]` -> `[n, K, D]` in standardised units (what
    /// torch's module returns).
    pub fn forward(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let [c, t] = self.input_shape();
        let want = n
            .checked_mul(c * t)
            .ok_or_else(|| Error::Shape("batch too large".into()))?;
        if x.len() != want {
            return Err(Error::Shape(format!(
                "the model takes inputs [n, {c}, {t}]; got {} values for {n}",
                x.len()
            )));
        }
        let kd = self.arch.keypoints * self.arch.dims;
        let mut out = vec![0f32; n * kd];
        if n == 0 {
            return Ok(out);
        }
        let nb = chunk_windows(n, t, crate::threads::num_threads()?);
        if nb >= n {
            // One chunk: run it here, without waking the pool.
            self.forward_chunk(x, n, &mut Scratch::default(), &mut out);
            return Ok(out);
        }
        install(|| {
            out.par_chunks_mut(nb * kd)
                .zip(x.par_chunks(nb * c * t))
                .for_each_init(Scratch::default, |s, (o, xi)| {
                    self.forward_chunk(xi, o.len() / kd, s, o);
                });
        })?;
        Ok(out)
    }

    /// Raw store windows `amplitude` (and `phase` when the checkpoint reads it),
    /// each `[n, frames, antennas, subcarriers, packets]` -> keypoints `[n, K, D]`
    /// in the data's units.
    pub fn predict(
        &self,
        amplitude: &[f32],
        phase: Option<&[f32]>,
        [n, l, a, s, p]: [usize; 5],
    ) -> Result<Vec<f32>> {
        match (self.pre.phase, phase.is_some()) {
            (true, false) => {
                return Err(Error::Value(
                    "the checkpoint was trained on amplitude+phase: pass the phase windows too"
                        .into(),
                ));
            }
            (false, true) => {
                return Err(Error::Value(
                    "the checkpoint was trained on amplitude only: pass no phase".into(),
                ));
            }
            _ => {}
        }
        let tf = self.pre.transform()?;
        let [c, t] = self.input_shape();
        self.pre.check(&tf, [l, a, s, p], c, t)?;
        let win = l * a * s * p;
        let want = n
            .checked_mul(win)
            .ok_or_else(|| Error::Shape("batch too large".into()))?;
        if amplitude.len() != want || phase.is_some_and(|ph| ph.len() != want) {
            return Err(Error::Shape(format!(
                "amplitude and phase must hold {n} x {l} x {a} x {s} x {p} values"
            )));
        }
        let kd = self.arch.keypoints * self.arch.dims;
        let mut out = vec![0f32; n * kd];
        if n == 0 {
            return Ok(out);
        }
        let nb = chunk_windows(n, t, crate::threads::num_threads()?);
        let run = |sc: &mut Scratch, (ci, o): (usize, &mut [f32])| {
            let m = o.len() / kd;
            let mut x = std::mem::take(&mut sc.input);
            x.clear();
            x.resize(m * c * t, 0.0);
            for (j, xi) in x.chunks_exact_mut(c * t).enumerate() {
                let i = ci * nb + j;
                self.pre.window(
                    &tf,
                    &amplitude[i * win..(i + 1) * win],
                    phase.map(|ph| &ph[i * win..(i + 1) * win]),
                    [l, a, s, p],
                    &mut sc.f64s,
                    &mut sc.frame,
                    xi,
                );
            }
            self.forward_chunk(&x, m, sc, o);
            sc.input = x;
            for (v, mp) in o.iter_mut().zip(self.mean_pose.iter().cycle()) {
                *v = *v * self.target_scale + mp;
            }
        };
        if nb >= n {
            // One chunk: run it here, without waking the pool.
            run(&mut Scratch::default(), (0, &mut out));
            return Ok(out);
        }
        install(|| {
            out.par_chunks_mut(nb * kd)
                .enumerate()
                .for_each_init(Scratch::default, run);
        })?;
        Ok(out)
    }
}
