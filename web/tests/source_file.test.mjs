import { test } from "node:test";
import assert from "node:assert/strict";
import { findSourceFile, headlineRows, layersQuery, summaryText, wrappedRows } from "../lib/source_file.js";

const w = (name, value) => ({ name, value });

test("a loader's own file widget", () => {
  const node = { widgets: [w("unet_name", "wan.safetensors"), w("ignored_layers", "")], inputs: [] };
  assert.deepEqual(findSourceFile(node, () => null), { folder: "diffusion_models", name: "wan.safetensors" });
});

test("follows the model input upstream, through other nodes", () => {
  const loader = { widgets: [w("unet_name", "qwen.safetensors"), w("weight_dtype", "default")], inputs: [] };
  const lora = { widgets: [w("lora_name", "x.safetensors")], inputs: [{ name: "model", link: 1 }] };
  const vae = { widgets: [w("vae_name", "vae.safetensors")], inputs: [] };
  const int8 = { widgets: [w("ignored_layers", "")], inputs: [{ name: "vae", link: 3 }, { name: "model", link: 2 }] };
  const graph = new Map([[int8, [vae, lora]], [lora, [loader]]]);
  const upstream = (node, i) => (graph.get(node) || [])[i] || null;
  assert.deepEqual(findSourceFile(int8, upstream), { folder: "diffusion_models", name: "qwen.safetensors" });
});

test("vae / clip storage nodes and dead ends", () => {
  const vae = { widgets: [w("vae_name", "wan_2.1_vae.safetensors")], inputs: [] };
  const node = { widgets: [], inputs: [{ name: "vae", link: 5 }] };
  assert.deepEqual(findSourceFile(node, () => vae), { folder: "vae", name: "wan_2.1_vae.safetensors" });
  assert.equal(findSourceFile({ widgets: [], inputs: [{ name: "model", link: null }] }, () => vae), null);
  const dir = { widgets: [w("unet_name", "export_folder/")], inputs: [] };
  assert.equal(findSourceFile(dir, () => null), null);
  const loop = { widgets: [], inputs: [{ name: "model", link: 1 }] };
  assert.equal(findSourceFile(loop, () => loop), null);
});

test("query and summary", () => {
  assert.equal(layersQuery({ folder: "vae", name: "a b.safetensors" }, "x,y"),
    "/dit_quant/layers?folder=vae&name=a+b.safetensors&ignored=x%2Cy");
  assert.equal(summaryText({ text: ["a", "b"] }), "a\nb");
  assert.equal(summaryText({ text: "c" }), "c");
  assert.equal(summaryText(undefined), "");
});

test("the summary box is sized to its first three lines, wrapped at the node's width", () => {
  const text = ["a".repeat(70), "b".repeat(20), "c".repeat(41), "details ".repeat(40)].join("\n");
  assert.equal(headlineRows(text, 280), 2 + 1 + 2); // 40 characters a row: 70 -> 2 rows, 20 -> 1, 41 -> 2
  assert.equal(headlineRows(text, 700), 3);
  assert.equal(headlineRows("", 280), 1);
});

test("a headline line wraps at spaces as the textarea wraps it", () => {
  assert.equal(wrappedRows("aaaa bbbb cccc", 9), 2); // "aaaa bbbb" fits 9, "cccc" on the next row
  assert.equal(wrappedRows("aaaa bbbbb", 9), 2); // 10 characters: the word moves down whole
  assert.equal(wrappedRows("aa " + "x".repeat(20), 8), 4); // "aa", then 20 x broken 8 + 8 + 4
  assert.equal(wrappedRows("", 8), 1);
  // by characters alone 17 fit two rows of 9; at spaces they take three
  assert.equal(wrappedRows("aaaaaa bbbbbb ccc", 9), 3);
});
