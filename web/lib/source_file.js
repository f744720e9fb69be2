// Which model file a node's layers come from: its own file widget, or the loader upstream of its
// model / vae / clip input (e.g. INT8 NPU Quantize after Load Diffusion Model). Pure: the caller passes a
// function that returns the node feeding an input.

export const FILE_WIDGETS = {
  unet_name: "diffusion_models",
  ckpt_name: "checkpoints",
  vae_name: "vae",
  clip_name: "text_encoders",
  clip_name1: "text_encoders",
};
const PREFERRED_INPUTS = ["model", "vae", "clip"];

/** {folder, name} of the file behind `node`, or null. `upstream(node, inputIndex)` returns the source node. */
export function findSourceFile(node, upstream, depth = 0) {
  if (!node || depth > 32) return null;
  for (const w of node.widgets || []) {
    const folder = FILE_WIDGETS[w.name];
    if (folder && typeof w.value === "string" && w.value.endsWith(".safetensors")) {
      return { folder, name: w.value };
    }
  }
  const inputs = (node.inputs || []).map((inp, index) => ({ inp, index })).filter(({ inp }) => inp.link != null);
  inputs.sort((a, b) => rank(a.inp.name) - rank(b.inp.name));
  for (const { index } of inputs) {
    const found = findSourceFile(upstream(node, index), upstream, depth + 1);
    if (found) return found;
  }
  return null;
}

function rank(name) {
  const i = PREFERRED_INPUTS.indexOf(name);
  return i < 0 ? PREFERRED_INPUTS.length : i;
}

/** The query string of GET /dit_quant/layers for a file and the node's current ignored_layers text. */
export function layersQuery(source, ignored) {
  const q = new URLSearchParams({ folder: source.folder, name: source.name, ignored: ignored || "" });
  return `/dit_quant/layers?${q.toString()}`;
}

/** The text a node returned in its ui ("text" list) after a run, or "". */
export function summaryText(message) {
  const text = message && message.text;
  if (!text) return "";
  return (Array.isArray(text) ? text : [text]).join("\n");
}

export const HEADLINE_LINES = 3;

/** Rows `line` takes wrapped at `perRow` characters as a textarea wraps it: at spaces, a longer word broken. */
export function wrappedRows(line, perRow) {
  let rows = 1;
  let used = 0;
  for (const word of line.split(" ")) {
    const need = used === 0 ? word.length : used + 1 + word.length;
    if (need <= perRow) {
      used = need;
    } else if (word.length <= perRow) {
      rows += 1;
      used = word.length;
    } else { // a word longer than a row: starts on a new row (unless the row is empty) and is broken
      if (used > 0) rows += 1;
      rows += Math.ceil(word.length / perRow) - 1;
      used = word.length % perRow || perRow;
    }
  }
  return rows;
}

/** Rows the summary's headline (its first HEADLINE_LINES lines) takes, wrapped in a box `widthPx` wide. */
export function headlineRows(text, widthPx, charPx = 7) {
  const perRow = Math.max(10, Math.floor(widthPx / charPx));
  return (text || "").split("\n").slice(0, HEADLINE_LINES).reduce((rows, line) => rows + wrappedRows(line, perRow), 0);
}
