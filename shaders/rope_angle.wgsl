// rope_angle.wgsl — the rotary angle of (position, frequency i), shared by rope.wgsl and the
// fused rope + cache write of attention.wgsl (pulled in with `// #include rope_angle.wgsl`).
//
// The f32 angle a = f32(pos) · inv_freq[i] is rounded exactly as the references round it; it can
// be ~1e5 rad, where GPU sin/cos lose accuracy, so a is first reduced mod 2π by Cody–Waite with 2π
// split into 8-bit pieces (each k·piece exact for k < 2^16, i.e. positions below ~400k).

const INV_TWO_PI: f32 = 0.15915493667125702;
const TWO_PI_A: f32 = 6.28125;                 // 2π = A + B + C + D to ~2^-52
const TWO_PI_B: f32 = 0.0019378662109375;
const TWO_PI_C: f32 = -2.562999725341797e-06;
const TWO_PI_D: f32 = 3.968374517882012e-09;

fn reduce_two_pi(a: f32) -> f32 {
    let k = round(a * INV_TWO_PI);
    return (((a - k * TWO_PI_A) - k * TWO_PI_B) - k * TWO_PI_C) - k * TWO_PI_D;
}

// (v0, v1) rotated by angle pos · inv_f: (v0·cos − v1·sin, v0·sin + v1·cos)
fn rotate_pair(v: vec2<f32>, pos: u32, inv_f: f32) -> vec2<f32> {
    let a = reduce_two_pi(f32(pos) * inv_f);
    let c = cos(a);
    let s = sin(a);
    return vec2<f32>(v.x * c - v.y * s, v.x * s + v.y * c);
}
