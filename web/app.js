// The page: model loading (with progress and Cache Storage), microphone and file transcription, the
// transcript with timestamps and its downloads, live figures. All Python work is in worker.js.
//
// The backend runs as ?backend=NAME says: "auto" (the default: WebGPU when the browser has it and
// the worker's kernel self-test passes, else numpy with a message saying why), "webgpu" or "numpy".
// ?selftest=fail forces the WebGPU self-test to fail (to see the fallback); ?subgroups=0 keeps the
// WebGPU kernels off subgroup operations; ?keep_recording=0 keeps no copy of the microphone audio.
// For tests, window.voxtralApp exposes the state and the exact 16 kHz samples the worker received.
//
// Benchmark mode, ?bench=asr&preset=tiny|full&seconds=16[&bandwidth=GBS][&kernels=attn_rows=0] or
// ?bench=tts&preset=tiny|full&frames=50: once the runtime is up, the worker runs `voxtral bench
// asr`'s (or `bench tts`'s) passes on a random model built in Python, the page shows the JSON and
// POSTs it to /result (where a benchmark driver such as gpu-browser's run_page.py collects it;
// `voxtral serve` answers 405, which is ignored).
'use strict';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const BACKEND = params.get('backend') || 'auto';
const SELFTEST = params.get('selftest') || '';
const SUBGROUPS = params.get('subgroups') !== '0';  // ?subgroups=0: WebGPU kernels without subgroups
const CACHE_NAME = 'voxtral-shards-v1';   // the worker writes it; keep the names in step
const PIECE_SAMPLES = 1280;               // 80 ms at 16 kHz: one audio token
const BENCH = params.get('bench');        // "asr" | "tts": benchmark mode (see the header)
// ?keep_recording=0: the worker keeps no copy of the microphone audio (no WAV download), so a long
// recording's memory is the model's alone (the long-run test measures it this way).
const KEEP_RECORDING = params.get('keep_recording') !== '0';

const state = {
  info: null, model: null, runtimeReady: false, loaded: false, loading: false, busy: false,
  recording: false, result: null, resultName: 'transcript', streamedText: '', loadFigures: null,
  shardSources: [], backend: null, gpu: null,
  sentSamples: 0,  // 16 kHz samples of the current recording handed to the worker
  benchReady: null, benchResult: null,  // benchmark mode (?bench=asr|tts)
};
const worker = new Worker('/worker.js');
let rec = null;          // {stream, ctx, node, src}
let pendingFile = null;  // the WAV File being read by Python (to retry via decodeAudioData)
// Files other than WAV are decoded whole by the browser (decodeAudioData holds the file and its
// decoded samples, at the file's rate, at once), so they are refused above this size with a message
// instead of exhausting the tab's memory; a WAV of any length is read piece by piece.
const MAX_DECODE_BYTES = 64 * 2 ** 20;
const waiters = {};      // id -> resolve, for worker replies

// ---------------------------------------------------------------- small helpers

function fmtBytes(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(2) + ' GB';
  if (n >= 1e6) return (n / 1e6).toFixed(1) + ' MB';
  if (n >= 1e3) return (n / 1e3).toFixed(0) + ' KB';
  return n + ' B';
}

function fmtClock(t) {
  const m = Math.floor(t / 60), s = t - 60 * m;
  return `${String(m).padStart(2, '0')}:${s.toFixed(2).padStart(5, '0')}`;
}

function showMessage(kind, text, id) {
  const box = $('messages');
  let el = id ? document.getElementById('msg-' + id) : null;
  if (!el) {
    el = document.createElement('div');
    if (id) el.id = 'msg-' + id;
    box.appendChild(el);
  }
  el.className = 'msg ' + kind;
  el.textContent = text;
  const close = document.createElement('button');
  close.textContent = 'dismiss';
  close.onclick = () => el.remove();
  el.appendChild(close);
  return el;
}

function clearMessage(id) {
  const el = document.getElementById('msg-' + id);
  if (el) el.remove();
}

function setBody(attr, value) { document.body.dataset[attr] = value; }

