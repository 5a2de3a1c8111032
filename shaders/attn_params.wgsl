// attn_params.wgsl — the uniform of the attention kernels (attention.wgsl, attention_decode.wgsl,
// attention_rows.wgsl): Kernels.attention fills it once for whichever kernel runs.

struct AttnParams {
    rows: u32,        // query rows
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    window: u32,      // sliding window (keys P - window < j <= P)
    capacity: u32,    // ring slots
    q_offset: u32,    // column of q's head 0
    q_stride: u32,    // row stride of q
    pos_offset: u32,  // first position of these rows in `positions`
    out_stride: u32,  // row stride of out
    scale: f32,       // softmax scale
    splits: u32,      // key segments per query (split-K kernels)
    split_keys: u32,  // upper bound of keys per segment (the kernels split the actual keys evenly)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
