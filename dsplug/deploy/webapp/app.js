// dsplug web app: a dsplug model in MediaPipe Tasks' AudioClassifier, entirely in the browser.
//
// The page lists the models of models.json (written by `dsplug export RUN --web DIR`). Each
// .tflite describes itself: MediaPipe reads its labels and sample rate from the TFLite Model
// Metadata, and this page reads the same model card (dsplug.json, packed in the model) for the
// chunk length and the recipe. Audio is classified in windows of one chunk, one after the
// other (as MediaPipe and `dsplug stream --hop CHUNK` cut it), and never leaves the device.
//
// Query parameters, all optional:
//   model=models/model-int8.tflite   start with this model (default: the first of models.json)
//   hop=0.5                          seconds between windows (default: one chunk, no overlap)
//   autostart=1                      start the microphone without a click (kiosks, tests)
//   max=20                           stop the microphone after this many windows
//   record=1                         keep the first window's samples in window.dsplug.captured and
//                                    every window's in window.dsplug.windows[i].samples (checks)
//   clip=URL                         classify this recording (same origin) instead
import {AudioClassifier, FilesetResolver} from './mediapipe/audio_bundle.mjs';

// MediaPipe's WebAssembly writes its informational lines ("INFO: Created TensorFlow Lite XNNPACK
// delegate for CPU.") to stderr, which the browser shows as errors: they are information.
const consoleError = console.error.bind(console);
console.error = (...args) => (/^(INFO:|I\d{4} )/.test(String(args[0])) ? console.info : consoleError)(...args);

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
// What the page did, for scripts and tests: {ready, done, error, model, sampleRate, windows: [...]}
const state = (window.dsplug = {ready: false, done: false, error: null, windows: []});
let classifier = null;
let card = null;
let stopMicrophone = null;

function status(text) {
  $('status').textContent = text;
}

// A .tflite with metadata is also a zip archive of stored (uncompressed) files.
function packedFile(bytes, wanted) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let end = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 65557); i--) {
    if (view.getUint32(i, true) === 0x06054b50) { end = i; break; }
  }
  if (end < 0) return null;
  let entry = view.getUint32(end + 16, true);
  for (let k = view.getUint16(end + 10, true); k > 0; k--) {
    const [method, size] = [view.getUint16(entry + 10, true), view.getUint32(entry + 20, true)];
    const [nameLength, extra, comment] = [28, 30, 32].map((o) => view.getUint16(entry + o, true));
    const local = view.getUint32(entry + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(entry + 46, entry + 46 + nameLength));
    if (name === wanted && method === 0) {
      const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
      return new TextDecoder().decode(bytes.subarray(start, start + size));
    }
    entry += 46 + nameLength + extra + comment;
  }
  return null;
}

async function loadModel(url) {
  classifier?.close();
  classifier = null;
  const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
  const text = packedFile(bytes, 'dsplug.json');
  if (!text) throw new Error(`${url} carries no dsplug model card: re-export it with dsplug export`);
  card = JSON.parse(text);
  const fileset = await FilesetResolver.forAudioTasks(new URL('mediapipe/wasm', location.href).href);
  classifier = await AudioClassifier.createFromOptions(fileset, {
    baseOptions: {modelAssetBuffer: bytes},
    maxResults: -1,  // every class, for the bars
  });
  Object.assign(state, {ready: true, model: url});
  status(`${card.name}: ${card.classes.length} classes, ${card.chunk_seconds} s windows at ` +
         `${card.sample_rate} Hz, ${card.quantize} (${(bytes.length / 1e6).toFixed(1)} MB, recipe ${card.recipe_hash})`);
}

function scoresOf(result) {
  const scores = new Array(card.classes.length).fill(0);
  for (const category of result.classifications[0].categories) scores[category.index] = category.score;
  return scores;
}

function show(window_) {
  state.windows.push(window_);
  const best = window_.scores.indexOf(Math.max(...window_.scores));
  $('top').textContent = window_.label;
  $('confidence').textContent = `confidence ${window_.confidence.toFixed(2)} · window ${window_.index} ` +
                                `at ${window_.time.toFixed(2)} s · ${window_.latencyMs.toFixed(1)} ms`;
  $('bars').replaceChildren(...card.classes.map((name, k) => {
    const row = document.createElement('div');
    row.className = 'row';
    row.innerHTML = `<span class="name"></span><span class="track"><span class="bar"></span></span>` +
                    `<span class="value">${window_.scores[k].toFixed(2)}</span>`;
    row.querySelector('.name').textContent = name;
    const bar = row.querySelector('.bar');
    bar.style.display = 'block';
    bar.style.width = `${Math.round(window_.scores[k] * 100)}%`;
    bar.classList.toggle('best', k === best);
    return row;
  }));
  const line = document.createElement('tr');
  for (const value of [window_.index, window_.time.toFixed(2), window_.label, window_.confidence.toFixed(3),
                       window_.latencyMs.toFixed(1)]) {
    line.appendChild(document.createElement('td')).textContent = value;
  }
  $('log').prepend(line);
  while ($('log').children.length > 10) $('log').lastChild.remove();
}

