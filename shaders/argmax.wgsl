// argmax.wgsl — index of the largest value of each row of x [rows, n] (n up to 131072 and more),
// ties resolved to the lowest index like numpy.argmax. Two dispatches in one pass:
//   `argmax_partial`: workgroup (g, row) scans x[row, 4096g : 4096(g+1)] and writes its best
//                     (value, index) to part_val / part_idx [rows, n_groups]
//   `argmax_final`:   workgroup row reduces the n_groups partials and writes the index (u32) to
//                     out_ids[out_offset + row] (e.g. straight into the ids buffer the embedding reads)
// Bindings (group 0): 0 x, 1 part_val, 2 part_idx, 3 params (uniform), 4 out_ids
// NaN is not handled (logits are finite); -inf is.

struct Params {
    rows: u32,
    n: u32,
    n_groups: u32,   // ceil(n / 4096)
    out_offset: u32,
}

const WG: u32 = 256u;
const PER_GROUP: u32 = 4096u;   // 16 elements per invocation, read with a 256-wide stride
const NO_INDEX: u32 = 0xffffffffu;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> part_val: array<f32>;
@group(0) @binding(2) var<storage, read_write> part_idx: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read_write> out_ids: array<u32>;

var<workgroup> best_val: array<f32, 256>;
var<workgroup> best_idx: array<u32, 256>;

// Is candidate (v, i) better than the current best (w, j)? Larger value, or equal value and lower
// index; NO_INDEX marks "nothing seen yet" (so -inf rows still return an index).
fn better(v: f32, i: u32, w: f32, j: u32) -> bool {
    return i != NO_INDEX && (j == NO_INDEX || v > w || (v == w && i < j));
}

// Tree-reduce best_val/best_idx; every invocation must call it (it has barriers).
fn reduce_workgroup(li: u32) {
    workgroupBarrier();
    for (var off = WG / 2u; off > 0u; off >>= 1u) {
        if (li < off) {
            let v = best_val[li + off];
            let i = best_idx[li + off];
            if (better(v, i, best_val[li], best_idx[li])) {
                best_val[li] = v;
                best_idx[li] = i;
            }
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn argmax_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wid.y;
    var v = 0.0;  // ignored while idx == NO_INDEX
    var idx = NO_INDEX;
    let start = wid.x * PER_GROUP;
    let stop = min(start + PER_GROUP, p.n);
    for (var i = start + li; i < stop; i += WG) {
        let w = x[row * p.n + i];
        if (better(w, i, v, idx)) {
            v = w;
            idx = i;
        }
    }
    best_val[li] = v;
    best_idx[li] = idx;
    reduce_workgroup(li);
    if (li == 0u) {
        part_val[row * p.n_groups + wid.x] = best_val[0];
        part_idx[row * p.n_groups + wid.x] = best_idx[0];
    }
}

@compute @workgroup_size(256)
fn argmax_final(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wid.x;
    var v = 0.0;
    var idx = NO_INDEX;
    for (var g = li; g < p.n_groups; g += WG) {
        let w = part_val[row * p.n_groups + g];
        let i = part_idx[row * p.n_groups + g];
        if (better(w, i, v, idx)) {
            v = w;
            idx = i;
        }
    }
    best_val[li] = v;
    best_idx[li] = idx;
    reduce_workgroup(li);
    if (li == 0u) {
        out_ids[p.out_offset + row] = best_idx[0];
    }
}
