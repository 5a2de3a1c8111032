// The Pyodide worker: Python runtime + numpy from the dev server, the `voxtral` package zip, model
// shards (network or Cache Storage), and the ASR pipeline (python/voxtral/browser.py).
//
// Messages in (from app.js):
//   {type:'init', backend, indexURL, packageURL, selftest, subgroups}
//                                                    boot Python; backend is "auto" (WebGPU when it is
//                                                    there and its self-test passes, else numpy),
//                                                    "webgpu" or "numpy"; selftest "fail" forces the
//                                                    WebGPU self-test to fail (tests the fallback);
//                                                    subgroups false: kernels without subgroup ops
//   {type:'load', model}                             model = one entry of /api/info's "models"
//   {type:'transcribeFile', name, file}              a WAV File: Python reads it piece by piece (through
//                                                    FileReaderSync) and resamples it as the CLI does
//   {type:'transcribeSamples', name, samples}        Float32Array at 16 kHz (decodeAudioData output)
//   {type:'liveStart', keep} {type:'liveAudio', samples} {type:'liveStop'}
//                                                    keep false: no copy of the received audio
//   {type:'getReceivedAudio'}                        the 16 kHz samples the live session received
//   {type:'bench', kind:'asr', preset, seconds, bandwidth}  benchmark mode: `voxtral bench asr` (or,
//   {type:'bench', kind:'tts', preset, frames}              kind 'tts', `bench tts`) on a random model
//                                                    built in Python (voxtral/asr_bench.py, tts_bench.py)
// Messages out: status, ready, shardProgress, cacheWarning, loaded, partial, fileProgress, liveFigures,
//   result, receivedAudio, benchResult, error.  Python work runs one task at a time (a promise queue); shard
//   downloads run outside it so they overlap the Python boot.
//
// WebGPU readbacks are asynchronous in the browser; Python waits for them with run_sync (JSPI),
// which needs the call into Python to be made with callPromising: every session call goes
// through pyCall.

/* global loadPyodide, importScripts */
const CACHE_NAME = 'voxtral-shards-v1';
const PROGRESS_EVERY_MS = 100;
const KEEP_RECEIVED_SAMPLES = 16000 * 60 * 30;  // the last recording is kept (for its WAV download) up to 30 min

// The compute backend is this one parameter. Each entry prepares what the Python side needs
// before `ASRPipeline(..., backend=name)` runs and returns a report for the page (or throws); the
// label is what the page shows.
const BACKENDS = {
  numpy: {
    label: 'numpy (CPU, float32, inside Pyodide)',
    async prepare() { return null; },
  },
  webgpu: {
    label: 'WebGPU (WGSL kernels)',
    async prepare(msg) {
      if (!self.navigator.gpu) throw new Error('this browser has no WebGPU (navigator.gpu is missing)');
      if (!JSPI) throw new Error('this browser lacks JavaScript Promise Integration (JSPI), which the WebGPU backend needs to wait for the GPU');
      try {
        importScripts('/gpu-host.js');
      } catch (e) {
        throw new Error('the WebGPU helper /gpu-host.js could not be loaded');
      }
      const gpu = await self.VoxtralGPU.create({ heap: () => pyodide._module.HEAPU8 });
      // "auto" does not take a software adapter (SwiftShader: ~20x slower than numpy here), as the
      // native CLI's auto does not take lavapipe; ?backend=webgpu still forces it.
      const desc = JSON.parse(gpu.describe());
      if (msg.backend !== 'webgpu' && desc.isFallbackAdapter) {
        gpu.device.destroy();
        throw Object.assign(new Error(`this browser's WebGPU adapter (${desc.name}) is a software fallback, `
          + 'slower than numpy here (add ?backend=webgpu to use it anyway)'), { report: null });
      }
      const report = JSON.parse(await pyCall(session.setup_webgpu, gpu,
        JSON.stringify({ force_fail: msg.selftest === 'fail', subgroups: msg.subgroups !== false })));
      if (!report.ok) throw Object.assign(new Error(report.message || 'the WebGPU self-test failed'), { report });
      return report;
    },
  },
};
// JavaScript Promise Integration: lets Python block on a Promise (pyodide.ffi.run_sync).
const JSPI = typeof WebAssembly === 'object' && 'Suspending' in WebAssembly;

