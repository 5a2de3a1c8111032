// AudioWorklet: microphone -> mono 16 kHz -> 80 ms pieces (1280 samples) posted to the page.
//
// The page asks for a 16 kHz AudioContext, so the browser usually resamples for us and this
// processor only cuts pieces. When the context runs at another rate (a browser that refuses 16 kHz),
// a streaming windowed-sinc resampler converts here. Each piece carries its RMS and peak for the
// level meter. port message "flush" -> the last partial piece, then {flushed: true}.

const TARGET_RATE = 16000;

class SincResampler {
  constructor(inRate, outRate) {
    this.step = inRate / outRate;                // input samples per output sample
    this.cutoff = 0.45 * Math.min(1, 1 / this.step);  // in cycles per input sample, below Nyquist
    this.half = Math.ceil(12 / (2 * this.cutoff) / 2) + 1;  // taps each side (~12 zero crossings)
    this.buf = new Float32Array(0);              // input not consumed yet; buf[0] is input index base
    this.base = 0;
    this.t = 0;                                  // position of the next output, in input samples
  }
  kernel(x) {
    const w = x / (this.half + 1);
    if (Math.abs(w) >= 1) return 0;
    const win = 0.42 + 0.5 * Math.cos(Math.PI * w) + 0.08 * Math.cos(2 * Math.PI * w);  // Blackman
    const a = 2 * Math.PI * this.cutoff * x;
    return 2 * this.cutoff * (x === 0 ? 1 : Math.sin(a) / a) * win;
  }
  push(input) {
    const merged = new Float32Array(this.buf.length + input.length);
    merged.set(this.buf);
    merged.set(input, this.buf.length);
    const out = [];
    const end = this.base + merged.length;
    while (Math.floor(this.t) + this.half < end) {
      const c = Math.floor(this.t);
      let acc = 0;
      for (let i = c - this.half + 1; i <= c + this.half; i++) {
        const v = i < this.base ? 0 : merged[i - this.base];
        acc += v * this.kernel(this.t - i);
      }
      out.push(acc);
      this.t += this.step;
    }
    const keepFrom = Math.max(this.base, Math.floor(this.t) - this.half);
    this.buf = merged.slice(keepFrom - this.base);
    this.base = keepFrom;
    return Float32Array.from(out);
  }
}

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.pieceSamples = o.pieceSamples || 1280;
    this.resampler = sampleRate === TARGET_RATE ? null : new SincResampler(sampleRate, TARGET_RATE);
    this.piece = new Float32Array(this.pieceSamples);
    this.fill = 0;
    this.stopped = false;
    this.port.onmessage = (e) => {
      if (e.data === 'flush') {
        if (this.fill > 0) this.post(this.piece.slice(0, this.fill));
        this.fill = 0;
        this.stopped = true;
        this.port.postMessage({ flushed: true });
      }
    };
  }
  post(samples) {
    let sum = 0, peak = 0;
    for (let i = 0; i < samples.length; i++) {
      const v = samples[i];
      sum += v * v;
      if (Math.abs(v) > peak) peak = Math.abs(v);
    }
    const rms = samples.length ? Math.sqrt(sum / samples.length) : 0;
    this.port.postMessage({ samples, rms, peak }, [samples.buffer]);
  }
  process(inputs) {
    if (this.stopped) return false;
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    // mono: the average of the channels
    let mono = input[0];
    if (input.length > 1) {
      mono = new Float32Array(input[0].length);
      for (const ch of input) for (let i = 0; i < ch.length; i++) mono[i] += ch[i] / input.length;
    }
    const x = this.resampler ? this.resampler.push(mono) : mono;
    let off = 0;
    while (off < x.length) {
      const n = Math.min(this.pieceSamples - this.fill, x.length - off);
      this.piece.set(x.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
      if (this.fill === this.pieceSamples) {
        this.post(this.piece);
        this.piece = new Float32Array(this.pieceSamples);
        this.fill = 0;
      }
    }
    return true;
  }
}

registerProcessor('voxtral-capture', CaptureProcessor);
