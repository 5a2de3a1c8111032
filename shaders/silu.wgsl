// silu.wgsl — silu(x) = x / (1 + e^-x) with an accurate exp, shared by elementwise.wgsl and the
// SwiGLU epilogue of q4_matvec.wgsl (pulled in with `// #include silu.wgsl`): one definition, so
// both give the same bits.

// exp(a) with an explicit reduction a = n·ln2 + r (ln2 split so n·LN2_HI is exact): the builtin
// forms a·log2(e) in f32 internally, which costs ~|a|·2^-24 relative error for large |a|.
const LN2_HI: f32 = 0.693145751953125;
const LN2_LO: f32 = 1.428606765330187e-06;

fn exp_accurate(a: f32) -> f32 {
    let n = round(clamp(a, -150.0, 128.0) * 1.4426950408889634);
    let r = (a - n * LN2_HI) - n * LN2_LO;
    return ldexp(exp(r), i32(n));
}

fn silu(x: f32) -> f32 {
    return x / (1.0 + exp_accurate(-x));
}
