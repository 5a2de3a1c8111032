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
// The f32 angle a = f32(pos) · inv_freq is rounded exactly as the references round it; it can be
// ~1e5 rad, where GPU sin/cos lose accuracy, so a is first reduced mod 2π by Cody–Waite with 2π
// split into 8-bit pieces (each k·piece exact for k < 2^16, i.e. positions below ~400k).
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

const INV_TWO_PI: f32 = 0.15915493667125702;
const TWO_PI_A: f32 = 6.28125;                 // 2π = A + B + C + D to ~2^-52
const TWO_PI_B: f32 = 0.0019378662109375;
const TWO_PI_C: f32 = -2.562999725341797e-06;
const TWO_PI_D: f32 = 3.968374517882012e-09;

@group(0) @binding(0) var<storage, read_write> x: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read> positions: array<u32>;
@group(0) @binding(2) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn reduce_two_pi(a: f32) -> f32 {
    let k = round(a * INV_TWO_PI);
    return (((a - k * TWO_PI_A) - k * TWO_PI_B) - k * TWO_PI_C) - k * TWO_PI_D;
}

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
    let a = reduce_two_pi(f32(positions[p.pos_offset + m]) * inv_freq[i]);
    let c = cos(a);
    let s = sin(a);
    let idx = (m * p.row_stride + p.col_offset) / 2u + j;
    let v = x[idx];
    x[idx] = vec2<f32>(v.x * c - v.y * s, v.x * s + v.y * c);
}
