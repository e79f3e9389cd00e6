// DOM building without HTML strings: every text goes through a Text node, so logged names,
// params and tags can never become markup (the page shares JupyterLab's origin).

export type Child = Node | string | number | null | undefined | false | Child[];
export type Attrs = Record<string, unknown>;

const SAFE_URL = /^(?:https?:|mailto:|#|[^:]*$)/i;

/** Returns `url` when it is relative, http(s), mailto or a fragment; otherwise "#". */
export function safeHref(url: string): string {
  const trimmed = url.trim();
  return SAFE_URL.test(trimmed) && !/^\s*javascript:/i.test(trimmed) ? trimmed : "#";
}

export function append(parent: Node, child: Child): void {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(parent, c);
  } else if (child instanceof Node) {
    parent.appendChild(child);
  } else {
    parent.appendChild(document.createTextNode(String(child)));
  }
}

/** Creates an element. `on<event>` attributes add listeners; `href`/`src` go through safeHref. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") {
        el.addEventListener(k.slice(2).toLowerCase(), v as EventListener);
      } else if (k === "class") {
        el.className = String(v);
      } else if (k === "style" && typeof v === "object") {
        Object.assign(el.style, v);
      } else if (k === "dataset" && typeof v === "object") {
        Object.assign(el.dataset, v);
      } else if (k === "value") {
        (el as HTMLInputElement).value = String(v);
      } else if (k === "checked") {
        (el as HTMLInputElement).checked = Boolean(v);
      } else if (k === "href" || k === "src") {
        el.setAttribute(k, safeHref(String(v)));
      } else if (v === true) {
        el.setAttribute(k, "");
      } else {
        el.setAttribute(k, String(v));
      }
    }
  }
  for (const c of children) append(el, c);
  return el;
}

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function replace(el: Element, ...children: Child[]): void {
  clear(el);
  for (const c of children) append(el, c);
}

/** A small modal-free confirmation, kept as the browser's own dialog. */
export function confirmAction(message: string): boolean {
  return window.confirm(message);
}

export function debounce<T extends unknown[]>(fn: (...args: T) => void, ms: number): (...args: T) => void {
  let t: number | undefined;
  return (...args: T) => {
    if (t !== undefined) window.clearTimeout(t);
    t = window.setTimeout(() => fn(...args), ms);
  };
}
