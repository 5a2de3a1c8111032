// q4_matvec.wgsl — y = x·Wᵀ (+ bias) (+ residual) for a few rows of x (M <= 4: the one-token
// decoder step, the streaming encoder's 4 frames), W kept in its raw GGUF Q4_0 bytes.
//
// Layout
//   weights  array<u32>        raw Q4_0 bytes of W rows [row0, row0 + n_rows) (one row block of a
//                              tensor split to fit a binding; r is local). Row r, block b lives at
//                              byte (r*K/32 + b)*18: f16 scale d, then 16 bytes whose byte j holds
//                              element j (low nibble) and j+16 (high nibble); w = (nibble-8)*d.
//                              The buffer carries >= 4 zero bytes of padding past the last block.
//   x        array<vec4<f32>>  input row m, vec4 i at x[x_off + m*x_stride + i] (K % 32 == 0)
//   y        array<f32>        [M, out_stride]; this dispatch writes y[m*out_stride + out_col + r]
//                              (out_col = the output view's offset + row0)
//   bias     array<f32>        [N], indexed by weight row (bias_col + local row)  (#if BIAS)
//   residual array<f32>        same layout as y: y = residual + x·Wᵀ + b        (#if RESIDUAL)
//   ACCUMULATE: y += x·Wᵀ + b in place (the fused residual when y is the residual stream)
//   norm_w   array<vec4<f32>>  [K]: NORM: the input is rmsnorm(x)·norm_w, computed here (#if NORM)
//   ada      array<vec4<f32>>  [K]: NORM_ADA: ... · (1 + ada) (the decoder's FFN norm)
//   SWIGLU: the input is silu(x)·x[· + up_off] (gate and up: the two column halves of the fused
//            gate/up output), the FFN's down projection without a separate swiglu dispatch
// Bindings (group 0): 0 weights, 1 x, 2 y, 3 params (uniform), 4 bias, 5 residual, 6 norm_w, 7 ada
//
// The fused prologues save a dispatch each (one-token decode is launch-bound: ~10 us per
// dependent dispatch against ~3 us of work for a norm): every workgroup recomputes the row's sum of
// squares (K floats from L2) or the SiLU of the inputs its lanes read.
//
// Work split: 256 invocations = 8 lane groups x 32 lanes; a group owns 2 adjacent rows. Lane l
// dequantizes blocks l, l+32, ... of both rows once and dots them with all M rows of x, so every
// weight byte is read once and every x load serves two rows (UNROLL4: 4 blocks per row at a time). The 32 lane partials are summed
// with subgroup shuffles (#if SUBGROUPS; then one barrier) or a shared-memory tree (5 barriers).
// The subgroup path assumes subgroups are runs of consecutive local_invocation_index values
// (true for 1-D workgroups on every driver seen) and works for any power-of-two subgroup size:
// xor partners at distance >= subgroup size are masked out and the leftover per-subgroup sums
// are added through shared memory.
// Workgroup (wx, wy) handles rows 16*(wx + wy*groups_x) + [0, 16): 2-D so N/16 may exceed 65535.

struct Params {
    M: u32,           // rows of x (1..4)
    n_rows: u32,      // W rows in this block
    K: u32,           // input features
    out_stride: u32,  // row stride of y (and residual), in elements
    out_col: u32,     // column of y written by this block's first row (view offset + row0)
    groups_x: u32,    // workgroups along x (for the 2-D linearisation)
    bias_col: u32,    // bias index of this block's first row (row0)
    x_stride: u32,    // vec4s between rows of x
    x_off: u32,       // vec4 index of x's first element
    up_off: u32,      // SWIGLU: vec4s from a gate element to its up element
    eps: f32,         // NORM: rmsnorm epsilon
}

const GROUPS: u32 = 8u;  // lane groups per workgroup, 2 rows each: 16 rows per workgroup
const LANES: u32 = 32u;
const BLOCK_BYTES: u32 = 18u;

@group(0) @binding(0) var<storage, read> weights: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
// #if BIAS
@group(0) @binding(4) var<storage, read> bias: array<f32>;
// #endif
// #if RESIDUAL
@group(0) @binding(5) var<storage, read> residual: array<f32>;
// #endif
// #if NORM
@group(0) @binding(6) var<storage, read> norm_w: array<vec4<f32>>;
var<private> inv_rms: vec4<f32>;  // 1/rms of each input row, from the prologue
// #endif
// #if NORM_ADA
@group(0) @binding(7) var<storage, read> ada: array<vec4<f32>>;
// #endif
// #if SWIGLU
// #include exp_accurate.wgsl   (exp_accurate, the rounding of elementwise.wgsl's silu)
// #endif

var<workgroup> partial_a: array<vec4<f32>, 256>;
var<workgroup> partial_b: array<vec4<f32>, 256>;

