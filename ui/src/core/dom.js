// The only way the console builds DOM. Strings always become text nodes:
// nothing a user or a record supplies is ever parsed as HTML (no innerHTML,
// no insertAdjacentHTML, no document.write anywhere in ui/src).
//
//   h("button", { class: "primary", onclick: save, "aria-label": "Save" }, "Save")
//
// props: `class`, `for`, any attribute (string/number/true; false/null skip it),
// `on<event>` functions, `dataset` object, `value`/`checked`/`disabled`/`selected`
// set as properties. children: nodes, strings, numbers, arrays, null/false (skipped).
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v);
    } else if (k === "dataset") {
      Object.assign(el.dataset, v);
    } else if (k === "value" || k === "checked" || k === "disabled" || k === "selected") {
      el[k] = v;
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Replaces an element's children.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}
