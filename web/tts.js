// The text-to-speech tab: TTS model loading, text + voice (grouped by language) + Euler steps, Speak,
// streamed playback (Web Audio: every chunk is scheduled as soon as the worker's codec emits it),
// the WAV download and live figures. Python work is in the worker (web/tts-worker.js); this file
// shares app.js's `worker` and adds its own message listener (app.js ignores tts* messages).
//
// For tests, window.voxtralApp.tts exposes the state, the streamed samples and the WAV bytes.
/* global worker */
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const tts = {
    info: null, models: [], model: null, loading: false, loaded: false, busy: false, backend: null,
    voices: [], sampleRate: 24000, chunks: [], figures: null, result: null, wav: null, loadInfo: null,
    error: null, firstAudioMs: null, t0: 0, ctx: null, nextTime: 0, sources: [], progress: [],
    maxChars: null,  // the model's text limit, from Python once loaded (voxtral.models.tts.text)
  };

  const fmtBytes = (n) => (n >= 1e9 ? (n / 1e9).toFixed(2) + ' GB' : n >= 1e6 ? (n / 1e6).toFixed(1) + ' MB'
    : n >= 1e3 ? (n / 1e3).toFixed(0) + ' KB' : n + ' B');

  function setResult(state, text) {
    const r = $('tts-result');
    r.dataset.state = state;
    if (text !== undefined) r.textContent = text;
  }

  function updateButtons() {
    $('tts-load-btn').disabled = !tts.model || tts.loading || tts.busy;
    $('tts-speak-btn').disabled = !tts.loaded || tts.busy;
    $('tts-voice').disabled = !tts.loaded;
    $('tts-download-btn').disabled = !tts.wav || tts.busy;
    $('tts-stop-btn').disabled = !tts.ctx;
  }

  // ------------------------------------------------------------------------- tabs
  function showTab(name) {
    $('asr-main').hidden = name !== 'asr';
    $('tts-main').hidden = name !== 'tts';
    $('tab-asr').setAttribute('aria-selected', String(name === 'asr'));
    $('tab-tts').setAttribute('aria-selected', String(name === 'tts'));
    document.body.dataset.tab = name;
  }

  // ------------------------------------------------------------------------ models
  async function init() {
    $('tab-asr').onclick = () => showTab('asr');
    $('tab-tts').onclick = () => showTab('tts');
    if (new URLSearchParams(location.search).get('tab') === 'tts') showTab('tts');
    worker.addEventListener('message', onMessage);
    $('tts-load-btn').onclick = load;
    $('tts-speak-btn').onclick = speak;
    $('tts-stop-btn').onclick = stopPlayback;
    $('tts-download-btn').onclick = downloadWav;
    $('tts-text').addEventListener('input', updateCount);
    updateCount();
    try {
      const r = await fetch('/api/info', { cache: 'no-store' });
      tts.info = await r.json();
    } catch (e) {
      return;  // app.js reports an unreachable server
    }
    tts.models = tts.info.models.filter((m) => m.kind === 'tts');
    const sel = $('tts-model-select');
    sel.innerHTML = '';
    for (const m of tts.models) {
      const o = document.createElement('option');
      o.value = m.id;
      o.textContent = `${m.id}${m.demo ? ' (random-weight demo)' : ''}`;
      sel.appendChild(o);
    }
    sel.onchange = () => selectModel(sel.value);
    if (!tts.models.length) {
      $('tts-load-note').textContent = 'The server offers no TTS model (voxtral-tts-q4-shards/).';
    } else {
      selectModel(tts.models[0].id);
    }
    document.body.dataset.ttsModel = 'none';
    updateButtons();
  }

  function selectModel(id) {
    tts.model = tts.models.find((m) => m.id === id) || null;
    if (!tts.model) return;
    $('tts-model-size').textContent = `${tts.model.shards.length} shard(s), ${fmtBytes(tts.model.total_size)}`;
    $('tts-demo-banner').hidden = !tts.model.demo;
    updateButtons();
  }

  function load() {
    if (!tts.model || tts.loading) return;
    tts.loading = true;
    tts.loaded = false;
    tts.progress = tts.model.shards.map(() => 0);
    document.body.dataset.ttsModel = 'loading';
    $('tts-progress').hidden = false;
    $('tts-load-note').textContent = 'loading ...';
    updateButtons();
    worker.postMessage({ type: 'ttsLoad', model: tts.model });
  }

  function onProgress(msg) {
    tts.progress[msg.index] = msg.loaded;
    const done = tts.progress.reduce((a, b) => a + b, 0);
    const total = tts.model.total_size;
    $('tts-progress-fill').style.width = `${total ? (100 * done / total).toFixed(1) : 100}%`;
    $('tts-progress-fill').classList.toggle('done', done >= total);
    $('tts-progress-bytes').textContent = `${fmtBytes(done)} / ${fmtBytes(total)}`;
  }

  function onLoaded(msg) {
    tts.loading = false;
    tts.loaded = true;
    tts.loadInfo = msg;
    tts.backend = msg.info.backend;
    tts.voices = msg.info.voices;
    tts.sampleRate = msg.info.sample_rate;
    document.body.dataset.ttsModel = 'loaded';
    const fromCache = msg.sources.every((s) => s === 'cache');
    $('tts-load-note').textContent = `${fromCache ? 'Loaded from the browser cache' : 'Downloaded'} in `
      + `${(msg.loadMs / 1000).toFixed(2)} s (${msg.info.dim}-dim, ${msg.info.n_layers} layers, `
      + `${msg.info.voices.length} voices, backend ${msg.info.backend}).`;
    $('tts-fig-load').textContent = `${(msg.loadMs / 1000).toFixed(2)} s (shards ${(msg.downloadMs / 1000).toFixed(2)} s,`
      + ` model build ${(msg.buildMs / 1000).toFixed(2)} s)`;
    $('tts-steps').value = msg.info.euler_steps;
    tts.maxChars = msg.info.max_text_chars;
    updateCount();
    renderVoices();
    setResult('ready', 'Ready: type some text, pick a voice, press Speak.');
    updateButtons();
  }

  // The length of the text against the limit, so a long paste is seen to be too long before
  // Speak (Python refuses it with the same figures; nothing is cut silently).
  function updateCount() {
    const n = $('tts-text').value.length;
    const el = $('tts-count');
    const over = tts.maxChars != null && n > tts.maxChars;
    el.textContent = `${n.toLocaleString('en')} characters`
      + (tts.maxChars == null ? '' : ` of at most ${tts.maxChars.toLocaleString('en')}`)
      + (over ? ': too long - shorten it, or speak it in several parts' : '');
    el.classList.toggle('over', over);
    el.dataset.over = String(over);
  }

  // Voices grouped by language (the model's presets; the English ones carry a style).
  function renderVoices() {
    const sel = $('tts-voice');
    const previous = sel.value;
    sel.innerHTML = '';
    const byLang = new Map();
    for (const v of tts.voices) {
      if (!byLang.has(v.language)) byLang.set(v.language, []);
      byLang.get(v.language).push(v);
    }
    for (const [lang, voices] of byLang) {
      const g = document.createElement('optgroup');
      g.label = lang;
      for (const v of voices) {
        const o = document.createElement('option');
        o.value = v.name;
        o.textContent = `${v.name.replace(/_/g, ' ')} (${lang})`;
        o.dataset.language = lang;
        g.appendChild(o);
      }
      sel.appendChild(g);
    }
    if (tts.voices.some((v) => v.name === previous)) sel.value = previous;
  }

  // ------------------------------------------------------------------------ speech
  function speak() {
    const text = $('tts-text').value;
    if (!tts.loaded || tts.busy) return;
    if (!text.trim()) {
      setResult('error', 'Type some text first.');
      return;
    }
    stopPlayback();
    tts.busy = true;
    tts.chunks = [];
    tts.wav = null;
    tts.result = null;
    tts.error = null;
    tts.figures = null;
    tts.firstAudioMs = null;
    tts.t0 = performance.now();
    $('tts-player').hidden = true;
    for (const id of ['tts-fig-audio', 'tts-fig-frames', 'tts-fig-first', 'tts-fig-rtf']) $(id).textContent = '-';
    setResult('running', 'Generating ...');
    // The AudioContext is made inside the click (autoplay policy); 24 kHz like the model.
    try {
      tts.ctx = new AudioContext({ sampleRate: tts.sampleRate });
    } catch (e) {
      tts.ctx = new AudioContext();  // the buffers still say 24 kHz; Web Audio resamples
    }
    tts.nextTime = 0;
    updateButtons();
    worker.postMessage({
      type: 'ttsSpeak', text, voice: $('tts-voice').value, eulerSteps: parseInt($('tts-steps').value, 10),
      seed: parseInt($('tts-seed').value, 10) || 0, maxSeconds: parseFloat($('tts-max').value),
    });
  }

  function play(samples) {
    const ctx = tts.ctx;
    if (!ctx || !samples.length) return;
    const buf = ctx.createBuffer(1, samples.length, tts.sampleRate);
    buf.copyToChannel(samples, 0);
    const src = ctx.createBufferSource();
    src.buffer = buf;
    src.connect(ctx.destination);
    const at = Math.max(ctx.currentTime + 0.05, tts.nextTime);
    src.start(at);
    tts.nextTime = at + buf.duration;
    tts.sources.push(src);
  }

  function stopPlayback() {
    for (const s of tts.sources) {
      try { s.stop(); } catch (e) { /* not started */ }
    }
    tts.sources = [];
    if (tts.ctx) tts.ctx.close().catch(() => {});
    tts.ctx = null;
    updateButtons();
  }

  function showFigures(f) {
    $('tts-fig-audio').textContent = `${f.audio_s.toFixed(2)} s`;
    $('tts-fig-frames').textContent = String(f.frames);
    if (f.speed != null) {
      $('tts-fig-rtf').textContent = `${(1 / f.speed).toFixed(2)} (${f.speed >= 1 ? 'faster' : 'slower'} than real time)`;
    }
  }

  function onChunk(msg) {
    if (tts.firstAudioMs == null) {
      tts.firstAudioMs = performance.now() - tts.t0;
      $('tts-fig-first').textContent = `${(tts.firstAudioMs / 1000).toFixed(2)} s`;
    }
    tts.chunks.push(msg.samples);
    tts.figures = msg.figures;
    showFigures(msg.figures);
    setResult('running', `Speaking: ${msg.figures.audio_s.toFixed(2)} s of audio so far ...`);
    play(msg.samples);
  }

  function onDone(msg) {
    tts.busy = false;
    tts.result = msg.result;
    tts.wav = new Uint8Array(msg.wav);
    const r = msg.result;
    showFigures({ audio_s: r.seconds, frames: r.frames, speed: r.speed });
    const player = $('tts-player');
    if (player.src) URL.revokeObjectURL(player.src);
    player.src = URL.createObjectURL(new Blob([tts.wav], { type: 'audio/wav' }));
    player.hidden = false;
    const $r = $('tts-result');
    $r.dataset.frames = String(r.frames);
    setResult('done', r.frames
      ? `Done: ${r.seconds.toFixed(2)} s of speech (${r.frames} frames) in ${r.wall_s.toFixed(2)} s, voice ${r.info.voice}, `
        + `${r.info.euler_steps} Euler steps, seed ${r.info.seed}, backend ${r.info.backend}.`
      : 'The model ended the utterance before the first frame (no audio); try another seed or voice.');
    updateButtons();
  }

  function onError(msg) {
    tts.error = msg.message;
    if (msg.where === 'ttsLoad') {
      tts.loading = false;
      document.body.dataset.ttsModel = 'error';
      $('tts-load-note').textContent = `Could not load the TTS model: ${msg.message}`;
    } else {
      tts.busy = false;
      stopPlayback();
    }
    setResult('error', `Error: ${msg.message}`);
    updateButtons();
  }

  function downloadWav() {
    if (!tts.wav) return;
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([tts.wav], { type: 'audio/wav' }));
    a.download = `voxtral-${tts.result ? tts.result.info.voice : 'speech'}.wav`;
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  function onMessage(e) {
    const msg = e.data;
    switch (msg.type) {
      case 'ttsShardProgress': onProgress(msg); break;
      case 'ttsLoaded': onLoaded(msg); break;
      case 'ttsChunk': onChunk(msg); break;
      case 'ttsDone': onDone(msg); break;
      case 'ttsError': onError(msg); break;
      default: break;
    }
  }

  function concatSamples() {
    const n = tts.chunks.reduce((a, c) => a + c.length, 0);
    const all = new Float32Array(n);
    let off = 0;
    for (const c of tts.chunks) { all.set(c, off); off += c.length; }
    return all;
  }

  function base64(u8) {
    let s = '';
    for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000));
    return btoa(s);
  }

  window.voxtralApp = window.voxtralApp || {};
  window.voxtralApp.tts = {
    state: tts,
    showTab,
    samples: concatSamples,
    samplesBase64: () => base64(new Uint8Array(concatSamples().buffer)),  // float32 little-endian
    wavBase64: () => (tts.wav ? base64(tts.wav) : null),
  };

  init();
})();
