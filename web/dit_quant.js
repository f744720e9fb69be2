// comfyui-dit-quant frontend extension:
// - a "Pick layers…" button on every node with an `ignored_layers` widget, opening a dialog that lists the
//   checkpoint's layers (GET /dit_quant/layers) grouped by block, with family presets and a filter;
// - the quantization summary a node returns (ui text) shown on the node after a run.
// The logic lives in ./lib (pure, tested with `node --test web/tests`); this file is the DOM / ComfyUI glue.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import {
  filterLayers, formatBytes, groupByBlock, groupLabel, groupState, initialSelection, presetNote, presetSelection,
  selectionStats, selectionToText,
} from "./lib/layer_picker.js";
import { findSourceFile, headlineRows, layersQuery, summaryText } from "./lib/source_file.js";

const CSS = `
.dq-overlay{position:fixed;inset:0;background:rgba(0,0,0,.55);z-index:10000;display:flex;align-items:center;justify-content:center}
.dq-dialog{background:var(--comfy-menu-bg,#222);color:var(--fg-color,#ddd);width:min(900px,92vw);height:min(760px,88vh);display:flex;flex-direction:column;border:1px solid #555;border-radius:8px;font:13px sans-serif}
.dq-head{padding:10px 14px;border-bottom:1px solid #444}.dq-head b{font-size:15px}
.dq-bar{display:flex;gap:6px;flex-wrap:wrap;padding:8px 14px;border-bottom:1px solid #444}
.dq-bar input{flex:1;min-width:200px;padding:4px 8px;background:#111;color:inherit;border:1px solid #555;border-radius:4px}
.dq-dialog button{padding:4px 10px;background:#333;color:inherit;border:1px solid #666;border-radius:4px;cursor:pointer}
.dq-list{flex:1;overflow:auto;padding:4px 14px}.dq-list summary{cursor:pointer;padding:3px 0}
.dq-row{display:grid;grid-template-columns:22px 1fr 140px 70px 80px;gap:6px;padding:1px 0 1px 18px;align-items:center}
.dq-row .dq-muted,.dq-muted{opacity:.65}.dq-foot{display:flex;gap:8px;align-items:center;padding:10px 14px;border-top:1px solid #444}
.dq-foot span{flex:1}.dq-error{color:#f88;padding:14px}`;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function upstreamOf(node, index) {
  const linkId = node.inputs?.[index]?.link;
  const link = linkId == null ? null : (node.graph?.links?.get?.(linkId) ?? node.graph?.links?.[linkId]);
  return link ? node.graph.getNodeById(link.origin_id) : null;
}

async function openPicker(node, widget) {
  const source = findSourceFile(node, upstreamOf);
  const overlay = el("div", { class: "dq-overlay" });
  const dialog = el("div", { class: "dq-dialog", "data-testid": "dq-dialog" });
  overlay.append(dialog);
  const onKey = (e) => {
    if (e.key === "Escape") {
      e.stopPropagation();
      close();
    }
  };
  const close = () => {
    document.removeEventListener("keydown", onKey, true);
    overlay.remove();
  };
  overlay.addEventListener("click", (e) => e.target === overlay && close());
  document.addEventListener("keydown", onKey, true);
  document.body.append(overlay);
  if (!source) {
    dialog.append(el("div", { class: "dq-error" }, "No model file found: connect a loader (Load Diffusion Model, "
      + "Load VAE, Load CLIP) or pick a .safetensors file on this node."), el("div", { class: "dq-foot" },
      el("span"), el("button", { onclick: close }, "Close")));
    return;
  }
  let data;
  try {
    const resp = await api.fetchApi(layersQuery(source, widget.value));
    data = await resp.json();
    if (!resp.ok) throw new Error(data.error || resp.statusText);
  } catch (e) {
    dialog.append(el("div", { class: "dq-error" }, `Cannot list ${source.name}: ${e.message}`),
      el("div", { class: "dq-foot" }, el("span"), el("button", { onclick: close }, "Close")));
    return;
  }
  const layers = data.layers;
  const selected = initialSelection(layers);
  const filterBox = el("input", { type: "search", placeholder: "Filter layers (e.g. ffn 39, attn.q)" });
  const list = el("div", { class: "dq-list" });
  const stats = el("span");
  const render = () => {
    list.replaceChildren();
    for (const g of groupByBlock(filterLayers(layers, filterBox.value))) {
      const groupBox = el("input", { type: "checkbox" });
      const syncGroup = () => {
        const state = groupState(g, selected);
        groupBox.checked = state === "all";
        groupBox.indeterminate = state === "some";
      };
      syncGroup();
      groupBox.addEventListener("change", () => {
        for (const l of g.layers) groupBox.checked ? selected.add(l.name) : selected.delete(l.name);
        render();
      });
      const details = el("details", {}, el("summary", {}, groupBox, ` ${g.block} `,
        el("span", { class: "dq-muted" }, groupLabel(g))));
      details.open = g.layers.length <= 12 || filterBox.value.trim() !== "";
      for (const l of g.layers) {
        const box = el("input", { type: "checkbox" });
        box.checked = selected.has(l.name);
        box.addEventListener("change", () => {
          box.checked ? selected.add(l.name) : selected.delete(l.name);
          syncGroup();
          stats.textContent = selectionStats(layers, selected).text;
        });
        details.append(el("label", { class: "dq-row", title: presetNote(l) }, box, l.name,
          el("span", { class: "dq-muted" }, `[${l.shape.join(", ")}]`), el("span", { class: "dq-muted" }, l.dtype),
          el("span", { class: "dq-muted" }, formatBytes(l.bytes))));
      }
      list.append(details);
    }
    stats.textContent = selectionStats(layers, selected).text;
  };
  const select = (names) => {
    for (const n of names) selected.add(n);
    render();
  };
  const bar = el("div", { class: "dq-bar" }, filterBox);
  for (const preset of Object.keys(data.presets)) {
    bar.append(el("button", { onclick: () => select(presetSelection(layers, preset)) }, `+ preset ${preset}`));
  }
  bar.append(
    el("button", { onclick: () => select(filterLayers(layers, filterBox.value).map((l) => l.name)) }, "+ shown"),
    el("button", { onclick: () => { for (const l of filterLayers(layers, filterBox.value)) selected.delete(l.name); render(); } }, "− shown"),
    el("button", { onclick: () => { selected.clear(); render(); } }, "Clear"),
  );
  filterBox.addEventListener("input", render);
  const apply = () => {
    widget.value = selectionToText(layers, selected, data.unused_patterns || []);
    widget.callback?.(widget.value);
    node.setDirtyCanvas?.(true, true);
    close();
  };
  dialog.append(
    el("div", { class: "dq-head" }, el("b", {}, "Layers kept in high precision"), el("div", { class: "dq-muted" },
      `${data.file} (${source.folder}) — ${data.family || "unknown family: no presets"}. Checked layers are `
      + "written to ignored_layers; the node's preset widget adds its own layers on top.")),
    bar, list,
    el("div", { class: "dq-foot" }, stats, el("button", { onclick: close }, "Cancel"),
      el("button", { onclick: apply, "data-testid": "dq-apply" }, "Apply")),
  );
  render();
  filterBox.focus();
}

