// tile_gemm.wgsl — the register-blocked inner product shared by the tiled kernels (q4_matmul,
// linear_f32, conv1d, conv_causal, conv_transpose), pulled in with `// #include tile_gemm.wgsl`.
//
// A 256-invocation workgroup computes a 64x64 output tile; invocation (tx, ty) = (li % 16, li / 16)
// owns the 4x4 block of rows 4ty..4ty+3 and columns 4tx..4tx+3. Each kernel fills the two staged
// tiles for one step of TILE_K inputs in its own way (Q4 dequant, f16/f32 loads, conv taps), then
// calls tile_accumulate between two barriers.
//   x_tile[k*TILE + m]: input row m (of the tile), feature k;  w_tile[k*TILE + n]: weight row n.

const TILE: u32 = 64u;    // rows of X and of W per tile
const TILE_K: u32 = 32u;  // features per step (one Q4 block)

var<workgroup> x_tile: array<f32, 2048>;  // [TILE_K][TILE]
var<workgroup> w_tile: array<f32, 2048>;  // [TILE_K][TILE]

// acc[i][j] += Σ_k x_tile[k, 4ty+i] · w_tile[k, 4tx+j]
fn tile_accumulate(acc: ptr<function, array<vec4<f32>, 4>>, tx: u32, ty: u32) {
    for (var k = 0u; k < TILE_K; k++) {
        let xo = k * TILE + 4u * ty;
        let wo = k * TILE + 4u * tx;
        let a = vec4<f32>(x_tile[xo], x_tile[xo + 1u], x_tile[xo + 2u], x_tile[xo + 3u]);
        let b = vec4<f32>(w_tile[wo], w_tile[wo + 1u], w_tile[wo + 2u], w_tile[wo + 3u]);
        (*acc)[0] += a.x * b;
        (*acc)[1] += a.y * b;
        (*acc)[2] += a.z * b;
        (*acc)[3] += a.w * b;
    }
}
