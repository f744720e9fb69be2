// Pure logic of the "Pick layers…" dialog (no DOM, no ComfyUI): grouping, filtering, preset selections and
// the ignored_layers text written back to the widget. Layers come from GET /dit_quant/layers.

/** Human-readable byte count ("12.3 MB"). */
export function formatBytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** Layers whose name contains every whitespace-separated word of the filter (case-insensitive). */
export function filterLayers(layers, filter) {
  const words = (filter || "").toLowerCase().split(/\s+/).filter(Boolean);
  return layers.filter((l) => words.every((w) => l.name.toLowerCase().includes(w)));
}

/** [{block, layers, bytes}] in the order the layers come (the server sorts them naturally). */
export function groupByBlock(layers) {
  const groups = new Map();
  for (const l of layers) {
    if (!groups.has(l.block)) groups.set(l.block, { block: l.block, layers: [], bytes: 0 });
    const g = groups.get(l.block);
    g.layers.push(l);
    g.bytes += l.bytes;
  }
  return [...groups.values()];
}

/** "1 layer, 8.0 KB" / "10 layers, 96.0 KB": the summary line of a block group. */
export function groupLabel(group) {
  const n = group.layers.length;
  return `${n} ${n === 1 ? "layer" : "layers"}, ${formatBytes(group.bytes)}`;
}

/** State of a group's checkbox: "all", "some" (indeterminate) or "none" of its layers selected. */
export function groupState(group, selected) {
  const picked = group.layers.filter((l) => selected.has(l.name)).length;
  return picked === 0 ? "none" : picked === group.layers.length ? "all" : "some";
}

/** Names the current ignored_layers text already keeps (as the server matched them). */
export function initialSelection(layers) {
  return new Set(layers.filter((l) => l.ignored_by).map((l) => l.name));
}

/** Whether the preset quantizes the layer after all (modulation layers under "default") rather than keeping it. */
function weightOnly(l, preset) {
  return Boolean(l.weight_only && l.weight_only[preset]);
}

/** Names a family preset keeps in high precision ("default" or "quality"); not those it stores weight-only. */
export function presetSelection(layers, preset) {
  return new Set(layers.filter((l) => l.presets && l.presets[preset] && !weightOnly(l, preset)).map((l) => l.name));
}

/** Hover text of a layer row: which presets keep it, and under which it is quantized after all. */
export function presetNote(l) {
  const presets = Object.entries(l.presets || {}).filter(([, p]) => p).map(([k]) => k);
  const kept = presets.filter((p) => !weightOnly(l, p));
  const wo = presets.filter((p) => weightOnly(l, p));
  const parts = [];
  if (kept.length) parts.push(`kept by preset: ${kept.join(", ")}`);
  if (wo.length) parts.push(`quantized (FP8 weight-only / INT8) under preset: ${wo.join(", ")}`);
  return parts.join("; ");
}

/**
 * The ignored_layers text for a selection: a whole dotted block ("blocks.3") when every layer of it is picked,
 * else the layer names, one per line. Patterns that matched no layer of this file are kept at the end.
 */
export function selectionToText(layers, selected, keep = []) {
  const lines = [];
  for (const g of groupByBlock(layers)) {
    const picked = g.layers.filter((l) => selected.has(l.name));
    if (picked.length === 0) continue;
    if (picked.length === g.layers.length && g.layers.length > 1 && g.block.includes(".")) lines.push(g.block);
    else lines.push(...picked.map((l) => l.name));
  }
  return [...lines, ...keep].join("\n");
}

/** Count and bytes of the selected layers, for the dialog's footer. */
export function selectionStats(layers, selected) {
  let bytes = 0;
  let count = 0;
  for (const l of layers) {
    if (selected.has(l.name)) {
      count += 1;
      bytes += l.bytes;
    }
  }
  return { count, bytes, text: `${count} of ${layers.length} layers kept in high precision (${formatBytes(bytes)})` };
}
