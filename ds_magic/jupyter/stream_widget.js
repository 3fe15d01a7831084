// The live view of one %%deepseek answer (an anywidget ES module). It only draws what the kernel
// sends and reports a Cancel click; stream_view.py decides everything.
//
// Safety (kernel-and-widgets.md §8): model text arrives either as HTML the kernel rendered with raw
// HTML off and links/images neutralised (render.py) — complete blocks ("b") and the open tail, which
// the kernel sends as a diff against the tail it sent before ("k" characters kept, then "t"); when
// the tail block is complete it becomes a block, sent as a diff against that tail ("p" kept, then
// "b"), so no block travels twice — or
// as plain text ("r" thinking, "x" plain answer, "s" status, "o" notes) that only ever goes into
// text nodes. Nothing here turns model text into markup.
//
// Messages (custom, kernel → page): {n, full?, p?, b?, k?, t?, r?, x?, s?, o?: [..], e?}. ``n`` counts
// them; a view whose count does not follow (it was drawn after the first messages went out) asks
// for the whole state once with {event: "sync"} and the kernel answers with ``full``. The state is
// kept per model, not per view, so a second view of the same output costs nothing.
//
// The elements and their inline styles are those of frame_html() in stream_widget.py (the styles
// are put in below from there), so the static output that replaces this view looks the same.

const STYLES = __DS_STYLES__;

function h(tag, cls, text) {
  const node = document.createElement(tag);
  node.className = cls;
  if (STYLES[cls]) node.setAttribute("style", STYLES[cls]);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Per model, by its id: initialize() and render() are handed different wrapper objects of one model.
const stores = new Map();

function newState() {
  return { n: 0, blocks: [], added: "", tail: "", reasoning: "", text: "", status: "", notes: [], ended: false };
}

// Apply one message to the model's state; false if it is out of order (then a sync is needed).
function apply(st, msg) {
  if (msg.full) {
    Object.assign(st, newState());
  } else if (msg.n !== st.n + 1) {
    return false;
  }
  st.n = msg.n;
  st.added = "";
  if (msg.b !== undefined) {
    st.added = st.tail.slice(0, msg.p || 0) + msg.b; // the tail became complete blocks
    st.blocks.push(st.added);
    st.tail = "";
  }
  if (msg.t !== undefined) st.tail = st.tail.slice(0, msg.k || 0) + msg.t;
  if (msg.r) st.reasoning += msg.r;
  if (msg.x) st.text += msg.x;
  if (msg.s !== undefined) st.status = msg.s;
  if (msg.o) st.notes.push(...msg.o);
  if (msg.e) st.ended = true;
  return true;
}

function initialize({ model }) {
  // ui: what the person did in a view. JupyterLab draws a new view of the model for every update of
  // its display (the fallback's refreshes, fallback.py): the new one opens as the old one was.
  const store = { state: newState(), views: new Set(), syncing: false, ui: { open: false, cancelling: false } };
  const id = model.get("_ds_id");
  stores.set(id, store);
  const onMessage = (msg) => {
    if (!msg || typeof msg.n !== "number") return;
    if (store.syncing && !msg.full) return; // the answer to our sync covers it
    if (!apply(store.state, msg)) {
      store.syncing = true;
      model.send({ event: "sync" });
      return;
    }
    store.syncing = false;
    for (const view of store.views) view(msg);
  };
  model.on("msg:custom", onMessage);
  // Messages sent before this module loaded were missed: ask for what there is (tiny at the start).
  store.syncing = true;
  model.send({ event: "sync" });
  return () => {
    model.off("msg:custom", onMessage);
    stores.delete(id);
  };
}

function render({ model, el }) {
  const store = stores.get(model.get("_ds_id"));
  if (!store) return;
  const root = h("div", "ds-live");
  // JupyterLab's Markdown styles and padding: the static output gets them from the HTML output
  // that holds it, so the text wraps at the same width and nothing moves when it turns static.
  root.classList.add("jp-RenderedHTMLCommon");
  const md = h("div", "ds-md");
  const blocks = document.createElement("div");
  const tail = document.createElement("div");
  const pre = h("pre", "ds-pre");
  const notes = h("div", "ds-notes");
  const bar = h("div", "ds-bar");
  const cancel = h("button", "ds-cancel", "■ Cancel");
  cancel.title = "Stop this request (and its billing)";
  const cancelling = () => {
    cancel.disabled = true;
    cancel.textContent = "Cancelling…";
  };
  if (store.ui.cancelling) cancelling();
  cancel.addEventListener("click", () => {
    store.ui.cancelling = true;
    cancelling();
    model.send({ event: "cancel" });
  });
  const status = h("span", "ds-status");
  const hint = h("span", "ds-hint", model.get("hint") || "");
  bar.append(cancel, status, hint);
  let think = null;
  let reasoning = null;

  const plain = model.get("fmt") === "text";
  md.append(plain ? pre : blocks);
  if (!plain) md.append(tail);
  root.append(md, notes, bar);
  el.append(root);

  const showThinking = () => {
    if (think) return;
    think = h("details", "ds-think");
    think.open = store.ui.open;
    think.addEventListener("toggle", () => {
      store.ui.open = think.open;
    });
    think.append(h("summary", "ds-think-summary", "Thinking"));
    reasoning = h("div", "ds-reasoning");
    think.append(reasoning);
    root.insertBefore(think, md);
  };
  const draw = (msg) => {
    const st = store.state;
    if (msg.full) {
      blocks.innerHTML = st.blocks.join(""); // kernel-rendered safe HTML
      tail.innerHTML = st.tail;
      pre.textContent = st.text;
      notes.textContent = "";
      for (const line of st.notes) notes.append(h("div", "ds-note", line));
      if (st.reasoning) {
        showThinking();
        reasoning.textContent = st.reasoning;
      }
    } else {
      if (st.added) blocks.insertAdjacentHTML("beforeend", st.added); // kernel-rendered safe HTML
      if (msg.t !== undefined || msg.b !== undefined) tail.innerHTML = st.tail; // the same, from diffs
      if (msg.x) pre.append(msg.x);
      if (msg.o) for (const line of msg.o) notes.append(h("div", "ds-note", line));
      if (msg.r) {
        showThinking();
        reasoning.append(msg.r);
      }
    }
    status.textContent = st.status;
    if (st.ended) cancel.remove();
  };
  draw({ full: true });
  store.views.add(draw);
  return () => store.views.delete(draw);
}

export default { initialize, render };
