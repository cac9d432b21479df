//! The temporal pose model's head (`csipose.models.temporal.TemporalPoseModel`
//! minus its frame model): one causal sparse-attention block over the frame
//! model's standardised outputs f [B, T, K*D].
//!
//! ```text
//! h = embed(f); h = h + o_proj(attn(q, k, v of norm1(h))); h = h + mlp(norm2(h))
//! out = f + head(h)          (standardised; de-standardised once, by the caller)
//! ```
//!
//! Everything but the attention is per frame, so a sequence and a stream run
//! the same per-frame code around `attention::forward` and
//! `attention::Stream` (which are bit-identical row for row): a streamed frame
//! equals the sequence's row t. Tensors are read and checked like the frame
//! model's (F32, exact shape, finite; any unread tensor outside `frame.` is an
//! error naming it and the file).

use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;

use super::weights::Weights;
use crate::attention::{self, Pattern, Shape, Stream, dot};
use crate::{Error, Result, threads};

/// torch's LayerNorm default.
const LN_EPS: f32 = 1e-5;
/// Frames per parallel task.
const ROWS_PER_TASK: usize = 16;

/// Sizes of the temporal block (checkpoint metadata `temporal`).
#[derive(Debug, Clone)]
pub struct TemporalOptions {
    /// Width of the residual stream.
    pub dim: usize,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// The attention pattern (must be causal).
    pub pattern: Pattern,
}

/// y = W x + b, W [cout, cin].
#[derive(Debug, Clone)]
struct Linear {
    cin: usize,
    w: Vec<f32>,
    b: Vec<f32>,
}

impl Linear {
    fn load(w: &Weights, name: &str, cin: usize, cout: usize) -> Result<Self> {
        Ok(Self {
            cin,
            w: w.get(&format!("{name}.weight"), &[cout, cin])?,
            b: w.get(&format!("{name}.bias"), &[cout])?,
        })
    }

    fn forward(&self, x: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend(
            self.w
                .chunks_exact(self.cin)
                .zip(&self.b)
                .map(|(row, b)| b + dot(row, x)),
        );
    }

    fn parameters(&self) -> usize {
        self.w.len() + self.b.len()
    }
}

/// LayerNorm over the last axis, eps 1e-5, elementwise affine.
#[derive(Debug, Clone)]
struct LayerNorm {
    g: Vec<f32>,
    b: Vec<f32>,
}

impl LayerNorm {
    fn load(w: &Weights, name: &str, n: usize) -> Result<Self> {
        Ok(Self {
            g: w.get(&format!("{name}.weight"), &[n])?,
            b: w.get(&format!("{name}.bias"), &[n])?,
        })
    }

    fn forward(&self, x: &[f32], out: &mut Vec<f32>) {
        let n = x.len().max(1) as f32;
        let mean = x.iter().sum::<f32>() / n;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / (var + LN_EPS).sqrt();
        out.clear();
        out.extend(
            x.iter()
                .zip(self.g.iter().zip(&self.b))
                .map(|(v, (g, b))| (v - mean) * inv * g + b),
        );
    }
}

/// Scratch of one frame.
#[derive(Default)]
struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
}

/// The loaded temporal block.
#[derive(Debug, Clone)]
pub struct TemporalHead {
    path: PathBuf,
    kd: usize,
    opts: TemporalOptions,
    embed: Linear,
    norm1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    norm2: LayerNorm,
    mlp0: Linear,
    mlp2: Linear,
    head: Linear,
}

/// A stream of `batch` sequences through a [`TemporalHead`].
#[derive(Debug, Clone)]
pub struct TemporalStream {
    attn: Stream<f32>,
    batch: usize,
}

impl TemporalStream {
    /// Frames seen so far.
    pub fn len(&self) -> usize {
        self.attn.len()
    }

    /// True before the first step.
    pub fn is_empty(&self) -> bool {
        self.attn.is_empty()
    }

    /// The attention cache's rows (tokens, globals, block means).
    pub fn cache_rows(&self) -> (usize, usize, usize) {
        self.attn.cache_rows()
    }

    /// Sequences per step.
    pub fn batch(&self) -> usize {
        self.batch
    }
}

