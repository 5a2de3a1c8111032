// decode_advance.wgsl — the end of a replayed decode step when several steps go in one submit
// (DecodeStepGraph.steps): the step's token (argmax output, `tok`) is kept in hist[ctr] for the
// host to read once per submit, and the next step's position and audio row index move on by one.
// The host writes pos, row and ctr = 0 before the submit; nothing else changes between steps, so
// K steps are K copies of the same dispatch list.
// Bindings: 0 pos (u32, rw), 1 row (u32, rw), 2 tok (u32), 3 hist (u32 [K], rw), 4 ctr (u32, rw).
// Dispatch (1, 1, 1).

@group(0) @binding(0) var<storage, read_write> pos: array<u32>;
@group(0) @binding(1) var<storage, read_write> row: array<u32>;
@group(0) @binding(2) var<storage, read> tok: array<u32>;
@group(0) @binding(3) var<storage, read_write> hist: array<u32>;
@group(0) @binding(4) var<storage, read_write> ctr: array<u32>;

@compute @workgroup_size(1)
fn main() {
    let i = ctr[0];
    hist[i] = tok[0];
    ctr[0] = i + 1u;
    pos[0] += 1u;
    row[0] += 1u;
}
