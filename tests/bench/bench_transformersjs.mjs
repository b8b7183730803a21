// MusicGen decoder speed in Transformers.js (v3, onnxruntime-node, CPU) on lofi's ONNX export.
//
// Run by hand, or through bench_musicgen.py (which runs it when node and the package are present):
//
//     cd tests/bench && npm install          # once: the pinned @huggingface/transformers
//     node tests/bench/bench_transformersjs.mjs MODEL_DIR [--threads 2] [--inputs FILE]
//
// MODEL_DIR is a flat export (make_musicgen.py / optimum: config.json, tokenizer.json,
// text_encoder.onnx, decoder_model_merged.onnx, encodec_decode.onnx). Transformers.js wants its hub
// layout (configs at the root, fp32 ONNX files under onnx/, a tokenizer_config.json), so the
// script builds it once as symlinks in MODEL_DIR-transformersjs/ next to MODEL_DIR: the weights are
// never copied and MODEL_DIR is never written to.
//
// --inputs FILE: JSON {"input_ids": [...], "tokens": [[...] x 8]} from bench_musicgen.py, so the
// per-position steps feed the same tokens as lofi's engines and the logits can be compared.
// Without it the prompt goes through Transformers.js's tokenizer and the tokens are seeded.
//
// Prints one line "RESULT {json}" with the fields bench_musicgen.py reads: per_position (median
// ms of 8 single steps after a prefill up to the position), track_10s_s (a 503-step generate,
// text encoder included, EnCodec excluded, as lofi's row), logits, rss_10s_mb, peak_rss_mb.

import fs from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";

const PROMPT = "lofi hip hop beat with warm piano and vinyl crackle";
const POSITIONS = [1, 250, 500, 1000, 1500];
const TRACK_STEPS = 503; // 10 s at 50 frames per second, plus the 3-step delay pattern
const ROWS = 8; // 4 codebooks x (conditional, unconditional)
const PAD = 2048; // the start/pad token
const VOCAB = 2048;
const LINKED = ["generation_config.json", "tokenizer.json"];
const ONNX = ["text_encoder.onnx", "decoder_model_merged.onnx", "encodec_decode.onnx"];

function fail(message) {
  console.error(`bench_transformersjs: ${message}`);
  process.exit(2);
}

/** Write `value` as JSON to `file` atomically (a temporary file renamed over it). */
function writeJson(file, value) {
  fs.rmSync(file, { force: true }); // an earlier layout may have linked it: never write through
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(value, null, 1));
  fs.renameSync(`${file}.tmp`, file);
}

/** Build (once) the Transformers.js layout of `modelDir` as symlinks; returns its path. */
function hubLayout(modelDir) {
  const source = fs.realpathSync(modelDir);
  for (const name of ["config.json", ...LINKED, ...ONNX]) {
    if (!fs.existsSync(path.join(source, name))) fail(`missing ${path.join(source, name)}`);
  }
  const target = `${path.resolve(modelDir)}-transformersjs`;
  fs.mkdirSync(path.join(target, "onnx"), { recursive: true });
  const link = (from, to) => {
    fs.rmSync(to, { force: true }); // a stale link, never its target
    fs.symlinkSync(from, to);
  };
  for (const name of LINKED) link(path.join(source, name), path.join(target, name));
  for (const name of ONNX) link(path.join(source, name), path.join(target, "onnx", name));
  // Two small files are written rather than linked. tokenizer_config.json: T5's special tokens,
  // which tokenizer.json does not name. config.json: transformers >= 4.5x leaves the decoder's
  // pad/bos ids out of config.json when they equal the class defaults (they live in
  // generation_config.json), but Transformers.js reads them from config.decoder (hub exports made
  // by older transformers carry them there).
  const config = JSON.parse(fs.readFileSync(path.join(source, "config.json"), "utf8"));
  const generation = JSON.parse(
    fs.readFileSync(path.join(source, "generation_config.json"), "utf8"),
  );
  config.decoder.pad_token_id ??= generation.pad_token_id ?? PAD;
  config.decoder.bos_token_id ??= generation.bos_token_id ?? PAD;
  writeJson(path.join(target, "config.json"), config);
  writeJson(path.join(target, "tokenizer_config.json"), {
    tokenizer_class: "T5Tokenizer",
    eos_token: "</s>",
    pad_token: "<pad>",
    unk_token: "<unk>",
    model_max_length: 512,
  });
  return target;
}