let pyodide = null;
let session = null;
let backendName = 'numpy';
let queue = Promise.resolve();
// The current/last live session's samples, copied into 10 s blocks: kept as the 80 ms pieces they
// arrive in, each its own small ArrayBuffer, they cost ~25% more than the samples themselves.
const RECEIVED_BLOCK = 16000 * 10;
let received = [];   // full Float32Array blocks, then the one being filled
let receivedCount = 0;
let liveOn = false;
let keepReceived = true;  // the page's ?keep_recording=0 turns the copy off

const post = (msg, transfer) => self.postMessage(msg, transfer || []);
// A call into the Python session that may wait for the GPU (see the header).
const pyCall = (fn, ...args) => (JSPI ? fn.callPromising(...args) : Promise.resolve(fn(...args)));
const now = () => performance.now();

function errorText(e) {
  // A Python exception's message is its whole traceback; the last line says what went wrong.
  const msg = (e && e.message) ? String(e.message) : String(e);
  if (e && e.type) {
    const lines = msg.trim().split('\n');
    return lines[lines.length - 1].replace(/^[\w.]+Error: /, (m) => m.startsWith('voxtral') ? '' : m);
  }
  return msg;
}

function enqueue(what, fn) {
  queue = queue.then(fn).catch((e) => {
    console.error(e);
    post({ type: 'error', where: what, message: errorText(e) });
  });
  return queue;
}

async function init(msg) {
  const t0 = now();
  const requested = msg.backend || 'auto';
  if (requested !== 'auto' && !BACKENDS[requested]) {
    throw new Error(`unknown backend "${requested}" (known: auto, ${Object.keys(BACKENDS).join(', ')})`);
  }
  post({ type: 'status', stage: 'runtime', text: 'loading the Python runtime (Pyodide) ...' });
  try {
    importScripts(msg.indexURL + 'pyodide.js');
  } catch (e) {
    throw new Error('the Pyodide runtime is missing on the server: run `python scripts/fetch_web_assets.py` (or bash scripts/setup.sh) and restart voxtral serve');
  }
  pyodide = await loadPyodide({ indexURL: msg.indexURL, stdout: (s) => console.log(s), stderr: (s) => console.warn(s) });
  post({ type: 'status', stage: 'runtime', text: 'loading numpy ...' });
  await pyodide.loadPackage('numpy', { messageCallback: () => {} });
  post({ type: 'status', stage: 'runtime', text: 'installing the voxtral package ...' });
  const resp = await fetch(msg.packageURL, { cache: 'no-cache' });
  if (!resp.ok) throw new Error(`could not fetch the voxtral package (${resp.status} ${msg.packageURL})`);
  pyodide.FS.writeFile('/tmp/voxtral.zip', new Uint8Array(await resp.arrayBuffer()));
  pyodide.runPython(`
import sys, zipfile, shutil
shutil.rmtree('/home/pyodide/voxtral-pkg', ignore_errors=True)
zipfile.ZipFile('/tmp/voxtral.zip').extractall('/home/pyodide/voxtral-pkg')
sys.path.insert(0, '/home/pyodide/voxtral-pkg')
`);
  session = pyodide.runPython('from voxtral.browser import Session\nSession()');
  const versions = pyodide.runPython('import sys, numpy; f"Python {sys.version.split()[0]}, numpy {numpy.__version__}"');
  // WebGPU first when asked for (or by default), numpy when it is missing or fails its self-test
  let gpu = null;
  let fallback = null;
  backendName = 'numpy';
  if (requested === 'webgpu' || requested === 'auto') {
    post({ type: 'status', stage: 'runtime', text: 'starting WebGPU and self-testing its kernels ...' });
    const t1 = now();
    try {
      gpu = await BACKENDS.webgpu.prepare(msg);
      gpu.ms = Math.round(now() - t1);
      backendName = 'webgpu';
    } catch (e) {
      gpu = e.report || null;
      fallback = { requested, reason: errorText(e) };
      console.warn('WebGPU backend unavailable:', e);
    }
  }
  post({ type: 'ready', backend: backendName, requested, backendLabel: BACKENDS[backendName].label, gpu, fallback,
         versions, jspi: JSPI, pyodide: pyodide.version, initMs: Math.round(now() - t0) });
}

