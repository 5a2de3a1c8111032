// elementwise.wgsl — gelu (exact erf form), silu, swiglu = silu(a)·b, add, and in-place forms.
//
// Every operand is a 2-D view: element (r, c) of operand X is X[X_off + r·X_stride + c], so the
// gate and up halves of a fused [M, 2F] matmul output can feed swiglu directly (same buffer
// bound twice, read-only), and outputs can land in a column range of a wider matrix.
//
// Entry points and bindings (group 0; 3 = params for all):
//   gelu, silu      out = f(a)          0 a, 2 out
//   swiglu          out = silu(a) · b   0 a, 1 b, 2 out
//   add             out = a + b         0 a, 1 b, 2 out
//   mul             out = a · b         0 a, 1 b, 2 out   (b_stride 0 broadcasts one row of b)
//   copy            out = a             0 a, 2 out        (strided view -> contiguous, concat)
//   gelu_inplace    io = gelu(io)       4 io   (uses the out view)
//   silu_inplace    io = silu(io)       4 io
//   add_inplace     io = io + b         1 b, 4 io
// Out-of-place outputs must not overlap inputs (WebGPU forbids read + read_write aliasing).
// One invocation per element; 256 per workgroup; 2-D grid linearised with groups_x.
//
// WGSL has no erf: GELU uses W. J. Cody's rational approximations (Math. Comp. 1969), the same
// ones as the numpy reference, evaluated in f32. Below x = -0.66 it uses 0.5·x·erfc(|x|/√2)
// directly instead of 0.5·x·(1 + erf), which keeps the relative error small in the negative tail
// where 1 + erf cancels (measured: < 1e-6 relative per element on [-12, 12]).