// One window of samples at `rate` -> MediaPipe -> the first result (one per model window).
function classifyWindow(samples, rate, index, time) {
  const started = performance.now();
  const results = classifier.classify(samples, rate);
  const latencyMs = performance.now() - started;
  const scores = scoresOf(results[0]);
  const best = scores.indexOf(Math.max(...scores));
  return {index, time, label: card.classes[best], confidence: scores[best], scores, latencyMs, rate};
}

// An AudioContext at the model's rate where the browser allows it (Chromium and Firefox do), so
// MediaPipe gets exactly one window per call; else the device's rate (MediaPipe resamples).
function audioContext() {
  try {
    return new AudioContext({sampleRate: card.sample_rate});
  } catch (err) {
    console.warn(`no AudioContext at ${card.sample_rate} Hz (${err}); using the device's rate`);
    return new AudioContext();
  }
}

async function startMicrophone() {
  $('start').disabled = true;
  const context = audioContext();
  await context.audioWorklet.addModule('capture-worklet.js');
  const capture = new AudioWorkletNode(context, 'capture-processor');
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: {channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false},
  });
  context.createMediaStreamSource(stream).connect(capture);
  await context.resume();
  const rate = context.sampleRate;
  const size = Math.round(card.chunk_seconds * rate);
  const hop = Math.round(Number(params.get('hop') || card.chunk_seconds) * rate);
  const max = Number(params.get('max') || 0);
  let pending = new Float32Array(0);
  let consumed = 0;
  let index = 0;
  state.sampleRate = rate;
  stopMicrophone = () => {
    stream.getTracks().forEach((track) => track.stop());
    context.close();
    stopMicrophone = null;
    state.done = true;
    $('start').disabled = false;
    $('stop').disabled = true;
    status(`stopped after ${index} windows`);
  };
  $('stop').disabled = false;
  status(`listening at ${rate} Hz: a decision every ${(hop / rate).toFixed(2)} s`);
  capture.port.onmessage = ({data}) => {
    const grown = new Float32Array(pending.length + data.length);
    grown.set(pending);
    grown.set(data, pending.length);
    pending = grown;
    while (stopMicrophone && pending.length >= size) {
      if (index === 0 && params.get('record') === '1') state.captured = Array.from(pending.subarray(0, size));
      const result = classifyWindow(pending.slice(0, size), rate, index++, (consumed + size) / rate);
      if (params.get('record') === '1') result.samples = Array.from(pending.subarray(0, size));
      show(result);
      pending = pending.slice(hop);
      consumed += hop;
      if (max && index >= max) stopMicrophone();
    }
  };
}

// A recording: decoded at the model's rate and cut as `dsplug predict` cuts it: windows of one
// chunk every hop (the model card's), the last one zero-padded (a model whose recipe repeats
// short clips fills the zeros itself), the file's label from the mean of the window scores.
async function classifyRecording(buffer, name) {
  const context = audioContext();
  const audio = await context.decodeAudioData(buffer);
  context.close();
  const mono = new Float32Array(audio.length);
  for (let c = 0; c < audio.numberOfChannels; c++) {
    audio.getChannelData(c).forEach((v, i) => { mono[i] += v / audio.numberOfChannels; });
  }
  const size = Math.round(card.chunk_seconds * audio.sampleRate);
  const hop = Math.round((card.hop_seconds || card.chunk_seconds) * audio.sampleRate);
  const count = 1 + Math.ceil(Math.max(0, mono.length - size) / hop);
  state.windows = [];
  const mean = new Array(card.classes.length).fill(0);
  let index = 0;
  for (let start = 0; index < count; start += hop) {
    const window_ = new Float32Array(size);  // the last one zero-padded
    window_.set(mono.subarray(start, start + size));
    const result = classifyWindow(window_, audio.sampleRate, index++, Math.min(start + size, mono.length) / audio.sampleRate);
    result.scores.forEach((v, k) => { mean[k] += v; });
    show(result);
  }
  const best = mean.indexOf(Math.max(...mean));
  state.file = {name, label: card.classes[best], confidence: mean[best] / index, windows: index};
  state.done = true;
  status(`${name}: ${card.classes[best]} (${(mean[best] / index).toFixed(2)}, mean of ${index} windows)`);
}

function fail(err) {
  state.error = String((err && err.stack) || err);
  console.error(state.error);
  status(`error: ${err}`);
}

async function main() {
  const models = await (await fetch('models.json')).json();
  for (const model of models) {
    const option = new Option(`${model.name} (${model.quantize}, ${(model.bytes / 1e6).toFixed(1)} MB)`, model.path);
    $('model').add(option);
  }
  $('model').value = params.get('model') || models[0].path;
  await loadModel($('model').value);
  $('model').onchange = () => loadModel($('model').value).catch(fail);
  $('start').onclick = () => startMicrophone().catch(fail);
  $('stop').onclick = () => stopMicrophone && stopMicrophone();
  $('file').onchange = async () => {
    const [picked] = $('file').files;
    if (picked) await classifyRecording(await picked.arrayBuffer(), picked.name).catch(fail);
  };
  $('start').disabled = $('file').disabled = false;
  if (params.get('clip')) {
    const url = params.get('clip');
    await classifyRecording(await (await fetch(url)).arrayBuffer(), url);
  } else if (params.get('autostart') === '1') {
    await startMicrophone();
  }
}

main().catch(fail);
