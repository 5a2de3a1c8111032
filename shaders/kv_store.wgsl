// kv_store.wgsl — writing pairs of elements into the K/V ring caches (bindings 8 k_cache_w and
// 9 v_cache_w), in the caches' element type: f32, or (#if KV_F16) raw halves, packed two per u32
// with pack2x16float or, with SHADER_F16, the same bytes typed as vec2<f16>. Shared by
// attention.wgsl's cache writes and q4_matvec.wgsl's fused RoPE + cache write (ROPE_KV), so a
// slot holds the same bytes whichever kernel wrote it. `pair` indexes element pairs of a cache.

// #if KV_F16
// #if SHADER_F16
@group(0) @binding(8) var<storage, read_write> k_cache_w: array<vec2<f16>>;
@group(0) @binding(9) var<storage, read_write> v_cache_w: array<vec2<f16>>;
fn store_k2(pair: u32, v: vec2<f32>) { k_cache_w[pair] = vec2<f16>(v); }
fn store_v2(pair: u32, v: vec2<f32>) { v_cache_w[pair] = vec2<f16>(v); }
// #else
@group(0) @binding(8) var<storage, read_write> k_cache_w: array<u32>;
@group(0) @binding(9) var<storage, read_write> v_cache_w: array<u32>;
fn store_k2(pair: u32, v: vec2<f32>) { k_cache_w[pair] = pack2x16float(v); }
fn store_v2(pair: u32, v: vec2<f32>) { v_cache_w[pair] = pack2x16float(v); }
// #endif
// #else
@group(0) @binding(8) var<storage, read_write> k_cache_w: array<vec2<f32>>;
@group(0) @binding(9) var<storage, read_write> v_cache_w: array<vec2<f32>>;
fn store_k2(pair: u32, v: vec2<f32>) { k_cache_w[pair] = v; }
fn store_v2(pair: u32, v: vec2<f32>) { v_cache_w[pair] = v; }
// #endif
