// rope.wgsl — interleaved (GPT-J / Mistral) rotary embedding, in place: within each head the
// pairs (2i, 2i+1) rotate by angle pos · inv_freq[i]:
//   out[2i]   = x[2i]·cos(a) − x[2i+1]·sin(a)
//   out[2i+1] = x[2i]·sin(a) + x[2i+1]·cos(a)
//
// Layout
//   x         array<vec2<f32>>  rows of a [M, row_stride] matrix; the rotated heads are columns
//                               col_offset + [0, n_heads*head_dim) (so one call rotates q and k
//                               of a fused QKV output: they share the per-head frequencies)
//   positions array<u32>        absolute positions; row m uses positions[pos_offset + m]
//   inv_freq  array<f32>        [head_dim/2] = 1/theta^(2i/hd) in f32, computed on the host with
//                               the reference's exact f32 formula (GPU pow() is only ~ulp-accurate
//                               and any error there is multiplied by the position)
// Bindings (group 0): 0 x, 1 positions, 2 inv_freq, 3 params (uniform)
//
// The angle and its reduction mod 2π: rope_angle.wgsl.
// One invocation per pair; 256 per workgroup; 2-D grid linearised with groups_x.

struct Params {
    rows: u32,
    n_heads: u32,
    head_dim: u32,
    row_stride: u32,   // elements (even)
    col_offset: u32,   // elements (even)
    pos_offset: u32,
    groups_x: u32,
    _pad0: u32,
}

// #include rope_angle.wgsl   (reduce_two_pi, rotate_pair)

@group(0) @binding(0) var<storage, read_write> x: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read> positions: array<u32>;
@group(0) @binding(2) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let half = p.head_dim / 2u;
    let pairs_per_row = p.n_heads * half;
    let t = (wid.x + wid.y * p.groups_x) * 256u + li;
    if (t >= p.rows * pairs_per_row) {
        return;  // no barriers in this kernel
    }
    let m = t / pairs_per_row;
    let j = t % pairs_per_row;   // pair index within the row: head j / half, frequency j % half
    let i = j % half;
    let idx = (m * p.row_stride + p.col_offset) / 2u + j;
    x[idx] = rotate_pair(x[idx], positions[p.pos_offset + m], inv_freq[i]);
}
