"""Plain numpy oracles for the Rust kernels.

Each function follows the published definition (docs/architecture.md, "Metric
definitions") in float64 on the float32 inputs, written for reading, not speed.
Sums of squared coordinate differences are written out left to right
(dx*dx + dy*dy + dz*dz) so that boundary decisions are the ones a float64
computation of the formula makes.
"""

from __future__ import annotations

import numpy as np


def f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def norm_last(v: np.ndarray) -> np.ndarray:
    """Euclidean norm over the last axis, summing squares left to right."""
    sq = v[..., 0] * v[..., 0]
    for c in range(1, v.shape[-1]):
        sq = sq + v[..., c] * v[..., c]
    return np.sqrt(sq)


def wiflow_calculate_pck(pred, gt, thresholds=(0.1, 0.2, 0.3, 0.4, 0.5)) -> dict[float, float]:
    """WiFlow utils/metrics.py calculate_pck (use_torso_norm=True) on [B, 15, 2]:
    scale = max(|gt[2] - gt[12]|, 0.01), correct when d / scale <= t, flat mean."""
    p, g = f64(pred), f64(gt)
    torso = np.maximum(norm_last(g[:, 2] - g[:, 12]), 0.01)
    d = norm_last(p - g)
    return {t: float(np.mean(d / torso[:, None] <= t)) for t in thresholds}


def wiflow_calculate_mpjpe(pred, gt) -> float:
    return float(np.mean(norm_last(f64(pred) - f64(gt))))


