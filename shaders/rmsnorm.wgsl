// rmsnorm.wgsl — y = x / sqrt(mean(x²) + eps) · w  over the last axis, in f32;
// with ADA: y = (x / sqrt(mean(x²) + eps) · w) · (1 + s), the decoder's time-conditioned FFN
// norm (s = the layer's precomputed ada vector).
//
// Layout
//   x      array<f32>  [rows, D]
//   weight array<f32>  [D]
//   y      array<f32>  [rows, D]  (may not alias x: WebGPU forbids a read + read_write overlap)
//   ada_s  array<f32>  [D]                                                        (#if ADA)
// Bindings (group 0): 0 x, 1 weight, 2 y, 3 params (uniform), 4 ada_s
//
// One workgroup (256) per row: a strided sum of squares, a shared-memory tree, then the scaled
// write. Row = wx + wy*groups_x (2-D so rows may exceed 65535).

struct Params {
    rows: u32,
    D: u32,
    eps: f32,
    groups_x: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
// #if ADA
@group(0) @binding(4) var<storage, read> ada_s: array<f32>;
// #endif

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wid.x + wid.y * p.groups_x;
    let valid = row < p.rows;
    let base = row * p.D;

    var ss = 0.0;
    if (valid) {
        for (var d = li; d < p.D; d += WG) {
            let v = x[base + d];
            ss += v * v;
        }
    }
    red[li] = ss;
    workgroupBarrier();
    for (var off = WG / 2u; off > 0u; off >>= 1u) {
        if (li < off) {
            red[li] += red[li + off];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / sqrt(red[0] / f32(p.D) + p.eps);

    if (valid) {
        for (var d = li; d < p.D; d += WG) {
            var v = (x[base + d] * inv) * weight[d];
            // #if ADA
            v *= 1.0 + ada_s[d];
            // #endif
            y[base + d] = v;
        }
    }
}
