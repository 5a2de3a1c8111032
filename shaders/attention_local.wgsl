// attention_local.wgsl — cache-free attention of a batch over an explicit key list, masked by
// absolute positions, with optional ALiBi bias: the TTS codec (ALiBi, causal window of W+1 keys)
// and the TTS flow-matching head (bidirectional inside 3-token groups, no RoPE).
//
// Unlike attention.wgsl (a ring cache indexed by position % capacity, positions increasing), the
// keys here are rows of plain K/V matrices, each tagged with its own position, in any order and
// with repeats (the FM head gives all three rows of a group the group's index). Key j is visible
// to query i iff
//       k_pos[j] <= q_pos[i]  and  q_pos[i] - k_pos[j] < window
// (window = 1: exactly the keys of the query's own position, i.e. bidirectional within a group).
// Only key indices in [ranges[2i], ranges[2i+1]) are scanned: the host narrows the scan to the
// band a sorted key list allows (codec: the W+1 keys before the query), or passes [0, n_keys).
// Score(i, j) = (q_i · scale) · k_j  [+ slope_h · (k_pos[j] - q_pos[i])  #if ALIBI], softmax in f32
// with an online (running max / running sum) pass over chunks of 128 keys. A query with no
// visible key gets zeros (never the case for self-attention).
// GQA: query head h reads kv head h / (n_heads / n_kv_heads).
//
// Bindings (group 0): 0 q (f32 [rows, q_stride], head h at columns q_off + h*hd), 1 k, 2 v (f32
// [n_keys, *_stride], kv head g at columns *_off + g*hd), 3 q_pos (u32 [rows]), 4 k_pos (u32
// [n_keys]), 5 ranges (u32 [rows, 2]), 6 out (f32 [rows, out_stride]), 7 params, 8 slopes (f32
// [n_heads], #if ALIBI).
// Workgroup (h, i): 128 invocations; dispatch (n_heads, rows). Invocation t scores key c0 + t of
// each chunk, then owns output dim t (head_dim <= 128, head_dim % 4 == 0).

struct Params {
    rows: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    window: u32,
    n_keys: u32,
    q_off: u32,
    q_stride: u32,
    k_off: u32,
    k_stride: u32,
    v_off: u32,
    v_stride: u32,
    out_stride: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

const CHUNK: u32 = 128u;
const NEG_BIG: f32 = -3.0e38;  // finite "minus infinity": keeps exp() and max() free of inf-inf

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> q_pos: array<u32>;
@group(0) @binding(4) var<storage, read> k_pos: array<u32>;
@group(0) @binding(5) var<storage, read> ranges: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;
// #if ALIBI
@group(0) @binding(8) var<storage, read> slopes: array<f32>;
// #endif

var<workgroup> q_s: array<f32, 128>;
var<workgroup> red: array<f32, 128>;
var<workgroup> probs: array<f32, 128>;
var<workgroup> key_lo: u32;
var<workgroup> key_hi: u32;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let h = wid.x;
    let row = wid.y;
    let hd = p.head_dim;
    let kv_col = (h / (p.n_heads / p.n_kv_heads)) * hd;
    let qp = i32(q_pos[row]);
    if (li == 0u) {
        key_lo = ranges[2u * row];
        key_hi = min(ranges[2u * row + 1u], p.n_keys);  // exclusive
    }
// #if ALIBI
    let slope = slopes[h];
// #endif

    if (li < hd) {
        q_s[li] = q[row * p.q_stride + p.q_off + h * hd + li] * p.scale;
    }
    // workgroupUniformLoad also acts as the barrier that publishes q_s
    let lo = workgroupUniformLoad(&key_lo);
    let hi = workgroupUniformLoad(&key_hi);

    var m_run = NEG_BIG;  // running max of the visible scores
    var l_run = 0.0;      // running Σ exp(score - m_run)
    var acc = 0.0;        // running Σ exp(score - m_run) · v[dim li]
    for (var c0 = lo; c0 < hi; c0 += CHUNK) {
        let j = c0 + li;
        var s = NEG_BIG;
        var visible = false;
        if (j < hi) {
            let kp = i32(k_pos[j]);
            visible = kp <= qp && qp - kp < i32(p.window);
            if (visible) {
                let base = j * p.k_stride + p.k_off + kv_col;
                var dot_qk = 0.0;
                for (var d = 0u; d < hd; d += 4u) {
                    let qv = vec4<f32>(q_s[d], q_s[d + 1u], q_s[d + 2u], q_s[d + 3u]);
                    let kv = vec4<f32>(k[base + d], k[base + d + 1u], k[base + d + 2u], k[base + d + 3u]);
                    dot_qk += dot(qv, kv);
                }
                s = dot_qk;
// #if ALIBI
                s += slope * f32(kp - qp);
// #endif
            }
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
        probs[li] = select(0.0, exp(s - m_new), visible);
        workgroupBarrier();

        let alpha = exp(m_run - m_new);
        l_run *= alpha;
        acc *= alpha;
        let n_here = min(CHUNK, hi - c0);
        for (var jj = 0u; jj < n_here; jj++) {
            let pj = probs[jj];
            l_run += pj;
            if (li < hd && pj > 0.0) {
                acc += pj * v[(c0 + jj) * p.v_stride + p.v_off + kv_col + li];
            }
        }
        m_run = m_new;
        workgroupBarrier();  // red/probs are rewritten by the next chunk
    }
    if (li < hd) {
        out[row * p.out_stride + h * hd + li] = select(0.0, acc / l_run, l_run > 0.0);
    }
}