function updateButtons() {
  const ready = state.runtimeReady && state.loaded && !state.busy;
  $('record-btn').disabled = !ready || state.recording;
  $('stop-btn').disabled = !state.recording;
  $('load-btn').disabled = !state.model || state.loading || state.recording || state.busy
    || state.model.kind !== 'asr';
  const has = !!state.result;
  for (const id of ['copy-btn', 'dl-txt', 'dl-srt', 'dl-vtt']) $(id).disabled = !has;
}

// ---------------------------------------------------------------- startup

async function boot() {
  worker.onmessage = onWorkerMessage;
  worker.onerror = (e) => showMessage('error', `The worker failed: ${e.message || e}`, 'worker');
  $('backend-label').textContent = BACKEND;
  checkWebGPU();
  try {
    const r = await fetch('/api/info', { cache: 'no-store' });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    state.info = await r.json();
  } catch (e) {
    showMessage('error', `Cannot reach the voxtral server (${e.message}). Is \`voxtral serve\` running?`, 'info');
    return;
  }
  const info = state.info;
  if (!info.pyodide.ready) {
    showMessage('error', `The server has no Pyodide runtime yet: run \`${info.pyodide.how_to_fetch}\`, then restart voxtral serve.`, 'pyodide');
  }
  if (info.demo) {
    $('demo-banner').hidden = false;
    $('how-to-weights').textContent = info.how_to_get_weights;
  }
  if (!BENCH || info.models.length) renderModels();
  worker.postMessage({ type: 'init', backend: BACKEND, selftest: SELFTEST, subgroups: SUBGROUPS,
                       indexURL: info.pyodide.index_url,
                       packageURL: info.package_url });
  if (!window.isSecureContext) {
    showMessage('warn', 'This page is not a secure context: the microphone and the shard cache need https:// or localhost.', 'secure');
  }
}

async function checkWebGPU() {
  const el = $('webgpu-status');
  if (!('gpu' in navigator)) {
    el.textContent = 'not available in this browser (fine: the numpy backend does not need it)';
    return;
  }
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) {
      el.textContent = 'no adapter (GPU blocked or missing; the numpy backend does not need it)';
      return;
    }
    const i = adapter.info || {};
    const fallback = i.isFallbackAdapter || adapter.isFallbackAdapter;
    const name = [i.vendor, i.architecture, i.description].filter(Boolean).join(' ') || 'adapter';
    if (state.backend) return;  // the worker already said what it uses
    el.textContent = `available: ${name}${fallback ? ' (software fallback)' : ''}`
      + (BACKEND === 'numpy' ? ' - not used by this backend' : ' (self-testing the kernels ...)');
  } catch (e) {
    el.textContent = `error asking for an adapter (${e.message})`;
  }
}

function renderModels() {
  const sel = $('model-select');
  sel.innerHTML = '';
  for (const m of state.info.models) {
    const o = document.createElement('option');
    o.value = m.id;
    o.textContent = `${m.id} (${m.kind.toUpperCase()}${m.demo ? ', random-weight demo' : ''})`
      + (m.kind === 'asr' ? '' : ' - see the Text to speech tab');
    sel.appendChild(o);
  }
  const firstAsr = state.info.models.find((m) => m.kind === 'asr');
  if (firstAsr) sel.value = firstAsr.id;
  sel.onchange = () => selectModel(sel.value);
  if (!state.info.models.length) showMessage('error', 'The server offers no model.', 'nomodel');
  else selectModel(sel.value);
}

function selectModel(id) {
  state.model = state.info.models.find((m) => m.id === id) || null;
  if (!state.model) return;
  $('model-size').textContent = `${state.model.shards.length} shard(s), ${fmtBytes(state.model.total_size)}`;
  renderShardRows();
  refreshCacheStatus();
  updateButtons();
}

function renderShardRows() {
  const list = $('shard-list');
  list.innerHTML = '';
  state.model.shards.forEach((s, i) => {
    const row = document.createElement('div');
    row.className = 'progress shard';
    row.id = 'shard-' + i;
    row.hidden = true;
    row.innerHTML = `<div class="progress-label"><span>${s.name}</span><span class="bytes"></span></div>`
      + '<div class="bar"><div class="fill"></div></div>';
    list.appendChild(row);
  });
}

