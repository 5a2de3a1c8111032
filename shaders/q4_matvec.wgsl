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
//   ONE_ROW: M == 1 (the decode step): one accumulator per row instead of four
//   NORM: x is first RMS-normalised per row, y = W·(x / rms(x) · g) with g = norm_w (· (1 +
//         norm_ada) #if NORM_ADA): the pre-norm of the next matmul fused in. Each workgroup
//         reads all of x anyway, so it also sums x² and scales its dot products by 1/rms at the
//         end (Σ q·(x·g) / rms: same value as normalising first, rounded in another order).
//   SWIGLU: W is a fused [gate; up] of 2F rows (up rows from up_row on); a workgroup takes
//         features f0, f0+1 (gate rows f0, f0+1 and up rows up_row + f0, up_row + f0 + 1) and
//         writes y[m, out_col + f] = silu(gate_f) · up_f (silu.wgsl) for f < n_rows = F.
//         The activation of the FFN fused in: no [M, 2F] intermediate, no extra dispatch.
//   ROPE_KV: W is a fused Q|K|V weight (one block) and y its [M, q_cols + 2 kv_width] output for
//         x rows at positions[pos_offset + m]: the q and k columns are rotated (RoPE, pairs
//         (2i, 2i+1) of each head, rope_angle.wgsl) before they are written, and the rotated k and
//         the v of each row also go into slot pos % capacity of the ring caches (kv_store.wgsl).
//         The decode step's rope_kv_write (attention.wgsl) fused in: the same bytes, one dispatch
//         fewer per layer. A workgroup's 4 rows are two whole pairs.
// Bindings (group 0): 0 weights, 1 x, 2 y, 3 params (uniform), 4 bias, 5 residual,
//   6 norm_w, 7 norm_ada, 8 k_cache_w, 9 v_cache_w, 10 positions, 11 inv_freq, 12 rope_kv params
//
// Work split. A workgroup of WG (128) invocations owns ROWS (4) adjacent rows. A row's K/32
// blocks hold 4 nibble words each (8 weights: elements 4j..4j+3 in the low and 16+4j..16+4j+3 in
// the high nibbles of word j), so a row is K/8 word slots; invocation t takes slots t, t+WG, ...
// For each slot it loads the 8 matching x values once and reuses them for all ROWS rows. Why: the activations, not the
// weights, were the traffic that limited the earlier lane-per-block kernel (every lane re-read 32
// x values per block for 2 rows: 3.5x the weight bytes through L1; with x removed as a probe the
// same kernel ran 2x faster on the H100, docs/perf-notes.md session 13). Here the workgroup reads x
// once per ROWS rows, consecutive invocations read consecutive words of a row (coalesced), and
// each invocation has ROWS rows of loads in flight.
// The WG partial sums of a row are added with subgroup shuffles and one barrier (#if SUBGROUPS;
// subgroups are taken to be runs of consecutive local_invocation_index values, any power-of-two
// size >= 4: partners at distance >= the subgroup size are masked out and the per-subgroup sums
// meet in shared memory) or, without subgroups, a shared-memory tree per row.
// Workgroup (wx, wy) handles rows ROWS*(wx + wy*groups_x) + [0, ROWS): 2-D so N/ROWS may exceed
// 65535. The host's MATVEC_ROWS_PER_GROUP must equal ROWS.

