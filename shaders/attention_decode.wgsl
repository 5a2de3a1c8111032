// attention_decode.wgsl — split-K GQA attention for a few query rows (the decode step): entry
// points `attention_decode` then `attention_decode_combine`. Same maths, visibility rules, key
// segments and partials layout as attention.wgsl's `attention` (see there), so its
// `attention_combine` would merge these partials too; only the work layout differs. Needs the
// SUBGROUPS feature. Kernels.attention uses it for <= 4 rows (VOXTRAL_ATTN_DECODE=v1: never).
//
// H100, decoder shapes (32 heads, 8 kv heads, head_dim 128, f16 cache), one row, attention +
// combine per layer: 300 keys 14.1 -> 10.1 us, 1000: 20.1 -> 11.3, 3000: 38.3 -> 16.1, 8192:
// 84.8 -> 28.0; whole decode step at 300 positions 2.62 -> 2.42 ms GPU time, same tokens.
//
// Why a second kernel: `attention` gives one workgroup to each (query head, row, segment), scores a
// chunk of 128 keys with one lane per key (each lane reads a whole 512-byte key row: uncoalesced),
// finds the chunk's max with a 7-barrier tree, then walks V key by key. For decode the segments
// are a few dozen keys, so that fixed latency chain is the whole cost (~15 us per layer on the
// H100 for ~2.4 MB of K/V).
//
// Layout here: workgroup (kv head × block of up to 4 of its query heads, row, segment); 128 lanes
// = 4 teams of 32. A key row is read by `lpk` lanes of a team (lpk = head_dim/4 rounded up to a
// power of two, <= 32), each lane one vec4 of dims: one coalesced load per key, shared by the
// workgroup's 4 query heads (GQA: 4 dot products per load, their scores packed in one vec4, one
// component per query head). A team scores 32/lpk keys per step and B steps per iteration, with
// all of the next iteration's K and V loads issued before this one's arithmetic. Key sums and the
// team-wide max use xor butterflies; each team keeps its own online softmax (running max, sum and
// output per head, no barrier in the key loop); the 4 teams meet once in workgroup memory at the
// end.
//
// Subgroup sizes: butterfly partners closer than the subgroup size swap through
// subgroupShuffleXor; farther ones (a subgroup smaller than 32, e.g. 8 on lavapipe, 16 on some
// Intel/ARM) swap through workgroup memory with two barriers each. The branch is uniform, so a
// device with 32- or 64-lane subgroups (NVIDIA, AMD) only ever shuffles and never waits on a
// barrier inside the key loop. Subgroups are taken to be runs of consecutive
// local_invocation_index values of power-of-two size (as q4_matvec.wgsl does).
//
// Key order: iteration i, step b, team t, key u of the step (lane / lpk) reads key
//     lo + ((i·B + b)·TEAMS + t)·kps + u,    kps = 32 / lpk keys per team step
// so a short segment spreads over all four teams. Keys past the segment's end are clamped to its
// last key (a valid row: no stale NaN reaches the sums) and weighted 0.
//
// Bindings (as `attention`): 0 q (f32, [rows, q_stride], head h at columns q_offset + h*hd),
// 1 k_cache, 2 v_cache ([capacity, n_kv_heads*hd]; f32, or f16 halves with KV_F16), 3 positions
// (u32), 5 params, 11 partials (f32 [rows, n_heads, splits, hd + 2]: unnormalised output, max,
// sum); the combine: 4 out (f32 [rows, out_stride]), 5 params, 11 partials.
// Dispatch (n_kv_heads · ceil(gqa / 4), rows, splits); head_dim <= 128, head_dim % 4 == 0.

// #include attn_params.wgsl   (AttnParams)

const TEAM: u32 = 32u;    // lanes of a team; a key row is at most 32 vec4s (head_dim <= 128)
const TEAMS: u32 = 4u;    // teams per workgroup
const SLOTS: u32 = 4u;    // query heads per workgroup: the components of a score vec4
// Steps per iteration: a lane has 4·B vec4 loads in flight (K and V of this iteration and the
// next). H100 (decoder shapes, f16 cache): B = 4 beat 2 by 5-40% (more so at long contexts); 8 was
// 1.5-2.5x slower than 4 (the driver no longer keeps the arrays in registers, presumably).
// #if DECODE_B2
const B: u32 = 2u;
// #else
// #if DECODE_B8
const B: u32 = 8u;
// #else
const B: u32 = 4u;
// #endif
// #endif
const NEG_BIG: f32 = -3.0e38;  // finite "minus infinity": keeps exp() and max() free of inf-inf

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> positions: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> ap: AttnParams;
@group(0) @binding(11) var<storage, read_write> partials: array<f32>;