function cacheKey(shard) {
  return new URL(shard.url + '?sha256=' + shard.sha256, location.origin).href;
}

async function refreshCacheStatus() {
  const m = state.model;
  let cachedBytes = 0, cachedCount = 0;
  try {
    const cache = await caches.open(CACHE_NAME);
    for (const s of m.shards) {
      if (await cache.match(cacheKey(s))) { cachedCount++; cachedBytes += s.size; }
    }
  } catch (e) { /* no Cache Storage: shown below */ }
  const all = cachedCount === m.shards.length;
  $('load-btn').textContent = all ? 'Load model (from the browser cache)'
    : `Load model from server (${fmtBytes(m.total_size - cachedBytes)})`;
  let usage = `${cachedCount} of ${m.shards.length} shards of this model cached`;
  try {
    const est = await navigator.storage.estimate();
    usage += `; this site uses ${fmtBytes(est.usage || 0)} of ${fmtBytes(est.quota || 0)} allowed`;
  } catch (e) { /* estimate() missing */ }
  if (!window.caches) usage = 'Cache Storage is not available here: every load downloads';
  $('cache-usage').textContent = usage;
}

// ---------------------------------------------------------------- model loading

function loadModel() {
  if (!state.model || state.loading) return;
  state.loading = true;
  state.loaded = false;
  state.shardSources = [];
  setBody('model', 'loading');
  $('overall-progress').hidden = false;
  state.model.shards.forEach((s, i) => {
    const row = $('shard-' + i);
    row.hidden = false;
    row.querySelector('.fill').style.width = '0%';
    row.querySelector('.fill').className = 'fill';
    row.querySelector('.bytes').textContent = `0 / ${fmtBytes(s.size)}`;
  });
  state.progress = state.model.shards.map(() => 0);
  updateOverall();
  $('load-note').textContent = state.runtimeReady ? 'loading ...' : 'loading (the Python runtime is still starting) ...';
  clearMessage('load');
  updateButtons();
  worker.postMessage({ type: 'load', model: state.model });
}

function updateOverall() {
  const done = state.progress.reduce((a, b) => a + b, 0);
  const total = state.model.total_size;
  $('overall-fill').style.width = `${total ? (100 * done / total).toFixed(1) : 100}%`;
  $('overall-fill').classList.toggle('done', done >= total);
  $('overall-bytes').textContent = `${fmtBytes(done)} / ${fmtBytes(total)}`;
}

function onShardProgress(msg) {
  const row = $('shard-' + msg.index);
  const s = state.model.shards[msg.index];
  state.progress[msg.index] = msg.loaded;
  const fill = row.querySelector('.fill');
  fill.style.width = `${(100 * msg.loaded / msg.total).toFixed(1)}%`;
  if (msg.source === 'cache') fill.classList.add('cache');
  if (msg.done) fill.classList.add('done');
  row.querySelector('.bytes').textContent =
    `${fmtBytes(msg.loaded)} / ${fmtBytes(s.size)} ${msg.source === 'cache' ? '(browser cache)' : '(server)'}`;
  updateOverall();
}

function onLoaded(msg) {
  state.loading = false;
  state.loaded = true;
  state.shardSources = msg.sources;
  setBody('model', 'loaded');
  const fromCache = msg.sources.every((s) => s === 'cache');
  const fromNet = msg.sources.filter((s) => s === 'network').length;
  state.loadFigures = msg;
  $('load-note').textContent = (fromCache ? 'Loaded from the browser cache (no download)'
    : `Downloaded ${fromNet} shard(s) from the server`) + ` in ${(msg.loadMs / 1000).toFixed(2)} s`
    + ` (${msg.info.dim}-dim, ${msg.info.n_layers} layers, tokenizer: ${msg.info.tokenizer}).`;
  document.body.dataset.loadSource = fromCache ? 'cache' : 'network';
  $('fig-load').textContent = `${(msg.loadMs / 1000).toFixed(2)} s (shards ${(msg.downloadMs / 1000).toFixed(2)} s`
    + `, model build ${(msg.buildMs / 1000).toFixed(2)} s)`;
  $('mic-status').textContent = 'ready';
  if ($('transcript').dataset.state === 'empty') $('transcript').dataset.state = 'ready';
  refreshCacheStatus();
  updateButtons();
}