struct Params {
    M: u32,           // rows of x (1..4)
    n_rows: u32,      // W rows in this block
    K: u32,           // input features
    out_stride: u32,  // row stride of y (and residual), in elements
    out_col: u32,     // column of y written by this block's first row (view offset + row0)
    groups_x: u32,    // workgroups along x (for the 2-D linearisation)
    bias_col: u32,    // bias index of this block's first row (row0)
    eps: f32,         // NORM: the norm's epsilon
    up_row: u32,      // SWIGLU: first up row within the weight block
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// 4 rows of 128 invocations measured fastest on the H100 (kernel_bench, session 13: against 2-16
// rows and 64-256 invocations; 8 x 256 was 10% slower over a decode step's matrices).
const ROWS: u32 = 4u;       // rows per workgroup
const WG: u32 = 128u;       // invocations per workgroup
const BLOCK_BYTES: u32 = 18u;
// #if ONE_ROW
const MAX_M: u32 = 1u;
// #else
const MAX_M: u32 = 4u;
// #endif

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
// #if NORM_ADA
@group(0) @binding(7) var<storage, read> norm_ada: array<vec4<f32>>;
// #endif
// #endif
// #if SWIGLU
// #include silu.wgsl   (silu)
// #endif
// #if ROPE_KV
struct RopeKvParams {
    q_cols: u32,     // columns of q (n_heads * head_dim); k follows, then v
    kv_width: u32,   // columns of k (= of v) = n_kv_heads * head_dim
    head_dim: u32,
    capacity: u32,   // ring slots
    pos_offset: u32, // first position of this dispatch's rows in `positions`
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
@group(0) @binding(10) var<storage, read> positions: array<u32>;
@group(0) @binding(11) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(12) var<uniform> rk: RopeKvParams;
// #include kv_store.wgsl   (bindings 8, 9: store_k2, store_v2)
// #include rope_angle.wgsl   (rotate_pair)
// #endif

// Accumulators per invocation: ROWS dot products, plus (NORM) the sum of squares of x.
// #if NORM
const SUMS: u32 = ROWS + 1u;
// #else
const SUMS: u32 = ROWS;
// #endif

// #if SUBGROUPS
// [sum][subgroup]: WG / 4 slots per sum (subgroups of >= 4 lanes); one f32 per slot for the decode
// step. Kept small: workgroup memory limits how many workgroups an SM holds (24 KB of it made
// this kernel 5x slower on the H100, perf-notes session 14).
const SG_SLOTS: u32 = 32u;
// #if ONE_ROW
var<workgroup> partial: array<f32, SG_SLOTS * SUMS>;
// #else
var<workgroup> partial: array<vec4<f32>, SG_SLOTS * SUMS>;
// #endif
// #else
var<workgroup> partial: array<vec4<f32>, WG>;         // one row's partials at a time
// #endif

// #if NIBBLES_V1
// (the A/B switch: session 14's decode) (nibble - 8) as f32 without an int->float conversion: OR
// the nibble into the mantissa of 2^23, then subtract 2^23 + 8. Exact.
fn nibbles_minus_8(v: vec4<u32>) -> vec4<f32> {
    return bitcast<vec4<f32>>((v & vec4<u32>(15u)) | vec4<u32>(0x4B000000u)) - 8388616.0;
}
// #endif

// #include q4_nibbles.wgsl   (low_nibbles_scaled, high_nibbles_scaled, NIB_LO, NIB_HI)

// #if SWIGLU
// local row r of workgroup wgi: gate rows 2wgi, 2wgi+1 (r = 0, 1), up rows of the same features
fn weight_row(wgi: u32, r: u32) -> u32 {
    let f = wgi * 2u + r % 2u;
    return select(f, p.up_row + f, r >= 2u);
}
fn row_valid(wgi: u32, r: u32) -> bool { return wgi * 2u + r % 2u < p.n_rows; }
// #else
fn weight_row(wgi: u32, r: u32) -> u32 { return wgi * ROWS + r; }
fn row_valid(wgi: u32, r: u32) -> bool { return wgi * ROWS + r < p.n_rows; }
// #endif

var<workgroup> finals: array<vec4<f32>, SUMS>;  // the workgroup's total of each accumulator

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        // #if SUBGROUPS
        @builtin(subgroup_size) sg_size: u32,
        // #endif
        @builtin(local_invocation_index) li: u32) {
    let wgi = wid.x + wid.y * p.groups_x;
    let blocks_per_row = p.K / 32u;
    let x_row_vec4 = p.K / 4u;

    // acc[r][m]: this invocation's partial dot of local row r with x row m; acc[ROWS][m] (NORM):
    // its partial sum of x[m]²
    var acc: array<vec4<f32>, SUMS>;
    // byte offset of each local row's first block, once (not per slot); a multiple of 4 with
    // ALIGNED_ROWS (the host sets it when K / 32 is even)
    var row_byte: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        row_byte[r] = weight_row(wgi, r) * blocks_per_row * BLOCK_BYTES;
    }
    for (var s = li; s < blocks_per_row * 4u; s += WG) {
        let b = s / 4u;
        let j = s % 4u;
        // x elements 32b + 4j + [0, 4) (low nibbles) and 32b + 16 + 4j + [0, 4) (high), per x row
        var xa: array<vec4<f32>, MAX_M>;
        var xb: array<vec4<f32>, MAX_M>;
        for (var m = 0u; m < MAX_M; m++) {
            if (m < p.M) {
                xa[m] = x[m * x_row_vec4 + b * 8u + j];
                xb[m] = x[m * x_row_vec4 + b * 8u + 4u + j];
            }
        }
        // #if NORM
        var ga = norm_w[b * 8u + j];
        var gb = norm_w[b * 8u + 4u + j];
        // #if NORM_ADA
        ga *= 1.0 + norm_ada[b * 8u + j];
        gb *= 1.0 + norm_ada[b * 8u + 4u + j];
        // #endif
        for (var m = 0u; m < MAX_M; m++) {
            acc[ROWS][m] += dot(xa[m], xa[m]) + dot(xb[m], xb[m]);
            xa[m] *= ga;
            xb[m] *= gb;
        }
        // #endif
        // #if !NIBBLES_V1
        for (var m = 0u; m < MAX_M; m++) {
            xa[m] *= NIB_LO;  // exact (powers of two): see q4_nibbles.wgsl
            xb[m] *= NIB_HI;
        }
        // #endif
        let slot_byte = b * BLOCK_BYTES;  // the block's byte within its row
        // #if ALIGNED_ROWS
        // every row starts on a word (an even number of blocks per row): the block's parity and
        // word offsets are the same in all rows, so they are worked out once per slot
        let odd = (slot_byte & 2u) != 0u;
        let slot_w0 = slot_byte >> 2u;
        let slot_qw = (slot_byte + 2u + 4u * j) >> 2u;
        // #endif
        for (var r = 0u; r < ROWS; r++) {
            if (row_valid(wgi, r)) {
                // block (row, b): scale at its byte 0, nibble word j at byte 2 + 4j; odd blocks
                // start 2 bytes into a word (scale in the high half, quant words aligned), even
                // blocks on a word (each quant word straddles two words)
                // #if ALIGNED_ROWS
                let w0 = weights[row_byte[r] / 4u + slot_w0];
                let qw = row_byte[r] / 4u + slot_qw;
                // #else
                let byte = row_byte[r] + slot_byte;
                let odd = (byte & 2u) != 0u;
                let w0 = weights[byte >> 2u];
                let qw = (byte + 2u + 4u * j) >> 2u;
                // #endif
                let d = unpack2x16float(select(w0, w0 >> 16u, odd)).x;
                let q_lo = weights[qw];
                let q_hi = weights[qw + 1u];  // past the block only for the straddling case (pad covers the end)
                let q = select((q_lo >> 16u) | (q_hi << 16u), q_lo, odd);
                // #if NIBBLES_V1
                let lo = nibbles_minus_8(vec4<u32>(q, q >> 8u, q >> 16u, q >> 24u));
                let hi = nibbles_minus_8(vec4<u32>(q >> 4u, q >> 12u, q >> 20u, q >> 28u));
                // #else
                let qq = vec4<u32>(q, q, q >> 16u, q >> 16u);
                let lo = low_nibbles_scaled(qq);
                let hi = high_nibbles_scaled(qq);
                // #endif
                for (var m = 0u; m < MAX_M; m++) {
                    acc[r][m] += d * (dot(lo, xa[m]) + dot(hi, xb[m]));
                }
            }
        }
    }