struct Params {
    rows: u32,
    cols: u32,
    a_off: u32,
    a_stride: u32,
    b_off: u32,
    b_stride: u32,
    o_off: u32,
    o_stride: u32,
    groups_x: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read_write> io: array<f32>;

// ---------------------------------------------------------------------------- math
const INV_SQRT2: f32 = 0.70710678118654752;
const INV_SQRT_PI: f32 = 0.56418958354775628;

// erf(x) for |x| <= 0.46875: x · P(x²) / Q(x²)
fn erf_small(x: f32) -> f32 {
    let z = x * x;
    var num = 1.85777706184603153e-1 * z;
    var den = z;
    num = (num + 3.16112374387056560e00) * z;
    den = (den + 2.36012909523441209e01) * z;
    num = (num + 1.13864154151050156e02) * z;
    den = (den + 2.44024637934444173e02) * z;
    num = (num + 3.77485237685302021e02) * z;
    den = (den + 1.28261652607737228e03) * z;
    return x * (num + 3.20937758913846947e03) / (den + 2.84423683343917062e03);
}

// #include silu.wgsl   (exp_accurate, silu)

// exp(-x²/2) with x² split as t² + (x-t)(x+t), t = |x| rounded down to 1/16: t²/2 is exact in
// f32 and (x-t)(x+t) is small, so the result carries only exp's own rounding. (Forming
// y = x/√2 first and squaring it would amplify y's rounding by 2y², ~1e-5 in the tail.)
fn exp_minus_half_square(ax: f32) -> f32 {
    let t = trunc(ax * 16.0) / 16.0;
    return exp_accurate(-0.5 * t * t) * exp(-0.5 * (ax - t) * (ax + t));
}

// erfc(y)·exp(y²) for 0.46875 <= y <= 4
fn erfcx_mid(y: f32) -> f32 {
    var num = 2.15311535474403846e-8 * y;
    var den = y;
    num = (num + 5.64188496988670089e-1) * y;
    den = (den + 1.57449261107098347e01) * y;
    num = (num + 8.88314979438837594e00) * y;
    den = (den + 1.17693950891312499e02) * y;
    num = (num + 6.61191906371416295e01) * y;
    den = (den + 5.37181101862009858e02) * y;
    num = (num + 2.98635138197400131e02) * y;
    den = (den + 1.62138957456669019e03) * y;
    num = (num + 8.81952221241769090e02) * y;
    den = (den + 3.29079923573345963e03) * y;
    num = (num + 1.71204761263407058e03) * y;
    den = (den + 4.36261909014324716e03) * y;
    num = (num + 2.05107837782607147e03) * y;
    den = (den + 3.43936767414372164e03) * y;
    return (num + 1.23033935479799725e03) / (den + 1.23033935480374942e03);
}

// erfc(y)·exp(y²) for y > 4
fn erfcx_large(y: f32) -> f32 {
    let z = 1.0 / (y * y);
    var num = 1.63153871373020978e-2 * z;
    var den = z;
    num = (num + 3.05326634961232344e-1) * z;
    den = (den + 2.56852019228982242e00) * z;
    num = (num + 3.60344899949804439e-1) * z;
    den = (den + 1.87295284992346047e00) * z;
    num = (num + 1.25781726111229246e-1) * z;
    den = (den + 5.27905102951428412e-1) * z;
    num = (num + 1.60837851487422766e-2) * z;
    den = (den + 6.05183413124413191e-2) * z;
    let r = z * (num + 6.58749161529837803e-4) / (den + 2.33520497626869185e-3);
    return (INV_SQRT_PI - r) / y;
}

// GELU(x) = 0.5·x·(1 + erf(x/√2)), exact (not the tanh approximation)
fn gelu(x: f32) -> f32 {
    let z = x * INV_SQRT2;
    let y = abs(z);
    if (y <= 0.46875) {
        return 0.5 * x * (1.0 + erf_small(z));
    }
    let ax = min(abs(x), 20.0);  // erfc underflows f32 long before
    var c: f32;                  // erfc(y)
    if (y <= 4.0) {
        c = erfcx_mid(y) * exp_minus_half_square(ax);
    } else {
        c = erfcx_large(y) * exp_minus_half_square(ax);
    }
    if (x < 0.0) {
        return 0.5 * x * c;          // 1 + erf(-y) = erfc(y)
    }
    return 0.5 * x * (2.0 - c);      // 1 + erf(y) = 2 - erfc(y)
}


// ------------------------------------------------------------------------ indexing
struct Elem {
    ok: bool,
    r: u32,
    c: u32,
}

fn element(wid: vec3<u32>, li: u32) -> Elem {
    let t = (wid.x + wid.y * p.groups_x) * 256u + li;
    return Elem(t < p.rows * p.cols, t / max(p.cols, 1u), t % max(p.cols, 1u));
}

fn ai(e: Elem) -> u32 { return p.a_off + e.r * p.a_stride + e.c; }
fn bi(e: Elem) -> u32 { return p.b_off + e.r * p.b_stride + e.c; }
fn oi(e: Elem) -> u32 { return p.o_off + e.r * p.o_stride + e.c; }

// --------------------------------------------------------------------- entry points
@compute @workgroup_size(256)
fn gelu_main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = element(wid, li);
    if (e.ok) { out[oi(e)] = gelu(a[ai(e)]); }
}

@compute @workgroup_size(256)
fn silu_main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = element(wid, li);
    if (e.ok) { out[oi(e)] = silu(a[ai(e)]); }
}

@compute @workgroup_size(256)
fn swiglu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = element(wid, li);
    if (e.ok) { out[oi(e)] = silu(a[ai(e)]) * b[bi(e)]; }
}

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = element(wid, li);
    if (e.ok) { out[oi(e)] = a[ai(e)] + b[bi(e)]; }
}

@compute @workgroup_size(256)
fn gelu_inplace(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = element(wid, li);
    if (e.ok) { io[oi(e)] = gelu(io[oi(e)]); }
}

@compute @workgroup_size(256)
fn silu_inplace(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = element(wid, li);
    if (e.ok) { io[oi(e)] = silu(io[oi(e)]); }
}

@compute @workgroup_size(256)
fn add_inplace(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = element(wid, li);
    if (e.ok) { io[oi(e)] = io[oi(e)] + b[bi(e)]; }
}

@compute @workgroup_size(256)
fn mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = element(wid, li);
    if (e.ok) { out[oi(e)] = a[ai(e)] * b[bi(e)]; }
}

@compute @workgroup_size(256)
fn copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = element(wid, li);
    if (e.ok) { out[oi(e)] = a[ai(e)]; }
}
