"""numpy backend: the executable spec of every op the models call.

Activations live in `self.dtype` (float32 by default, float64 for tight oracle tests). Whatever the
activation dtype, the numerically delicate parts follow the references: RoPE angles are formed in
float32 (HF and vLLM build their cos/sin caches in f32), RMSNorm and softmax run in at least f32.

Weights may be numpy arrays or Q4 tensors (anything with `.dequantize()`); a Q4 weight is dequantized
once on first use and cached by object identity. Only numpy and the standard library are imported
(this module also runs inside Pyodide).
"""
from __future__ import annotations

import math

import numpy as np

# Query rows per attention block in the offline (whole-sequence) case: bounds the score matrix to
# [heads, block, window + block] instead of [heads, T, T].
ATTENTION_QUERY_BLOCK = 512

# ------------------------------------------------------------------------------------------- erf
# W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 1969
# (netlib specfun CALERF). Near-minimax rational functions, ~1e-16 relative in float64, so float32
# GELU is correctly rounded in practice and float64 GELU matches torch to ~1 ulp.
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)
_ERFC_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
           2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
           2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_ERFC_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
           1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
           3.43936767414372164e03, 1.23033935480374942e03)
_ERFC_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
           1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_ERFC_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
           6.05183413124413191e-2, 2.33520497626869185e-3)
_INV_SQRT_PI = 0.56418958354775628695


def _erf_small(x: np.ndarray) -> np.ndarray:
    """erf(x) for |x| <= 0.46875: x * P(x^2) / Q(x^2)."""
    a, b = _ERF_A, _ERF_B
    z = x * x
    num, den = a[4] * z, z
    for i in range(3):
        num = (num + a[i]) * z
        den = (den + b[i]) * z
    return x * (num + a[3]) / (den + b[3])


def _erfc_mid(y: np.ndarray) -> np.ndarray:
    """erfc(y) for 0.46875 <= y <= 4."""
    c, d = _ERFC_C, _ERFC_D
    num, den = c[8] * y, y
    for i in range(7):
        num = (num + c[i]) * y
        den = (den + d[i]) * y
    r = (num + c[7]) / (den + d[7])
    return _times_exp_minus_square(y, r)


def _erfc_large(y: np.ndarray) -> np.ndarray:
    """erfc(y) for y > 4 (underflows to 0 beyond ~26.5)."""
    p, q = _ERFC_P, _ERFC_Q
    z = 1.0 / (y * y)
    num, den = p[5] * z, z
    for i in range(4):
        num = (num + p[i]) * z
        den = (den + q[i]) * z
    r = z * (num + p[4]) / (den + q[4])
    return _times_exp_minus_square(y, (_INV_SQRT_PI - r) / y)


def _times_exp_minus_square(y: np.ndarray, r: np.ndarray) -> np.ndarray:
    # exp(-y^2) split as exp(-t^2)·exp(-(y-t)(y+t)) with t = y rounded down to 1/16: avoids the
    # cancellation error of forming y*y directly (Cody's trick).
    t = np.trunc(y * 16.0) / 16.0
    return np.exp(-t * t) * np.exp(-(y - t) * (y + t)) * r


def erf(x: np.ndarray) -> np.ndarray:
    """Vectorized erf in float64 (Cody), returned in the input's float dtype."""
    xd = np.asarray(x, dtype=np.float64)
    y = np.abs(xd)
    out = np.empty_like(xd)
    small = y <= 0.46875
    mid = (~small) & (y <= 4.0)
    large = y > 4.0
    out[small] = _erf_small(xd[small])
    out[mid] = 1.0 - _erfc_mid(y[mid])
    out[large] = 1.0 - _erfc_large(np.minimum(y[large], 27.0))
    out = np.where(small, out, np.copysign(out, xd))  # the small branch is already odd in x
    out[np.isnan(xd)] = np.nan
    dtype = x.dtype if isinstance(x, np.ndarray) and x.dtype.kind == "f" else np.float64
    return out.astype(dtype, copy=False)


# --------------------------------------------------------------------------------------- backend
def _is_quantized(w) -> bool:
    return not isinstance(w, np.ndarray) and hasattr(w, "dequantize")


