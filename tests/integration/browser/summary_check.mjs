// A node summary after a run, as a user sees it: a fresh graph with a default-sized Load FP8 DiT node on the tiny
// checkpoint feeding Save Quantized DiT (an output node, so the loader executes), queued with app.queuePrompt;
// once the node shows its summary, the view is put at scale 1 on the node and the summary box is measured:
// how tall the headline (the summary's first HEADLINE_LINES lines) is when wrapped in a copy of the box (same
// width and font), against the box's visible height; and whether the box lies inside the node and is on top
// where the headline is drawn. Imported by ui_check.mjs; test_web_ui.py asserts on the result.

const LOADER = "DiTQuantLoadFP8DiT";
const SAVER = "DiTQuantSaveQuantizedDiT";
export const HEADLINE_LINES = 3;

/** Build and queue the graph; resolves when the loader shows its summary (or throws after `timeoutMs`). */
export async function runLoader(page, checkpoint, timeoutMs = 180000) {
  const id = await page.evaluate(async ({ loaderType, saverType, checkpoint }) => {
    app.graph.clear();
    const loader = LiteGraph.createNode(loaderType);
    const saver = LiteGraph.createNode(saverType);
    app.graph.add(loader);
    app.graph.add(saver);
    loader.pos = [80, 120];
    saver.pos = [loader.pos[0] + loader.size[0] + 80, 120];
    const unet = loader.widgets.find((w) => w.name === "unet_name");
    unet.value = checkpoint;
    unet.callback?.(checkpoint);
    saver.widgets.find((w) => w.name === "filename_prefix").value = "dq_browser/tiny";
    // a comment line (ignored by the node) makes each run's inputs new: a cached node would not execute again
    loader.widgets.find((w) => w.name === "ignored_layers").value = `# browser check ${Date.now()}`;
    loader.connect(0, saver, 0);
    app.canvas.ds.scale = 1;
    app.canvas.ds.offset = [0, 0];
    app.canvas.setDirty(true, true);
    window.__dqDefaultSize = [...loader.size];
    await app.queuePrompt(0, 1);
    return loader.id;
  }, { loaderType: LOADER, saverType: SAVER, checkpoint });
  const done = await page.waitForFunction((id) => {
    if (app.lastExecutionError) return { error: app.lastExecutionError };
    return app.graph.getNodeById(id)?.widgets?.some((w) => w.name === "dit_quant_summary") && { error: null };
  }, id, { timeout: timeoutMs, polling: 500 });
  const { error } = await done.jsonValue();
  if (error) throw new Error(`the run failed: ${JSON.stringify(error).slice(0, 2000)}`);
  await page.waitForTimeout(800); // the DOM widget is positioned on the next frames
  return id;
}

/** The summary box of node `id`, measured in the page. */
export function summaryState(page, id) {
  return page.evaluate(({ id, headlineLines }) => {
    const node = app.graph.getNodeById(id);
    const canvas = app.canvas;
    canvas.draw(true, true);
    const crect = canvas.canvas.getBoundingClientRect();
    const { scale, offset } = canvas.ds;
    const [x, y, w, h] = node.boundingRect;
    const nodeBox = [crect.left + (x + offset[0]) * scale, crect.top + (y + offset[1]) * scale, w * scale, h * scale];
    const widget = node.widgets.find((x) => x.name === "dit_quant_summary");
    const area = widget.element;
    const r = area.getBoundingClientRect();
    const style = getComputedStyle(area);
    const lines = area.value.split("\n");
    // the headline's wrapped height: a copy of the box (same width, font, padding) holding the first k lines
    const probe = area.cloneNode();
    for (const p of ["width", "font", "fontFamily", "fontSize", "lineHeight", "padding", "border", "boxSizing",
      "whiteSpace", "wordBreak", "overflowWrap", "letterSpacing", "tabSize"]) probe.style[p] = style[p];
    probe.style.height = "0px";
    probe.style.position = "fixed";
    probe.style.left = "-5000px";
    document.body.append(probe);
    const headlineHeights = [];
    for (let k = 1; k <= headlineLines; k++) {
      probe.value = lines.slice(0, k).join("\n");
      headlineHeights.push(probe.scrollHeight);
    }
    probe.value = area.value;
    const fullHeight = probe.scrollHeight;
    probe.remove();
    // on top where the headline is drawn: the box itself answers at its left / right edges down its headline
    const padTop = parseFloat(style.paddingTop) + parseFloat(style.borderTopWidth);
    const headlineBottom = r.top + Math.min(headlineHeights.at(-1), r.height) - 2;
    const samples = [];
    for (const py of [r.top + padTop + 2, (r.top + headlineBottom) / 2, headlineBottom]) {
      for (const px of [r.left + 4, r.left + r.width / 2, r.right - 4]) {
        samples.push(document.elementFromPoint(px, py) === area);
      }
    }
    return {
      id, default_size: window.__dqDefaultSize, size: [...node.size], scale,
      text: area.value, headline: lines.slice(0, headlineLines),
      node_box: nodeBox.map(Math.round), box: [r.left, r.top, r.width, r.height].map(Math.round),
      client_height: area.clientHeight, scroll_height: area.scrollHeight, scroll_top: area.scrollTop,
      headline_heights: headlineHeights, full_height: fullHeight, line_height: style.lineHeight,
      font: `${style.fontSize} ${style.fontFamily}`, on_top: samples,
      window: [window.innerWidth, window.innerHeight],
    };
  }, { id, headlineLines: HEADLINE_LINES });
}

/** The same summary shown again with the textarea font at `fontPx` (ComfyUI's "Textarea widget font size"). */
export async function showAgainWithFont(page, id, fontPx) {
  await page.evaluate(({ id, fontPx }) => {
    document.documentElement.style.setProperty("--comfy-textarea-font-size", `${fontPx}px`);
    const node = app.graph.getNodeById(id);
    const text = node.widgets.find((w) => w.name === "dit_quant_summary").element.value;
    node.onExecuted({ text: [text] });
    app.canvas.setDirty(true, true);
  }, { id, fontPx });
  await page.waitForTimeout(800);
}