impl TemporalHead {
    /// Read every tensor of the temporal block from `path` (a checkpoint
    /// file or directory) for frame outputs of `kd` = K * D values.
    pub fn load(path: &Path, kd: usize, opts: TemporalOptions) -> Result<Self> {
        let file = crate::checkpoint::checkpoint_file(path)?;
        let bad = |m: String| Error::Checkpoint(format!("{}: {m}", file.display()));
        let o = &opts;
        if kd == 0 || o.dim == 0 || o.q_heads == 0 || o.kv_heads == 0 || o.head_dim == 0 {
            return Err(bad(format!(
                "metadata temporal: keypoints x dims ({kd}), dim ({}), q_heads ({}), kv_heads ({}) and head_dim ({}) must be > 0",
                o.dim, o.q_heads, o.kv_heads, o.head_dim
            )));
        }
        if !o.q_heads.is_multiple_of(o.kv_heads) {
            return Err(bad(format!(
                "metadata temporal: q_heads ({}) must be a multiple of kv_heads ({})",
                o.q_heads, o.kv_heads
            )));
        }
        if !o.pattern.causal {
            return Err(bad("metadata temporal: the pattern must be causal".into()));
        }
        o.pattern
            .validate()
            .map_err(|e| bad(format!("metadata temporal pattern: {e}")))?;
        // SAFETY: as in `PoseNet::load`: checkpoints are renamed into place,
        // never modified in place, and tensors are copied out before return.
        let st = unsafe { MmapedSafetensors::new(&file) }
            .map_err(|e| bad(format!("not a readable safetensors file: {e}")))?;
        let w = Weights::new(&st, &file);
        let (d, qd, kvd) = (o.dim, o.q_heads * o.head_dim, o.kv_heads * o.head_dim);
        let head = Self {
            embed: Linear::load(&w, "embed", kd, d)?,
            norm1: LayerNorm::load(&w, "norm1", d)?,
            q: Linear::load(&w, "attn.q_proj", d, qd)?,
            k: Linear::load(&w, "attn.k_proj", d, kvd)?,
            v: Linear::load(&w, "attn.v_proj", d, kvd)?,
            o: Linear::load(&w, "attn.o_proj", qd, d)?,
            norm2: LayerNorm::load(&w, "norm2", d)?,
            mlp0: Linear::load(&w, "mlp.0", d, 2 * d)?,
            mlp2: Linear::load(&w, "mlp.2", 2 * d, d)?,
            head: Linear::load(&w, "head", d, kd)?,
            path: file.clone(),
            kd,
            opts,
        };
        let unused: Vec<String> = w
            .unused()
            .into_iter()
            .filter(|n| !n.starts_with("frame."))
            .collect();
        if !unused.is_empty() {
            return Err(bad(format!(
                "tensors {} are not part of the temporal model (frame.*, embed, norm1, attn.*, norm2, mlp.*, head)",
                unused.join(", ")
            )));
        }
        Ok(head)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Learned parameters of the temporal block (the frame model's not included).
    pub fn parameters(&self) -> usize {
        let lin = [
            &self.embed,
            &self.q,
            &self.k,
            &self.v,
            &self.o,
            &self.mlp0,
            &self.mlp2,
            &self.head,
        ];
        lin.iter().map(|l| l.parameters()).sum::<usize>()
            + 2 * (self.norm1.g.len() + self.norm2.g.len())
    }

    /// Frame output width K * D.
    pub fn kd(&self) -> usize {
        self.kd
    }

    /// Frame `f` [kd] -> the residual h [dim] and q, k, v of norm1(h).
    fn before(
        &self,
        f: &[f32],
        s: &mut Scratch,
        h: &mut [f32],
        q: &mut [f32],
        k: &mut [f32],
        v: &mut [f32],
    ) {
        self.embed.forward(f, &mut s.a);
        h.copy_from_slice(&s.a);
        self.norm1.forward(h, &mut s.b);
        for (lin, dst) in [(&self.q, q), (&self.k, k), (&self.v, v)] {
            lin.forward(&s.b, &mut s.a);
            dst.copy_from_slice(&s.a);
        }
    }

    /// h, the attention output y [Hq * Dh] and f -> out [kd] = f + head(h').
    fn after(&self, f: &[f32], h: &mut [f32], y: &[f32], s: &mut Scratch, out: &mut [f32]) {
        self.o.forward(y, &mut s.a);
        for (h, a) in h.iter_mut().zip(&s.a) {
            *h += a;
        }
        self.norm2.forward(h, &mut s.b);
        self.mlp0.forward(&s.b, &mut s.a);
        for x in s.a.iter_mut() {
            *x /= 1.0 + (-*x).exp(); // SiLU
        }
        self.mlp2.forward(&s.a, &mut s.b);
        for (h, m) in h.iter_mut().zip(&s.b) {
            *h += m;
        }
        self.head.forward(h, &mut s.a);
        for ((o, f), a) in out.iter_mut().zip(f).zip(&s.a) {
            *o = f + a;
        }
    }

    fn shape(&self, b: usize, t: usize) -> Shape {
        Shape {
            b,
            t,
            hq: self.opts.q_heads,
            hk: self.opts.kv_heads,
            d: self.opts.head_dim,
        }
    }

    fn scale(&self) -> f32 {
        1.0 / (self.opts.head_dim as f32).sqrt()
    }

    /// Frame outputs f [b, t, kd] (standardised) -> the model's outputs
    /// [b, t, kd], causal over t.
    pub fn forward(&self, f: &[f32], b: usize, t: usize) -> Result<Vec<f32>> {
        let sh = self.shape(b, t);
        sh.validate()?;
        let kd = self.kd;
        let rows = b * t;
        let want = rows
            .checked_mul(kd)
            .ok_or_else(|| Error::Shape("sequence batch too large".into()))?;
        if f.len() != want {
            return Err(Error::Shape(format!(
                "frame outputs must be [{b}, {t}, {kd}], got {} values",
                f.len()
            )));
        }
        let (d, qd, kvd) = (self.opts.dim, sh.hq * sh.d, sh.hk * sh.d);
        // Per frame: [h | q | k | v].
        let width = d + qd + 2 * kvd;
        let mut pre = vec![0f32; rows * width];
        threads::map_chunks_out(rows, ROWS_PER_TASK, width, &mut pre, |r, o| {
            let mut s = Scratch::default();
            for (row, o) in r.zip(o.chunks_exact_mut(width)) {
                let (h, rest) = o.split_at_mut(d);
                let (q, rest) = rest.split_at_mut(qd);
                let (k, v) = rest.split_at_mut(kvd);
                self.before(&f[row * kd..(row + 1) * kd], &mut s, h, q, k, v);
            }
        })?;
        let pick = |off: usize, n: usize| -> Vec<f32> {
            pre.chunks_exact(width)
                .flat_map(|c| c[off..off + n].iter().copied())
                .collect()
        };
        let (q, k, v) = (pick(d, qd), pick(d + qd, kvd), pick(d + qd + kvd, kvd));
        let mut y = vec![0f32; rows * qd];
        let mut lse = vec![0f32; rows * sh.hq];
        attention::forward(
            &q,
            &k,
            &v,
            sh,
            &self.opts.pattern,
            self.scale(),
            &mut y,
            &mut lse,
        )?;
        let mut out = vec![0f32; want];
        threads::map_chunks_out(rows, ROWS_PER_TASK, kd, &mut out, |r, o| {
            let mut s = Scratch::default();
            let mut h = vec![0f32; d];
            for (row, o) in r.zip(o.chunks_exact_mut(kd)) {
                h.copy_from_slice(&pre[row * width..row * width + d]);
                let yr = &y[row * qd..(row + 1) * qd];
                self.after(&f[row * kd..(row + 1) * kd], &mut h, yr, &mut s, o);
            }
        })?;
        Ok(out)
    }

    /// A stream of `batch` independent sequences.
    pub fn stream(&self, batch: usize) -> Result<TemporalStream> {
        let o = &self.opts;
        Ok(TemporalStream {
            attn: Stream::new(
                o.pattern.clone(),
                batch,
                o.q_heads,
                o.kv_heads,
                o.head_dim,
                self.scale(),
            )?,
            batch,
        })
    }

    /// One frame's outputs f [batch, kd] -> [batch, kd], equal to row t of
    /// [`TemporalHead::forward`] over the frames streamed so far.
    pub fn step(&self, st: &mut TemporalStream, f: &[f32]) -> Result<Vec<f32>> {
        let (b, kd) = (st.batch, self.kd);
        if Some(f.len()) != b.checked_mul(kd) {
            return Err(Error::Shape(format!(
                "frame outputs must be [{b}, {kd}], got {} values",
                f.len()
            )));
        }
        let sh = self.shape(b, 1);
        let (d, qd, kvd) = (self.opts.dim, sh.hq * sh.d, sh.hk * sh.d);
        let mut s = Scratch::default();
        let (mut h, mut q, mut k, mut v) = (
            vec![0f32; b * d],
            vec![0f32; b * qd],
            vec![0f32; b * kvd],
            vec![0f32; b * kvd],
        );
        for i in 0..b {
            self.before(
                &f[i * kd..(i + 1) * kd],
                &mut s,
                &mut h[i * d..(i + 1) * d],
                &mut q[i * qd..(i + 1) * qd],
                &mut k[i * kvd..(i + 1) * kvd],
                &mut v[i * kvd..(i + 1) * kvd],
            );
        }
        let mut y = vec![0f32; b * qd];
        st.attn.step(&q, &k, &v, &mut y)?;
        let mut out = vec![0f32; b * kd];
        for i in 0..b {
            self.after(
                &f[i * kd..(i + 1) * kd],
                &mut h[i * d..(i + 1) * d],
                &y[i * qd..(i + 1) * qd],
                &mut s,
                &mut out[i * kd..(i + 1) * kd],
            );
        }
        Ok(out)
    }
}
