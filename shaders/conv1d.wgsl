// conv1d.wgsl — the causal conv stem: y[t, o] = b[o] + Σ_{c,k} W[o, c, k] · x[stride·t + k, c]
// (PyTorch cross-correlation, kernel 3, stride 1 or 2), time-major.
//
// The input already carries its left context (conv1: 2 frames, conv2: 1 frame — zeros at the
// stream start, the previous step's frames when streaming), so this is a "valid" convolution:
// T_out = (T_in - 3) / stride + 1.
//
// Layout
//   x        array<f32>  [T_in, C]  time-major (the mel [128, T] is transposed on the host once)
//   weights  array<f32>  [O, C, 3]  PyTorch Conv1d layout, unchanged
//   bias     array<f32>  [O]
//   y        array<f32>  [T_out, O] time-major, what the encoder's matmuls read
// Bindings (group 0): 0 weights, 1 x, 2 y, 3 params (uniform), 4 bias
//
// Why it is a matmul: in time-major layout the 3 input frames of output t are one contiguous run
// of 3C floats starting at x[stride·t·C], so y = A·Bᵀ with A[t, kk] = x[stride·t·C + kk] and
// B[o, kk] = W[o, kk % C, kk / C], K = 3C. Same 64x64 tiling as linear_f32.wgsl.
// Dispatch: (ceil(O/64), ceil(T_out/64)).

struct Params {
    T_out: u32,
    O: u32,
    C: u32,
    stride: u32,
}

// #include tile_gemm.wgsl   (TILE = 64, TILE_K = 32, put_x, put_w, tile_accumulate)

@group(0) @binding(0) var<storage, read> weights: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read> bias: array<f32>;


@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let tx = li % 16u;
    let ty = li / 16u;
    let o0 = wid.x * TILE;
    let t0 = wid.y * TILE;
    let load_row = li / 4u;
    let k_part = (li % 4u) * 8u;
    let K = 3u * p.C;

    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }

    for (var k0 = 0u; k0 < K; k0 += TILE_K) {
        let t = t0 + load_row;
        let o = o0 + load_row;
        for (var c = 0u; c < 8u; c++) {
            let kk = k0 + k_part + c;
            var xv = 0.0;
            var wv = 0.0;
            if (kk < K) {
                if (t < p.T_out) {
                    xv = x[p.stride * t * p.C + kk];
                }
                if (o < p.O) {
                    wv = weights[o * K + (kk % p.C) * 3u + kk / p.C];
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
                y[t * p.O + o] = acc[i][j] + bias[o];
            }
        }
    }
}
