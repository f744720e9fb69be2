// Integration tier: drive headless Debian Chromium (playwright-core, no browser download) against a running
// ComfyUI with this pack and its frontend; tests/integration/test_web_ui.py starts the server, runs this script
// and asserts on the JSON report it writes. Not a `node --test` file (web/tests holds those).
//
//   node ui_check.mjs --url http://127.0.0.1:8188 --out DIR --checkpoint tiny_wan.safetensors \
//     --run-checkpoint tiny_wan_run.safetensors \
//     --picker-workflow FILE.json --pick blocks.1.ffn.0 --group blocks.0 WORKFLOW.json...
//
// Report (DIR/report.json): per workflow, the nodes' types and whether the frontend knows them, the missing-node
// warnings shown; a negative control (a workflow with an unknown node type, which must be flagged); the "Pick
// layers…" dialog: layers listed, ignored_layers written by a preset button and checkboxes, the selection seen
// when the dialog is opened again; per example, where its nodes land once its saved view is applied
// (view_check.mjs); the summary box of a Load FP8 DiT node after a run (summary_check.mjs). Screenshots go to DIR.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { runLoader, showAgainWithFont, summaryState } from "./summary_check.mjs";
import { viewState } from "./view_check.mjs";

const { values: opt, positionals: workflows } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: "string" },
    out: { type: "string" },
    checkpoint: { type: "string" },
    "run-checkpoint": { type: "string" },
    "picker-workflow": { type: "string" },
    pick: { type: "string" },
    group: { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
});
for (const k of ["url", "out", "checkpoint", "run-checkpoint", "picker-workflow", "pick", "group"]) {
  if (!opt[k]) throw new Error(`--${k} is required`);
}
fs.mkdirSync(opt.out, { recursive: true });
const report = { workflows: {}, console_errors: [], page_errors: [], screenshots: [] };
const EXTENSION = "comfyui-dit-quant.layers";
const BUTTON = "Pick layers…";
// The examples' saved views are fitted for a 1280x720 window (tests/workflow_specs.py VIEW); the rest runs wider.
const SMALL = { width: 1280, height: 720 };
const WIDE = { width: 1600, height: 1000 };
const slug = (name) => name.replace(/[^A-Za-z0-9.]+/g, "_").replace(/^_|_$/g, "");

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "dq-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: opt.chromium,
  headless: true,
  viewport: WIDE,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

async function shot(page, name) {
  const file = path.join(opt.out, name);
  await page.screenshot({ path: file });
  report.screenshots.push(file);
}

