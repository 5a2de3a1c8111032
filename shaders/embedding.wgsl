// embedding.wgsl — out[m] = dequant(table[ids[m]]) (entry `gather`) or out[m] += ... (entry
// `gather_add`: audio_emb + tok_emb in one kernel), reading a Q4_0 table in raw GGUF bytes.
//
// Layout
//   table  array<u32>        raw Q4_0 bytes of table rows [row_start, row_start + n_rows) — one
//                            row block of a table split to fit maxStorageBufferBindingSize; one
//                            dispatch per block, each writing only the ids that fall inside it.
//                            Row r, block b at byte (r*D/32 + b)*18 (f16 scale, nibbles: element j
//                            low / j+16 high nibble of byte j; w = (nibble-8)*d); >= 4 pad bytes.
//   ids    array<u32>        token ids; row m uses ids[ids_offset + m] (e.g. argmax's output, so
//                            the next token's embedding never leaves the GPU)
//   out    array<vec4<f32>>  [M, D], D % 32 == 0
// Bindings (group 0): 0 table, 1 ids, 2 out, 3 params (uniform)
// One invocation per (row m, Q4 block b): 32 outputs. Dispatch (ceil(D/32/64), M), 64 per group.
//
// gather_f32: out[m] = src[ids[ids_offset + m]] for rows of an f32 matrix (binding 4, rows of
// src_stride vec4s from vec4 src_offset; binding 3 holds GatherParams). The decode step's audio
// row: its index is a u32 the host writes per step, so the step's bind group never changes (a
// per-row view would need a new uniform and bind group every token: ~0.3 ms each through wgpu-py).
// One invocation per vec4; dispatch (ceil(D/4/64), M).

struct Params {
    M: u32,
    D: u32,
    row_start: u32,
    n_rows: u32,
    ids_offset: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const BLOCK_BYTES: u32 = 18u;

@group(0) @binding(0) var<storage, read> table: array<u32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> p: Params;

struct GatherParams {
    M: u32,
    D4: u32,           // vec4s per row
    src_offset4: u32,  // first vec4 of src row 0
    src_stride4: u32,  // vec4s between src rows
    ids_offset: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
@group(0) @binding(3) var<uniform> gp: GatherParams;
@group(0) @binding(4) var<storage, read> src: array<vec4<f32>>;

@compute @workgroup_size(64)
fn gather_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let c = wid.x * 64u + li;
    let m = wid.y;
    if (c >= gp.D4) {
        return;
    }
    let r = ids[gp.ids_offset + m];
    out[m * gp.D4 + c] = src[gp.src_offset4 + r * gp.src_stride4 + c];
}

fn q4_scale(g: u32) -> f32 {
    let byte = g * BLOCK_BYTES;
    let w0 = table[byte >> 2u];
    return unpack2x16float(select(w0, w0 >> 16u, (byte & 2u) != 0u)).x;  // odd blocks: high half
}

fn q4_word(g: u32, j: u32) -> u32 {
    let byte = g * BLOCK_BYTES + 2u + 4u * j;
    let w = byte >> 2u;
    if ((byte & 2u) == 0u) {
        return table[w];
    }
    return (table[w] >> 16u) | (table[w + 1u] << 16u);
}

// (nibble - 8) as f32 without an int->float conversion: OR the nibble into the mantissa of 2^23,
// then subtract 2^23 + 8 (exact).
fn nibbles_minus_8(v: vec4<u32>) -> vec4<f32> {
    return bitcast<vec4<f32>>((v & vec4<u32>(15u)) | vec4<u32>(0x4B000000u)) - 8388616.0;
}

fn low_nibbles(q: u32) -> vec4<f32> {
    return nibbles_minus_8(vec4<u32>(q, q >> 8u, q >> 16u, q >> 24u));
}

fn high_nibbles(q: u32) -> vec4<f32> {
    return nibbles_minus_8(vec4<u32>(q >> 4u, q >> 12u, q >> 20u, q >> 28u));
}

// Returns the Q4 block index to decode, or 0xffffffff if this invocation has nothing to write.
fn block_for(gid_x: u32, m: u32) -> u32 {
    let blocks_per_row = p.D / 32u;
    if (m >= p.M || gid_x >= blocks_per_row) {
        return 0xffffffffu;
    }
    let id = ids[p.ids_offset + m];
    if (id < p.row_start || id - p.row_start >= p.n_rows) {
        return 0xffffffffu;  // this id lives in another row block of the table
    }
    return (id - p.row_start) * blocks_per_row + gid_x;
}

@compute @workgroup_size(64)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>) {
    let g = block_for(gid.x, gid.y);
    if (g == 0xffffffffu) {
        return;
    }
    let d = q4_scale(g);
    let o = (gid.y * p.D + gid.x * 32u) / 4u;
    for (var j = 0u; j < 4u; j++) {
        let q = q4_word(g, j);
        out[o + j] = low_nibbles(q) * d;
        out[o + 4u + j] = high_nibbles(q) * d;
    }
}

@compute @workgroup_size(64)
fn gather_add(@builtin(global_invocation_id) gid: vec3<u32>) {
    let g = block_for(gid.x, gid.y);
    if (g == 0xffffffffu) {
        return;
    }
    let d = q4_scale(g);
    let o = (gid.y * p.D + gid.x * 32u) / 4u;
    for (var j = 0u; j < 4u; j++) {
        let q = q4_word(g, j);
        out[o + j] = out[o + j] + low_nibbles(q) * d;
        out[o + 4u + j] = out[o + 4u + j] + high_nibbles(q) * d;
    }
}