// ---------------------------------------------------------------- transcript display

function startTranscript(label) {
  state.streamedText = '';
  state.result = null;
  const t = $('transcript');
  t.textContent = '';
  t.dataset.state = 'running';
  t.dataset.tokens = '[]';
  t.dataset.source = label;
  $('cues').innerHTML = '';
  for (const id of ['fig-audio', 'fig-compute', 'fig-rtf', 'fig-steps']) $(id).textContent = '-';
  updateButtons();
}

function onPartial(text) {
  state.streamedText += text;
  $('transcript').textContent = state.streamedText;
}

function showFigures(t) {
  if (t.audio_s != null) $('fig-audio').textContent = `${Number(t.audio_s).toFixed(2)} s`;
  if (t.compute_s != null) $('fig-compute').textContent = `${Number(t.compute_s).toFixed(2)} s`;
  if (t.rtf != null) $('fig-rtf').textContent = `${Number(t.rtf).toFixed(3)} (${t.rtf < 1 ? 'faster' : 'slower'} than real time)`;
  if (t.steps_per_s != null) $('fig-steps').textContent = `${Number(t.steps_per_s).toFixed(1)} (${t.steps} steps)`;
}

function parseCues(vtt) {
  const cues = [];
  const blocks = vtt.split(/\n\n+/);
  for (const b of blocks) {
    const lines = b.split('\n');
    const i = lines.findIndex((l) => l.includes('-->'));
    if (i < 0) continue;
    const [a, z] = lines[i].split('-->').map((x) => x.trim());
    cues.push({ start: a, end: z, text: lines.slice(i + 1).join(' ') });
  }
  return cues;
}

function onResult(msg) {
  const r = msg.result;
  state.result = r;
  state.busy = false;
  state.resultName = (msg.name || (msg.source === 'mic' ? 'recording' : 'transcript')).replace(/\.[^.]+$/, '');
  const t = $('transcript');
  t.textContent = r.text;
  t.dataset.tokens = JSON.stringify(r.tokens);
  t.dataset.state = 'done';
  t.dataset.source = msg.source;
  const cues = $('cues');
  cues.innerHTML = '';
  for (const c of parseCues(r.vtt)) {
    const row = document.createElement('div');
    row.className = 'cue';
    const time = document.createElement('time');
    time.textContent = `${c.start.slice(3, 11)} - ${c.end.slice(3, 11)}`;
    const span = document.createElement('span');
    span.textContent = c.text;
    row.append(time, span);
    cues.appendChild(row);
  }
  showFigures(r.timings);
  if (msg.source === 'file') {
    $('file-fill').style.width = '100%';
    $('file-fill').classList.add('done');
    $('file-done').textContent = `done in ${(msg.wallMs / 1000).toFixed(2)} s`;
  } else {
    $('mic-status').textContent = `stopped (${r.timings.audio_s.toFixed(2)} s of audio)`;
    $('save-rec-btn').disabled = !KEEP_RECORDING;
  }
  pendingFile = null;
  updateButtons();
}

function download(name, text, type) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = name;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

async function copyText() {
  const text = state.result ? state.result.text : '';
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {
    const ta = document.createElement('textarea');
    ta.value = text;
    document.body.appendChild(ta);
    ta.select();
    document.execCommand('copy');
    ta.remove();
  }
  $('copy-btn').textContent = 'Copied';
  setTimeout(() => { $('copy-btn').textContent = 'Copy'; }, 1200);
}

// ---------------------------------------------------------------- microphone

