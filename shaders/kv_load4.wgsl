// kv_load4.wgsl — reading the K/V ring caches (bindings 1 k_cache, 2 v_cache) four elements at a
// time: load_k4(i) / load_v4(i) return elements 4i..4i+3 as f32, whatever the caches hold: f32, or
// with KV_F16 halves (packed pairs in u32 words, or with SHADER_F16 typed vec4<f16>); the bytes are
// the ones kv_store.wgsl writes. Shared by attention_decode.wgsl and attention_rows.wgsl.

// #if KV_F16
// #if SHADER_F16
@group(0) @binding(1) var<storage, read> k_cache: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read> v_cache: array<vec4<f16>>;
fn load_k4(i: u32) -> vec4<f32> { return vec4<f32>(k_cache[i]); }
fn load_v4(i: u32) -> vec4<f32> { return vec4<f32>(v_cache[i]); }
// #else
@group(0) @binding(1) var<storage, read> k_cache: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> v_cache: array<vec2<u32>>;
fn load_k4(i: u32) -> vec4<f32> {
    let w = k_cache[i];
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}
fn load_v4(i: u32) -> vec4<f32> {
    let w = v_cache[i];
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}
// #endif
// #else
@group(0) @binding(1) var<storage, read> k_cache: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v_cache: array<vec4<f32>>;
fn load_k4(i: u32) -> vec4<f32> { return k_cache[i]; }
fn load_v4(i: u32) -> vec4<f32> { return v_cache[i]; }
// #endif
