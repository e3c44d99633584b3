// pyml in the browser: loads model.onnx and its card model.json from next to this page (both
// written by `pyml export`), checks the model's sha256 against the card, builds a form from the
// card's inputs and predicts with onnxruntime-web (wasm backend, one thread). README.md beside
// this file describes the card and the graph's inputs and outputs.
"use strict";

// The card's input types (ONNX element types) and the tensors this page gives them.
const TENSOR_TYPES = { double: "float64", float: "float32", string: "string" };

const $ = (id) => document.getElementById(id);

function showStatus(text, state) {
  $("status").textContent = text;
  $("status").classList.toggle("error", state === "error");
  document.body.dataset.state = state; // loading, ready or error (the test waits on it)
}

async function fetchFile(name) {
  let response;
  try {
    response = await fetch(name, { cache: "no-cache" });
  } catch (error) {
    throw new Error(`cannot fetch ${name}: ${error.message}`);
  }
  if (!response.ok) {
    throw new Error(
      `${name} is missing next to this page (HTTP ${response.status}). Export a model into ` +
        "this folder: pyml export PROJECT -o model.onnx writes model.onnx and model.json.",
    );
  }
  return response;
}

async function readCard() {
  const response = await fetchFile("model.json");
  let card;
  try {
    card = await response.json();
  } catch (error) {
    throw new Error(`model.json is not valid JSON: ${error.message}`);
  }
  if (!card || !Array.isArray(card.inputs) || typeof card.sha256 !== "string") {
    throw new Error("model.json is not a pyml model card: it has no inputs or no sha256");
  }
  for (const input of card.inputs) {
    if (!(input.type in TENSOR_TYPES)) {
      throw new Error(`input "${input.name}" has type ${input.type}, which this page cannot fill`);
    }
  }
  return card;
}

async function sha256(bytes) {
  if (!window.crypto || !crypto.subtle) {
    throw new Error(
      "checking the model's sha256 needs a secure context: open this page over https or " +
        "from localhost",
    );
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

// The model's bytes, only once they match the card: a half-copied or stale model.onnx never
// reaches onnxruntime.
async function readModel(card) {
  const bytes = new Uint8Array(await (await fetchFile("model.onnx")).arrayBuffer());
  const digest = await sha256(bytes);
  if (digest !== card.sha256) {
    const expected = typeof card.bytes === "number" ? ` (${card.bytes} bytes)` : "";
    throw new Error(
      `model.onnx does not match model.json: its sha256 is ${digest} (${bytes.length} bytes), ` +
        `the card says ${card.sha256}${expected}. Export both files again, together.`,
    );
  }
  return bytes;
}

function describe(card) {
  const parts = [`project ${card.project}`, `model ${card.model_id}`, card.algorithm, card.task];
  const parity = card.parity;
  if (parity && typeof parity.max_diff === "number") {
    const diff = parity.max_diff;
    const shown = diff === 0 ? "0" : diff < 1e-3 ? diff.toExponential(1) : diff.toPrecision(2);
    parts.push(`largest difference from the original model ${shown} on ${parity.rows} test rows`);
  }
  $("model").textContent = parts.join(" · ");
}

function buildForm(card) {
  const form = $("form");
  const button = form.querySelector("button");
  card.inputs.forEach((input, i) => {
    const label = document.createElement("label");
    const name = document.createElement("span");
    const type = document.createElement("small");
    type.textContent = input.type === "string" ? "text" : "number";
    name.append(input.name, type);
    const field = document.createElement("input");
    field.id = `input-${i}`;
    field.placeholder = "NULL";
    if (input.type === "string") {
      field.type = "text";
    } else {
      field.type = "number";
      field.step = "any";
    }
    label.append(name, field);
    form.insertBefore(label, button);
  });
  form.hidden = false;
  $("hint").hidden = false;
}

// One row of inputs, each a [1, 1] tensor; an empty field is NULL: NaN for a number, "" for a text.
function feeds(card) {
  const result = {};
  card.inputs.forEach((input, i) => {
    const field = $(`input-${i}`);
    const type = TENSOR_TYPES[input.type];
    if (type === "string") {
      result[input.name] = new ort.Tensor("string", [field.value], [1, 1]);
      return;
    }
    if (field.validity.badInput) {
      throw new Error(`"${input.name}" must be a number, or empty for NULL`);
    }
    const value = field.value === "" ? NaN : Number(field.value);
    const data = type === "float32" ? Float32Array.of(value) : Float64Array.of(value);
    result[input.name] = new ort.Tensor(type, data, [1, 1]);
  });
  return result;
}

// A number as PostgreSQL prints it: the shortest text that reads back to the same value (for a
// float32 output, the shortest that reads back to the same float32, as for a real).
function number(value, type) {
  if (type === "float32" && Number.isFinite(value)) {
    for (let digits = 1; digits < 10; digits++) {
      const text = value.toPrecision(digits);
      if (Math.fround(Number(text)) === value) return String(Number(text));
    }
  }
  return String(value);
}

// A class as the card lists it (raw JSON values: text, numbers or booleans).
function shownClass(value) {
  return value === null ? "NULL" : String(value);
}

function showProbabilities(card, tensor, top) {
  const table = $("probabilities");
  table.replaceChildren();
  card.classes.forEach((value, j) => {
    const p = Number(tensor.data[j]);
    const row = table.insertRow();
    row.className = j === top ? "top" : "";
    const name = document.createElement("th");
    name.textContent = shownClass(value);
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
    row.append(name);
    row.insertCell().append(bar);
    const cell = row.insertCell();
    cell.className = "value";
    cell.textContent = number(p, tensor.type);
  });
  table.hidden = false;
}

// The outputs as pyml.predict gives them: a regression's value, a classification's class
// (classes[label]) and its probabilities in the card's class order, a cluster number, or a
// decomposition's components.
function showOutputs(card, outputs) {
  $("probabilities").hidden = true;
  if (card.task === "classification") {
    const index = Number(outputs.label.data[0]);
    $("prediction").textContent = shownClass(card.classes[index]);
    showProbabilities(card, outputs.probabilities, index);
  } else if (card.task === "clustering") {
    $("prediction").textContent = `cluster ${Number(outputs.label.data[0])}`;
  } else {
    const variable = outputs.variable;
    $("prediction").textContent = Array.from(variable.data, (v) => number(v, variable.type)).join(", ");
  }
  const result = $("result");
  result.hidden = false;
  result.dataset.count = String(Number(result.dataset.count || 0) + 1); // the test waits on it
}

async function main() {
  let card, session;
  try {
    card = await readCard();
    describe(card);
    const bytes = await readModel(card);
    ort.env.wasm.numThreads = 1; // no cross-origin isolation needed
    ort.env.wasm.wasmPaths = new URL("vendor/", document.baseURI).href;
    session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  } catch (error) {
    showStatus(`Cannot load the model: ${error.message}`, "error");
    return;
  }
  buildForm(card);
  showStatus(`Model loaded, sha256 verified (${card.sha256.slice(0, 12)}…). Fill in the fields and press Predict.`, "ready");

  let busy = false;
  $("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    busy = true;
    try {
      const start = performance.now();
      const outputs = await session.run(feeds(card));
      const elapsed = performance.now() - start;
      showOutputs(card, outputs);
      showStatus(`Predicted in this browser in ${elapsed.toFixed(1)} ms.`, "ready");
    } catch (error) {
      showStatus(`Cannot predict: ${error.message}`, "error");
    } finally {
      busy = false;
    }
  });
}

main();
