// The tool view's front end (an anywidget ES module): draws the calls the kernel sends and reports
// the Run / Deny / Always clicks. Every decision is made kernel-side (tool_view.py).
//
// Safety (kernel-and-widgets.md §8): tool names, arguments, results and prints are untrusted model or
// tool output; they only ever go into textContent. The python tool's code arrives as [class, text]
// tokens; the class is checked against a fixed list and the text goes into textContent too.

const TOKEN_CLASSES = new Set(["k", "s", "c", "n", "o", "f", "b", ""]);
const STATE_WORDS = {
  pending: "", asking: "waiting for your decision", running: "running…", ok: "done",
  error: "raised", denied: "denied", cancelled: "cancelled", skipped: "not run",
};

function h(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Redraws replace the nodes, so which sections the user opened or closed is kept here.
function section(opened, key, title, text, openByDefault) {
  const d = h("details", "ds-tools-section");
  d.open = opened.has(key) ? opened.get(key) : openByDefault;
  d.addEventListener("toggle", () => opened.set(key, d.open));
  d.append(h("summary", "", title), h("pre", "ds-tools-pre", text));
  return d;
}

function callNode(call, asking, model, opened) {
  const box = h("div", "ds-tools-call ds-st-" + String(call.status || "pending"));
  box.dataset.callId = String(call.id || "");
  const head = h("div", "ds-tools-head", String(call.name || "?") + "(" + String(call.args || "") + ")");
  const state = String(STATE_WORDS[call.status] ?? call.status ?? "");
  const note = call.note ? " · " + String(call.note) : "";
  const took = typeof call.duration === "number" ? " · " + call.duration.toFixed(2) + " s" : "";
  head.append(h("span", "ds-tools-state", state + took + note));
  box.append(head);
  if (Array.isArray(call.code) && call.code.length) {
    const pre = h("pre", "ds-tools-code");
    for (const tok of call.code) {
      const cls = Array.isArray(tok) && TOKEN_CLASSES.has(tok[0]) ? tok[0] : "";
      pre.append(h("span", cls ? "ds-tok-" + cls : "", Array.isArray(tok) ? String(tok[1]) : ""));
    }
    box.append(pre);
  }
  if (asking && asking === call.id) {
    const bar = h("div", "ds-tools-buttons");
    const send = (decision) => () => {
      for (const b of bar.querySelectorAll("button")) b.disabled = true;
      model.send({ event: "decide", id: call.id, decision });
    };
    const run = h("button", "ds-tools-run", "Run");
    const deny = h("button", "ds-tools-deny", "Deny");
    const always = h("button", "ds-tools-always", "Always allow " + String(call.name || ""));
    const stop = h("button", "ds-tools-stop", "Stop");
    stop.title = "Stop the whole tool loop: this call counts as denied, nothing more is asked of the model";
    run.title = "Run this call once";
    deny.title = "Do not run it; the model is told it was denied";
    always.title = "Run it, and every later call of this tool in this kernel, without asking";
    for (const [b, d] of [[run, "run"], [deny, "deny"], [always, "always"]]) {
      b.type = "button";
      b.addEventListener("click", send(d));
      bar.append(b);
    }
    stop.type = "button";
    stop.addEventListener("click", () => {
      for (const b of bar.querySelectorAll("button")) b.disabled = true;
      model.send({ event: "stop" });
    });
    bar.append(stop);
    box.append(bar);
  }
  const id = String(call.id || "");
  if (call.output) box.append(section(opened, id + ":printed", "printed", String(call.output), false));
  if (call.error) box.append(section(opened, id + ":error", "error", String(call.error), true));
  if (call.result !== undefined && call.result !== null && call.result !== "") {
    box.append(section(opened, id + ":result", "result", String(call.result), false));
  }
  return box;
}

function render({ model, el }) {
  const root = h("div", "ds-tools");
  el.append(root);
  const opened = new Map();
  const draw = () => {
    root.replaceChildren();
    const calls = model.get("calls") || [];
    const asking = model.get("asking") || "";
    for (const call of calls) root.append(callNode(call, asking, model, opened));
    const live = model.get("live") || "";
    if (live) root.append(h("div", "ds-tools-live", live));
    const status = model.get("status") || "";
    if (status) root.append(h("div", "ds-tools-status", status));
  };
  for (const name of ["calls", "live", "asking", "status"]) model.on("change:" + name, draw);
  draw();
}

export default { render };