async function startRecording() {
  if (!state.loaded || state.recording) return;
  clearMessage('mic');
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showMessage('error', 'This browser gives no microphone access here (it needs https:// or localhost).', 'mic');
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
  } catch (e) {
    const why = e.name === 'NotAllowedError' ? 'permission was denied (allow the microphone for this site)'
      : e.name === 'NotFoundError' ? 'no microphone was found' : `${e.name}: ${e.message}`;
    showMessage('error', `Cannot record: ${why}.`, 'mic');
    return;
  }
  let ctx;
  try {
    ctx = new AudioContext({ sampleRate: 16000 });
  } catch (e) {
    ctx = new AudioContext();  // the worklet resamples
  }
  await ctx.audioWorklet.addModule('/capture-worklet.js');
  const src = ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(ctx, 'voxtral-capture', {
    numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
    processorOptions: { pieceSamples: PIECE_SAMPLES } });
  rec = { stream, ctx, node, src, flushed: null };
  node.port.onmessage = (e) => {
    const d = e.data;
    if (d.flushed) { if (rec && rec.flushed) rec.flushed(); return; }
    state.sentSamples += d.samples.length;
    worker.postMessage({ type: 'liveAudio', samples: d.samples }, [d.samples.buffer]);
    showLevel(d.rms);
  };
  startTranscript('mic');
  state.sentSamples = 0;
  worker.postMessage({ type: 'liveStart', keep: KEEP_RECORDING });
  src.connect(node);
  node.connect(ctx.destination);  // silent output keeps the node pulled by the graph
  if (ctx.state === 'suspended') await ctx.resume();
  state.recording = true;
  setBody('recording', 'on');
  $('mic-status').textContent = `recording (${ctx.sampleRate} Hz context${ctx.sampleRate === 16000 ? '' : ', resampled to 16 kHz'}) ...`;
  updateButtons();
}

function showLevel(rms) {
  const db = 20 * Math.log10(Math.max(rms, 1e-6));
  const level = Math.min(1, Math.max(0, (db + 60) / 60));
  $('level-fill').style.width = `${(100 * level).toFixed(0)}%`;
}

async function stopRecording() {
  if (!rec) return;
  const r = rec;
  state.recording = false;
  updateButtons();
  const flushed = new Promise((resolve) => { r.flushed = resolve; setTimeout(resolve, 1000); });
  r.node.port.postMessage('flush');
  await flushed;
  r.stream.getTracks().forEach((t) => t.stop());
  r.src.disconnect();
  r.node.disconnect();
  await r.ctx.close();
  rec = null;
  showLevel(0);
  setBody('recording', 'off');
  state.busy = true;
  $('mic-status').textContent = 'finishing ...';
  worker.postMessage({ type: 'liveStop' });
  updateButtons();
}

function receivedAudio() {
  const id = Math.random().toString(36).slice(2);
  return new Promise((resolve) => {
    waiters[id] = resolve;
    worker.postMessage({ type: 'getReceivedAudio', id });
  });
}

function encodeWavFloat32(samples, rate) {
  // RIFF/WAVE, IEEE float (tag 3), mono: fmt chunk with cbSize 0, a fact chunk, then the data.
  const dataBytes = samples.length * 4;
  const buf = new ArrayBuffer(12 + 26 + 12 + 8 + dataBytes);
  const v = new DataView(buf);
  let p = 0;
  const str = (s) => { for (const c of s) v.setUint8(p++, c.charCodeAt(0)); };
  const u32 = (x) => { v.setUint32(p, x, true); p += 4; };
  const u16 = (x) => { v.setUint16(p, x, true); p += 2; };
  str('RIFF'); u32(buf.byteLength - 8); str('WAVE');
  str('fmt '); u32(18); u16(3); u16(1); u32(rate); u32(rate * 4); u16(4); u16(32); u16(0);
  str('fact'); u32(4); u32(samples.length);
  str('data'); u32(dataBytes);
  // the data starts at byte 58, not 4-aligned: copy bytes (every browser is little-endian)
  new Uint8Array(buf, p).set(new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength));
  return buf;
}

async function saveRecording() {
  const s = await receivedAudio();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([encodeWavFloat32(s, 16000)], { type: 'audio/wav' }));
  a.download = 'recording-16khz.wav';
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

// ---------------------------------------------------------------- files