struct Q4Block {
    d: f32,         // scale
    q: vec4<u32>,   // nibble word j: elements 4j..4j+3 (low nibbles), 16+4j..16+4j+3 (high)
}

// Block g (counted over the whole buffer) with five aligned word loads: odd blocks start 2 bytes
// into a word (scale = high half of word 0, quants = words 1..4, aligned); even blocks start on a
// word (scale = low half, each quant word straddles two words).
fn load_q4_block(g: u32) -> Q4Block {
    let byte = g * BLOCK_BYTES;
    let w = byte >> 2u;
    let w0 = weights[w];
    let w1 = weights[w + 1u];
    let w2 = weights[w + 2u];
    let w3 = weights[w + 3u];
    let w4 = weights[w + 4u];
    if ((byte & 2u) != 0u) {
        return Q4Block(unpack2x16float(w0 >> 16u).x, vec4<u32>(w1, w2, w3, w4));
    }
    let q = vec4<u32>((w0 >> 16u) | (w1 << 16u), (w1 >> 16u) | (w2 << 16u),
                      (w2 >> 16u) | (w3 << 16u), (w3 >> 16u) | (w4 << 16u));
    return Q4Block(unpack2x16float(w0).x, q);
}

// (nibble - 8) as f32 without an int->float conversion (a quarter-rate instruction on NVIDIA):
// OR the nibble into the mantissa of 2^23, then subtract 2^23 + 8. Exact.
fn nibbles_minus_8(v: vec4<u32>) -> vec4<f32> {
    return bitcast<vec4<f32>>((v & vec4<u32>(15u)) | vec4<u32>(0x4B000000u)) - 8388616.0;
}

// The 32 weights of a block as 8 vec4 (scale not applied): [0..3] elements 0..15, [4..7] 16..31.
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

// vec4 i (0 <= i < K/4) of input row m, with the fused prologue's transform applied
fn x4(m: u32, i: u32) -> vec4<f32> {
    let at = p.x_off + m * p.x_stride + i;
    // #if SWIGLU
    let g = x[at];
    let e = vec4<f32>(exp_accurate(-g.x), exp_accurate(-g.y), exp_accurate(-g.z), exp_accurate(-g.w));
    return (g / (1.0 + e)) * x[at + p.up_off];
    // #else
    var v = x[at];
    // #if NORM
    v = (v * inv_rms[m]) * norm_w[i];
    // #endif
    // #if NORM_ADA
    v = v * (1.0 + ada[i]);
    // #endif
    return v;
    // #endif
}

fn dot32(w: array<vec4<f32>, 8>, xv: array<vec4<f32>, 8>) -> f32 {
    return dot(w[0], xv[0]) + dot(w[1], xv[1]) + dot(w[2], xv[2]) + dot(w[3], xv[3])
         + dot(w[4], xv[4]) + dot(w[5], xv[5]) + dot(w[6], xv[6]) + dot(w[7], xv[7]);
}

