// conv_causal.wgsl — causal Conv1d of any kernel size with its left padding done in the shader:
//     y[t, o] = Σ_{k,c} W[o, c, k] · xp[stride·t + k, c]      (PyTorch cross-correlation)
// where xp is x with `pad` rows prepended. Padded row r < 0 (in x's row numbering) reads
//     pad_mode 0 (zeros)      0
//     pad_mode 1 (replicate)  x[0]        the TTS codec's block-0 conv (k = 3)
//     pad_mode 2 (reflect)    x[-r]       the TTS codec's output_proj (k = 7); needs T_in > pad
// T_out = (T_in + pad - K) / stride + 1, time-major. No right padding (causal), no bias.
//
// Layout
//   x        array<f32>  [T_in, C]   time-major
//   weights  array<f32>  [O, C, K]   PyTorch Conv1d layout, unchanged
//   y        array<f32>  [T_out, O]  time-major
// Bindings (group 0): 0 weights, 1 x, 2 y, 3 params (uniform)
//
// As in conv1d.wgsl (the ASR stem, kernel 3 only) it is a matmul: y = A·Bᵀ with contraction index
// kk = k·C + c, A[t, kk] = xp[stride·t + k, c] and B[o, kk] = W[o, c, k], 64x64 output tiles
// (256 invocations, 4x4 outputs each), 32-wide K tiles in workgroup memory, f32 accumulation in
// the order kk = 0, 1, … . Dispatch: (ceil(O/64), ceil(T_out/64)).

struct Params {
    T_out: u32,
    O: u32,
    C: u32,
    K: u32,
    T_in: u32,
    stride: u32,
    pad: u32,
    pad_mode: u32,
}

// #include tile_gemm.wgsl   (TILE = 64, TILE_K = 32, put_x, put_w, tile_accumulate)

@group(0) @binding(0) var<storage, read> weights: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;


// xp[stride·t + k] as a row of x, or -1 for a zero row
fn source_row(t: u32, k: u32) -> i32 {
    let r = i32(p.stride * t + k) - i32(p.pad);
    if (r >= 0) {
        return r;
    }
    if (p.pad_mode == 1u) {
        return 0;
    }
    if (p.pad_mode == 2u) {
        return -r;
    }
    return -1;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let tx = li % 16u;
    let ty = li / 16u;
    let o0 = wid.x * TILE;
    let t0 = wid.y * TILE;
    let load_row = li / 4u;
    let k_part = (li % 4u) * 8u;
    let KK = p.K * p.C;

    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }

    for (var k0 = 0u; k0 < KK; k0 += TILE_K) {
        let t = t0 + load_row;
        let o = o0 + load_row;
        for (var c = 0u; c < 8u; c++) {
            let kk = k0 + k_part + c;
            var xv = 0.0;
            var wv = 0.0;
            if (kk < KK) {
                let tap = kk / p.C;
                let ch = kk % p.C;
                if (t < p.T_out) {
                    let r = source_row(t, tap);
                    if (r >= 0 && u32(r) < p.T_in) {
                        xv = x[u32(r) * p.C + ch];
                    }
                }
                if (o < p.O) {
                    wv = weights[(o * p.C + ch) * p.K + tap];
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
        let t = t0 + 4u * ty + i;
        for (var j = 0u; j < 4u; j++) {
            let o = o0 + 4u * tx + j;
            if (t < p.T_out && o < p.O) {
                y[t * p.O + o] = acc[i][j];
            }
        }
    }
}
