// q4split_words.wgsl — EXPERIMENT (scripts/kernel_bench.py --split-words): q4_matvec.wgsl's
// word-slot work split (ROWS rows per workgroup of WG invocations, x loaded once per slot and
// reused for the ROWS rows) over Q4_0 repacked into two aligned arrays, to measure what the
// 18-byte GGUF block stride costs that kernel (3 word loads and a select per row and slot):
//   quants  [n_rows, K/8] u32: the 16 nibble bytes of each block as 4 words (one load per slot)
//   scales  [n_rows, K/32] f16, two per u32
// M = 1 only; subgroups required. Slot width: one word (8 weights, default), SLOT2 (2 words),
// SLOT4 (a whole block: one 16-byte load). ROWS8: 8 rows per workgroup.

struct Params {
    n_rows: u32,
    K: u32,
    groups_x: u32,
    _pad0: u32,
}

// #if ROWS8
const ROWS: u32 = 8u;
// #else
const ROWS: u32 = 4u;
// #endif
const WG: u32 = 128u;
// #if SLOT4
const WORDS: u32 = 4u;
// #else
// #if SLOT2
const WORDS: u32 = 2u;
// #else
const WORDS: u32 = 1u;
// #endif
// #endif

// the slot's words in one load (a vector load needs a vector type: WGSL has no aligned hints)
// #if SLOT4
@group(0) @binding(0) var<storage, read> quants: array<vec4<u32>>;
fn load_slot(w: u32) -> array<u32, WORDS> {
    let v = quants[w / 4u];
    return array<u32, WORDS>(v.x, v.y, v.z, v.w);
}
// #else
// #if SLOT2
@group(0) @binding(0) var<storage, read> quants: array<vec2<u32>>;
fn load_slot(w: u32) -> array<u32, WORDS> {
    let v = quants[w / 2u];
    return array<u32, WORDS>(v.x, v.y);
}
// #else
@group(0) @binding(0) var<storage, read> quants: array<u32>;
fn load_slot(w: u32) -> array<u32, WORDS> { return array<u32, WORDS>(quants[w]); }
// #endif
// #endif
@group(0) @binding(1) var<storage, read> scales: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn nibbles_minus_8(v: vec4<u32>) -> vec4<f32> {
    return bitcast<vec4<f32>>((v & vec4<u32>(15u)) | vec4<u32>(0x4B000000u)) - 8388616.0;
}

// Σ over one nibble word q (elements 4j..4j+3 low, 16+4j.. high) times its x values
fn word_dot(q: u32, xa: vec4<f32>, xb: vec4<f32>) -> f32 {
    let lo = nibbles_minus_8(vec4<u32>(q, q >> 8u, q >> 16u, q >> 24u));
    let hi = nibbles_minus_8(vec4<u32>(q >> 4u, q >> 12u, q >> 20u, q >> 28u));
    return dot(lo, xa) + dot(hi, xb);
}

fn scale_of(i: u32) -> f32 {
    let w = scales[i / 2u];
    return unpack2x16float(select(w, w >> 16u, (i & 1u) != 0u)).x;
}

var<workgroup> partial: array<f32, 32u * ROWS>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_size) sg_size: u32,
        @builtin(local_invocation_index) li: u32) {
    let wgi = wid.x + wid.y * p.groups_x;
    let row0 = wgi * ROWS;
    let words_per_row = p.K / 8u;
    let blocks_per_row = p.K / 32u;
    let slots = words_per_row / WORDS;
    var acc: array<f32, ROWS>;
    for (var s = li; s < slots; s += WG) {
        let w0 = s * WORDS;        // first word of the slot in its row
        let b = w0 / 4u;           // its block
        let j = w0 % 4u;           // its first word within the block
        var xa: array<vec4<f32>, WORDS>;
        var xb: array<vec4<f32>, WORDS>;
        for (var u = 0u; u < WORDS; u++) {
            xa[u] = x[b * 8u + j + u];
            xb[u] = x[b * 8u + 4u + j + u];
        }
        for (var r = 0u; r < ROWS; r++) {
            if (row0 + r < p.n_rows) {
                let base = (row0 + r) * words_per_row + w0;
                let d = scale_of((row0 + r) * blocks_per_row + b);
                let q = load_slot(base);
                var sum = 0.0;
                for (var u = 0u; u < WORDS; u++) {
                    sum += word_dot(q[u], xa[u], xb[u]);
                }
                acc[r] += d * sum;
            }
        }
    }
    let run = min(sg_size, 32u);
    for (var off = 16u; off > 0u; off >>= 1u) {
        for (var r = 0u; r < ROWS; r++) {
            acc[r] += select(0.0, subgroupShuffleXor(acc[r], off), off < sg_size);
        }
    }
    if (li % run == 0u) {
        for (var r = 0u; r < ROWS; r++) {
            partial[r * 32u + li / run] = acc[r];
        }
    }
    workgroupBarrier();
    if (li < ROWS && row0 + li < p.n_rows) {
        var total = 0.0;
        for (var i = 0u; i < WG / run; i++) {
            total += partial[li * 32u + i];
        }
        y[row0 + li] = total;
    }
}