async function isWav(file) {
  const h = new Uint8Array(await file.slice(0, 12).arrayBuffer());
  const s = (a, b) => String.fromCharCode(...h.slice(a, b));
  return h.length >= 12 && (s(0, 4) === 'RIFF' || s(0, 4) === 'RF64') && s(8, 12) === 'WAVE';
}

async function decodeInBrowser(file) {
  if (file.size > MAX_DECODE_BYTES) {
    throw new Error(`"${file.name}" is too large for the browser's audio decoder (${fmtBytes(file.size)}; `
      + `files other than WAV are decoded whole, up to ${fmtBytes(MAX_DECODE_BYTES)}). Convert it to WAV, `
      + `which is read piece by piece whatever its length (ffmpeg -i "${file.name}" -ac 1 -ar 16000 out.wav), `
      + 'or use voxtral transcribe');
  }
  // decodeAudioData resamples to the context's rate: a 16 kHz offline context gives what we need.
  const ctx = new OfflineAudioContext(1, 1, 16000);
  let audio;
  try {
    audio = await ctx.decodeAudioData(await file.arrayBuffer());
  } catch (e) {
    throw new Error(`"${file.name}" could not be decoded as audio by this browser (not an audio file, or an unsupported format)`);
  }
  if (audio.numberOfChannels === 1) return audio.getChannelData(0);  // no second copy
  const n = audio.length;
  const mono = new Float32Array(n);
  for (let c = 0; c < audio.numberOfChannels; c++) {
    const ch = audio.getChannelData(c);
    for (let i = 0; i < n; i++) mono[i] += ch[i] / audio.numberOfChannels;
  }
  return mono;
}

async function handleFile(file) {
  clearMessage('file');
  if (!file) return;
  if (!state.loaded) {
    showMessage('error', 'Load the model first (button "Load model" above), then drop the file again.', 'file');
    return;
  }
  if (state.busy || state.recording) {
    showMessage('warn', 'Busy: wait for the current transcription to finish.', 'file');
    return;
  }
  if (file.size === 0) {
    showMessage('error', `"${file.name}" is empty.`, 'file');
    return;
  }
  state.busy = true;
  startTranscript('file');
  $('file-progress').hidden = false;
  $('file-name').textContent = file.name;
  $('file-done').textContent = '';
  $('file-fill').style.width = '0%';
  $('file-fill').className = 'fill';
  updateButtons();
  let wav;
  try {
    wav = await isWav(file);
  } catch (e) {
    failFile(`"${file.name}" could not be read (${e.message})`);
    return;
  }
  if (wav) {
    // the File itself goes to the worker (no copy): Python reads it in pieces
    pendingFile = file;
    worker.postMessage({ type: 'transcribeFile', name: file.name, file });
    return;
  }
  try {
    const samples = await decodeInBrowser(file);
    worker.postMessage({ type: 'transcribeSamples', name: file.name, samples }, [samples.buffer]);
  } catch (e) {
    failFile(e.message);
  }
}

function failFile(message) {
  state.busy = false;
  pendingFile = null;
  $('transcript').dataset.state = 'error';
  $('file-done').textContent = 'failed';
  showMessage('error', message, 'file');
  updateButtons();
}

async function onFileError(msg) {
  // A WAV that Python cannot read (a compressed encoding, say): let the browser try it.
  const p = pendingFile;
  pendingFile = null;
  if (p && p.size <= MAX_DECODE_BYTES) {
    try {
      const samples = await decodeInBrowser(p);
      worker.postMessage({ type: 'transcribeSamples', name: p.name, samples }, [samples.buffer]);
      return;
    } catch (e) { /* fall through to Python's message, which names the problem */ }
  }
  failFile(`Cannot transcribe this file: ${msg.message}`);
}

// ---------------------------------------------------------------- worker messages