// ---- shards: Cache Storage first, else the network with byte-level progress ----

function cacheKey(shard) {
  return new URL(shard.url + '?sha256=' + shard.sha256, self.location.origin).href;
}

async function openCache() {
  try {
    return self.caches ? await self.caches.open(CACHE_NAME) : null;
  } catch (e) {
    return null;  // e.g. storage disabled: just download every time
  }
}

async function sha256Hex(u8) {
  const d = await crypto.subtle.digest('SHA-256', u8);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, '0')).join('');
}

// Posts the ASR page's shardProgress messages; the TTS part passes its own reporter.
function asrShardProgress(index, shard) {
  return (loaded, source, done) =>
    post({ type: 'shardProgress', index, loaded, total: shard.size, source, done: !!done });
}

// One shard: from Cache Storage when there, else fetched with byte progress, sha256-checked and
// cached. progress(loaded, source, done) reports it.
async function downloadShard(shard, index, cache, progress = asrShardProgress(index, shard)) {
  if (cache) {
    const hit = await cache.match(cacheKey(shard));
    if (hit) {
      const u8 = new Uint8Array(await hit.arrayBuffer());
      if (u8.length === shard.size) {
        progress(u8.length, 'cache', true);
        return { u8, source: 'cache' };
      }
    }
  }
  const resp = await fetch(shard.url, { cache: 'no-store' });
  if (!resp.ok) throw new Error(`download of ${shard.name} failed: HTTP ${resp.status}`);
  const u8 = new Uint8Array(shard.size);
  const reader = resp.body.getReader();
  let loaded = 0;
  let last = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.length > shard.size) throw new Error(`${shard.name}: the server sent more than the manifest's ${shard.size} bytes`);
    u8.set(value, loaded);
    loaded += value.length;
    if (now() - last > PROGRESS_EVERY_MS) {
      last = now();
      progress(loaded, 'network');
    }
  }
  if (loaded !== shard.size) throw new Error(`${shard.name}: got ${loaded} bytes, expected ${shard.size} (interrupted download?)`);
  const got = await sha256Hex(u8);
  if (got !== shard.sha256) throw new Error(`${shard.name}: sha256 mismatch (got ${got.slice(0, 12)}..., expected ${shard.sha256.slice(0, 12)}...): bad download or stale manifest`);
  progress(loaded, 'network', true);
  if (cache) {
    try {
      await cache.put(cacheKey(shard), new Response(u8, {
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(u8.length) } }));
    } catch (e) {
      const quota = e && (e.name === 'QuotaExceededError' || /quota/i.test(String(e.message)));
      post({ type: 'cacheWarning', message: quota
        ? `browser storage is full (quota exceeded) while caching ${shard.name}: the model runs now but will be downloaded again next time`
        : `could not cache ${shard.name} (${e.message || e}); it will be downloaded again next time` });
    }
  }
  return { u8, source: 'network' };
}

async function fetchText(url) {
  const r = await fetch(url, { cache: 'no-cache' });
  if (!r.ok) throw new Error(`could not fetch ${url}: HTTP ${r.status}`);
  return r.text();
}

async function load(model) {
  const t0 = now();
  const cache = await openCache();
  const shards = [];
  const sources = [];
  for (let i = 0; i < model.shards.length; i++) {
    const { u8, source } = await downloadShard(model.shards[i], i, cache);
    shards.push(u8);
    sources.push(source);
  }
  const tekken = model.files && model.files['tekken.json'] ? await fetchText(model.files['tekken.json']) : null;
  const downloadMs = now() - t0;
  await enqueue('load', async () => {
    if (!session) throw new Error('the Python runtime did not start');
    post({ type: 'status', stage: 'model', text: 'building the model in Python ...' });
    const t1 = now();
    const info = JSON.parse(await pyCall(session.load, shards, model.id, backendName, tekken));
    // Python has its own copy of every tensor now (and dropped its references to the shards):
    // the shards, the model's whole size, can be garbage-collected.
    shards.length = 0;
    post({ type: 'loaded', info, model: model.id, sources, downloadMs: Math.round(downloadMs),
           buildMs: Math.round(now() - t1), loadMs: Math.round(now() - t0) });
  });
}

// ---- transcription ----

