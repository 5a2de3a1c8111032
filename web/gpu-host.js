// The browser side of the WebGPU host (python/voxtral/backends/webgpu/js_host.py drives it).
//
// Python calls into JS cost far more than JS calls into WebGPU, so this helper keeps every GPU object
// (buffers, pipelines, bind groups) in one table and hands Python small integer ids. A whole decode
// step is ONE call: `run(ptr, nDispatches, nCopies)` reads a flat u32 array straight out of the wasm
// heap (5 words per dispatch: pipeline id, bind group id, x, y, z; then 5 per copy: src id, src
// offset, dst id, dst offset, size) and encodes one compute pass + the copies + one submit.
// Uploads read the wasm heap in place too (`writeBuffer(id, offset, ptr, n)`): no JS copy.
//
// Everything that has to wait returns a Promise (pipeline compilation, readbacks); the Python side
// blocks on it with Pyodide's run_sync (JSPI), so the decode loop stays ordinary Python.
//
// Loaded with importScripts in the worker; defines self.VoxtralGPU.
'use strict';

// Optional features the kernels use when present ('subgroups' also needs `enable subgroups;`).
const VOXTRAL_WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'];

class VoxtralGPU {
  // heap(): the current Uint8Array over the wasm memory (it is replaced when the memory grows).
  // disable: feature names never to request (tests, or a retry after a failed self-test).
  static async create({ heap, disable = [], powerPreference = 'high-performance' } = {}) {
    if (!self.navigator.gpu) throw new Error('this browser has no WebGPU (navigator.gpu is missing)');
    const adapter = await navigator.gpu.requestAdapter({ powerPreference });
    if (!adapter) throw new Error('WebGPU gave no adapter (GPU blocked, disabled or missing)');
    const features = VOXTRAL_WANTED_FEATURES.filter((f) => adapter.features.has(f) && !disable.includes(f));
    // The defaults are far below what the kernels need (binding size, invocations): ask for the
    // adapter's own limits.
    const requiredLimits = {};
    for (const k in adapter.limits) {
      if (typeof adapter.limits[k] === 'number') requiredLimits[k] = adapter.limits[k];
    }
    // a limit this browser lists but refuses, or a feature it lists but cannot give: retry with the
    // limits the kernels depend on, then without the optional features
    const keep = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeInvocationsPerWorkgroup',
      'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupStorageSize', 'maxStorageBuffersPerShaderStage'];
    const someLimits = {};
    for (const k of keep) if (k in requiredLimits) someLimits[k] = requiredLimits[k];
    const tries = [[features, requiredLimits], [features, someLimits], [[], someLimits]];
    let lastError = null;
    for (const [requiredFeatures, limits] of tries) {
      try {
        const device = await adapter.requestDevice({ requiredFeatures, requiredLimits: limits });
        return new VoxtralGPU(adapter, device, heap);
      } catch (e) {
        lastError = e;
      }
    }
    throw new Error(`WebGPU would not create a device (${lastError && lastError.message})`);
  }

  constructor(adapter, device, heap) {
    this.adapter = adapter;
    this.device = device;
    this.queue = device.queue;
    this.heap = heap;
    this.objects = [null];  // id -> GPUBuffer | {pipeline, layout} | GPUBindGroup; id 0 unused
    this.free = [];         // released ids, reused
    this.errors = [];       // uncaptured validation / out-of-memory errors, oldest first
    this.lost = null;
    this.submits = 0;
    device.addEventListener('uncapturederror', (e) => {
      if (this.errors.length < 100) this.errors.push(String(e.error && e.error.message || e.error));
    });
    device.lost.then((info) => { this.lost = `${info.reason}: ${info.message}`; });
  }

  _put(obj) {
    const id = this.free.length ? this.free.pop() : this.objects.length;
    this.objects[id] = obj;
    return id;
  }

  _get(id) {
    const obj = this.objects[id];
    if (!obj) throw new Error(`no GPU object with id ${id}`);
    return obj;
  }

  _words(ptr, n) { return new Uint32Array(this.heap().buffer, ptr, n); }

  // ------------------------------------------------------------------------- description
  // JSON: adapter info, the device's features and limits (what Python's GPUHost reports).
  describe() {
    const i = this.adapter.info || {};
    const limits = {};
    for (const k in this.device.limits) {
      if (typeof this.device.limits[k] === 'number') limits[k] = this.device.limits[k];
    }
    const name = [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' ') || 'WebGPU adapter';
    return JSON.stringify({
      name,
      vendor: i.vendor || '', architecture: i.architecture || '', device: i.device || '',
      description: i.description || '',
      isFallbackAdapter: !!(i.isFallbackAdapter || this.adapter.isFallbackAdapter),
      subgroupMinSize: i.subgroupMinSize || null, subgroupMaxSize: i.subgroupMaxSize || null,
      adapterFeatures: [...this.adapter.features].sort(),
      features: [...this.device.features].sort(),
      limits,
    });
  }

  // Errors WebGPU reported asynchronously since the last call, joined (null when none).
  takeErrors() {
    const all = this.errors.splice(0);
    if (this.lost) all.push(`device lost (${this.lost})`);
    return all.length ? all.join('\n') : null;
  }

  // ----------------------------------------------------------------------------- buffers
  createBuffer(size, usage, label) {
    return this._put(this.device.createBuffer({ size, usage, label: label || undefined }));
  }

  // Bytes [ptr, ptr+n) of the wasm heap into the buffer at `offset` (writeBuffer copies at once).
  writeBuffer(id, offset, ptr, n) {
    this.queue.writeBuffer(this._get(id), offset, this.heap(), ptr, n);
  }

  // Promise<Uint8Array> of buffer[offset, offset+size) after all submitted work. offset and size
  // are 4-byte aligned by the caller.
  async readBuffer(id, offset, size) {
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(this._get(id), offset, staging, 0, size);
    this.queue.submit([enc.finish()]);
    try {
      await staging.mapAsync(GPUMapMode.READ);
      return new Uint8Array(staging.getMappedRange().slice(0));
    } finally {
      staging.destroy();
    }
  }

  // Promise<Uint8Array>: map a MAP_READ buffer (filled by an earlier run's copy), copy out its
  // first `size` bytes and unmap it, so it can be the target of the next copy.
  async mapRead(id, size) {
    const buf = this._get(id);
    await buf.mapAsync(GPUMapMode.READ);
    try {
      return new Uint8Array(buf.getMappedRange().slice(0, size));
    } finally {
      buf.unmap();
    }
  }

  destroyBuffer(id) {
    const buf = this.objects[id];
    if (buf) buf.destroy();
    this.release(id);
  }

  // Forget an object (the Python handle died); WebGPU frees it once nothing uses it.
  release(id) {
    if (id > 0 && this.objects[id]) {
      this.objects[id] = null;
      this.free.push(id);
    }
  }

  // --------------------------------------------------------------------------- pipelines
  // Promise<id>; rejects with the WGSL compiler's messages when the shader does not compile.
  async createPipeline(code, entryPoint) {
    const module = this.device.createShaderModule({ code });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length) {
      throw new Error('WGSL compilation failed: ' + errors.map((m) => `line ${m.lineNum}:${m.linePos} ${m.message}`).join('; '));
    }
    const pipeline = await this.device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint } });
    return this._put({ pipeline, layout: pipeline.getBindGroupLayout(0) });
  }

  // Bind group 0 of a pipeline; entries are n x 4 u32 words at ptr: binding, buffer id, offset, size.
  createBindGroup(pipelineId, ptr, n) {
    const w = this._words(ptr, 4 * n);
    const entries = [];
    for (let i = 0; i < n; i++) {
      const o = 4 * i;
      entries.push({ binding: w[o], resource: { buffer: this._get(w[o + 1]), offset: w[o + 2], size: w[o + 3] } });
    }
    return this._put(this.device.createBindGroup({ layout: this._get(pipelineId).layout, entries }));
  }

  // --------------------------------------------------------------------------------- run
  // One command encoder: one compute pass with all dispatches, then the copies; one submit.
  run(ptr, nDispatches, nCopies) {
    const w = this._words(ptr, 5 * (nDispatches + nCopies));
    const objects = this.objects;
    const enc = this.device.createCommandEncoder();
    if (nDispatches) {
      const pass = enc.beginComputePass();
      let current = -1;
      for (let i = 0; i < nDispatches; i++) {
        const o = 5 * i;
        if (w[o] !== current) {
          current = w[o];
          pass.setPipeline(objects[current].pipeline);
        }
        pass.setBindGroup(0, objects[w[o + 1]]);
        pass.dispatchWorkgroups(w[o + 2], w[o + 3], w[o + 4]);
      }
      pass.end();
    }
    for (let i = nDispatches; i < nDispatches + nCopies; i++) {
      const o = 5 * i;
      enc.copyBufferToBuffer(objects[w[o]], w[o + 1], objects[w[o + 2]], w[o + 3], w[o + 4]);
    }
    this.queue.submit([enc.finish()]);
    this.submits++;
  }
}

self.VoxtralGPU = VoxtralGPU;
