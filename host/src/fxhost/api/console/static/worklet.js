// The live path inside the audio thread: the input is cut into blocks of `block` frames
// (interleaved, as the server's PCM) and posted to the page, which sends them to the
// server; the processed blocks it posts back are played from a queue that starts once
// `prebuffer` frames are in, and counts an underrun each time it runs dry.
class LiveIO extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions;
    this.block = o.block;
    this.channels = o.channels;
    this.capture = o.capture;
    this.prebuffer = o.prebuffer;
    this.pending = new Float32Array(this.block * this.channels);
    this.fill = 0;
    this.queue = [];
    this.offset = 0; // frames of queue[0] already played
    this.queued = 0;
    this.playing = false;
    this.underruns = 0;
    this.port.onmessage = (event) => {
      const message = event.data;
      if (message.type === "play") {
        this.queue.push(message.samples);
        this.queued += message.samples.length / this.channels;
      }
    };
  }

  process(inputs, outputs) {
    const input = inputs[0];
    const output = outputs[0];
    const frames = output[0].length;
    const ch = this.channels;
    if (this.capture && input && input.length) {
      for (let i = 0; i < frames; i += 1) {
        for (let c = 0; c < ch; c += 1) this.pending[this.fill * ch + c] = (input[c] || input[0])[i];
        this.fill += 1;
        if (this.fill === this.block) {
          this.port.postMessage({ type: "block", samples: this.pending }, [this.pending.buffer]);
          this.pending = new Float32Array(this.block * ch);
          this.fill = 0;
        }
      }
    }
    if (!this.playing && this.queued >= this.prebuffer) this.playing = true;
    if (this.playing) {
      for (let i = 0; i < frames; i += 1) {
        if (!this.queue.length) {
          this.playing = false;
          this.underruns += 1;
          this.port.postMessage({ type: "underrun", underruns: this.underruns });
          break;
        }
        const chunk = this.queue[0];
        for (let c = 0; c < output.length; c += 1) output[c][i] = chunk[this.offset * ch + Math.min(c, ch - 1)];
        this.offset += 1;
        this.queued -= 1;
        if (this.offset * ch >= chunk.length) {
          this.queue.shift();
          this.offset = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("fxhost-live-io", LiveIO);