// The summary's first HEADLINE_LINES lines are its headline (scheme and layers, GB before -> after, backend and
// why): the box is made tall enough to show them wrapped at the node's width, without scrolling, in the font size
// the box has (ComfyUI's "Textarea widget font size" setting, 10 px by default; monospace, about 0.6 em a
// character).
const SUMMARY_LINE_EM = 1.6;
const SUMMARY_CHAR_EM = 0.65;

function summaryMinHeight(node, area) {
  const fontPx = parseFloat(getComputedStyle(area).fontSize) || 10; // not yet in the page: the default
  // the box is the node's width less 24 px of margins, less a scroll bar (the details below scroll)
  const rows = headlineRows(area.value, node.size[0] - 24 - 16, fontPx * SUMMARY_CHAR_EM);
  return Math.ceil((rows + 1) * fontPx * SUMMARY_LINE_EM) + 12;
}

function showSummary(node, text) {
  if (!text) return;
  let w = node.widgets?.find((x) => x.name === "dit_quant_summary");
  if (!w) {
    const area = el("textarea", { readonly: "", class: "comfy-multiline-input", rows: "6",
      "data-testid": "dq-summary" });
    area.style.opacity = "0.85";
    area.style.lineHeight = String(SUMMARY_LINE_EM);
    w = node.addDOMWidget("dit_quant_summary", "summary", area, {
      serialize: false, getValue: () => area.value, setValue: (v) => { area.value = v; },
      getMinHeight: () => summaryMinHeight(node, area),
    });
    w.serialize = false;
  }
  w.options?.setValue ? w.options.setValue(text) : (w.value = text);
  node.setSize?.([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
  node.setDirtyCanvas?.(true, true);
}

app.registerExtension({
  name: "comfyui-dit-quant.layers",
  setup() {
    document.head.append(el("style", {}, CSS));
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const inputs = { ...nodeData.input?.required, ...nodeData.input?.optional };
    const ours = nodeData.python_module?.includes("dit-quant") || nodeData.name?.startsWith("DiTQuant");
    if (inputs.ignored_layers) {
      const created = nodeType.prototype.onNodeCreated;
      nodeType.prototype.onNodeCreated = function () {
        const r = created?.apply(this, arguments);
        const widget = this.widgets?.find((w) => w.name === "ignored_layers");
        if (widget) this.addWidget("button", "Pick layers…", null, () => openPicker(this, widget), { serialize: false });
        const button = this.widgets?.[this.widgets.length - 1];
        if (button) button.serialize = false;
        return r;
      };
    }
    if (ours) {
      const executed = nodeType.prototype.onExecuted;
      nodeType.prototype.onExecuted = function (message) {
        executed?.apply(this, arguments);
        showSummary(this, summaryText(message));
      };
    }
  },
});
