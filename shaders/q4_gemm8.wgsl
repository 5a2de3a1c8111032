// q4_gemm8.wgsl — Y = X·Wᵀ (+ bias) (+ residual) for many rows of X, W in raw GGUF Q4_0 bytes:
// q4_matmul.wgsl's product with 8x8 outputs per invocation instead of 4x4.
//
// Why: with 4x4 outputs an invocation reads two vec4s of shared memory per 16 FMAs, so shared
// memory bandwidth (128 B per clock and SM) caps the FMA rate at half the SM's (the encoder's
// GEMMs ran at ~25 TFLOP/s f32 on the H100). With 8x8 it reads four vec4s per 64 FMAs.
//
// Layout, bindings, flags: q4_gemm_io.wgsl. Tiling: a workgroup of 64 invocations computes a
// 64x64 tile of Y; invocation (tx, ty) = (li % 8, li / 8) owns rows {4ty, 32 + 4ty} + [0, 4) and
// columns {4tx, 32 + 4tx} + [0, 4) of it. The K loop steps one Q4 block (32) at a time:
// invocation li stages X row li's 32 values and decodes W row li's block (scale + 16 bytes) into
// tile_gemm.wgsl's shared tiles (k-major vec4 rows, 2 x 8 KiB: the WebGPU default of 16 KiB);
// its own inner product reads them. Dispatch: (ceil(n_rows/64), ceil(M/64)).

// #include q4_gemm_io.wgsl   (Params, bindings 0-5, BLOCK_BYTES, write_out)
// #include tile_gemm.wgsl   (TILE = 64, TILE_K = 32, x_tile, w_tile, put_x, put_w)

// #include q4_nibbles.wgsl   (low_nibbles_scaled, high_nibbles_scaled, NIB_LO, NIB_HI)

// X row m (global), block kb -> x_tile column `row`; zeros past the last row
fn stage_x(m: u32, kb: u32, row: u32) {
    let base = (m * p.K + kb * 32u) / 4u;
    for (var v = 0u; v < 8u; v++) {
        var xv = vec4<f32>(0.0);
        if (m < p.M) {
            xv = x[base + v];
        }
        for (var c = 0u; c < 4u; c++) {
            put_x(v * 4u + c, row, xv[c]);
        }
    }
}

// W row n (local to the weight block), block kb, dequantized -> w_tile column `row`
fn stage_w(n: u32, kb: u32, row: u32) {
    var q = array<u32, 4>();  // zeros past the last row (d = 0 there too)
    var d = 0.0;
    if (n < p.n_rows) {
        // the block's 18 bytes lie in 5 words from byte & ~3: scale then quants 2 bytes into the
        // first word (even byte offset: each quant word straddles two words) or scale in the
        // high half of the first word and the quant words aligned (offset 2 mod 4)
        let byte = (n * (p.K / 32u) + kb) * BLOCK_BYTES;
        let w = byte >> 2u;
        let odd = (byte & 2u) != 0u;
        let w0 = weights[w];
        var ws: array<u32, 5>;
        ws[0] = w0;
        for (var i = 1u; i < 5u; i++) {
            ws[i] = weights[w + i];  // the last word may be the next block's (or the >= 4 pad bytes)
        }
        d = unpack2x16float(select(w0, w0 >> 16u, odd)).x;
        for (var j = 0u; j < 4u; j++) {
            q[j] = select((ws[j] >> 16u) | (ws[j + 1u] << 16u), ws[j + 1u], odd);
        }
    }
    let d_lo = d * NIB_LO;  // (n-8)·d exactly: see q4_nibbles.wgsl
    let d_hi = d * NIB_HI;
    for (var j = 0u; j < 4u; j++) {
        let qq = vec4<u32>(q[j], q[j], q[j] >> 16u, q[j] >> 16u);
        let lo = low_nibbles_scaled(qq) * d_lo;    // elements 4j..4j+3
        let hi = high_nibbles_scaled(qq) * d_hi;   // elements 16+4j..16+4j+3
        for (var c = 0u; c < 4u; c++) {
            put_w(4u * j + c, row, lo[c]);
            put_w(16u + 4u * j + c, row, hi[c]);
        }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let tx = li % 8u;
    let ty = li / 8u;
    let n0 = wid.x * TILE;
    let m0 = wid.y * TILE;
    let blocks_per_row = p.K / 32u;

    // acc[2i + c]: output row (i < 4: 4ty + i, else 32 + 4ty + i - 4), columns 4tx + 32c + [0, 4)
    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var kb = 0u; kb < blocks_per_row; kb++) {
        stage_x(m0 + li, kb, li);
        stage_w(n0 + li, kb, li);
        workgroupBarrier();
        for (var k = 0u; k < TILE_K; k++) {
            let a0 = x_tile[k * 16u + ty];
            let a1 = x_tile[k * 16u + 8u + ty];
            let b0 = w_tile[k * 16u + tx];
            let b1 = w_tile[k * 16u + 8u + tx];
            for (var i = 0u; i < 4u; i++) {
                acc[2u * i] += a0[i] * b0;
                acc[2u * i + 1u] += a0[i] * b1;
                acc[8u + 2u * i] += a1[i] * b0;
                acc[8u + 2u * i + 1u] += a1[i] * b1;
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 8u; i++) {
        let mo = m0 + 4u * ty + (i % 4u) + 32u * (i / 4u);
        for (var c = 0u; c < 2u; c++) {
            for (var j = 0u; j < 4u; j++) {
                let no = n0 + 4u * tx + 32u * c + j;
                if (mo < p.M && no < p.n_rows) {
                    write_out(mo, no, acc[2u * i + c][j]);
                }
            }
        }
    }
}