// #include kv_load4.wgsl   (bindings 1, 2: load_k4, load_v4)

var<workgroup> team_acc: array<vec4<f32>, TEAMS * SLOTS * TEAM>;  // [team][slot][lane] output dims
var<workgroup> team_ml: array<vec4<f32>, TEAMS * 2u>;              // [team][max, sum], per slot
var<workgroup> swap: array<vec4<f32>, TEAMS * TEAM>;               // xor partners beyond a subgroup
var<workgroup> seg_lo: i32;
var<workgroup> seg_hi: i32;
var<workgroup> sg_lanes: u32;

// v of lane li ^ off through workgroup memory, for partners outside the subgroup. Every lane of
// the workgroup must call it (uniform control flow).
fn xor_through_memory(v: vec4<f32>, off: u32, li: u32) -> vec4<f32> {
    swap[li] = v;
    workgroupBarrier();
    let r = swap[li ^ off];
    workgroupBarrier();  // swap is rewritten by the next call
    return r;
}

@compute @workgroup_size(128)
fn attention_decode(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(local_invocation_index) li: u32,
                    @builtin(subgroup_size) sg_size: u32) {
    let hd = ap.head_dim;
    let gqa = ap.n_heads / ap.n_kv_heads;
    let blocks = (gqa + SLOTS - 1u) / SLOTS;        // head blocks per kv head
    let kvh = wid.x / blocks;
    let h0 = kvh * gqa + (wid.x % blocks) * SLOTS;  // query head of slot 0
    let n_slots = min(SLOTS, (kvh + 1u) * gqa - h0);
    let row = wid.y;
    let split = wid.z;
    let team = li / TEAM;
    let lane = li % TEAM;

    let quads = hd / 4u;                 // vec4s per key row
    var lpk = 1u;                        // lanes per key: quads rounded up to a power of two
    while (lpk < quads) {
        lpk <<= 1u;
    }
    let kps = TEAM / lpk;                // keys per team step
    let sub = lane / lpk;                // which of the step's keys this lane reads
    let in_row = lane % lpk < quads;     // lanes past the row's end (head_dim not a power of 2)
    let quad = min(lane % lpk, quads - 1u);  // ... re-read the last vec4 with q = 0

    // this lane's 4 dims of each slot's query, times the scale (0 for missing heads / idle lanes);
    // loaded before the barrier below so that their latency overlaps the positions'
    var qv: array<vec4<f32>, SLOTS>;
    for (var s = 0u; s < SLOTS; s++) {
        qv[s] = vec4<f32>(0.0);
        if (in_row && s < n_slots) {
            let e = row * ap.q_stride + ap.q_offset + (h0 + s) * hd + 4u * quad;
            qv[s] = vec4<f32>(q[e], q[e + 1u], q[e + 2u], q[e + 3u]) * ap.scale;
        }
    }

    if (li == 0u) {
        // attention.wgsl's segment rule (same keys in the same segment)
        let pos = i32(positions[ap.pos_offset + row]);
        let newest = i32(positions[ap.pos_offset + ap.rows - 1u]);
        let first = max(max(pos - i32(ap.window) + 1, newest - i32(ap.capacity) + 1), 0);
        let per = (pos - first + i32(ap.splits)) / i32(ap.splits);  // ceil(n / splits)
        seg_lo = first + i32(split) * per;
        seg_hi = min(pos, seg_lo + per - 1);
        sg_lanes = sg_size;
    }
    let lo = workgroupUniformLoad(&seg_lo);
    let hi = workgroupUniformLoad(&seg_hi);
    let sg = workgroupUniformLoad(&sg_lanes);

    let row_quads = ap.n_kv_heads * quads;  // vec4s per cache row
    let col = kvh * quads + quad;          // this lane's vec4 within a cache row
    let stride = i32(TEAMS * kps);         // keys between a team's consecutive steps
    let per_iter = i32(B) * stride;
    let n_keys = hi - lo + 1;
    let n_iter = select(0, (n_keys + per_iter - 1) / per_iter, n_keys > 0);

    // per team (all its lanes agree on m_run; l_run and acc cover this lane's keys of each step)
    var m_run = vec4<f32>(NEG_BIG);  // running max per slot
    var l_run = vec4<f32>(0.0);      // running Σ exp(score - m_run) per slot
    var acc: array<vec4<f32>, SLOTS>;  // running Σ exp(score - m_run) · v, this lane's dims
    for (var s = 0u; s < SLOTS; s++) {
        acc[s] = vec4<f32>(0.0);
    }
    let lane_key = lo + i32(team * kps + sub);  // this lane's key of step 0, iteration 0
    var kb: array<vec4<f32>, B>;  // this iteration's K and V (this lane's dims)
    var vb: array<vec4<f32>, B>;
    for (var b = 0u; b < B; b++) {
        let slot = u32(min(lane_key + i32(b) * stride, hi)) % ap.capacity;
        kb[b] = load_k4(slot * row_quads + col);
        vb[b] = load_v4(slot * row_quads + col);
    }
    for (var it = 0; it < n_iter; it++) {
        let j0 = lane_key + it * per_iter;
        // the next iteration's loads go out before this one's arithmetic (H100, 8192 keys: 39 ->
        // 34 us; past the segment's end they re-read its last key: cache hits)
        var kn: array<vec4<f32>, B>;
        var vn: array<vec4<f32>, B>;
        for (var b = 0u; b < B; b++) {
            let slot = u32(min(j0 + per_iter + i32(b) * stride, hi)) % ap.capacity;
            kn[b] = load_k4(slot * row_quads + col);
            vn[b] = load_v4(slot * row_quads + col);
        }
        var sc: array<vec4<f32>, B>;  // partial scores, slot per component
        for (var b = 0u; b < B; b++) {
            let k = kb[b];
            sc[b] = vec4<f32>(dot(qv[0], k), dot(qv[1], k), dot(qv[2], k), dot(qv[3], k));
        }
        // sum over the lpk lanes of each key (every one of them ends with the same sum)
        for (var off = 1u; off < TEAM; off <<= 1u) {
            if (off < lpk) {
                if (off < sg) {
                    for (var b = 0u; b < B; b++) {
                        sc[b] += subgroupShuffleXor(sc[b], off);
                    }
                } else {
                    for (var b = 0u; b < B; b++) {
                        sc[b] += xor_through_memory(sc[b], off, li);
                    }
                }
            }
        }
        var m_it = vec4<f32>(NEG_BIG);
        for (var b = 0u; b < B; b++) {
            sc[b] = select(vec4<f32>(NEG_BIG), sc[b], j0 + i32(b) * stride <= hi);
            m_it = max(m_it, sc[b]);
        }
        // max over the team's kps keys of a step (lanes lpk apart)
        for (var off = 1u; off < TEAM; off <<= 1u) {
            if (off >= lpk) {
                if (off < sg) {
                    m_it = max(m_it, subgroupShuffleXor(m_it, off));
                } else {
                    m_it = max(m_it, xor_through_memory(m_it, off, li));
                }
            }
        }
        let m_new = max(m_run, m_it);
        let alpha = exp(m_run - m_new);
        l_run *= alpha;
        for (var s = 0u; s < SLOTS; s++) {
            acc[s] *= alpha[s];
        }
        for (var b = 0u; b < B; b++) {
            // masked keys get exactly 0 (exp(NEG_BIG - m_new) is 1 while nothing is visible yet)
            let p = select(vec4<f32>(0.0), exp(sc[b] - m_new), j0 + i32(b) * stride <= hi);
            l_run += p;
            for (var s = 0u; s < SLOTS; s++) {
                acc[s] += p[s] * vb[b];
            }
        }
        m_run = m_new;
        kb = kn;
        vb = vn;
    }

    // add the team's kps key streams (lanes lpk apart share dims and m_run)
    for (var off = 1u; off < TEAM; off <<= 1u) {
        if (off >= lpk) {
            if (off < sg) {
                l_run += subgroupShuffleXor(l_run, off);
                for (var s = 0u; s < SLOTS; s++) {
                    acc[s] += subgroupShuffleXor(acc[s], off);
                }
            } else {
                l_run += xor_through_memory(l_run, off, li);
                for (var s = 0u; s < SLOTS; s++) {
                    acc[s] += xor_through_memory(acc[s], off, li);
                }
            }
        }
    }
    if (lane < lpk) {
        for (var s = 0u; s < SLOTS; s++) {
            team_acc[(team * SLOTS + s) * TEAM + lane] = acc[s];
        }
    }
    if (lane == 0u) {
        team_ml[team * 2u] = m_run;
        team_ml[team * 2u + 1u] = l_run;
    }
    workgroupBarrier();

    // merge the 4 teams: lane li writes dims 4·(li % 32) of slot li / 32. An empty segment (or
    // team) has (NEG_BIG, 0, 0), which weighs 0 against any real max (and 0 when all are empty).
    let s = li / TEAM;
    let d = li % TEAM;
    if (s < n_slots && d < quads) {
        var m_all = NEG_BIG;
        for (var t = 0u; t < TEAMS; t++) {
            m_all = max(m_all, team_ml[t * 2u][s]);
        }
        var l_all = 0.0;
        var out = vec4<f32>(0.0);
        for (var t = 0u; t < TEAMS; t++) {
            let w = exp(team_ml[t * 2u][s] - m_all);
            l_all += w * team_ml[t * 2u + 1u][s];
            out += w * team_acc[(t * SLOTS + s) * TEAM + d];
        }
        let base = ((row * ap.n_heads + h0 + s) * ap.splits + split) * (hd + 2u);
        partials[base + 4u * d] = out.x;
        partials[base + 4u * d + 1u] = out.y;
        partials[base + 4u * d + 2u] = out.z;
        partials[base + 4u * d + 3u] = out.w;
        if (d == 0u) {
            partials[base + hd] = m_all;
            partials[base + hd + 1u] = l_all;
        }
    }
}

