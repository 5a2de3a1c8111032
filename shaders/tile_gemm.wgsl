// tile_gemm.wgsl — the register-blocked inner product shared by the tiled kernels (q4_matmul,
// linear_f32, conv1d, conv_causal, conv_transpose), pulled in with `// #include tile_gemm.wgsl`.
//
// A 256-invocation workgroup computes a 64x64 output tile; invocation (tx, ty) = (li % 16, li / 16)
// owns the 4x4 block of rows 4ty..4ty+3 and columns 4tx..4tx+3. Each kernel fills the two staged
// tiles for one step of TILE_K inputs in its own way (Q4 dequant, f16/f32 loads, conv taps) with
// put_x / put_w, then calls tile_accumulate between two barriers.
//   put_x(k, m, v): input row m (of the tile), feature k;  put_w(k, n, v): weight row n, feature k.

const TILE: u32 = 64u;    // rows of X and of W per tile
const TILE_K: u32 = 32u;  // features per step (one Q4 block)

// The tiles are stored as vec4 rows so the inner loop reads a and b with one 16-byte shared load
// each (measured 5% faster than four scalar loads on the H100's encoder GEMMs; same sums).
var<workgroup> x_tile: array<vec4<f32>, 512>;  // [TILE_K][TILE/4]: (k, m) at [k*16 + m/4][m%4]
var<workgroup> w_tile: array<vec4<f32>, 512>;  // [TILE_K][TILE/4]

fn put_x(k: u32, m: u32, v: f32) { x_tile[k * 16u + m / 4u][m % 4u] = v; }
fn put_w(k: u32, n: u32, v: f32) { w_tile[k * 16u + n / 4u][n % 4u] = v; }

// acc[i][j] += Σ_k x_tile[k, 4ty+i] · w_tile[k, 4tx+j]
fn tile_accumulate(acc: ptr<function, array<vec4<f32>, 4>>, tx: u32, ty: u32) {
    for (var k = 0u; k < TILE_K; k++) {
        let a = x_tile[k * 16u + ty];
        let b = w_tile[k * 16u + tx];
        (*acc)[0] += a.x * b;
        (*acc)[1] += a.y * b;
        (*acc)[2] += a.z * b;
        (*acc)[3] += a.w * b;
    }
}
