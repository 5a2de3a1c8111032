// q4_matvec.wgsl — y = x·Wᵀ (+ bias) (+ residual) for a few rows of x (M <= 4: the one-token
// decoder step, the streaming encoder's 4 frames), W kept in its raw GGUF Q4_0 bytes.
//
// Layout
//   weights  array<u32>        raw Q4_0 bytes of W rows [row0, row0 + n_rows) (one row block of a
//                              tensor split to fit a binding; r is local). Row r, block b lives at
//                              byte (r*K/32 + b)*18: f16 scale d, then 16 bytes whose byte j holds
//                              element j (low nibble) and j+16 (high nibble); w = (nibble-8)*d.
//                              The buffer carries >= 4 zero bytes of padding past the last block.
//   x        array<vec4<f32>>  [M, K] row-major, K % 32 == 0
//   y        array<f32>        [M, out_stride]; this dispatch writes y[m*out_stride + out_col + r]
//                              (out_col = the output view's offset + row0)
//   bias     array<f32>        [N], indexed by weight row (bias_col + local row)  (#if BIAS)
//   residual array<f32>        same layout as y: y = residual + x·Wᵀ + b        (#if RESIDUAL)
//   ACCUMULATE: y += x·Wᵀ + b in place (the fused residual when y is the residual stream)
// Bindings (group 0): 0 weights, 1 x, 2 y, 3 params (uniform), 4 bias, 5 residual
//
// Work split: 256 invocations = 8 lane groups x 32 lanes; a group owns ROWS (2)
// adjacent rows. Lane l dequantizes blocks l, l+32, ... of its rows and dots them with all M rows
// of x, so every weight byte is read once and every x load serves ROWS rows. The 32 lane partials are summed
// with subgroup shuffles (#if SUBGROUPS; then one barrier) or a shared-memory tree (5 barriers).
// The subgroup path assumes subgroups are runs of consecutive local_invocation_index values
// (true for 1-D workgroups on every driver seen) and works for any power-of-two subgroup size:
// xor partners at distance >= subgroup size are masked out and the leftover per-subgroup sums
// are added through shared memory.
// Workgroup (wx, wy) handles rows R*(wx + wy*groups_x) + [0, R), R = GROUPS * ROWS: 2-D so N/R
// may exceed 65535.

struct Params {
    M: u32,           // rows of x (1..4)
    n_rows: u32,      // W rows in this block
    K: u32,           // input features
    out_stride: u32,  // row stride of y (and residual), in elements
    out_col: u32,     // column of y written by this block's first row (view offset + row0)
    groups_x: u32,    // workgroups along x (for the 2-D linearisation)
    bias_col: u32,    // bias index of this block's first row (row0)
    _pad0: u32,
}

// Rows per lane group. 4 (x loads shared by more rows, half the workgroups) measured slower on
// the decoder's shapes on the H100 except the LM head (docs/perf-notes.md, session 13).
const ROWS: u32 = 2u;
const GROUPS: u32 = 8u;  // lane groups per workgroup: GROUPS * ROWS rows per workgroup
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

// #if SUBGROUPS
// one slot per subgroup (at least 4 lanes) and row: the subgroup sums left after the shuffles
var<workgroup> partial: array<vec4<f32>, 64 * ROWS>;
// #else
var<workgroup> partial: array<vec4<f32>, 256 * ROWS>;  // every lane's partial, per row
// #endif

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

fn dot32(w: array<vec4<f32>, 8>, xv: array<vec4<f32>, 8>) -> f32 {
    return dot(w[0], xv[0]) + dot(w[1], xv[1]) + dot(w[2], xv[2]) + dot(w[3], xv[3])
         + dot(w[4], xv[4]) + dot(w[5], xv[5]) + dot(w[6], xv[6]) + dot(w[7], xv[7]);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        // #if SUBGROUPS
        @builtin(subgroup_size) sg_size: u32,
        // #endif
        @builtin(local_invocation_index) li: u32) {
    let lane = li % LANES;
    // this lane group's ROWS adjacent rows: they share every x load (x traffic through L1 would
    // otherwise be 7x the weight traffic and the limit for M = 1)
    let row0 = ((wid.x + wid.y * p.groups_x) * GROUPS + li / LANES) * ROWS;
    let blocks_per_row = p.K / 32u;
    let x_row_vec4 = p.K / 4u;

    var acc: array<vec4<f32>, ROWS>;  // acc[r][m] = this lane's partial dot of row0 + r with x row m
    for (var r = 0u; r < ROWS; r++) {
        acc[r] = vec4<f32>(0.0);
    }
    if (row0 < p.n_rows) {
        // (2 or 4 blocks per lane in flight, all loads issued before the math, measured no
        // faster on the H100: docs/perf-notes.md, session 13)
        for (var b = lane; b < blocks_per_row; b += LANES) {
            var blk: array<Q4Block, ROWS>;
            for (var r = 0u; r < ROWS; r++) {
                blk[r] = Q4Block(0.0, vec4<u32>(0u));
                if (row0 + r < p.n_rows) {
                    blk[r] = load_q4_block((row0 + r) * blocks_per_row + b);
                }
            }
            for (var m = 0u; m < p.M; m++) {
                let xb = m * x_row_vec4 + b * 8u;  // vec4 index of element 32b of row m
                let xv = array<vec4<f32>, 8>(x[xb], x[xb + 1u], x[xb + 2u], x[xb + 3u],
                                             x[xb + 4u], x[xb + 5u], x[xb + 6u], x[xb + 7u]);
                for (var r = 0u; r < ROWS; r++) {
                    acc[r][m] += blk[r].d * dot32(block_weights(blk[r].q), xv);
                }
            }
        }
    }

    var total: array<vec4<f32>, ROWS>;
    // #if SUBGROUPS
    let run = min(sg_size, LANES);  // lanes summed by the shuffles: one subgroup, or all 32
    for (var off = LANES / 2u; off > 0u; off >>= 1u) {
        for (var r = 0u; r < ROWS; r++) {
            acc[r] += select(vec4<f32>(0.0), subgroupShuffleXor(acc[r], off), off < sg_size);
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
            total[r] = vec4<f32>(0.0);
            for (var i = 0u; i < LANES / run; i++) {
                total[r] += partial[r * 64u + li / run + i];
            }
        }
    }
    // #else
    for (var r = 0u; r < ROWS; r++) {
        partial[r * 256u + li] = acc[r];
    }
    workgroupBarrier();
    for (var off = LANES / 2u; off > 0u; off >>= 1u) {
        if (lane < off) {
            for (var r = 0u; r < ROWS; r++) {
                partial[r * 256u + li] += partial[r * 256u + li + off];
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < ROWS; r++) {
        total[r] = partial[r * 256u + li];
    }
    // #endif

    if (lane == 0u) {
        for (var r = 0u; r < ROWS; r++) {
            if (row0 + r < p.n_rows) {
                write_row(row0 + r, total[r]);
            }
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