// acc[m] += keep · (block of row a / row b) · (x row m, elements 32b .. 32b+31)
fn accumulate(blk_a: Q4Block, blk_b: Q4Block, b: u32, keep: f32,
              acc_a: ptr<function, vec4<f32>>, acc_b: ptr<function, vec4<f32>>) {
    let w_a = block_weights(blk_a.q);
    let w_b = block_weights(blk_b.q);
    let d_a = keep * blk_a.d;
    let d_b = keep * blk_b.d;
    for (var m = 0u; m < p.M; m++) {
        let xb = b * 8u;  // vec4 index of element 32b
        let xv = array<vec4<f32>, 8>(x4(m, xb), x4(m, xb + 1u), x4(m, xb + 2u), x4(m, xb + 3u),
                                     x4(m, xb + 4u), x4(m, xb + 5u), x4(m, xb + 6u), x4(m, xb + 7u));
        (*acc_a)[m] += d_a * dot32(w_a, xv);
        (*acc_b)[m] += d_b * dot32(w_b, xv);
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        // #if SUBGROUPS
        @builtin(subgroup_size) sg_size: u32,
        // #endif
        @builtin(local_invocation_index) li: u32) {
    let lane = li % LANES;
    // this lane group's two rows: a pair shares every x load (x traffic through L1 would
    // otherwise be 7x the weight traffic and the limit for M = 1)
    let row_a = ((wid.x + wid.y * p.groups_x) * GROUPS + li / LANES) * 2u;
    let row_b = row_a + 1u;
    let valid_a = row_a < p.n_rows;
    let valid_b = row_b < p.n_rows;
    let blocks_per_row = p.K / 32u;

    // #if NORM
    // sum of squares of each input row, over the whole workgroup (same order in every workgroup)
    var ss = vec4<f32>(0.0);
    for (var m = 0u; m < p.M; m++) {
        var s = 0.0;
        for (var i = li; i < p.K / 4u; i += 256u) {
            let v = x[p.x_off + m * p.x_stride + i];
            s += dot(v, v);
        }
        ss[m] = s;
    }
    partial_a[li] = ss;
    workgroupBarrier();
    for (var off = 128u; off > 0u; off >>= 1u) {
        if (li < off) {
            partial_a[li] += partial_a[li + off];
        }
        workgroupBarrier();
    }
    inv_rms = 1.0 / sqrt(partial_a[0] / f32(p.K) + p.eps);
    workgroupBarrier();  // partial_a is reused by the lane reduction below
    // #endif

    var acc_a = vec4<f32>(0.0);  // acc_a[m] = this lane's partial dot of row_a with x row m
    var acc_b = vec4<f32>(0.0);
    if (valid_a) {
        // #if UNROLL4
        // Four blocks per row in flight per lane: every load of a step is issued before any math,
        // so a lane waits for DRAM once per 4 blocks (the short matrices of a decode step are
        // latency-bound: a lane has only 3-9 blocks per row). Indices are clamped to the row's
        // last block (a valid load) and the surplus blocks get scale 0; an invalid row_b reads
        // row_a's bytes and is never written.
        let last = blocks_per_row - 1u;
        let base_a = row_a * blocks_per_row;
        let base_b = select(base_a, row_b * blocks_per_row, valid_b);
        for (var b0 = lane; b0 < blocks_per_row; b0 += 4u * LANES) {
            let b1 = b0 + LANES;
            let b2 = b0 + 2u * LANES;
            let b3 = b0 + 3u * LANES;
            let a0 = load_q4_block(base_a + b0);
            let a1 = load_q4_block(base_a + min(b1, last));
            let a2 = load_q4_block(base_a + min(b2, last));
            let a3 = load_q4_block(base_a + min(b3, last));
            let q0 = load_q4_block(base_b + b0);
            let q1 = load_q4_block(base_b + min(b1, last));
            let q2 = load_q4_block(base_b + min(b2, last));
            let q3 = load_q4_block(base_b + min(b3, last));
            accumulate(a0, q0, b0, 1.0, &acc_a, &acc_b);
            accumulate(a1, q1, min(b1, last), select(0.0, 1.0, b1 <= last), &acc_a, &acc_b);
            accumulate(a2, q2, min(b2, last), select(0.0, 1.0, b2 <= last), &acc_a, &acc_b);
            accumulate(a3, q3, min(b3, last), select(0.0, 1.0, b3 <= last), &acc_a, &acc_b);
        }
        // #else
        for (var b = lane; b < blocks_per_row; b += LANES) {
            let blk_a = load_q4_block(row_a * blocks_per_row + b);
            var blk_b = Q4Block(0.0, vec4<u32>(0u));
            if (valid_b) {
                blk_b = load_q4_block(row_b * blocks_per_row + b);
            }
            accumulate(blk_a, blk_b, b, 1.0, &acc_a, &acc_b);
        }
        // #endif
    }

    // #if SUBGROUPS
    for (var off = LANES / 2u; off > 0u; off >>= 1u) {
        let other_a = subgroupShuffleXor(acc_a, off);
        let other_b = subgroupShuffleXor(acc_b, off);
        acc_a += select(vec4<f32>(0.0), other_a, off < sg_size);
        acc_b += select(vec4<f32>(0.0), other_b, off < sg_size);
    }
    partial_a[li] = acc_a;
    partial_b[li] = acc_b;
    workgroupBarrier();
    var total_a = vec4<f32>(0.0);
    var total_b = vec4<f32>(0.0);
    if (lane == 0u) {
        let run = min(sg_size, LANES);  // lanes already summed by the shuffles
        for (var i = 0u; i < LANES; i += run) {
            total_a += partial_a[li + i];
            total_b += partial_b[li + i];
        }
    }
    // #else
    partial_a[li] = acc_a;
    partial_b[li] = acc_b;
    workgroupBarrier();
    for (var off = LANES / 2u; off > 0u; off >>= 1u) {
        if (lane < off) {
            partial_a[li] += partial_a[li + off];
            partial_b[li] += partial_b[li + off];
        }
        workgroupBarrier();
    }
    let total_a = partial_a[li];
    let total_b = partial_b[li];
    // #endif

    if (lane == 0u) {
        if (valid_a) {
            write_row(row_a, total_a);
        }
        if (valid_b) {
            write_row(row_b, total_b);
        }
    }
}

// y[m, row] for the M rows of x, plus bias / residual as configured
fn write_row(row: u32, total: vec4<f32>) {
    for (var m = 0u; m < p.M; m++) {
        let i = m * p.out_stride + p.out_col + row;
        var v = total[m];
        // #if BIAS
        v += bias[p.bias_col + row];
        // #endif
        // #if RESIDUAL
        v = residual[i] + v;
        // #endif
        // #if ACCUMULATE
        v = y[i] + v;
        // #endif
        y[i] = v;
    }
}