def bbox_side(g: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """Longest side of the bounding box of each sample's visible joints (0 if none)."""
    out = np.zeros(len(g))
    for i in range(len(g)):
        pts = g[i][vis[i]]
        if len(pts):
            out[i] = (pts.max(axis=0) - pts.min(axis=0)).max()
    return out


def pck_counts(pred, gt, thresholds, norm, *, torso=None, visible=None, factors=None, floor=0.01):
    """correct [T, K], scored [K] and skipped samples of a csipose PCK preset."""
    p, g = f64(pred), f64(gt)
    n, k, d = p.shape
    vis = np.ones((n, k), bool) if visible is None else np.asarray(visible, bool)
    t = np.asarray(thresholds, np.float64)
    usable = np.ones(n, bool)
    delta = p - g
    if norm == "torso":
        a, b = torso
        dist = norm_last(delta) / np.maximum(norm_last(g[:, a] - g[:, b]), floor)[:, None]
        if visible is not None:
            usable = vis[:, a] & vis[:, b]
    elif norm == "bbox":
        side = bbox_side(g, vis)
        usable = side > 0
        dist = norm_last(delta) / np.where(usable, side, 1.0)[:, None]
    elif norm == "mmpose":
        f = (
            np.repeat(bbox_side(g, vis)[:, None], d, 1)
            if factors is None
            else np.array(factors, float)
        )
        usable = ~(f == 0).any(axis=1)
        f = np.where(f < 0, 1e6, f)
        dist = norm_last(delta / np.where(f == 0, 1.0, f)[:, None, :])
    elif norm == "absolute":
        dist = norm_last(delta)
    else:
        raise ValueError(norm)
    scored_mask = vis & usable[:, None]
    with np.errstate(invalid="ignore"):
        if norm == "mmpose":
            passed = dist[None] < t[:, None, None]
        else:
            passed = dist[None] <= t[:, None, None]
    correct = (passed & scored_mask[None]).sum(axis=1)
    return correct, scored_mask.sum(axis=0), int((~usable).sum())


def mmpose_keypoint_pck_accuracy(pred, gt, mask, thr, norm_factor):
    """mmpose keypoint_pck_accuracy (acc per joint, macro average, count), in float64.

    mmpose stores distances as float32 and returns avg 0 when no joint is
    valid; this oracle keeps float64 and returns NaN there, as csipose does.
    """
    p, g = f64(pred), f64(gt)
    nf = np.array(norm_factor, dtype=np.float64)
    m = np.array(mask, bool)
    m[np.where((nf == 0).sum(1))[0], :] = False
    nf[np.where(nf <= 0)] = 1e6
    dist = np.full(m.shape, -1.0)
    dist[m] = norm_last(((p - g) / nf[:, None, :])[m])
    acc = []
    for dj in dist.T:
        valid = dj != -1
        acc.append((dj[valid] < thr).sum() / valid.sum() if valid.sum() else -1)
    acc = np.array(acc, dtype=np.float64)
    good = acc[acc >= 0]
    return acc, (good.mean() if len(good) else np.nan), len(good)


def mpjpe(pred, gt, visible=None, root=None) -> tuple[float, np.ndarray]:
    """Flat masked mean and per-sample means (NaN where nothing is visible)."""
    p, g = f64(pred), f64(gt)
    n, k, _ = p.shape
    vis = np.ones((n, k), bool) if visible is None else np.asarray(visible, bool)
    keep = np.ones(n, bool)
    if root is not None:
        p = p - p[:, root : root + 1]
        g = g - g[:, root : root + 1]
        keep = vis[:, root].copy()
    d = norm_last(p - g)
    m = vis & keep[:, None]
    per = np.array([d[i][m[i]].mean() if m[i].any() else np.nan for i in range(n)])
    flat = d[m].sum() / m.sum() if m.sum() else np.nan
    return float(flat), per


def similarity_transform(X: np.ndarray, Y: np.ndarray) -> np.ndarray | None:
    """MM-Fi compute_similarity_transform with optimal scale: Y (pred) aligned onto X (gt).

    Returns None for a degenerate frame (zero-extent X or Y).
    """
    mu_x, mu_y = X.mean(0), Y.mean(0)
    x0, y0 = X - mu_x, Y - mu_y
    nx, ny = np.sqrt((x0**2).sum()), np.sqrt((y0**2).sum())
    if nx == 0 or ny == 0:
        return None
    x0, y0 = x0 / nx, y0 / ny
    u, s, vt = np.linalg.svd(x0.T @ y0, full_matrices=False)
    v = vt.T
    t = v @ u.T
    sign = np.sign(np.linalg.det(t))
    v[:, -1] *= sign
    s[-1] *= sign
    t = v @ u.T
    trace = s.sum()
    return nx * trace * (y0 @ t) + mu_x


def pa_mpjpe(pred, gt, visible=None) -> tuple[float, np.ndarray, int]:
    """Flat mean over non-degenerate frames, per-frame means, degenerate count."""
    p, g = f64(pred), f64(gt)
    n, k, _ = p.shape
    vis = np.ones((n, k), bool) if visible is None else np.asarray(visible, bool)
    total, count, degenerate, per = 0.0, 0, 0, np.full(n, np.nan)
    for i in range(n):
        x, y = g[i][vis[i]], p[i][vis[i]]
        if len(x) == 0:
            continue
        z = similarity_transform(x, y)
        if z is None:
            degenerate += 1
            continue
        e = norm_last(z - x)
        per[i] = e.mean()
        total += e.sum()
        count += len(e)
    return (total / count if count else np.nan), per, degenerate


def n_mpjpe(pred, gt, visible=None) -> tuple[float, np.ndarray, int]:
    """MPJPE after the per-frame scale s = <P, G> / <P, P> (visible joints)."""
    p, g = f64(pred), f64(gt)
    n, k, _ = p.shape
    vis = np.ones((n, k), bool) if visible is None else np.asarray(visible, bool)
    total, count, degenerate, per = 0.0, 0, 0, np.full(n, np.nan)
    for i in range(n):
        x, y = g[i][vis[i]], p[i][vis[i]]
        if len(x) == 0:
            continue
        yy = (y * y).sum()
        if yy == 0:
            degenerate += 1
            continue
        e = norm_last(y * ((y * x).sum() / yy) - x)
        per[i] = e.mean()
        total += e.sum()
        count += len(e)
    return (total / count if count else np.nan), per, degenerate


def coco_oks(pred, gt, visible, area, sigmas, bbox=None) -> np.ndarray:
    """COCOeval.computeOks for one detection per ground truth, per sample."""
    p, g = f64(pred), f64(gt)
    sig = np.asarray(sigmas, np.float64)
    var = (sig * 2) ** 2
    out = np.zeros(len(p))
    for i in range(len(p)):
        xg, yg, vg = g[i, :, 0], g[i, :, 1], np.asarray(visible[i])
        xd, yd = p[i, :, 0], p[i, :, 1]
        k1 = np.count_nonzero(vg > 0)
        if k1 > 0:
            dx, dy = xd - xg, yd - yg
        else:
            bb = bbox[i]
            x0, x1 = bb[0] - bb[2], bb[0] + bb[2] * 2
            y0, y1 = bb[1] - bb[3], bb[1] + bb[3] * 2
            z = np.zeros(len(sig))
            dx = np.max((z, x0 - xd), axis=0) + np.max((z, xd - x1), axis=0)
            dy = np.max((z, y0 - yd), axis=0) + np.max((z, yd - y1), axis=0)
        e = (dx**2 + dy**2) / var / (area[i] + np.spacing(1)) / 2
        if k1 > 0:
            e = e[vg > 0]
        out[i] = np.sum(np.exp(-e)) / e.shape[0]
    return out


def keypoint_bbox_area(gt, visible) -> np.ndarray:
    g = f64(gt)
    out = np.zeros(len(g))
    for i in range(len(g)):
        pts = g[i][np.asarray(visible[i], bool)]
        if len(pts):
            w, h = pts.max(axis=0) - pts.min(axis=0)
            out[i] = w * h
    return out


def best_partial_matching(cost) -> tuple[int, float]:
    """(most pairs, least total cost among those) over every one-to-one matching
    of rows to columns that avoids +inf entries; exhaustive, for tiny matrices."""
    c = np.asarray(cost, np.float64)
    r, k = c.shape

    def rec(i: int, used: frozenset) -> tuple[int, float]:
        if i == r:
            return 0, 0.0
        best = rec(i + 1, used)  # row i unmatched
        for j in range(k):
            if j not in used and np.isfinite(c[i, j]):
                n, t = rec(i + 1, used | {j})
                if (n + 1, -(t + c[i, j])) > (best[0], -best[1]):
                    best = (n + 1, t + c[i, j])
        return best

    return rec(0, frozenset())


def mean_visible_distance(pred, gt, visible) -> np.ndarray:
    """[P, G]: mean Euclidean distance of prediction p to person g over g's visible joints."""
    p, g = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    out = np.zeros((len(p), len(g)))
    for i in range(len(p)):
        for j in range(len(g)):
            v = np.asarray(visible[j], bool)
            out[i, j] = norm_last(p[i][v] - g[j][v]).mean()
    return out


def window_starts(sequence, frame_index, valid, length, stride) -> list[int]:
    """Window starts, by walking each sequence (the store's window rule)."""
    out = []
    n = len(sequence)
    i = 0
    while i < n:
        j = i
        while j < n and sequence[j] == sequence[i]:
            j += 1
        for s in range(i, j - length + 1, stride):
            frames = range(s, s + length)
            if (
                all(valid[f] for f in frames)
                and frame_index[s + length - 1] - frame_index[s] == length - 1
            ):
                out.append(s)
        i = j
    return out


def csi_transform(frame, minmax=False, weights=None, mean=None, scale=None) -> np.ndarray:
    """One CSI frame [a, s, p]: min-max over the frame, W @ x per antenna, z-score; float64."""
    x = np.asarray(frame, np.float64)
    if minmax:
        lo, hi = x.min(), x.max()
        x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    if weights is not None:
        x = np.einsum("ts,asp->atp", weights, x)
    if mean is not None:
        x = (x - mean[:, :, None]) / scale[:, :, None]
    return x


def shadowing(pieces, offset, length, points, point_segment, radius, block, lam, floor):
    """Fresnel-zone body shadowing of static paths, written out per frame, path and point."""
    n, n_links, p = len(points), *length.shape
    out = np.ones((n, n_links, p))
    for f in range(n):
        for li in range(n_links):
            for pi in range(p):
                best = np.full(len(radius), -np.inf)
                for piece in range(2):
                    a, e = pieces[li, pi, piece]
                    ab = e - a
                    for q, pt in enumerate(points[f]):
                        u = np.clip(np.dot(pt - a, ab) / max(np.dot(ab, ab), 1e-12), 0, 1)
                        h2 = np.sum((pt - (a + u * ab)) ** 2)
                        d1 = offset[li, pi, piece] + u * np.sqrt(max(np.dot(ab, ab), 1e-12))
                        fres = np.sqrt(lam * max(d1 * (length[li, pi] - d1), 0) / length[li, pi])
                        w = 0.5 * fres + radius[point_segment[q]]
                        best[point_segment[q]] = max(best[point_segment[q]], -h2 / w**2)
                kept = np.prod(1 - block * np.exp(best))
                out[f, li, pi] = 1 - (1 - floor) * (1 - kept)
    return out


def multipath(tau, gain, fc, df, index):
    """H[n, k] = sum_p gain[n, p] exp(-j 2 pi (fc + df index[k]) tau[n, p]), directly."""
    f = fc + df * np.asarray(index, np.float64)
    return np.einsum("np,npk->nk", gain, np.exp(-2j * np.pi * tau[:, :, None] * f[None, None, :]))


def smooth_l1(u: np.ndarray, beta: float) -> np.ndarray:
    """0.5 u^2 / beta where |u| < beta, else |u| - 0.5 beta."""
    a = np.abs(u)
    return np.where(a < beta, 0.5 * u * u / beta, a - 0.5 * beta)


def wiflow_pose_loss(pred, gt, bones, visible=None, weights=(1.0, 0.2), betas=(0.1, 0.05)):
    """WiFlow losses/pose_loss.py on [..., K, D], one sample and joint at a time:
    (position, bone, total). With ``visible [..., K]``: position averages the
    coordinates of visible joints, bone the bones with both ends visible; a
    term with nothing to average is 0."""
    p = np.asarray(pred, np.float64)
    g = np.asarray(gt, np.float64)
    k, d = p.shape[-2:]
    p, g = p.reshape(-1, k, d), g.reshape(-1, k, d)
    vis = np.ones((len(p), k), bool) if visible is None else np.asarray(visible).reshape(-1, k) != 0
    pos_sum = bone_sum = 0.0
    pos_n = bone_n = 0
    for n in range(len(p)):
        for j in range(k):
            if vis[n, j]:
                pos_sum += float(np.sum(smooth_l1(p[n, j] - g[n, j], betas[0])))
                pos_n += d
        for a, b in bones:
            if vis[n, a] and vis[n, b]:
                lp = np.sqrt(np.sum((p[n, b] - p[n, a]) ** 2) + 1e-8)
                lg = np.sqrt(np.sum((g[n, b] - g[n, a]) ** 2) + 1e-8)
                bone_sum += float(smooth_l1(lp - lg, betas[1]))
                bone_n += 1
    position = pos_sum / pos_n if pos_n else 0.0
    bone = bone_sum / bone_n if bone_n else 0.0
    return position, bone, weights[0] * position + weights[1] * bone


def batchnorm_eval(x: np.ndarray, bn: dict, axis: int) -> np.ndarray:
    """Inference BatchNorm with running statistics along ``axis`` (eps 1e-5)."""
    shape = [1] * x.ndim
    shape[axis] = -1
    mean, var, w, b = (np.reshape(bn[k], shape) for k in ("mean", "var", "weight", "bias"))
    return (x - mean) / np.sqrt(var + 1e-5) * w + b


def wiflow_axial_attention(x, w_qkv, bn_qkv, bn_sim, bn_out, groups, width):
    """WiFlow's AxialAttention (models/attention.py), inference mode, on x [N, C, H, W]:
    along W when ``width`` else along H, one sequence at a time. Per group, logits
    q_i . k_j (no 1/sqrt(d)), BN over the group maps, softmax over j,
    out_i = sum_j s_ij v_j; then BN. No residual, no positional term."""
    x = np.asarray(x, np.float64)
    xs = x if width else x.transpose(0, 1, 3, 2)  # attend along the last axis
    c = xs.shape[1]
    cg = c // groups
    out = np.empty_like(xs)
    for n in range(xs.shape[0]):
        for r in range(xs.shape[2]):
            qkv = batchnorm_eval(w_qkv @ xs[n, :, r, :], bn_qkv, 0)  # [3C, L]
            q, k, v = qkv[:c], qkv[c : 2 * c], qkv[2 * c :]
            o = np.empty_like(q)
            for g in range(groups):
                rows = slice(g * cg, (g + 1) * cg)
                logits = q[rows].T @ k[rows]  # [L, L]: (i, j)
                logits = batchnorm_eval(
                    logits[None], {k_: bn_sim[k_][g : g + 1] for k_ in bn_sim}, 0
                )[0]
                s = np.exp(logits - logits.max(axis=1, keepdims=True))
                s /= s.sum(axis=1, keepdims=True)
                o[rows] = v[rows] @ s.T
            out[n, :, r, :] = batchnorm_eval(o, bn_out, 0)
    return out if width else out.transpose(0, 1, 3, 2)


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def causal_conv1d(x: np.ndarray, w: np.ndarray, dilation: int = 1, groups: int = 1) -> np.ndarray:
    """x [C_in, T], w [C_out, C_in / groups, k]: y[o, t] = sum_i,j w[o, i, j] *
    x[group(o) * C_in / groups + i, t - (k - 1 - j) * dilation], zero before t = 0."""
    t = x.shape[1]
    c_out, c_in_g, k = w.shape
    per_group = c_out // groups
    y = np.zeros((c_out, t))
    for o in range(c_out):
        first = (o // per_group) * c_in_g
        for i in range(c_in_g):
            for j in range(k):
                shift = (k - 1 - j) * dilation
                if shift < t:
                    y[o, shift:] += w[o, i, j] * x[first + i, : t - shift]
    return y


def wiflow_temporal_block(x, p: dict, dilation: int, groups: tuple[int, int, int]):
    """WiFlow's InnerGroupedTemporalBlock (models/tcn.py), inference mode, on one
    sample x [C_in, T]. ``p`` maps each conv name to its weight and each BN name
    to batchnorm_eval's dict; ``groups`` = (grouped conv 1, grouped conv 2, pointwise 1)."""
    g1, g2, pw = groups
    out = silu(batchnorm_eval(causal_conv1d(x, p["conv1_group"], dilation, g1), p["bn1_group"], 0))
    out = silu(batchnorm_eval(causal_conv1d(out, p["conv1_pw"], 1, pw), p["bn1_pw"], 0))
    out = silu(
        batchnorm_eval(causal_conv1d(out, p["conv2_group"], dilation, g2), p["bn2_group"], 0)
    )
    out = silu(batchnorm_eval(causal_conv1d(out, p["conv2_pw"]), p["bn2_pw"], 0))
    res = x
    if "downsample.0" in p:
        res = batchnorm_eval(causal_conv1d(x, p["downsample.0"], 1, pw), p["downsample.1"], 0)
    return silu(out + res)


# --- person counting (CountNet) -------------------------------------------------------------


def countnet_forward(t: dict, x):
    """CountNet on windows x [B, 56, 20] with plain numpy (float64): z-score,
    three dilated 'same' convolutions with ReLU, mean over time, the two heads,
    temperatures. ``t`` maps the checkpoint's tensor names to arrays. Returns
    (probabilities [B, 8], counts [B], confidences [B])."""
    x = np.asarray(x, np.float64)
    h = (x - t["preprocess.mean"][None, :, None]) / t["preprocess.std"][None, :, None]
    for i, d in ((1, 1), (2, 2), (3, 4)):
        w, b = t[f"enc.c{i}.weight"].astype(np.float64), t[f"enc.c{i}.bias"]
        length = h.shape[2]
        padded = np.pad(h, ((0, 0), (0, 0), (d, d)))
        out = np.zeros((h.shape[0], w.shape[0], length)) + b[None, :, None]
        for k in range(3):
            out += np.einsum("oc,bcl->bol", w[:, :, k], padded[:, :, k * d : k * d + length])
        h = np.maximum(out, 0)
    p = h.mean(axis=2)

    def head(name):
        a = np.maximum(p @ t[f"{name}.fc1.weight"].T + t[f"{name}.fc1.bias"], 0)
        return a @ t[f"{name}.fc2.weight"].T + t[f"{name}.fc2.bias"]

    z = head("count_head") / t["calibration.temperature"][0]
    z = np.exp(z - z.max(axis=1, keepdims=True))
    probs = z / z.sum(axis=1, keepdims=True)
    conf = 1 / (1 + np.exp(-head("conf_head")[:, 0] / t["calibration.confidence_temperature"][0]))
    return probs, probs.argmax(axis=1), conf


def count_ece(conf, correct, bins: int):
    """ECE with a loop over bins: bin b holds b/bins <= c < (b+1)/bins (the last bin
    also takes c = 1); sum of (n_b / N) |mean correct - mean confidence|."""
    conf = np.asarray(conf, np.float64)
    correct = np.asarray(correct, np.float64)
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        m = (conf >= lo) & ((conf < hi) if b < bins - 1 else (conf <= hi))
        if m.any():
            total += m.sum() / len(conf) * abs(correct[m].mean() - conf[m].mean())
    return total


def count_confusion(labels, pred, classes: int = 8):
    m = np.zeros((classes, classes), np.int64)
    for t, p in zip(labels, pred, strict=True):
        m[t, p] += 1
    return m


def map_weights(m) -> np.ndarray:
    """The dense [n_out, n_src] matrix a SubcarrierMap should hold, rebuilt from
    its declared kind and parameters by a different route than csipose.signal:
    interpolation through ``np.interp`` applied to each source basis vector, the
    Gaussian fit as an augmented least-squares problem (lstsq, no normal equations)."""
    p, n_src = m.params, m.n_src
    kind = p.get("kind")
    eye = np.eye(n_src)
    if kind == "identity":
        return eye
    if kind == "select":
        return eye[np.asarray(p["keep"], np.int64)]
    if kind == "linear":
        n_out = p["n_out"]
        at = np.linspace(0.0, n_src - 1, n_out) if n_out > 1 else np.zeros(1)
        return np.stack([np.interp(at, np.arange(n_src), eye[j]) for j in range(n_src)], axis=1)
    if kind == "index":
        src, target = np.asarray(p["src"], float), np.asarray(p["target"], float)
        order = np.argsort(src)
        # np.interp holds the end values outside the source range, as the map promises.
        return np.stack(
            [np.interp(target, src[order], eye[j][order]) for j in range(n_src)], axis=1
        )
    if kind == "gaussian":
        n_out, sigma, lam = p["n_out"], p["sigma"], p["lam"]
        pos_src = np.linspace(0.0, 1.0, n_src)
        pos_out = np.linspace(0.0, 1.0, n_out)
        a = np.exp(-(np.subtract.outer(pos_src, pos_out) ** 2) / sigma**2)
        # argmin |A x - b|^2 + lam |x|^2 == lstsq of [A; sqrt(lam) I] x = [b; 0], per basis b.
        big = np.vstack([a, np.sqrt(lam) * np.eye(n_out)])
        rhs = np.vstack([eye, np.zeros((n_out, n_src))])
        return np.linalg.lstsq(big, rhs, rcond=None)[0]
    raise ValueError(f"no oracle for map kind {kind!r}")
