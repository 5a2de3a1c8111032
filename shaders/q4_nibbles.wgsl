// q4_nibbles.wgsl — Q4_0 nibbles as f32 without an int->float conversion (a quarter-rate
// instruction on NVIDIA), shared by q4_matvec.wgsl and q4_gemm8.wgsl.
//
// A nibble is masked where it lies instead of shifted down (the integer pipe, half the float rate
// on NVIDIA, limited the matvec: ~21 integer ops per word and row before): bits 4k..4k+3 of a
// 16-bit half OR'd into 2^23 give 2^23 + 16^k·n, exact as the mantissa holds < 2^23;
// subtracting 2^23 + 16^k·8 leaves 16^k·(n - 8). The caller meets these with values scaled by
// 16^-k (NIB_LO / NIB_HI: the x of a matvec slot, the scale d of a GEMM block): (16^k·(n-8)) ·
// (v·16^-k) is the same real number as (n-8)·v, so every product rounds exactly as with the
// plain nibble (for |v| >= 2^-114, where v·16^-k is still a normal float).
// Word q of a block: elements 4j+[0..3] in the low nibbles of its bytes (bits 0, 8 of each half),
// elements 16+4j+[0..3] in the high nibbles (bits 4, 12 of each half).

const NIB_LO = vec4<f32>(1.0, 1.0 / 256.0, 1.0, 1.0 / 256.0);
const NIB_HI = vec4<f32>(1.0 / 16.0, 1.0 / 4096.0, 1.0 / 16.0, 1.0 / 4096.0);

// qq = (q, q, q >> 16, q >> 16): 16^k·(n - 8) of elements 4j..4j+3 (k = 0, 2, 0, 2)
fn low_nibbles_scaled(qq: vec4<u32>) -> vec4<f32> {
    let v = (qq & vec4<u32>(0xFu, 0xF00u, 0xFu, 0xF00u)) | vec4<u32>(0x4B000000u);
    return bitcast<vec4<f32>>(v) - vec4<f32>(8388616.0, 8390656.0, 8388616.0, 8390656.0);
}

// the same for elements 16+4j..16+4j+3 (k = 1, 3, 1, 3)
fn high_nibbles_scaled(qq: vec4<u32>) -> vec4<f32> {
    let v = (qq & vec4<u32>(0xF0u, 0xF000u, 0xF0u, 0xF000u)) | vec4<u32>(0x4B000000u);
    return bitcast<vec4<f32>>(v) - vec4<f32>(8388736.0, 8421376.0, 8388736.0, 8421376.0);
}
