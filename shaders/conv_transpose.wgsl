// conv_transpose.wgsl — ConvTranspose1d (PyTorch math, no bias, untrimmed), time-major:
//     y[s·t + j] += x[t] · W[:, :, j]      for t < T_in, j < K
// so y has (T_in - 1)·s + K rows. The TTS codec's upsamplers (k = 4, s = 2) keep the first
// T_in·s of them (the causal trim drops K - s rows on the right), which the caller does.
//
// Gather form, one output phase r = u mod s at a time: output row u = s·q + r receives the taps
// j = r + s·i (i = 0, 1, … while j < K) from input rows t = q - i, so for a fixed phase it is a
// matmul with contraction index kk = i·C + c:
//     y[s·q + r, o] = Σ_kk A[q, kk] · B_r[o, kk],  A[q, kk] = x[q - i, c] (0 outside [0, T_in)),
//                                                  B_r[o, kk] = W[c, o, r + s·i] (0 if j >= K)
// 64x64 output tiles (256 invocations, 4x4 outputs each), 32-wide K tiles in workgroup memory,
// f32 accumulation in the order kk = 0, 1, … (i.e. newest input row first).
//
// Layout
//   x        array<f32>  [T_in, C]      time-major
//   weights  array<f32>  [C, O, K]      PyTorch ConvTranspose1d layout, unchanged
//   y        array<f32>  [T_out, O]     T_out = (T_in - 1)·s + K
// Bindings (group 0): 0 weights, 1 x, 2 y, 3 params (uniform)
// Dispatch: (ceil(O/64), ceil(ceil(T_out/s)/64), s) — z is the phase r.

struct Params {
    T_out: u32,
    O: u32,
    C: u32,
    K: u32,
    T_in: u32,
    stride: u32,
    n_taps: u32,  // ceil(K / stride): taps per phase (fewer for phases where r + s·i >= K)
    _pad0: u32,
}

// #include tile_gemm.wgsl   (TILE = 64, TILE_K = 32, put_x, put_w, tile_accumulate)

@group(0) @binding(0) var<storage, read> weights: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;


@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let tx = li % 16u;
    let ty = li / 16u;
    let o0 = wid.x * TILE;
    let q0 = wid.y * TILE;
    let r = wid.z;
    let load_row = li / 4u;
    let k_part = (li % 4u) * 8u;
    let KK = p.n_taps * p.C;

    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }

    for (var k0 = 0u; k0 < KK; k0 += TILE_K) {
        let q = q0 + load_row;
        let o = o0 + load_row;
        for (var c = 0u; c < 8u; c++) {
            let kk = k0 + k_part + c;
            var xv = 0.0;
            var wv = 0.0;
            if (kk < KK) {
                let i = kk / p.C;
                let ch = kk % p.C;
                let j = r + p.stride * i;
                if (j < p.K) {
                    let t = i32(q) - i32(i);
                    if (t >= 0 && u32(t) < p.T_in) {
                        xv = x[u32(t) * p.C + ch];
                    }
                    if (o < p.O) {
                        wv = weights[(ch * p.O + o) * p.K + j];
                    }
                }
            }
            put_x(k_part + c, load_row, xv);
            put_w(k_part + c, load_row, wv);
        }
        workgroupBarrier();

        tile_accumulate(&acc, tx, ty);
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let u = p.stride * (q0 + 4u * ty + i) + r;
        for (var j = 0u; j < 4u; j++) {
            let o = o0 + 4u * tx + j;
            if (u < p.T_out && o < p.O) {
                y[u * p.O + o] = acc[i][j];
            }
        }
    }
}
