// attention.wgsl — causal sliding-window GQA attention over a ring-buffer KV cache, and the
// kv_write kernel that fills the ring.
//
// Ring cache: k_cache, v_cache are [capacity, n_kv_heads*head_dim]; absolute position p lives in
// slot p % capacity. Cache element type: f32, or f16 (#if KV_F16) stored as raw halves — packed
// two per u32 and decoded with unpack2x16float/pack2x16float, or, with SHADER_F16, the same bytes
// typed as f16 vectors. Either way the buffer bytes are identical.
//
// attention (entry points `attention` then `attention_combine`, split-K / flash-decoding)
//   Query row m (absolute position P = positions[pos_offset + m]), head h, reads kv head
//   h / (n_heads / n_kv_heads) and attends key positions j with
//       P - window < j <= P,  j >= 0,  j > newest - capacity
//   where newest = positions[pos_offset + rows - 1] (the last query row; its K/V must already be
//   written). The last bound only bites when the ring is smaller than window + rows - 1: keys that
//   were overwritten are skipped rather than read stale. Scores are (q · scale) · k, softmax in
//   f32. The visible keys are cut into `splits` segments of split_keys keys; workgroup
//   (h, m, s) runs an online softmax (running max and sum, rescaled per chunk of 128 keys) over
//   segment s and writes its (max, sum, unnormalised output) to `partials`; `attention_combine`
//   merges the segments. One segment per query when rows·heads already fill the GPU (prefill);
//   many for one-token decode, where 32 heads alone would leave most of the GPU idle.
//   Bindings: 0 q (f32, [rows, q_stride], head h at columns q_offset + h*hd), 1 k_cache,
//   2 v_cache, 3 positions (u32), 4 out (f32 [rows, out_stride]), 5 params,
//   11 partials (f32 [rows, n_heads, splits, head_dim + 2]).
//   `attention`: 128 invocations, dispatch (n_heads, rows, splits); invocation t scores key
//   c0+t of each chunk, then owns output dim t (head_dim <= 128, head_dim % 4 == 0).
//   `attention_combine`: 128 invocations, dispatch (n_heads, rows).
//
// rope_kv_write (entry point `rope_kv_write`): the decode step's RoPE and kv_write in one
//   dispatch. Row m of a fused QKV output ([rows, qkv_stride]: q at q_offset, then k, then v,
//   adjacent) gets q and k rotated in place (rope.wgsl's math, rope_angle.wgsl) and the rotated k
//   and the v written into slot positions[pos_offset+m] % capacity of the caches: the same bytes
//   rope + kv_write leave. Bindings: 3 positions, 8 k_cache (rw), 9 v_cache (rw), 12 qkv (rw),
//   13 inv_freq, 14 params. One invocation per pair; 256 per workgroup.
//
// kv_write (entry point `kv_write`)
//   Copies rows of new K and V (f32 views: row m at columns k_offset + [0, kv_width) of a
//   [rows, k_stride] matrix, e.g. a fused QKV output) into slot positions[pos_offset+m] % capacity.
//   Bindings: 3 positions, 6 k_new, 7 v_new, 8 k_cache (rw), 9 v_cache (rw), 10 params.
//   One invocation per pair of elements; 256 per workgroup; 2-D grid linearised with groups_x.

// #include attn_params.wgsl   (AttnParams)

