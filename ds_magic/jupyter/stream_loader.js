// The ES module each live view's model carries: a loader of the view's code (stream_widget.js),
// which the kernel sends once per page instead of once per cell (issue 13: a short answer cost
// ~5 KB of code in every cell's comm_open). The first view in a page asks its model for the code
// ({event: "code"}); any model's answer serves every view waiting, and the module is kept under a key
// that names this version of the code. The code is the kernel's, as any anywidget _esm is; model
// text never gets here.
const KEY = "__DS_KEY__";
function load(model) {
  const g = globalThis[KEY] || (globalThis[KEY] = { mod: null, waiting: [], asked: new Set() });
  if (g.mod) return Promise.resolve(g.mod);
  return new Promise((resolve) => {
    g.waiting.push(resolve);
    // One request per model (initialize and render both wait; they get different wrappers of it).
    const id = model.get("_ds_id");
    if (g.asked.has(id)) return;
    g.asked.add(id);
    const onCode = async (msg) => {
      if (!msg || typeof msg.code !== "string") return;
      model.off("msg:custom", onCode);
      if (!g.mod) {
        const url = URL.createObjectURL(new Blob([msg.code], { type: "text/javascript" }));
        try {
          g.mod = (await import(url)).default;
        } finally {
          URL.revokeObjectURL(url);
        }
      }
      for (const done of g.waiting.splice(0)) done(g.mod);
    };
    model.on("msg:custom", onCode);
    model.send({ event: "code" });
  });
}
// initialize() must not wait for the code: the model's messages (the code among them) reach it only
// once its initialize has returned. The view's own initialize runs when the code is there, before
// any render (the waiting list is served in order).
export default {
  initialize(ctx) {
    let cleanup = null;
    let gone = false;
    load(ctx.model).then((mod) => {
      if (!gone) cleanup = mod.initialize(ctx);
    });
    return () => {
      gone = true;
      if (typeof cleanup === "function") cleanup();
    };
  },
  async render(ctx) {
    return (await load(ctx.model)).render(ctx);
  },
};