try {
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(30000);
  page.on("pageerror", (e) => report.page_errors.push(String(e.stack || e.message).slice(0, 1000)));
  page.on("console", (m) => {
    if (m.type() === "error") report.console_errors.push(`${m.text()} @ ${m.location()?.url ?? ""}`.slice(0, 500));
  });
  await page.goto(opt.url);
  await page.waitForFunction((name) => window.app?.graph && window.LiteGraph
    && window.app.extensions?.some((e) => e.name === name), EXTENSION, { timeout: 90000 });
  report.extension_loaded = true;

  // Missing-node warnings as this frontend shows them: the error overlay (newer frontends), a dialog or toast
  // that names missing nodes (older ones), and the graph's own marks (unknown type, has_errors).
  const inspect = () => page.evaluate(({ button }) => {
    const visible = (e) => !!(e.offsetParent || e.getClientRects().length);
    const warnings = [];
    for (const e of document.querySelectorAll(
      "[data-testid=error-overlay], [role=dialog], [role=alertdialog], .p-dialog, .p-toast-message, .comfy-modal")) {
      if (visible(e) && /missing|not found|not installed/i.test(e.innerText)) warnings.push(e.innerText.slice(0, 300));
    }
    const nodes = app.graph.nodes.map((n) => {
      const names = (n.widgets || []).map((w) => w.name);
      return {
        id: n.id, type: n.type, registered: !!LiteGraph.registered_node_types[n.type], has_errors: !!n.has_errors,
        ignored_layers: names.includes("ignored_layers"), pick_button: names.includes(button),
      };
    });
    const serialized = Object.fromEntries(app.graph.serialize().nodes.map((n) => [n.id, n.widgets_values]));
    // nodes drawn over each other once the frontend has sized them (informational: layout, not loading)
    app.canvas.draw(true, true);
    const rects = app.graph.nodes.map((n) => [n, n.boundingRect]);
    const overlaps = [];
    for (let i = 0; i < rects.length; i++) {
      for (let j = i + 1; j < rects.length; j++) {
        const [a, ra] = rects[i];
        const [b, rb] = rects[j];
        if (ra[0] < rb[0] + rb[2] && rb[0] < ra[0] + ra[2] && ra[1] < rb[1] + rb[3] && rb[1] < ra[1] + ra[3]) {
          overlaps.push(`${a.id} ${a.title} / ${b.id} ${b.title}`);
        }
      }
    }
    return { nodes, warnings, serialized, overlaps };
  }, { button: BUTTON });

  const load = async (json, name) => {
    await page.evaluate(async ({ json, name }) => {
      await app.loadGraphData(json, true, true, name);
    }, { json, name });
    await page.waitForTimeout(1500); // warnings surface asynchronously after the load
    return inspect();
  };

  await page.setViewportSize(SMALL);
  await page.waitForTimeout(500);
  for (const file of workflows) {
    const json = JSON.parse(fs.readFileSync(file, "utf8"));
    const name = path.basename(file, ".json");
    const res = await load(json, name);
    res.saved_ds = json.extra?.ds ?? null;
    res.view = await viewState(page); // as loaded: the saved view applied, nothing moved
    res.screenshot = `example_${slug(name)}.png`;
    await shot(page, res.screenshot);
    // widgets_values must survive a load/serialize round trip (the button widget must not shift them); a node
    // without widgets may have no widgets_values key in the file, and [] once serialized
    const original = Object.fromEntries(json.nodes.map((n) => [n.id, n.widgets_values ?? []]));
    res.changed_widgets_values = Object.keys(original).filter((id) => res.nodes.find((n) => String(n.id) === id)
      && JSON.stringify(res.serialized[id] ?? []) !== JSON.stringify(original[id]))
      .map((id) => ({ id, before: original[id], after: res.serialized[id] }));
    delete res.serialized;
    report.workflows[name] = res;
  }

  await page.setViewportSize(WIDE);
  await page.waitForTimeout(500);

  // Negative control: the same checks must flag a node type that no one registered.
  const control = JSON.parse(fs.readFileSync(opt["picker-workflow"], "utf8"));
  control.nodes.find((n) => n.type !== "Note").type = "DiTQuantNoSuchNode";
  const ctl = await load(control, "negative-control");
  delete ctl.serialized;
  report.negative_control = ctl;
  await shot(page, "negative_control.png");

  // The "Pick layers…" dialog on a Load FP8 DiT node pointed at the tiny checkpoint.
  const picker = JSON.parse(fs.readFileSync(opt["picker-workflow"], "utf8"));
  await load(picker, "picker");
  const target = await page.evaluate(({ checkpoint, button }) => {
    const node = app.graph.nodes.find((n) => n.type === "DiTQuantLoadFP8DiT");
    const unet = node.widgets.find((w) => w.name === "unet_name");
    unet.value = checkpoint;
    unet.callback?.(checkpoint);
    node.widgets.find((w) => w.name === "ignored_layers").value = "";
    app.canvas.bringToFront?.(node); // the example layouts may let a neighbour cover part of the node
    app.canvas.centerOnNode?.(node);
    app.canvas.setDirty(true, true);
    app.canvas.draw(true, true);
    const w = node.widgets.find((x) => x.name === button);
    const h = w.computedHeight || LiteGraph.NODE_WIDGET_HEIGHT;
    const y = w.y ?? w.last_y;
    const [cx, cy] = app.canvas.ds.convertOffsetToCanvas([node.pos[0] + node.size[0] / 2, node.pos[1] + y + h / 2]);
    const rect = app.canvas.canvas.getBoundingClientRect();
    const gx = node.pos[0] + node.size[0] / 2;
    const gy = node.pos[1] + y + h / 2;
    return { id: node.id, x: rect.left + cx, y: rect.top + cy, on_top: app.graph.getNodeOnPos(gx, gy) === node };
  }, { checkpoint: opt.checkpoint, button: BUTTON });
  report.picker = { node: target.id, button_on_top: target.on_top };
  await page.mouse.click(target.x, target.y); // a real click on the canvas button
  const dialog = page.getByTestId("dq-dialog");
  await dialog.waitFor({ state: "visible", timeout: 15000 });
  await page.waitForFunction(() => document.querySelector("[data-testid=dq-dialog] .dq-row, .dq-error"));
  report.picker.error = await dialog.locator(".dq-error").allInnerTexts();
  report.picker.header = await dialog.locator(".dq-head").innerText();
  // open every block group so all rows (and their checkboxes) are reachable
  await page.evaluate(() => document.querySelectorAll("[data-testid=dq-dialog] details").forEach((d) => { d.open = true; }));
  report.picker.layers = await dialog.locator(".dq-row").evaluateAll((rows) => rows.map((r) => r.childNodes[1].textContent));
  report.picker.buttons = await dialog.locator(".dq-bar button").allInnerTexts();

  // Typing in the filter box filters the list and stays in the box: Backspace / Delete must not reach the
  // canvas (where they delete the selected node).
  const nodesBefore = await page.evaluate(() => app.graph.nodes.length);
  const filter = dialog.getByPlaceholder(/Filter layers/);
  await filter.click();
  await page.keyboard.type("ffn 1x");
  await page.keyboard.press("Backspace");
  await page.keyboard.press("Delete");
  report.picker.filtered = await dialog.locator(".dq-row").evaluateAll((rows) => rows.map((r) => r.childNodes[1].textContent));
  report.picker.nodes_kept_while_typing = nodesBefore === await page.evaluate(() => app.graph.nodes.length);
  await filter.fill("");
  await dialog.getByRole("button", { name: "+ preset default" }).click();
  await page.evaluate(() => document.querySelectorAll("[data-testid=dq-dialog] details").forEach((d) => { d.open = true; }));
  await dialog.locator(".dq-row").filter({ hasText: new RegExp(`^\\s*${opt.pick.replace(/\./g, "\\.")}\\s*\\[`) })
    .locator("input[type=checkbox]").check();
  await dialog.locator("summary").filter({ hasText: new RegExp(`^\\s*${opt.group.replace(/\./g, "\\.")}\\s`) })
    .locator("input[type=checkbox]").check();
  await page.evaluate(() => document.querySelectorAll("[data-testid=dq-dialog] details").forEach((d) => { d.open = true; }));
  report.picker.checked_in_dialog = await dialog.locator(".dq-row").evaluateAll((rows) => rows
    .filter((r) => r.querySelector("input").checked).map((r) => r.childNodes[1].textContent));
  report.picker.stats = await dialog.locator(".dq-foot span").first().innerText();
  report.picker.groups = await dialog.locator("summary").evaluateAll((sums) => sums.map((e) => {
    const box = e.querySelector("input");
    return { text: e.textContent.trim(), state: box.checked ? "all" : box.indeterminate ? "some" : "none" };
  }));
  await shot(page, "pick_layers_dialog.png");
  await dialog.getByTestId("dq-apply").click();
  await dialog.waitFor({ state: "detached" });
  report.picker.widget_value = await page.evaluate((id) => app.graph.getNodeById(id).widgets
    .find((w) => w.name === "ignored_layers").value, target.id);
  report.picker.textarea_value = await page.evaluate((id) => {
    const w = app.graph.getNodeById(id).widgets.find((x) => x.name === "ignored_layers");
    return w.element?.value ?? w.inputEl?.value ?? null;
  }, target.id);
  report.picker.serialized = await page.evaluate((id) => app.graph.serialize().nodes
    .find((n) => String(n.id) === String(id)).widgets_values, target.id);

  // Opened again, the dialog starts from what the widget now says (the server matches the text).
  await page.mouse.click(target.x, target.y);
  await dialog.waitFor({ state: "visible", timeout: 15000 });
  await page.waitForFunction(() => document.querySelector("[data-testid=dq-dialog] .dq-row, .dq-error"));
  await page.evaluate(() => document.querySelectorAll("[data-testid=dq-dialog] details").forEach((d) => { d.open = true; }));
  report.picker.checked_on_reopen = await dialog.locator(".dq-row").evaluateAll((rows) => rows
    .filter((r) => r.querySelector("input").checked).map((r) => r.childNodes[1].textContent));
  await page.keyboard.press("Escape"); // closes without writing
  await dialog.waitFor({ state: "detached", timeout: 5000 });
  report.picker.widget_value_after_escape = await page.evaluate((id) => app.graph.getNodeById(id).widgets
    .find((w) => w.name === "ignored_layers").value, target.id);
  await shot(page, "after_apply.png");

  // A node summary after a run, on a fresh default-sized Load FP8 DiT node.
  const loaderId = await runLoader(page, opt["run-checkpoint"]);
  report.summary = await summaryState(page, loaderId);
  await shot(page, "summary_after_run.png");
  const shotNode = async (box, name) => {
    const [bx, by, bw, bh] = box;
    const file = path.join(opt.out, name);
    await page.screenshot({ path: file, clip: { x: Math.max(0, bx - 10), y: Math.max(0, by - 10), width: bw + 20,
      height: bh + 20 } });
    report.screenshots.push(file);
  };
  await shotNode(report.summary.node_box, "summary_node.png");
  // with a larger textarea font (a user setting) the box must still fit the headline
  await showAgainWithFont(page, loaderId, 16);
  report.summary_font16 = await summaryState(page, loaderId);
  await shotNode(report.summary_font16.node_box, "summary_node_font16.png");
} catch (e) {
  report.failure = String(e.stack || e);
  try {
    await shot(context.pages()[0], "failure.png");
  } catch {
    // no page to capture
  }
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
  fs.writeFileSync(path.join(opt.out, "report.json"), JSON.stringify(report, null, 1));
}
console.log(JSON.stringify({ report: path.join(opt.out, "report.json"), failure: report.failure ?? null }));