struct RopeKvParams {
    rows: u32,
    n_heads: u32,     // query heads
    n_kv_heads: u32,
    head_dim: u32,
    qkv_stride: u32,  // row stride of the fused QKV output, elements (even)
    q_offset: u32,    // column of q (even); k follows q, v follows k
    capacity: u32,
    pos_offset: u32,
    groups_x: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

struct KvWriteParams {
    rows: u32,
    kv_width: u32,
    capacity: u32,
    pos_offset: u32,
    k_offset: u32,
    k_stride: u32,
    v_offset: u32,
    v_stride: u32,
    groups_x: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const CHUNK: u32 = 128u;
const MAX_HD: u32 = 128u;   // largest head_dim (the host checks head_dim <= 128)
const V_BATCH: u32 = 8u;    // keys whose V loads are issued together
const NEG_BIG: f32 = -3.0e38;  // finite "minus infinity": keeps exp() and max() free of inf-inf

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> positions: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> ap: AttnParams;
@group(0) @binding(6) var<storage, read> k_new: array<vec2<f32>>;
@group(0) @binding(7) var<storage, read> v_new: array<vec2<f32>>;
@group(0) @binding(10) var<uniform> wp: KvWriteParams;
@group(0) @binding(11) var<storage, read_write> partials: array<f32>;
@group(0) @binding(12) var<storage, read_write> qkv: array<vec2<f32>>;
@group(0) @binding(13) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(14) var<uniform> rp: RopeKvParams;

// #include rope_angle.wgsl   (reduce_two_pi, rotate_pair)

// --------------------------------------------------------------- cache element access
// #if KV_F16
// #if SHADER_F16
@group(0) @binding(1) var<storage, read> k_cache: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read> v_cache: array<f16>;
fn load_k4(e: u32) -> vec4<f32> { return vec4<f32>(k_cache[e / 4u]); }
fn load_v(e: u32) -> f32 { return f32(v_cache[e]); }
// #else
@group(0) @binding(1) var<storage, read> k_cache: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> v_cache: array<u32>;
fn load_k4(e: u32) -> vec4<f32> {
    let w = k_cache[e / 4u];
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}
fn load_v(e: u32) -> f32 {
    let pair = unpack2x16float(v_cache[e / 2u]);
    return select(pair.x, pair.y, (e & 1u) != 0u);
}
// #endif
// #else
@group(0) @binding(1) var<storage, read> k_cache: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v_cache: array<f32>;
fn load_k4(e: u32) -> vec4<f32> { return k_cache[e / 4u]; }
fn load_v(e: u32) -> f32 { return v_cache[e]; }
// #endif
// #include kv_store.wgsl   (bindings 8, 9: store_k2, store_v2)

// ------------------------------------------------------------------------- attention
var<workgroup> q_s: array<f32, 128>;
var<workgroup> red: array<f32, 128>;
var<workgroup> probs: array<f32, 128>;
var<workgroup> key_lo: i32;
var<workgroup> key_hi: i32;

@compute @workgroup_size(128)
fn attention(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let h = wid.x;
    let row = wid.y;
    let split = wid.z;
    let hd = ap.head_dim;
    let kv_width = ap.n_kv_heads * hd;
    let kv_col = (h / (ap.n_heads / ap.n_kv_heads)) * hd;

    if (li == 0u) {
        let pos = i32(positions[ap.pos_offset + row]);
        let newest = i32(positions[ap.pos_offset + ap.rows - 1u]);
        let first = max(max(pos - i32(ap.window) + 1, newest - i32(ap.capacity) + 1), 0);
        // The visible keys are cut evenly into `splits` segments from the ACTUAL count (the host
        // only knows the window): 300 keys of context over 16 segments is ~19 keys each, not one
        // segment of 300 walked serially while 15 idle.
        let per = (pos - first + i32(ap.splits)) / i32(ap.splits);  // ceil(n / splits), n = pos - first + 1
        key_lo = first + i32(split) * per;
        key_hi = min(pos, key_lo + per - 1);
    }
    if (li < hd) {
        q_s[li] = q[row * ap.q_stride + ap.q_offset + h * hd + li] * ap.scale;
    }
    // workgroupUniformLoad also acts as the barrier that publishes q_s
    let lo = workgroupUniformLoad(&key_lo);
    let hi = workgroupUniformLoad(&key_hi);

    var m_run = NEG_BIG;  // running max of the scores seen so far
    var l_run = 0.0;      // running sum of exp(score - m_run)
    var acc = 0.0;       // running Σ exp(score - m_run) · v[dim li]
    for (var c0 = lo; c0 <= hi; c0 += i32(CHUNK)) {
        let j = c0 + i32(li);
        var s = NEG_BIG;
        if (j <= hi) {
            let base = (u32(j) % ap.capacity) * kv_width + kv_col;
            // A constant trip count (MAX_HD) so the driver unrolls the loop and issues all of
            // the key's loads at once; with `d < hd` as the bound, each load's latency was paid
            // in turn (20 us per decode dispatch on the H100). Same summation order.
            var dot_qk = 0.0;
            for (var d = 0u; d < MAX_HD; d += 4u) {
                if (d < hd) {
                    let qv = vec4<f32>(q_s[d], q_s[d + 1u], q_s[d + 2u], q_s[d + 3u]);
                    dot_qk += dot(qv, load_k4(base + d));
                }
            }
            s = dot_qk;
        }
        red[li] = s;
        workgroupBarrier();
        for (var off = CHUNK / 2u; off > 0u; off >>= 1u) {
            if (li < off) {
                red[li] = max(red[li], red[li + off]);
            }
            workgroupBarrier();
        }
        let m_new = max(m_run, red[0]);
        probs[li] = exp(s - m_new);
        workgroupBarrier();

        let alpha = exp(m_run - m_new);
        l_run *= alpha;
        acc *= alpha;
        let n_here = u32(min(i32(CHUNK), hi - c0 + 1));
        // Keys in groups of V_BATCH: the group's V loads are issued before its sums (one
        // latency per group instead of one per key); the sums keep the key order.
        var jj = 0u;
        for (; jj + V_BATCH <= n_here; jj += V_BATCH) {
            var vb: array<f32, V_BATCH>;
            if (li < hd) {
                for (var u = 0u; u < V_BATCH; u++) {
                    let slot = u32(c0 + i32(jj + u)) % ap.capacity;
                    vb[u] = load_v(slot * kv_width + kv_col + li);
                }
            }
            for (var u = 0u; u < V_BATCH; u++) {
                let pj = probs[jj + u];
                l_run += pj;
                acc += pj * vb[u];
            }
        }
        for (; jj < n_here; jj++) {
            let pj = probs[jj];
            l_run += pj;
            if (li < hd) {
                let slot = u32(c0 + i32(jj)) % ap.capacity;
                acc += pj * load_v(slot * kv_width + kv_col + li);
            }
        }
        m_run = m_new;
        workgroupBarrier();  // red/probs are rewritten by the next chunk
    }
    // an empty segment leaves (NEG_BIG, 0, 0), which the combine weighs by exp(NEG_BIG - max) = 0
    let base = ((row * ap.n_heads + h) * ap.splits + split) * (hd + 2u);
    if (li < hd) {
        partials[base + li] = acc;
    }
    if (li == 0u) {
        partials[base + hd] = m_run;
        partials[base + hd + 1u] = l_run;
    }
}

@compute @workgroup_size(128)
fn attention_combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let h = wid.x;
    let row = wid.y;
    let hd = ap.head_dim;
    if (li >= hd) {
        return;  // no barriers in this kernel
    }
    let first = (row * ap.n_heads + h) * ap.splits * (hd + 2u);
    var m_all = NEG_BIG;
    for (var s = 0u; s < ap.splits; s++) {
        m_all = max(m_all, partials[first + s * (hd + 2u) + hd]);
    }
    var l_all = 0.0;
    var acc = 0.0;
    for (var s = 0u; s < ap.splits; s++) {
        let base = first + s * (hd + 2u);
        let w = exp(partials[base + hd] - m_all);
        l_all += w * partials[base + hd + 1u];
        acc += w * partials[base + li];
    }
    out[row * ap.out_stride + h * hd + li] = acc / l_all;
}

// --------------------------------------------------------------------- rope_kv_write
@compute @workgroup_size(256)
fn rope_kv_write(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let half = rp.head_dim / 2u;
    let q_pairs = rp.n_heads * half;
    let kv_pairs = rp.n_kv_heads * half;  // pairs of one k (or v) row
    let per_row = q_pairs + 2u * kv_pairs;
    let t = (wid.x + wid.y * rp.groups_x) * 256u + li;
    if (t >= rp.rows * per_row) {
        return;  // no barriers in this kernel
    }
    let m = t / per_row;
    let j = t % per_row;              // q pairs, then k pairs, then v pairs
    let pos = positions[rp.pos_offset + m];
    let idx = (m * rp.qkv_stride + rp.q_offset) / 2u + j;
    let slot_pair = (pos % rp.capacity) * kv_pairs;
    if (j < q_pairs + kv_pairs) {
        let r = rotate_pair(qkv[idx], pos, inv_freq[j % half]);
        qkv[idx] = r;
        if (j >= q_pairs) {
            store_k2(slot_pair + j - q_pairs, r);
        }
    } else {
        store_v2(slot_pair + j - q_pairs - kv_pairs, qkv[idx]);
    }
}

// -------------------------------------------------------------------------- kv_write
@compute @workgroup_size(256)
fn kv_write(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let pairs_per_row = wp.kv_width / 2u;
    let t = (wid.x + wid.y * wp.groups_x) * 256u + li;
    if (t >= wp.rows * pairs_per_row) {
        return;  // no barriers in this kernel
    }
    let m = t / pairs_per_row;
    let j = t % pairs_per_row;
    let slot = positions[wp.pos_offset + m] % wp.capacity;
    let dst = slot * pairs_per_row + j;
    store_k2(dst, k_new[(m * wp.k_stride + wp.k_offset) / 2u + j]);
    store_v2(dst, v_new[(m * wp.v_stride + wp.v_offset) / 2u + j]);
}
