// q4split_matvec.wgsl — EXPERIMENT (scripts/kernel_bench.py --split), kept with its results in
// docs/perf-notes.md (session 13): the lane-per-block work split of the earlier q4_matvec.wgsl (2 rows
// per 32-lane group, lane l takes blocks l, l+32, ...) over Q4_0 weights repacked into two aligned
// arrays, to measure what the 18-byte GGUF block stride costs the decode matvec:
//   quants array<vec4<u32>>  [n_rows * K/32]: the 16 nibble bytes of each block (one aligned load)
//   scales array<u32>        [n_rows * K/32 / 2 (+1)]: the f16 scales, two per word
// M = 1 only. It sums in that earlier kernel's order, so it matches today's q4_matvec to rounding,
// not bit for bit. Diagnostic probes (wrong results on purpose, to find the limit):
// PROBE_NO_DEQUANT (the raw words as floats: no nibble decoding), PROBE_NO_X (constant x: no
// activation loads).

struct Params {
    n_rows: u32,
    K: u32,
    groups_x: u32,
    _pad0: u32,
}

const ROWS: u32 = 2u;
const GROUPS: u32 = 8u;
const LANES: u32 = 32u;

@group(0) @binding(0) var<storage, read> quants: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> scales: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn nibbles_minus_8(v: vec4<u32>) -> vec4<f32> {
    return bitcast<vec4<f32>>((v & vec4<u32>(15u)) | vec4<u32>(0x4B000000u)) - 8388616.0;
}

fn block_weights(q: vec4<u32>) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(
        nibbles_minus_8(vec4<u32>(q.x, q.x >> 8u, q.x >> 16u, q.x >> 24u)),
        nibbles_minus_8(vec4<u32>(q.y, q.y >> 8u, q.y >> 16u, q.y >> 24u)),
        nibbles_minus_8(vec4<u32>(q.z, q.z >> 8u, q.z >> 16u, q.z >> 24u)),
        nibbles_minus_8(vec4<u32>(q.w, q.w >> 8u, q.w >> 16u, q.w >> 24u)),
        nibbles_minus_8(vec4<u32>(q.x >> 4u, q.x >> 12u, q.x >> 20u, q.x >> 28u)),
        nibbles_minus_8(vec4<u32>(q.y >> 4u, q.y >> 12u, q.y >> 20u, q.y >> 28u)),
        nibbles_minus_8(vec4<u32>(q.z >> 4u, q.z >> 12u, q.z >> 20u, q.z >> 28u)),
        nibbles_minus_8(vec4<u32>(q.w >> 4u, q.w >> 12u, q.w >> 20u, q.w >> 28u)));
}

fn dot32(w: array<vec4<f32>, 8>, xv: array<vec4<f32>, 8>) -> f32 {
    return dot(w[0], xv[0]) + dot(w[1], xv[1]) + dot(w[2], xv[2]) + dot(w[3], xv[3])
         + dot(w[4], xv[4]) + dot(w[5], xv[5]) + dot(w[6], xv[6]) + dot(w[7], xv[7]);
}

var<workgroup> partial: array<f32, 64 * ROWS>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_size) sg_size: u32,
        @builtin(local_invocation_index) li: u32) {
    let lane = li % LANES;
    let row0 = ((wid.x + wid.y * p.groups_x) * GROUPS + li / LANES) * ROWS;
    let nb = p.K / 32u;
    var acc: array<f32, ROWS>;
    // #if PROBE_NO_X
    let x0 = x[lane];  // one load per invocation, outside the loop (keeps the binding in use)
    // #endif
    if (row0 < p.n_rows) {
        for (var b = lane; b < nb; b += LANES) {
            var q: array<vec4<u32>, ROWS>;
            var d: array<f32, ROWS>;
            for (var r = 0u; r < ROWS; r++) {
                q[r] = vec4<u32>(0u);
                d[r] = 0.0;
                if (row0 + r < p.n_rows) {
                    let g = (row0 + r) * nb + b;
                    q[r] = quants[g];
                    let sw = scales[g / 2u];
                    d[r] = unpack2x16float(select(sw, sw >> 16u, (g & 1u) != 0u)).x;
                }
            }
            let xb = b * 8u;
            // #if PROBE_NO_X
            let xv = array<vec4<f32>, 8>(x0, x0 * 0.5, x0 * 0.25, x0 * 2.0,
                                         x0 * 1.5, x0 * 0.75, x0 * 3.0, x0 * 1.25);
            // #else
            let xv = array<vec4<f32>, 8>(x[xb], x[xb + 1u], x[xb + 2u], x[xb + 3u],
                                         x[xb + 4u], x[xb + 5u], x[xb + 6u], x[xb + 7u]);
            // #endif
            for (var r = 0u; r < ROWS; r++) {
                // #if PROBE_NO_DEQUANT
                let f = bitcast<vec4<f32>>(q[r] & vec4<u32>(0x3FFFFFFFu));
                let w = array<vec4<f32>, 8>(f, f, f, f, f, f, f, f);
                acc[r] += d[r] * dot32(w, xv);
                // #else
                acc[r] += d[r] * dot32(block_weights(q[r]), xv);
                // #endif
            }
        }
    }
    let run = min(sg_size, LANES);
    for (var off = LANES / 2u; off > 0u; off >>= 1u) {
        for (var r = 0u; r < ROWS; r++) {
            acc[r] += select(0.0, subgroupShuffleXor(acc[r], off), off < sg_size);
        }
    }
    if (li % run == 0u) {
        for (var r = 0u; r < ROWS; r++) {
            partial[r * 64u + li / run] = acc[r];
        }
    }
    workgroupBarrier();
    if (lane == 0u) {
        for (var r = 0u; r < ROWS; r++) {
            var total = 0.0;
            for (var i = 0u; i < LANES / run; i++) {
                total += partial[r * 64u + li / run + i];
            }
            if (row0 + r < p.n_rows) {
                y[row0 + r] = total;
            }
        }
    }
}
