// The text-to-speech part of the Pyodide worker (imported by worker.js with importScripts, so it
// shares worker.js's globals: pyodide, session, backendName, queue, pyCall, post, now, errorText,
// openCache, cacheKey, sha256Hex, fetchText). Python side: python/voxtral/browser_tts.py.
//
// Messages in (from tts.js):
//   {type:'ttsLoad', model}                               model = a TTS entry of /api/info's "models"
//   {type:'ttsSpeak', text, voice, eulerSteps, seed, maxSeconds}
// Messages out:
//   ttsShardProgress {index, loaded, total, source, done}
//   ttsLoaded {info, sources, downloadMs, buildMs, loadMs}
//   ttsChunk {samples: Float32Array (24 kHz), figures: {audio_s, wall_s, speed, frames}}   as decoded
//   ttsDone {result, wav: ArrayBuffer (the WAV `voxtral speak` writes for the same samples)}
//   ttsError {where, message}
// Python work joins worker.js's one promise queue, so TTS and ASR calls never interleave.

/* global pyodide, session, backendName, queue, pyCall, post, now, errorText, openCache, cacheKey,
   sha256Hex, fetchText, PROGRESS_EVERY_MS */
/* eslint no-global-assign: off */
let ttsSession = null;

function ttsEnqueue(where, fn) {
  queue = queue.then(fn).catch((e) => {
    console.error(e);
    post({ type: 'ttsError', where, message: errorText(e) });
  });
  return queue;
}

// Shards come through worker.js's downloadShard (same cache, checks and quota handling), reported
// as ttsShardProgress.
function ttsDownloadShard(shard, index, cache) {
  return downloadShard(shard, index, cache, (loaded, source, done) =>
    post({ type: 'ttsShardProgress', index, loaded, total: shard.size, source, done: !!done }));
}

async function ttsLoad(model) {
  const t0 = now();
  const cache = await openCache();
  const shards = [];
  const sources = [];
  for (let i = 0; i < model.shards.length; i++) {
    const { u8, source } = await ttsDownloadShard(model.shards[i], i, cache);
    shards.push(u8);
    sources.push(source);
  }
  const tekken = model.files && model.files['tekken.json'] ? await fetchText(model.files['tekken.json']) : null;
  const downloadMs = now() - t0;
  await ttsEnqueue('ttsLoad', async () => {
    if (!pyodide || !session) throw new Error('the Python runtime did not start');
    if (!ttsSession) ttsSession = pyodide.runPython('from voxtral.browser_tts import TTSSession\nTTSSession()');
    const t1 = now();
    const kernels = backendName === 'webgpu' ? session.kernels : null;
    const info = JSON.parse(await pyCall(ttsSession.load, shards, model.id, backendName, tekken, kernels));
    if (kernels && kernels.destroy) kernels.destroy();
    post({ type: 'ttsLoaded', info, model: model.id, sources, downloadMs: Math.round(downloadMs),
           buildMs: Math.round(now() - t1), loadMs: Math.round(now() - t0) });
  });
}

function ttsSpeak(msg) {
  return ttsEnqueue('ttsSpeak', async () => {
    if (!ttsSession) throw new Error('no TTS model is loaded');
    // chunk: Python bytes (a PyProxy, destroyed after the call) of float32 samples
    const onChunk = (chunk, figures) => {
      const u8 = (chunk && chunk.toJs) ? chunk.toJs() : new Uint8Array(chunk);
      const samples = new Float32Array(u8.byteLength / 4);
      new Uint8Array(samples.buffer).set(u8);
      post({ type: 'ttsChunk', samples, figures: JSON.parse(figures) }, [samples.buffer]);
    };
    const steps = Number.isFinite(msg.eulerSteps) ? msg.eulerSteps : null;
    const maxSeconds = Number.isFinite(msg.maxSeconds) && msg.maxSeconds > 0 ? msg.maxSeconds : null;
    const result = JSON.parse(await pyCall(ttsSession.speak, msg.text, msg.voice, steps, msg.seed || 0,
                                           onChunk, maxSeconds));
    const w = ttsSession.last_wav();
    const wav = new Uint8Array(w.toJs());
    w.destroy();
    post({ type: 'ttsDone', result, wav: wav.buffer }, [wav.buffer]);
  });
}

// TTS messages are handled here, everything else by worker.js's handler.
{
  const otherMessages = self.onmessage;
  self.onmessage = (e) => {
    const msg = e.data;
    if (msg && msg.type === 'ttsLoad') {
      ttsLoad(msg.model).catch((err) => post({ type: 'ttsError', where: 'ttsLoad', message: errorText(err) }));
    } else if (msg && msg.type === 'ttsSpeak') {
      ttsSpeak(msg);
    } else {
      otherMessages(e);
    }
  };
}