function onWorkerMessage(e) {
  const msg = e.data;
  switch (msg.type) {
    case 'status':
      if (msg.stage === 'runtime') $('runtime-status').textContent = msg.text;
      else $('load-note').textContent = msg.text;
      break;
    case 'ready':
      state.runtimeReady = true;
      setBody('runtime', 'ready');
      $('runtime-status').textContent = `ready in ${(msg.initMs / 1000).toFixed(1)} s (Pyodide ${msg.pyodide}, ${msg.versions})`;
      $('backend-label').textContent = msg.backendLabel;
      document.body.dataset.backend = msg.backend;
      showBackend(msg);
      updateButtons();
      if (BENCH) startBench(msg);
      break;
    case 'benchResult':
      finishBench(msg.result);
      break;
    case 'shardProgress':
      onShardProgress(msg);
      break;
    case 'cacheWarning':
      showMessage('warn', msg.message, 'cache');
      break;
    case 'loaded':
      onLoaded(msg);
      break;
    case 'partial':
      onPartial(msg.text);
      break;
    case 'fileProgress':
      $('file-fill').style.width = `${(100 * msg.done / Math.max(msg.total, 1e-9)).toFixed(1)}%`;
      $('file-done').textContent = `${msg.done.toFixed(1)} / ${msg.total.toFixed(1)} s`;
      break;
    case 'liveFigures':
      showFigures(msg);
      break;
    case 'result':
      onResult(msg);
      break;
    case 'receivedAudio':
      if (waiters[msg.id]) { waiters[msg.id](msg.samples); delete waiters[msg.id]; }
      break;
    case 'error':
      onError(msg);
      break;
    default:
      break;
  }
}

function yesNo(on) { return on ? 'yes' : 'no'; }

// What the worker chose: the backend, the adapter and kernel variant, or why WebGPU is not used.
function showBackend(msg) {
  state.backend = msg.backend;
  state.gpu = msg.gpu;
  const el = $('webgpu-status');
  const g = msg.gpu;
  if (msg.backend === 'webgpu') {
    document.body.dataset.gpuSubgroups = yesNo(g.use_subgroups);
    document.body.dataset.gpuF16 = yesNo(g.use_shader_f16);
    el.textContent = `in use: ${g.adapter}; subgroups: ${yesNo(g.use_subgroups)}, shader-f16: ${yesNo(g.use_shader_f16)}`
      + `; kernel self-test passed in ${(g.ms / 1000).toFixed(1)} s`;
    el.title = `features: ${g.features.join(', ')}\nlimits: ${JSON.stringify(g.limits)}`
      + `\nattempts: ${JSON.stringify(g.attempts)}`;
    clearMessage('backend');
    return;
  }
  const f = msg.fallback;
  if (!f) return;  // numpy was asked for
  document.body.dataset.backendFallback = f.requested;
  el.textContent = `not used: ${f.reason}`;
  if (g && g.attempts) el.title = JSON.stringify(g.attempts);
  const kind = f.requested === 'webgpu' || (g && g.attempts && g.attempts.length) ? 'warn' : 'info';
  showMessage(kind, `WebGPU is not used: ${f.reason}. Running on the numpy backend (CPU) instead.`, 'backend');
}

function onError(msg) {
  if (BENCH && (msg.where === 'init' || msg.where === 'bench')) failBench(`${msg.where}: ${msg.message}`);
  if (msg.where === 'init') {
    setBody('runtime', 'error');
    $('runtime-status').textContent = 'failed';
    showMessage('error', `The Python runtime could not start: ${msg.message}`, 'init');
  } else if (msg.where === 'load') {
    state.loading = false;
    setBody('model', 'error');
    $('load-note').textContent = 'failed';
    showMessage('error', `Loading the model failed: ${msg.message}`, 'load');
  } else if (msg.where === 'file') {
    onFileError(msg);
  } else if (msg.where === 'live') {
    state.busy = false;
    if (rec) stopRecording();
    $('transcript').dataset.state = 'error';
    showMessage('error', `Live transcription failed: ${msg.message}`, 'mic');
  } else {
    showMessage('error', msg.message, msg.where);
  }
  updateButtons();
}

// ---------------------------------------------------------------- wiring

