// Where an example workflow's nodes land once its saved view (extra.ds) is applied: each node's box on screen
// from the canvas state (app.canvas.ds scale / offset and the node's bounding rect), and how much of it is really
// visible, sampled with document.elementFromPoint (points outside the window, or under the side bar, the menu and
// tab bars or the minimap, do not count; the node's own DOM widgets, e.g. the note's text, do).
// Imported by ui_check.mjs; the result goes into report.json, test_web_ui.py asserts on it.

/** The view report of the graph now loaded in `page`: {ds, canvas, lod_scale, nodes: [...]} . */
export function viewState(page) {
  return page.evaluate(() => {
    const canvas = app.canvas;
    canvas.draw(true, true);
    const el = canvas.canvas;
    const rect = el.getBoundingClientRect();
    const { scale, offset } = canvas.ds;
    const onCanvas = (hit) => hit === el || !!hit?.closest?.(".dom-widget");
    const STEPS = 6; // a 7 x 7 grid of points over each node's box, edges inset 2 px
    const nodes = app.graph.nodes.map((n) => {
      const [x, y, w, h] = n.boundingRect; // graph units, title bar included
      const box = [rect.left + (x + offset[0]) * scale, rect.top + (y + offset[1]) * scale, w * scale, h * scale];
      let seen = 0;
      let total = 0;
      const hidden = [];
      for (let i = 0; i <= STEPS; i++) {
        for (let j = 0; j <= STEPS; j++) {
          const px = box[0] + 2 + (box[2] - 4) * (i / STEPS);
          const py = box[1] + 2 + (box[3] - 4) * (j / STEPS);
          total += 1;
          const hit = document.elementFromPoint(px, py);
          if (onCanvas(hit)) seen += 1;
          else if (hidden.length < 3) {
            hidden.push({ at: [Math.round(px), Math.round(py)],
              by: hit ? `${hit.tagName.toLowerCase()}.${String(hit.className?.baseVal ?? hit.className).slice(0, 60)}` : "outside the window" });
          }
        }
      }
      // a text widget's box (the note's text): whether it shows all its text without scrolling
      const area = (n.widgets || []).map((w) => w.element).find((e) => e?.tagName === "TEXTAREA");
      const text = area ? { client_height: area.clientHeight, scroll_height: area.scrollHeight } : null;
      return { id: n.id, type: n.type, title: n.title, box: box.map((v) => Math.round(v)), visible: seen / total,
        hidden, text };
    });
    return { ds: { scale, offset: [...offset] }, canvas: [rect.left, rect.top, rect.width, rect.height],
      window: [window.innerWidth, window.innerHeight], low_quality: !!canvas.low_quality, nodes };
  });
}