    // #if SUBGROUPS
    let run = min(sg_size, 32u);  // invocations summed by the shuffles below
    for (var off = 16u; off > 0u; off >>= 1u) {
        for (var r = 0u; r < SUMS; r++) {
            // #if ONE_ROW
            acc[r].x += select(0.0, subgroupShuffleXor(acc[r].x, off), off < sg_size);
            // #else
            acc[r] += select(vec4<f32>(0.0), subgroupShuffleXor(acc[r], off), off < sg_size);
            // #endif
        }
    }
    if (li % run == 0u) {
        for (var r = 0u; r < SUMS; r++) {
            // #if ONE_ROW
            partial[r * SG_SLOTS + li / run] = acc[r].x;
            // #else
            partial[r * SG_SLOTS + li / run] = acc[r];
            // #endif
        }
    }
    workgroupBarrier();
    if (li < SUMS) {
        var total = vec4<f32>(0.0);
        for (var i = 0u; i < WG / run; i++) {
            // #if ONE_ROW
            total.x += partial[li * SG_SLOTS + i];
            // #else
            total += partial[li * SG_SLOTS + i];
            // #endif
        }
        finals[li] = total;
    }
    // #else
    for (var r = 0u; r < SUMS; r++) {
        partial[li] = acc[r];
        workgroupBarrier();
        for (var off = WG / 2u; off > 0u; off >>= 1u) {
            if (li < off) {
                partial[li] += partial[li + off];
            }
            workgroupBarrier();
        }
        if (li == 0u) {
            finals[r] = partial[0];
        }
        workgroupBarrier();  // partial[0] is read before the next sum overwrites it
    }
    // #endif
    workgroupBarrier();

