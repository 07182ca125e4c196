// Audio in the page: the built-in example sound, WAV encoding for the server, levels.
let context = null;

// One AudioContext for playback in the page (browsers allow a few at most).
export function audioContext() {
  context ??= new AudioContext();
  if (context.state === "suspended") context.resume();
  return context;
}

// A few seconds of plucked notes over a soft kick: short attacks and gaps, so that a
// reverb or a delay is easy to hear. Rendered offline, the same every time.
export async function exampleSound(sampleRate = 44100, seconds = 4) {
  const ctx = new OfflineAudioContext(2, sampleRate * seconds, sampleRate);
  const notes = [220, 277.18, 329.63, 440, 329.63, 277.18, 246.94, 329.63];
  notes.forEach((freq, i) => {
    const t = i * 0.5;
    const osc = ctx.createOscillator();
    osc.type = "triangle";
    osc.frequency.value = freq;
    const env = ctx.createGain();
    env.gain.setValueAtTime(0.0001, t);
    env.gain.exponentialRampToValueAtTime(0.5, t + 0.005);
    env.gain.exponentialRampToValueAtTime(0.0001, t + 0.35);
    const pan = ctx.createStereoPanner();
    pan.pan.value = i % 2 ? 0.4 : -0.4;
    osc.connect(env).connect(pan).connect(ctx.destination);
    osc.start(t);
    osc.stop(t + 0.4);
    if (i % 2 === 0) {
      const kick = ctx.createOscillator();
      kick.frequency.setValueAtTime(120, t);
      kick.frequency.exponentialRampToValueAtTime(45, t + 0.15);
      const kickEnv = ctx.createGain();
      kickEnv.gain.setValueAtTime(0.6, t);
      kickEnv.gain.exponentialRampToValueAtTime(0.0001, t + 0.2);
      kick.connect(kickEnv).connect(ctx.destination);
      kick.start(t);
      kick.stop(t + 0.25);
    }
  });
  return ctx.startRendering();
}

// 16-bit PCM WAV of an AudioBuffer: what /api/process reads, at half float's size.
export function encodeWav(buffer) {
  const channels = buffer.numberOfChannels;
  const frames = buffer.length;
  const data = new DataView(new ArrayBuffer(44 + frames * channels * 2));
  const text = (offset, s) => [...s].forEach((c, i) => data.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF");
  data.setUint32(4, 36 + frames * channels * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  data.setUint32(16, 16, true);
  data.setUint16(20, 1, true);
  data.setUint16(22, channels, true);
  data.setUint32(24, buffer.sampleRate, true);
  data.setUint32(28, buffer.sampleRate * channels * 2, true);
  data.setUint16(32, channels * 2, true);
  data.setUint16(34, 16, true);
  text(36, "data");
  data.setUint32(40, frames * channels * 2, true);
  const planes = Array.from({ length: channels }, (_, c) => buffer.getChannelData(c));
  let offset = 44;
  for (let i = 0; i < frames; i += 1) {
    for (let c = 0; c < channels; c += 1) {
      const v = Math.max(-1, Math.min(1, planes[c][i]));
      data.setInt16(offset, v < 0 ? v * 0x8000 : v * 0x7fff, true);
      offset += 2;
    }
  }
  return new Blob([data.buffer], { type: "audio/wav" });
}

export function toDb(x) {
  return x > 0 ? 20 * Math.log10(x) : -Infinity;
}

// Peak and RMS of interleaved (or any) samples.
export function levels(samples) {
  let peak = 0;
  let sum = 0;
  for (let i = 0; i < samples.length; i += 1) {
    const v = samples[i];
    const a = v < 0 ? -v : v;
    if (a > peak) peak = a;
    sum += v * v;
  }
  return { peak, rms: samples.length ? Math.sqrt(sum / samples.length) : 0 };
}

// A level meter: a <meter> from −60 to 0 dBFS with its value in words; data-db holds the
// smoothed RMS level, for tests and for people reading it aloud.
export function levelMeter(label, id) {
  const meter = document.createElement("meter");
  meter.id = id;
  meter.min = -60;
  meter.max = 0;
  meter.low = -18;
  meter.high = -6;
  meter.optimum = -30;
  meter.value = -60;
  const text = document.createElement("span");
  text.className = "meter-text";
  text.textContent = "−∞ dBFS";
  const wrap = document.createElement("div");
  wrap.className = "level";
  const lab = document.createElement("label");
  lab.htmlFor = id;
  lab.textContent = label;
  wrap.append(lab, meter, text);
  let smoothed = 0;
  return {
    el: wrap,
    // mean square, smoothed over about 0.3 s of updates of `seconds` each
    push(rms, seconds) {
      const a = Math.min(1, seconds / 0.3);
      smoothed = smoothed * (1 - a) + rms * rms * a;
      const db = toDb(Math.sqrt(smoothed));
      meter.value = Math.max(-60, db);
      meter.dataset.db = Number.isFinite(db) ? db.toFixed(2) : "-inf";
      text.textContent = Number.isFinite(db) ? `${db.toFixed(1).replace("-", "−")} dBFS` : "−∞ dBFS";
    },
    reset() { smoothed = 0; this.push(0, 1); },
  };
}
