// q4_matmul.wgsl — Y = X·Wᵀ (+ bias) (+ residual) for many rows of X (M > 4: encoder chunks,
// prompt prefill), W kept in its raw GGUF Q4_0 bytes and dequantized tile by tile.
//
// Layout, bindings, flags: q4_gemm_io.wgsl.
//
// Tiling: a workgroup of 256 computes a 64x64 tile of Y; each invocation a 4x4 sub-tile. The K
// loop steps one Q4 block (32) at a time: X [64 x 32] and the dequantized W [64 x 32] go to
// shared memory stored k-major (2 x 8 KiB, the whole 16 KiB WebGPU default), so the inner loop
// reads 4 consecutive rows/columns per k. Each W row's block is decoded by 4 invocations, one
// nibble word (8 weights) each. Dispatch: (ceil(n_rows/64), ceil(M/64)).

// #include q4_gemm_io.wgsl   (Params, bindings 0-5, BLOCK_BYTES, write_out)
// #include tile_gemm.wgsl   (TILE = 64, TILE_K = 32, put_x, put_w, tile_accumulate)


// One K step's global words for this invocation: X row m, elements 32kb + 8*load_part + [0, 8);
// W row n, the scale word and the (up to two) words holding nibble word load_part of block kb.
// (Loading the next step's words before the current tile product measured no faster.)
struct Staged {
    xa: vec4<f32>,
    xb: vec4<f32>,
    scale_word: u32,
    q0: u32,
    q1: u32,
}

fn fetch(m: u32, n: u32, kb: u32, part: u32) -> Staged {
    var s = Staged(vec4<f32>(0.0), vec4<f32>(0.0), 0u, 0u, 0u);
    if (m < p.M) {
        let v = (m * p.K + kb * 32u + part * 8u) / 4u;
        s.xa = x[v];
        s.xb = x[v + 1u];
    }
    if (n < p.n_rows) {
        let byte = (n * (p.K / 32u) + kb) * BLOCK_BYTES;
        s.scale_word = weights[byte >> 2u];
        let w = (byte + 2u + 4u * part) >> 2u;
        s.q0 = weights[w];
        s.q1 = weights[w + 1u];  // used only when the word straddles (the pad covers the end)
    }
    return s;
}

// (nibble - 8) as f32 without an int->float conversion: OR the nibble into the mantissa of 2^23,
// then subtract 2^23 + 8 (exact).
fn nibbles_minus_8(v: vec4<u32>) -> vec4<f32> {
    return bitcast<vec4<f32>>((v & vec4<u32>(15u)) | vec4<u32>(0x4B000000u)) - 8388616.0;
}

// Dequantize and store a fetched step into the shared tiles (row = load_row of both tiles).
fn stage(s: Staged, n: u32, kb: u32, row: u32, part: u32) {
    let kx = part * 8u;
    for (var c = 0u; c < 4u; c++) {
        put_x(kx + c, row, s.xa[c]);
        put_x(kx + 4u + c, row, s.xb[c]);
    }
    // a block starting 2 bytes into a word (odd blocks): scale in the high half, quant words
    // aligned; else scale in the low half and each quant word straddles two words
    let odd = (((n * (p.K / 32u) + kb) * BLOCK_BYTES) & 2u) != 0u;
    let d = unpack2x16float(select(s.scale_word, s.scale_word >> 16u, odd)).x;
    let q = select((s.q0 >> 16u) | (s.q1 << 16u), s.q0, odd);
    let lo = nibbles_minus_8(vec4<u32>(q, q >> 8u, q >> 16u, q >> 24u)) * d;        // 4j..4j+3
    let hi = nibbles_minus_8(vec4<u32>(q >> 4u, q >> 12u, q >> 20u, q >> 28u)) * d; // 16+4j..
    let kw = part * 4u;
    for (var c = 0u; c < 4u; c++) {
        put_w(kw + c, row, lo[c]);
        put_w(16u + kw + c, row, hi[c]);
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let tx = li % 16u;            // output columns n0 + 4*tx + [0, 4)
    let ty = li / 16u;            // output rows    m0 + 4*ty + [0, 4)
    let n0 = wid.x * TILE;
    let m0 = wid.y * TILE;
    let load_row = li / 4u;       // tile row this invocation loads (of X and of W)
    let load_part = li % 4u;      // which quarter of the 32-wide K step
    let blocks_per_row = p.K / 32u;
    let m = m0 + load_row;
    let n = n0 + load_row;

    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }

    for (var kb = 0u; kb < blocks_per_row; kb++) {
        stage(fetch(m, n, kb, load_part), n, kb, load_row, load_part);
        workgroupBarrier();
        tile_accumulate(&acc, tx, ty);
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let mo = m0 + 4u * ty + i;
        for (var j = 0u; j < 4u; j++) {
            let no = n0 + 4u * tx + j;
            if (mo < p.M && no < p.n_rows) {
                write_out(mo, no, acc[i][j]);
            }
        }
    }
}
