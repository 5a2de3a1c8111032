// q4_gemm_io.wgsl — what the tiled Q4 GEMMs (q4_matmul.wgsl: 4x4 outputs per invocation,
// q4_gemm8.wgsl: 8x8) share: their parameters, bindings and the write of one output element.
//   weights  array<u32>        raw Q4_0 bytes of W rows [row0, row0 + n_rows) (one row block of a
//                              tensor split to fit a binding; r is local). Row r, block b at byte
//                              (r*K/32 + b)*18: f16 scale d, 16 bytes with element j in the low
//                              and j+16 in the high nibble of byte j; w = (nibble-8)*d.
//                              >= 4 bytes of zero padding at the end.
//   x        array<vec4<f32>>  [M, K] row-major, K % 32 == 0
//   y        array<f32>        [M, out_stride]; writes y[m*out_stride + out_col + r]
//                              (out_col = the output view's offset + row0)
//   bias     array<f32>        [N], indexed by weight row (bias_col + local row)  (#if BIAS)
//   residual array<f32>        same layout as y: y = residual + X·Wᵀ + b        (#if RESIDUAL)
//   ACCUMULATE: y += X·Wᵀ + b in place
// Bindings (group 0): 0 weights, 1 x, 2 y, 3 params (uniform), 4 bias, 5 residual

struct Params {
    M: u32,
    n_rows: u32,
    K: u32,
    out_stride: u32,
    out_col: u32,     // column of y written by this block's first row (view offset + row0)
    bias_col: u32,    // bias index of this block's first row (row0)
    _pad0: u32,
    _pad1: u32,
}

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

// Y[mo, no] = v (+ bias, residual, or the value already there, as configured); the caller checks
// mo < M and no < n_rows
fn write_out(mo: u32, no: u32, acc: f32) {
    let o = mo * p.out_stride + p.out_col + no;
    var v = acc;
    // #if BIAS
    v += bias[p.bias_col + no];
    // #endif
    // #if RESIDUAL
    v = residual[o] + v;
    // #endif
    // #if ACCUMULATE
    v = y[o] + v;
    // #endif
    y[o] = v;
}