class NumpyOps:
    """The ops interface on numpy. Tensors are plain ndarrays of `dtype` (rows = time/tokens)."""

    name = "numpy"

    def __init__(self, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"NumpyOps supports float32 or float64, not {self.dtype}")
        # id(weight) -> (weight, converted array): keeping `weight` alive pins its id.
        self._weight_cache: dict[int, tuple[object, np.ndarray]] = {}
        # (n_dims, theta) -> inv_freq (float32) for RoPE
        self._inv_freq: dict[tuple[int, float], np.ndarray] = {}

    # ---------------------------------------------------------------- host <-> backend tensors
    def asarray(self, x) -> np.ndarray:
        """Host array -> backend tensor of the activation dtype."""
        return np.ascontiguousarray(x, dtype=self.dtype)

    def to_host(self, x) -> np.ndarray:
        return np.asarray(x)

    def read_later(self, x) -> "_Ready":
        """The GPU backends read small results one step late; here the value is already there."""
        return _Ready(np.asarray(x))

    def flush(self) -> None:
        """Nothing is pending on the CPU."""

    def zeros(self, shape) -> np.ndarray:
        return np.zeros(shape, dtype=self.dtype)

    def weight(self, w) -> np.ndarray:
        """Weight in the activation dtype; Q4 tensors dequantized once and cached by identity."""
        if isinstance(w, np.ndarray) and w.dtype == self.dtype:
            return w
        hit = self._weight_cache.get(id(w))
        if hit is not None and hit[0] is w:
            return hit[1]
        dense = w.dequantize() if _is_quantized(w) else w
        dense = np.ascontiguousarray(dense, dtype=self.dtype)
        self._weight_cache[id(w)] = (w, dense)
        return dense

    # ------------------------------------------------------------------------ row bookkeeping
    def rows(self, x, start: int, stop: int) -> np.ndarray:
        return x[start:stop]

    def concat_rows(self, parts) -> np.ndarray:
        return np.concatenate(list(parts), axis=0)

    def group_rows(self, x, factor: int) -> np.ndarray:
        """[M, D] -> [M/factor, factor*D]: row r = concat of rows factor*r ... factor*r+factor-1."""
        m, d = x.shape
        if m % factor:
            raise ValueError(f"{m} rows are not a multiple of {factor}")
        return x.reshape(m // factor, factor * d)

    def write_rows(self, dst, start: int, src) -> None:
        """In place: dst[start:start+len(src)] = src (KV cache updates)."""
        dst[start:start + src.shape[0]] = src

    # ---------------------------------------------------------------------------- arithmetic
    def linear(self, x, w, b=None, residual=None) -> np.ndarray:
        """[residual +] x [M, K] · Wᵀ (+ b) with W [N, K] (PyTorch Linear layout) -> [M, N]."""
        y = x @ self.weight(w).T
        if b is not None:
            y = y + self.weight(b)
        if residual is not None:
            y = residual + y
        return y

    def linear_split(self, x, ws, bs=None) -> list[np.ndarray]:
        """Several linears of the same input (Q/K/V, gate/up); a GPU backend runs them as one."""
        bs = bs if bs is not None else (None,) * len(ws)
        return [self.linear(x, w, b) for w, b in zip(ws, bs)]

    def load_weights(self, tensors, shapes: dict, host_prefixes=()) -> dict:
        """The model's weights from (name, value) pairs (a GPU backend uploads them as they come)."""
        return dict(tensors)

    def rope_qk(self, q, k, positions, n_heads: int, n_kv_heads: int, head_dim: int, theta: float):
        """RoPE on queries and keys at the same positions (one dispatch on the GPU)."""
        return (self.rope_interleaved(q, positions, n_heads, head_dim, theta),
                self.rope_interleaved(k, positions, n_kv_heads, head_dim, theta))

    def swiglu(self, gate, up) -> np.ndarray:
        """silu(gate) ⊙ up."""
        return self.mul(self.silu(gate), up)

    def rmsnorm(self, x, w, eps: float, ada=None) -> np.ndarray:
        """x / sqrt(mean(x²) + eps) · w [· (1 + ada)] over the last axis, in at least float32."""
        xf = x.astype(np.promote_types(x.dtype, np.float32), copy=False)
        inv = 1.0 / np.sqrt(np.mean(xf * xf, axis=-1, keepdims=True) + eps)
        y = (xf * inv) * self.weight(w)
        if ada is not None:
            y = y * (1 + np.asarray(ada))
        return y.astype(self.dtype, copy=False)

    def rope_interleaved(self, x, positions, n_heads: int, head_dim: int, theta: float) -> np.ndarray:
        """Mistral/GPT-J RoPE: pairs (2i, 2i+1) of each head rotate by pos·theta^(-2i/hd).

        x [M, n_heads*head_dim], positions [M] absolute. Angles are formed in float32 like the
        references' cos/sin caches; cos/sin of that f32 angle are correctly rounded to f32.
        """
        m = x.shape[0]
        inv_freq = self._rope_inv_freq(head_dim, theta)  # [hd/2] f32
        ang = np.asarray(positions, dtype=np.float32)[:, None] * inv_freq[None, :]  # [M, hd/2] f32
        cos = np.cos(ang.astype(np.float64)).astype(np.float32).astype(self.dtype)[:, None, :]
        sin = np.sin(ang.astype(np.float64)).astype(np.float32).astype(self.dtype)[:, None, :]
        xr = x.reshape(m, n_heads, head_dim // 2, 2)
        a, b = xr[..., 0], xr[..., 1]
        out = np.empty_like(xr)
        out[..., 0] = a * cos - b * sin
        out[..., 1] = a * sin + b * cos
        return out.reshape(m, n_heads * head_dim)

    def _rope_inv_freq(self, head_dim: int, theta: float) -> np.ndarray:
        key = (head_dim, float(theta))
        if key not in self._inv_freq:
            expo = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)
            self._inv_freq[key] = (np.float32(1.0) / np.power(np.float32(theta), expo)).astype(np.float32)
        return self._inv_freq[key]

    def attention(self, q, k, v, q_pos, k_pos, n_heads: int, n_kv_heads: int, head_dim: int,
                  window: int | None, alibi_slopes=None) -> np.ndarray:
        """Causal (sliding-window) GQA attention by absolute positions.

        q [M, n_heads*hd]; k, v [Nk, n_kv_heads*hd]; q_pos [M]; k_pos [Nk] (any order; empty
        slots carry int64 max, which no query can see). Key j is visible to query i iff i - window < j <= i
        (window None: j <= i). Query head h reads kv head h // (n_heads / n_kv_heads).
        alibi_slopes [n_heads] (optional, host floats): adds slope_h·(pos_j - pos_i) to the scores
        (the TTS codec; the caller passes window W+1 for its "i-W <= j <= i" rule).
        Returns [M, n_heads*hd].
        """
        q_pos = np.asarray(q_pos, dtype=np.int64)
        k_pos = np.asarray(k_pos, dtype=np.int64)
        m = q.shape[0]
        out = np.empty((m, n_heads * head_dim), dtype=self.dtype)
        for s in range(0, m, ATTENTION_QUERY_BLOCK):
            e = min(m, s + ATTENTION_QUERY_BLOCK)
            qp = q_pos[s:e]
            # keys any query of this block may see; bounds the work for long offline sequences
            near = k_pos <= qp.max()
            if window is not None:
                near &= k_pos > qp.min() - window
            idx = np.flatnonzero(near)
            if idx.size and idx[-1] - idx[0] + 1 == idx.size:
                # one run of rows (a streaming ring before and after it wraps, a window of a long
                # offline sequence): slice views, not a gather that copies the whole cache per step
                a, b = int(idx[0]), int(idx[-1]) + 1
                kb, vb, pb = k[a:b], v[a:b], k_pos[a:b]
            else:
                kb, vb, pb = k[idx], v[idx], k_pos[idx]
            out[s:e] = self._attention_block(q[s:e], kb, vb, qp, pb,
                                             n_heads, n_kv_heads, head_dim, window, alibi_slopes)
        return out

    def _attention_block(self, q, k, v, q_pos, k_pos, n_heads, n_kv, hd, window, alibi_slopes=None):
        m, nk = q.shape[0], k.shape[0]
        group = n_heads // n_kv
        acc = np.promote_types(self.dtype, np.float32)
        qh = q.reshape(m, n_kv, group, hd).transpose(1, 2, 0, 3)  # [kv, g, M, hd]
        kh = k.reshape(nk, n_kv, hd).transpose(1, 0, 2)  # [kv, Nk, hd]
        vh = v.reshape(nk, n_kv, hd).transpose(1, 0, 2)  # [kv, Nk, hd]
        scores = (qh @ kh[:, None].swapaxes(-1, -2)).astype(acc, copy=False)  # [kv, g, M, Nk]
        scores *= 1.0 / math.sqrt(hd)
        if alibi_slopes is not None:
            slopes = np.asarray(alibi_slopes, dtype=acc).reshape(n_kv, group, 1, 1)  # head h = kv·group + g
            rel = (k_pos[None, :] - q_pos[:, None]).astype(acc)  # [M, Nk], j - i (<= 0 where visible)
            scores = scores + slopes * rel
        visible = k_pos[None, :] <= q_pos[:, None]  # [M, Nk]
        if window is not None:
            visible &= k_pos[None, :] > q_pos[:, None] - window
        scores = np.where(visible, scores, -np.inf)
        scores -= scores.max(axis=-1, keepdims=True)
        p = np.exp(scores)
        p /= p.sum(axis=-1, keepdims=True)
        o = p.astype(self.dtype, copy=False) @ vh[:, None]  # [kv, g, M, hd]
        return o.transpose(2, 0, 1, 3).reshape(m, n_heads * hd)

    def gelu(self, x) -> np.ndarray:
        """Exact GELU: 0.5·x·(1 + erf(x/√2)) (PyTorch approximate='none').

        Evaluated in float64 then rounded, so the float32 result is the correctly rounded exact
        GELU (torch's float32 kernel loses relative accuracy for x < -3 through the 1 + erf
        cancellation; absolute differences stay below ~1e-6).
        """
        xd = x.astype(np.float64)
        return (0.5 * xd * (1.0 + erf(xd * (1.0 / math.sqrt(2.0))))).astype(self.dtype)

    def silu(self, x) -> np.ndarray:
        """x·sigmoid(x), written to avoid exp overflow for very negative x."""
        e = np.exp(-np.abs(x))
        sig = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return (x * sig).astype(self.dtype, copy=False)

    def add(self, a, b) -> np.ndarray:
        return a + b

    def mul(self, a, b) -> np.ndarray:
        return a * b

    def conv1d(self, x, w, b, stride: int, left_pad: int) -> np.ndarray:
        """Time-major cross-correlation (PyTorch Conv1d math) with explicit left zero padding.

        x [T, C_in]; w [C_out, C_in, K] (PyTorch layout); b [C_out] or None.
        Output frame t reads padded rows stride·t … stride·t+K-1 -> [T_out, C_out],
        T_out = (T + left_pad - K) // stride + 1 (no right padding: causal).
        """
        wd = self.weight(w)
        c_out, c_in, k = wd.shape
        if left_pad:
            x = np.concatenate([np.zeros((left_pad, c_in), dtype=x.dtype), x], axis=0)
        t_out = (x.shape[0] - k) // stride + 1
        if t_out <= 0:
            return np.zeros((0, c_out), dtype=self.dtype)
        win = np.lib.stride_tricks.sliding_window_view(x, k, axis=0)[::stride][:t_out]  # [T_out, C_in, K]
        y = win.reshape(t_out, c_in * k) @ wd.reshape(c_out, c_in * k).T  # [T_out, C_out]
        if b is not None:
            y = y + self.weight(b)
        return y.astype(self.dtype, copy=False)

    def conv_transpose1d(self, x, w, stride: int) -> np.ndarray:
        """Time-major transposed convolution (PyTorch ConvTranspose1d math), untrimmed.

        x [T, C_in]; w [C_in, C_out, K] (PyTorch ConvTranspose1d layout, no bias).
        out[stride·t + j] += x[t] · w[:, :, j] -> [(T-1)·stride + K, C_out]; the caller trims
        (the causal codec keeps the first T·stride rows).
        """
        wd = self.weight(w)
        c_in, c_out, k = wd.shape
        t = x.shape[0]
        taps = (x @ wd.reshape(c_in, c_out * k)).reshape(t, c_out, k)  # [T, C_out, K]
        out = np.zeros(((t - 1) * stride + k, c_out), dtype=np.result_type(taps.dtype, self.dtype))
        for j in range(k):
            out[j:j + (t - 1) * stride + 1:stride] += taps[:, :, j]
        return out.astype(self.dtype, copy=False)

    def sum_rows(self, x) -> np.ndarray:
        """[M, D] -> [1, D]: the sum of the rows (a TTS frame embedding sums 37 codebook rows)."""
        return np.sum(x, axis=0, keepdims=True, dtype=np.promote_types(x.dtype, self.dtype))

    def embedding_rows(self, table, ids) -> np.ndarray:
        """table[ids] -> [len(ids), D]; a Q4 table dequantizes only the requested rows."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if _is_quantized(table):
            hit = self._weight_cache.get(id(table))
            if hit is not None and hit[0] is table:  # already dense (used as LM head)
                return hit[1][ids]
            if hasattr(table, "take"):  # Q4Tensor: batched row dequantization
                return np.asarray(table.take(ids), dtype=self.dtype).reshape(len(ids), table.shape[1])
            rows = [np.asarray(table.row(int(i)), dtype=self.dtype).reshape(-1) for i in ids]
            return np.stack(rows) if rows else np.zeros((0, table.shape[1]), dtype=self.dtype)
        return np.asarray(table[ids], dtype=self.dtype)

    def argmax(self, x) -> np.ndarray:
        """Index of the largest value along the last axis (first one on ties, like torch)."""
        return np.argmax(x, axis=-1)


class _Ready:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value