    var inv = vec4<f32>(1.0);  // 1 / rms(x[m]) with NORM (rmsnorm.wgsl's formula)
    // #if NORM
    inv = 1.0 / sqrt(finals[ROWS] / f32(p.K) + p.eps);
    // #endif
    // #if SWIGLU
    if (li < 2u && row_valid(wgi, li)) {
        let f = wgi * 2u + li;
        let gate = finals[li] * inv;
        let up = finals[2u + li] * inv;
        for (var m = 0u; m < p.M; m++) {
            y[m * p.out_stride + p.out_col + f] = silu(gate[m]) * up[m];
        }
    }
    // #endif
    // #if ROPE_KV
    if (li < ROWS / 2u && row_valid(wgi, 2u * li)) {  // n_rows is even: the pair is whole
        write_rope_pair(weight_row(wgi, 2u * li), finals[2u * li] * inv, finals[2u * li + 1u] * inv);
    }
    // #endif
    // #if !SWIGLU
    // #if !ROPE_KV
    if (li < ROWS && row_valid(wgi, li)) {
        write_row(weight_row(wgi, li), finals[li] * inv);
    }
    // #endif
    // #endif
}

// #if ROPE_KV
// Rows c, c+1 of q|k|v (c even) for the M rows of x: + bias, q and k rotated by the row's position,
// written to y; k and v also into the ring caches (rope_kv_write's arithmetic, same bytes).
fn write_rope_pair(c: u32, a: vec4<f32>, b: vec4<f32>) {
    let kv_pairs = rk.kv_width / 2u;  // element pairs of one cache row
    for (var m = 0u; m < p.M; m++) {
        let pos = positions[rk.pos_offset + m];
        var v = vec2<f32>(a[m], b[m]);
        // #if BIAS
        v += vec2<f32>(bias[p.bias_col + c], bias[p.bias_col + c + 1u]);
        // #endif
        if (c < rk.q_cols + rk.kv_width) {
            v = rotate_pair(v, pos, inv_freq[(c % rk.head_dim) / 2u]);
        }
        let i = m * p.out_stride + p.out_col + c;
        y[i] = v.x;
        y[i + 1u] = v.y;
        let slot_pair = (pos % rk.capacity) * kv_pairs;
        if (c >= rk.q_cols + rk.kv_width) {
            store_v2(slot_pair + (c - rk.q_cols - rk.kv_width) / 2u, v);
        } else if (c >= rk.q_cols) {
            store_k2(slot_pair + (c - rk.q_cols) / 2u, v);
        }
    }
}
// #endif

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
