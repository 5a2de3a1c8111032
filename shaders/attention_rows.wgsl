// attention_rows.wgsl — causal sliding-window GQA attention of MANY query rows (the offline
// encoder's 800-frame clip, the decoder's prompt) over the ring caches, in one dispatch. Same
// maths and visibility as attention.wgsl's `attention` (see there): query row m at position
// P = positions[pos_offset + m] attends keys j with P - window < j <= P, j >= 0,
// j > newest - capacity; scores (q · scale) · k, softmax in f32.
//
// Why: `attention` gives each (query row, head) its own workgroup, which reads all of its keys'
// K and V rows from L2: 800 rows x 750 keys x 512 bytes per head and layer of the encoder, ~10 GB
// per layer, 1.7 ms (L2-bound). Here a workgroup serves R = 16 consecutive query rows of one head
// and walks the union of their key ranges once: every K/V row is loaded once per 16 rows (the
// other teams' loads of the same row hit L1).
//
// Layout: workgroup (head h, block of R rows); 128 invocations = R teams of TEAM = 8 lanes, team t
// owns row R·block + t. Lane l holds the vec4s u·TEAM + l of the head's dims (u < head_dim/32: one
// to four), so a key row is read by a team as coalesced vec4s. Per key: the team's partial dot
// products meet by xor shuffles (subgroups of >= 8 lanes) or, on devices with smaller subgroups,
// through workgroup memory (a uniform branch: no barrier in the loop on 8+ lane subgroups);
// each row keeps an online softmax (running max, sum, output) in registers. Keys a row may not see
// weigh exactly 0 (its running values are unchanged). No workgroup memory beyond 0.5 KB: the
// occupancy lesson of perf-notes session 14.
// Needs SUBGROUPS; head_dim % 32 == 0 and <= 128 (the host checks, else `attention` runs).
// Bindings (as `attention`): 0 q (f32 [rows, q_stride], head h at q_offset + h·hd), 1 k_cache,
// 2 v_cache, 3 positions (u32), 4 out (f32 [rows, out_stride]), 5 params.
// Dispatch (n_heads, ceil(rows / R), 1).

// #include attn_params.wgsl   (AttnParams)

const R: u32 = 16u;        // query rows per workgroup (teams)
const TEAM: u32 = 8u;      // lanes per row
const MAX_U: u32 = 4u;     // vec4s of dims per lane: head_dim <= 4 * 4 * TEAM = 128
const NEG_BIG: f32 = -3.0e38;  // finite "minus infinity" (as attention.wgsl)

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> positions: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> ap: AttnParams;

// #include kv_load4.wgsl   (bindings 1, 2: load_k4, load_v4)

var<workgroup> red: array<f32, 128>;   // the team sums on devices with subgroups under 8 lanes
var<workgroup> sg_lanes: u32;
var<workgroup> range_lo: i32;
var<workgroup> range_hi: i32;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_size) sg_size: u32) {
    let h = wid.x;
    let block = wid.y;
    let team = li / TEAM;
    let lane = li % TEAM;
    let hd = ap.head_dim;
    let n_u = hd / (4u * TEAM);                 // vec4s per lane (1..4)
    let kv_width = ap.n_kv_heads * hd;
    let kv_vec = (h / (ap.n_heads / ap.n_kv_heads)) * hd / 4u;  // the kv head's first vec4

    let first_row = block * R;
    let last_row = min(first_row + R, ap.rows) - 1u;
    let row = min(first_row + team, last_row);  // teams past the last row mirror it, unwritten
    let newest = i32(positions[ap.pos_offset + ap.rows - 1u]);
    let oldest_kept = newest - i32(ap.capacity) + 1;  // older slots were overwritten
    let pos = i32(positions[ap.pos_offset + row]);
    let lo = max(max(pos - i32(ap.window) + 1, oldest_kept), 0);  // this row's first visible key

    var qv: array<vec4<f32>, MAX_U>;  // this lane's dims of q · scale
    let q_base = row * ap.q_stride + ap.q_offset + h * hd;
    for (var u = 0u; u < MAX_U; u++) {
        if (u < n_u) {
            let d = (u * TEAM + lane) * 4u;
            qv[u] = vec4<f32>(q[q_base + d], q[q_base + d + 1u], q[q_base + d + 2u], q[q_base + d + 3u]) * ap.scale;
        }
    }
    if (li == 0u) {
        sg_lanes = sg_size;
        // the union of the block's key ranges (positions increase with the row)
        range_lo = max(max(i32(positions[ap.pos_offset + first_row]) - i32(ap.window) + 1, oldest_kept), 0);
        range_hi = i32(positions[ap.pos_offset + last_row]);
    }
    // through workgroup memory so that the loop bounds and the branch below are uniform (barriers)
    // #if TEAM_SUMS_IN_MEMORY
    let shuffle = workgroupUniformLoad(&sg_lanes) < 1u;  // tests: the small-subgroup path anywhere
    // #else
    let shuffle = workgroupUniformLoad(&sg_lanes) >= TEAM;
    // #endif
    let block_lo = workgroupUniformLoad(&range_lo);
    let block_hi = workgroupUniformLoad(&range_hi);

    var m_run = NEG_BIG;
    var l_run = 0.0;
    var acc: array<vec4<f32>, MAX_U>;
    // the ring slot of key j, moved on with j (an integer modulo per key is ~20 instructions on
    // GPUs without an integer divider: as many as the rest of the key's work for head_dim 64)
    var slot = u32(max(block_lo, 0)) % ap.capacity;
    for (var j = block_lo; j <= block_hi; j++) {
        let base = slot * (kv_width / 4u) + kv_vec;
        slot = select(slot + 1u, 0u, slot + 1u == ap.capacity);
        var s = 0.0;
        for (var u = 0u; u < MAX_U; u++) {
            if (u < n_u) {
                s += dot(qv[u], load_k4(base + u * TEAM + lane));
            }
        }
        if (shuffle) {
            s += subgroupShuffleXor(s, 4u);
            s += subgroupShuffleXor(s, 2u);
            s += subgroupShuffleXor(s, 1u);
        } else {
            red[li] = s;
            workgroupBarrier();
            let t0 = team * TEAM;
            s = ((red[t0] + red[t0 + 4u]) + (red[t0 + 2u] + red[t0 + 6u]))
              + ((red[t0 + 1u] + red[t0 + 5u]) + (red[t0 + 3u] + red[t0 + 7u]));
            workgroupBarrier();  // red is rewritten by the next key
        }
        let visible = j >= lo && j <= pos;
        let sv = select(NEG_BIG, s, visible);
        let m_new = max(m_run, sv);
        let alpha = exp(m_run - m_new);
        let p = select(0.0, exp(sv - m_new), visible);
        l_run = l_run * alpha + p;
        for (var u = 0u; u < MAX_U; u++) {
            if (u < n_u) {
                acc[u] = acc[u] * alpha + p * load_v4(base + u * TEAM + lane);
            }
        }
        m_run = m_new;
    }
    if (first_row + team <= last_row) {
        let o = row * ap.out_stride + h * hd;
        for (var u = 0u; u < MAX_U; u++) {
            if (u < n_u) {
                let v = acc[u] / l_run;
                let d = (u * TEAM + lane) * 4u;
                out[o + d] = v.x;
                out[o + d + 1u] = v.y;
                out[o + d + 2u] = v.z;
                out[o + d + 3u] = v.w;
            }
        }
    }
}
