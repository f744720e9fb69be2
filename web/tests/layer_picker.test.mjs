import { test } from "node:test";
import assert from "node:assert/strict";
import {
  filterLayers, formatBytes, groupByBlock, groupLabel, groupState, initialSelection, presetNote, presetSelection,
  selectionStats, selectionToText,
} from "../lib/layer_picker.js";

const layer = (name, block, extra = {}) => ({
  name, block, shape: [64, 64], bytes: 8192, presets: { default: null, quality: null }, ignored_by: null, ...extra,
});
const LAYERS = [
  layer("blocks.0.self_attn.q", "blocks.0", { presets: { default: null, quality: "blocks.0" } }),
  layer("blocks.0.ffn.0", "blocks.0", { presets: { default: null, quality: "blocks.0" }, ignored_by: "blocks.0.ffn.*" }),
  layer("blocks.1.self_attn.q", "blocks.1"),
  layer("blocks.1.ffn.0", "blocks.1"),
  layer("head.head", "head", { presets: { default: "head", quality: "head" } }),
];

test("formatBytes", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(8192), "8.0 KB");
  assert.equal(formatBytes(3 * 1024 ** 3), "3.0 GB");
});

test("filter matches every word, case-insensitive", () => {
  assert.deepEqual(filterLayers(LAYERS, "FFN blocks.1").map((l) => l.name), ["blocks.1.ffn.0"]);
  assert.equal(filterLayers(LAYERS, "  ").length, LAYERS.length);
});

test("groups keep order and sum bytes", () => {
  const groups = groupByBlock(LAYERS);
  assert.deepEqual(groups.map((g) => g.block), ["blocks.0", "blocks.1", "head"]);
  assert.equal(groups[0].bytes, 16384);
});

test("selections from the current text and from presets", () => {
  assert.deepEqual([...initialSelection(LAYERS)], ["blocks.0.ffn.0"]);
  assert.deepEqual([...presetSelection(LAYERS, "default")], ["head.head"]);
  assert.deepEqual([...presetSelection(LAYERS, "quality")], ["blocks.0.self_attn.q", "blocks.0.ffn.0", "head.head"]);
});

test("selection text: whole dotted blocks collapse, bare blocks and partial blocks list names", () => {
  const sel = new Set(["blocks.0.self_attn.q", "blocks.0.ffn.0", "blocks.1.ffn.0", "head.head"]);
  assert.equal(selectionToText(LAYERS, sel), "blocks.0\nblocks.1.ffn.0\nhead.head");
  assert.equal(selectionToText(LAYERS, new Set(), ["re:^extra\\."]), "re:^extra\\.");
  assert.equal(selectionToText(LAYERS, new Set()), "");
});

test("stats", () => {
  const s = selectionStats(LAYERS, new Set(["head.head", "blocks.1.ffn.0"]));
  assert.equal(s.count, 2);
  assert.equal(s.text, "2 of 5 layers kept in high precision (16.0 KB)");
});

test("group label is singular for one layer", () => {
  const [b0, , head] = groupByBlock(LAYERS);
  assert.equal(groupLabel(b0), "2 layers, 16.0 KB");
  assert.equal(groupLabel(head), "1 layer, 8.0 KB");
});

test("group checkbox state: all, some (indeterminate), none", () => {
  const [b0] = groupByBlock(LAYERS);
  assert.equal(groupState(b0, new Set(["blocks.0.self_attn.q", "blocks.0.ffn.0"])), "all");
  assert.equal(groupState(b0, new Set(["blocks.0.ffn.0", "head.head"])), "some");
  assert.equal(groupState(b0, new Set(["head.head"])), "none");
});

test("modulation layers stored weight-only by the default preset are not selected by it, and say so", () => {
  const mod = layer("transformer_blocks.0.img_mod.1", "transformer_blocks.0", {
    presets: { default: "img_mod", quality: "img_mod" }, weight_only: { default: "img_mod" },
  });
  const head = layer("proj_out", "proj_out", { presets: { default: "proj_out", quality: "proj_out" }, weight_only: {} });
  assert.deepEqual([...presetSelection([mod, head], "default")], ["proj_out"]);
  assert.deepEqual([...presetSelection([mod, head], "quality")], ["transformer_blocks.0.img_mod.1", "proj_out"]);
  assert.equal(presetNote(mod), "kept by preset: quality; quantized (FP8 weight-only / INT8) under preset: default");
  assert.equal(presetNote(head), "kept by preset: default, quality");
  assert.equal(presetNote(layer("blocks.1.ffn.0", "blocks.1")), "");
});