function onTextCallback() {
  return (text) => post({ type: 'partial', text });
}

function onProgressCallback() {
  let last = 0;
  return (done, total) => {
    if (now() - last > PROGRESS_EVERY_MS || done >= total) {
      last = now();
      post({ type: 'fileProgress', done, total });
    }
  };
}

// A File read by byte ranges on demand, so an hours-long WAV is never held whole: neither here nor
// in the wasm heap (2 GiB at most), where Python decodes one second at a time.
function fileReader(file) {
  const sync = new FileReaderSync();
  return { size: file.size, read: (offset, n) => new Uint8Array(sync.readAsArrayBuffer(file.slice(offset, offset + n))) };
}

function transcribeFile(msg) {
  return enqueue('file', async () => {
    const t0 = now();
    const out = msg.samples
      ? await pyCall(session.transcribe_samples, msg.samples, onTextCallback(), onProgressCallback())
      : await pyCall(session.transcribe_file, fileReader(msg.file), onTextCallback(), onProgressCallback(), msg.name);
    post({ type: 'result', source: 'file', name: msg.name, result: JSON.parse(out), wallMs: Math.round(now() - t0) });
  });
}

self.onmessage = (e) => {
  const msg = e.data;
  switch (msg.type) {
    case 'init':
      enqueue('init', () => init(msg));
      break;
    case 'load':
      load(msg.model).catch((err) => post({ type: 'error', where: 'load', message: errorText(err) }));
      break;
    case 'transcribeFile':
    case 'transcribeSamples':
      transcribeFile(msg);
      break;
    case 'liveStart':
      received = [];
      receivedCount = 0;
      liveOn = true;
      keepReceived = msg.keep !== false;
      enqueue('live', async () => { await pyCall(session.live_start); });
      break;
    case 'liveAudio':
      if (!liveOn) break;
      if (keepReceived && receivedCount + msg.samples.length <= KEEP_RECEIVED_SAMPLES) {
        let x = msg.samples;
        while (x.length) {
          const at = receivedCount % RECEIVED_BLOCK;
          if (at === 0) received.push(new Float32Array(RECEIVED_BLOCK));
          const n = Math.min(x.length, RECEIVED_BLOCK - at);
          received[received.length - 1].set(x.subarray(0, n), at);
          receivedCount += n;
          x = x.subarray(n);
        }
      }
      enqueue('live', async () => {
        const fig = JSON.parse(await pyCall(session.live_push, msg.samples));
        post({ type: 'liveFigures', ...fig });
        if (fig.text) post({ type: 'partial', text: fig.text });
      });
      break;
    case 'liveStop':
      liveOn = false;
      enqueue('live', async () => {
        const r = JSON.parse(await pyCall(session.live_finish));
        if (r.tail) post({ type: 'partial', text: r.tail });
        post({ type: 'result', source: 'mic', result: r });
      });
      break;
    case 'bench':
      enqueue('bench', async () => {
        post({ type: 'status', stage: 'model', text: `benchmark: building a random ${msg.preset} model and timing it ...` });
        const t0 = now();
        const r = JSON.parse(msg.kind === 'tts'
          ? await pyCall(session.bench_tts, msg.preset, msg.frames, backendName)
          : await pyCall(session.bench_asr, msg.preset, msg.seconds, backendName, msg.bandwidth || null,
                         msg.kernels || null));
        r.wall_s = Math.round(now() - t0) / 1000;
        r.wasm_heap_mb = Math.round(pyodide._module.HEAPU8.length / 2 ** 20);  // Python's memory (peak: it never shrinks)
        post({ type: 'benchResult', result: r });
      });
      break;
    case 'getReceivedAudio': {
      const all = new Float32Array(receivedCount);
      let off = 0;
      for (const p of received) {
        const n = Math.min(p.length, receivedCount - off);
        all.set(p.subarray(0, n), off);
        off += n;
      }
      post({ type: 'receivedAudio', samples: all, id: msg.id }, [all.buffer]);
      break;
    }
    default:
      post({ type: 'error', where: 'worker', message: `unknown message ${msg.type}` });
  }
};

// ---- text-to-speech tab: its messages (ttsLoad, ttsSpeak) are handled in tts-worker.js ----
importScripts('/tts-worker.js');