$('load-btn').onclick = loadModel;
$('clear-cache-btn').onclick = async () => {
  try {
    await caches.delete(CACHE_NAME);
    showMessage('info', 'The model cache was cleared: the next load downloads the shards again.', 'cache');
  } catch (e) {
    showMessage('error', `Could not clear the cache: ${e.message}`, 'cache');
  }
  if (state.model) refreshCacheStatus();
};
$('record-btn').onclick = startRecording;
$('stop-btn').onclick = stopRecording;
$('save-rec-btn').onclick = saveRecording;
$('copy-btn').onclick = copyText;
$('dl-txt').onclick = () => download(`${state.resultName}.txt`, state.result.text + '\n', 'text/plain');
$('dl-srt').onclick = () => download(`${state.resultName}.srt`, state.result.srt, 'application/x-subrip');
$('dl-vtt').onclick = () => download(`${state.resultName}.vtt`, state.result.vtt, 'text/vtt');
$('file-input').onchange = (e) => { handleFile(e.target.files[0]); e.target.value = ''; };
const dz = $('drop-zone');
dz.addEventListener('dragover', (e) => { e.preventDefault(); dz.classList.add('over'); });
dz.addEventListener('dragleave', () => dz.classList.remove('over'));
dz.addEventListener('drop', (e) => {
  e.preventDefault();
  dz.classList.remove('over');
  const f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
  if (f) handleFile(f);
});
// a file dropped outside the zone should not navigate away from the app
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', (e) => e.preventDefault());

// ---------------------------------------------------------------- benchmark mode

function postBenchResult(obj) {
  fetch('/result', { method: 'POST', body: JSON.stringify(obj) }).catch(() => {});
}

function showBench(text, stateName) {
  const card = $('bench-card');
  card.hidden = false;
  $('bench-output').textContent = text;
  setBody('bench', stateName);
}

function startBench(ready) {
  if (BENCH !== 'asr' && BENCH !== 'tts') {
    failBench(`unknown benchmark "${BENCH}" (known: asr, tts)`);
    return;
  }
  if (BACKEND !== 'auto' && ready.backend !== BACKEND) {
    failBench(`the ${BACKEND} backend is not available: ${ready.fallback ? ready.fallback.reason : 'unknown reason'}`);
    return;
  }
  const preset = params.get('preset') || 'tiny';
  state.benchReady = ready;
  if (BENCH === 'tts') {
    const frames = Number(params.get('frames') || 50);
    showBench(`running: TTS benchmark, ${preset} model, ${frames} frames, ${ready.backendLabel} ...`, 'running');
    worker.postMessage({ type: 'bench', kind: 'tts', preset, frames });
    return;
  }
  const seconds = Number(params.get('seconds') || 16);
  const bandwidth = params.get('bandwidth') ? Number(params.get('bandwidth')) : null;
  const kernels = params.get('kernels');  // A/B switches, e.g. attn_rows=0,attn_decode=v1
  showBench(`running: ASR benchmark, ${preset} model, ${seconds} s clip, ${ready.backendLabel} ...`, 'running');
  worker.postMessage({ type: 'bench', kind: 'asr', preset, seconds, bandwidth, kernels });
}

function finishBench(result) {
  const r = state.benchReady || {};
  const full = { ok: true, ...result, page: { pyodide: r.pyodide, versions: r.versions, init_ms: r.initMs,
    jspi: r.jspi, gpu: r.gpu ? { adapter: r.gpu.adapter, use_subgroups: r.gpu.use_subgroups,
      use_shader_f16: r.gpu.use_shader_f16, adapter_info: r.gpu.adapter_info } : null, userAgent: navigator.userAgent } };
  state.benchResult = full;
  showBench(JSON.stringify(full, null, 1), 'done');
  postBenchResult(full);
}

function failBench(message) {
  state.benchResult = { ok: false, error: message };
  showBench(`benchmark failed: ${message}`, 'error');
  postBenchResult(state.benchResult);
}

window.voxtralApp = {
  state,
  receivedAudio,
  async recordingWavBase64() {
    const wav = new Uint8Array(encodeWavFloat32(await receivedAudio(), 16000));
    let s = '';
    for (let i = 0; i < wav.length; i += 0x8000) s += String.fromCharCode(...wav.subarray(i, i + 0x8000));
    return btoa(s);
  },
};

boot();
