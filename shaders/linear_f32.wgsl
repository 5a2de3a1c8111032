// linear_f32.wgsl — Y = X·Wᵀ (+ bias) (+ residual) with dense weights W [N, K], either f32 or
// f16 (#if W_F16). f16 weights are the raw little-endian halves, two per u32, decoded with
// unpack2x16float, so they work on adapters without shader-f16 (browsers); with SHADER_F16 the
// same bytes are read as array<vec2<f16>> instead.
//
// Layout
//   weights  f32: array<vec2<f32>> / f16: array<u32> or array<vec2<f16>>: rows [row0, row0 + N)
//            of W, row-major, K even (one row block of a tensor split to fit a binding)
//   x        array<vec2<f32>>  [M, K] row-major
//   y        array<f32>        [M, out_stride]; writes y[m*out_stride + out_col + n], n < N
//                              (out_col = the output view's offset + row0)
//   bias     array<f32>        [N], indexed by weight row (bias_col + local row)  (#if BIAS)
//   residual array<f32>        same layout as y: y = residual + X·Wᵀ + b        (#if RESIDUAL)
//   ACCUMULATE: y += X·Wᵀ + b in place
// Bindings (group 0): 0 weights, 1 x, 2 y, 3 params (uniform), 4 bias, 5 residual
//
// Tiling as in q4_matmul.wgsl: 256 invocations per 64x64 tile of Y, 4x4 per invocation, K in
// steps of 32 staged k-major in shared memory (2 x 8 KiB); K need not be a multiple of 32 (the
// tail is zero-filled). Dispatch: (ceil(N/64), ceil(M/64)). Used for every M (dense weights are
// small in this model: for M = 1 the tile still reads each weight once).

struct Params {
    M: u32,
    N: u32,
    K: u32,
    out_stride: u32,
    out_col: u32,     // column of y written by this block's first row (view offset + row0)
    bias_col: u32,    // bias index of this block's first row (row0)
    _pad0: u32,
    _pad1: u32,
}

// #include tile_gemm.wgsl   (TILE = 64, TILE_K = 32, put_x, put_w, tile_accumulate)

// #if W_F16
// #if SHADER_F16
@group(0) @binding(0) var<storage, read> weights: array<vec2<f16>>;
fn weight_pair(i: u32) -> vec2<f32> { return vec2<f32>(weights[i]); }
// #else
@group(0) @binding(0) var<storage, read> weights: array<u32>;
fn weight_pair(i: u32) -> vec2<f32> { return unpack2x16float(weights[i]); }
// #endif
// #else
@group(0) @binding(0) var<storage, read> weights: array<vec2<f32>>;
fn weight_pair(i: u32) -> vec2<f32> { return weights[i]; }
// #endif
@group(0) @binding(1) var<storage, read> x: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
// #if BIAS
@group(0) @binding(4) var<storage, read> bias: array<f32>;
// #endif
// #if RESIDUAL
@group(0) @binding(5) var<storage, read> residual: array<f32>;
// #endif


@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let tx = li % 16u;
    let ty = li / 16u;
    let n0 = wid.x * TILE;
    let m0 = wid.y * TILE;
    let load_row = li / 4u;
    let k_part = (li % 4u) * 8u;  // this invocation loads k = k0 + k_part + [0, 8)

    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }

    for (var k0 = 0u; k0 < p.K; k0 += TILE_K) {
        let m = m0 + load_row;
        let n = n0 + load_row;
        for (var c = 0u; c < 8u; c += 2u) {
            let k = k0 + k_part + c;
            var xv = vec2<f32>(0.0);
            var wv = vec2<f32>(0.0);
            if (k < p.K) {  // K even: a pair is either fully inside or fully outside
                if (m < p.M) {
                    xv = x[(m * p.K + k) / 2u];
                }
                if (n < p.N) {
                    wv = weight_pair((n * p.K + k) / 2u);
                }
            }
            put_x(k_part + c, load_row, xv.x);
            put_x(k_part + c + 1u, load_row, xv.y);
            put_w(k_part + c, load_row, wv.x);
            put_w(k_part + c + 1u, load_row, wv.y);
        }
        workgroupBarrier();

        tile_accumulate(&acc, tx, ty);
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let m = m0 + 4u * ty + i;
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + 4u * tx + j;
            if (m < p.M && n < p.N) {
                let o = m * p.out_stride + p.out_col + n;
                var v = acc[i][j];
                // #if BIAS
                v += bias[p.bias_col + n];
                // #endif
                // #if RESIDUAL
                v = residual[o] + v;
                // #endif
                // #if ACCUMULATE
                v = y[o] + v;
                // #endif
                y[o] = v;
            }
        }
    }
}