// ----------------------------------------------------------------- attention_decode_combine
// attention.wgsl's attention_combine (same result up to f32 rounding) for many segments: that one
// walks the segments twice, one dependent load after another per segment (H100: 4.0 us at 16
// segments, 6.4 at 32, 10.7 at 64). Here the segments' maxima and sums come in with one load per
// lane and meet in workgroup memory, and each output dim's segment values are loaded CHUNK at a
// time, the first chunk before the barrier (3.4 us at 16, 4.0 at 32). Dispatch (n_heads, rows);
// 128 invocations, invocation t owns output dim t; splits <= MAX_SPLITS (the host caps them).
const MAX_SPLITS: u32 = 256u;
const CHUNK: u32 = 32u;
var<workgroup> seg_max: array<f32, MAX_SPLITS>;
var<workgroup> seg_sum: array<f32, MAX_SPLITS>;

@compute @workgroup_size(128)
fn attention_decode_combine(@builtin(workgroup_id) wid: vec3<u32>,
                            @builtin(local_invocation_index) li: u32) {
    let h = wid.x;
    let row = wid.y;
    let hd = ap.head_dim;
    let n = ap.splits;
    let stride = hd + 2u;
    let first = (row * ap.n_heads + h) * n * stride;  // segment 0 of (row, h) in partials
    let d = min(li, hd - 1u);  // lanes past head_dim re-read the last dim and write nothing

    var vals: array<f32, CHUNK>;  // dim d of segments s0 + [0, CHUNK) (clamped to the last)
    for (var u = 0u; u < CHUNK; u++) {
        vals[u] = partials[first + min(u, n - 1u) * stride + d];
    }
    for (var s = li; s < n; s += 128u) {
        seg_max[s] = partials[first + s * stride + hd];
        seg_sum[s] = partials[first + s * stride + hd + 1u];
    }
    workgroupBarrier();
    var m_all = NEG_BIG;
    for (var s = 0u; s < n; s++) {
        m_all = max(m_all, seg_max[s]);
    }
    var l_all = 0.0;
    var acc = 0.0;
    for (var s0 = 0u; s0 < n; s0 += CHUNK) {
        if (s0 > 0u) {
            for (var u = 0u; u < CHUNK; u++) {
                vals[u] = partials[first + min(s0 + u, n - 1u) * stride + d];
            }
        }
        for (var u = 0u; u < CHUNK; u++) {
            let s = s0 + u;
            if (s < n) {
                // an empty segment (NEG_BIG, 0, 0) weighs exp(NEG_BIG - m_all) = 0
                let w = exp(seg_max[s] - m_all);
                l_all += w * seg_sum[s];
                acc += w * vals[u];
            }
        }
    }
    if (li < hd) {
        out[row * ap.out_stride + h * hd + li] = acc / l_all;
    }
}