/** This process's peak resident set in MB (VmHWM, as the Python engines report it). */
function peakRssMb() {
  try {
    const line = fs
      .readFileSync("/proc/self/status", "utf8")
      .split("\n")
      .find((l) => l.startsWith("VmHWM:"));
    if (line) return Number(line.split(/\s+/)[1]) / 1024;
  } catch {
    // not Linux: fall through
  }
  return process.resourceUsage().maxRSS / 1024;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Seeded tokens [ROWS][n] in [0, 2048), column 0 = the start token (when no --inputs). */
function seededTokens(n) {
  let state = 12345;
  const next = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state >>> 21; // 11 bits: 0..2047
  };
  return Array.from({ length: ROWS }, () =>
    Array.from({ length: n }, (_, i) => (i === 0 ? PAD : next())),
  );
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { threads: { type: "string", default: "2" }, inputs: { type: "string" } },
  });
  if (positionals.length !== 1) fail("usage: bench_transformersjs.mjs MODEL_DIR [--threads N]");
  const threads = Number.parseInt(values.threads, 10);
  if (!(threads > 0)) fail(`--threads must be a positive integer (got ${values.threads})`);
  if (!fs.existsSync(positionals[0])) fail(`model directory not found: ${positionals[0]}`);
  let tf;
  try {
    tf = await import("@huggingface/transformers");
  } catch (err) {
    fail(`@huggingface/transformers is not installed (cd tests/bench && npm install): ${err}`);
  }
  const { env, AutoTokenizer, MusicgenForConditionalGeneration, Tensor } = tf;
  const layout = hubLayout(positionals[0]);
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = path.dirname(layout);
  const name = path.basename(layout);
  const options = {
    local_files_only: true,
    device: "cpu",
    dtype: "fp32",
    session_options: { intraOpNumThreads: threads, interOpNumThreads: 1 },
  };
  const tokenizer = await AutoTokenizer.from_pretrained(name, options);
  const model = await MusicgenForConditionalGeneration.from_pretrained(name, options);
  const given = values.inputs ? JSON.parse(fs.readFileSync(values.inputs, "utf8")) : null;
  const encoded = tokenizer(PROMPT);
  const inputIds = given
    ? new Tensor("int64", BigInt64Array.from(given.input_ids, BigInt), [1, given.input_ids.length])
    : encoded.input_ids;
  const attentionMask = new Tensor(
    "int64",
    new BigInt64Array(inputIds.dims[1]).fill(1n),
    inputIds.dims,
  );
  const generate = async (steps, stamps) =>
    model.generate({
      input_ids: inputIds,
      attention_mask: attentionMask,
      max_new_tokens: steps,
      do_sample: true,
      guidance_scale: 3.0,
      top_k: 250,
      temperature: 1.0,
      streamer: stamps ? { put: () => stamps.push(performance.now()), end: () => {} } : null,
    });

  await generate(20, null); // warm-up: first-call allocations
  const stamps = [];
  const start = performance.now();
  await generate(TRACK_STEPS, stamps);
  const generateS = (performance.now() - start) / 1000;
  // stamps[0] is the start tokens (after the text encoder), then one per decoder step.
  const trackS = (stamps.at(-1) - start) / 1000;
  const rss10s = peakRssMb();

  const width = Math.max(...POSITIONS) + 16;
  const tokens = given ? given.tokens : seededTokens(width);
  const columns = (from, to) =>
    new Tensor(
      "int64",
      BigInt64Array.from(tokens.flatMap((row) => row.slice(from, to)), BigInt),
      [ROWS, to - from],
    );
  const prepared = await model._prepare_encoder_decoder_kwargs_for_generation({
    inputs_tensor: inputIds,
    model_inputs: { input_ids: inputIds, attention_mask: attentionMask },
    model_input_name: "input_ids",
    generation_config: { guidance_scale: 3.0 },
  });
  const feeds = {
    encoder_outputs: prepared.encoder_outputs,
    attention_mask: prepared.attention_mask,
  };
  const lastLogits = (out) => Array.from(out.logits.slice(null, -1, null).data);
  const perPosition = {};
  const logits = [];
  for (const pos of POSITIONS) {
    let out = await model.forward({ ...feeds, decoder_input_ids: columns(0, pos) });
    let past = model.getPastKeyValues(out, null);
    if (pos === 1) logits.push(lastLogits(out));
    const times = [];
    for (let s = pos; s < pos + 8; s++) {
      const t = performance.now();
      out = await model.forward({
        ...feeds,
        decoder_input_ids: columns(s, s + 1),
        past_key_values: past,
      });
      past = model.getPastKeyValues(out, past);
      times.push(performance.now() - t);
      if (pos === 1) logits.push(lastLogits(out));
    }
    perPosition[pos] = median(times);
  }
  const rows = (flat) =>
    Array.from({ length: ROWS }, (_, r) => flat.slice(r * VOCAB, (r + 1) * VOCAB));
  const result = {
    per_position: perPosition,
    track_10s_s: trackS,
    generate_10s_s: generateS,
    logits: logits.map(rows),
    input_ids: Array.from(inputIds.data, Number),
    tokenizer_ids: Array.from(encoded.input_ids.data, Number),
    rss_10s_mb: rss10s,
    peak_rss_mb: peakRssMb(),
    versions: { transformers_js: tf.env.version, node: process.version },
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
}

main().catch((err) => {
  console.error(err?.stack ?? String(err));
  process.exit(1);
});
