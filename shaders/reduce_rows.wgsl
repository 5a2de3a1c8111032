// reduce_rows.wgsl — small row-wise helpers of the TTS model:
//   sum_rows   out[c] = Σ_m x[m, c]          a frame embedding is the sum of its 37 codebook rows
//   scale      out[r, c] = a[r, c] · s      multiplication by a host scalar (the flow-matching
//                                           Euler step and CFG weights), s in the uniform
//
// Operands are 2-D views: element (r, c) of X is X[X_off + r·X_stride + c].
// sum_rows: one invocation per column, rows summed in order in f32; dispatch ceil(cols/256)
//   (2-D grid linearised with groups_x). Bindings: 0 a (x), 2 out, 3 params.
// scale: one invocation per element. Bindings: 0 a, 2 out, 3 params. out must not alias a.

struct Params {
    rows: u32,
    cols: u32,
    a_off: u32,
    a_stride: u32,
    o_off: u32,
    o_stride: u32,
    groups_x: u32,
    s: f32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn sum_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let c = (wid.x + wid.y * p.groups_x) * 256u + li;
    if (c >= p.cols) {
        return;
    }
    var acc = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        acc += a[p.a_off + r * p.a_stride + c];
    }
    out[p.o_off + c] = acc;
}

@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = (wid.x + wid.y * p.groups_x) * 256u + li;
    if (e >= p.rows * p.cols) {
        return;
    }
    let r = e / p.cols;
    let c = e % p.cols;
    out[p.o_off + r * p.o_stride + c] = a[p.a_off + r * p.a_stride + c] * p.s;
}
