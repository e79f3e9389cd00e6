// A small, safe markdown subset rendered straight into DOM nodes (never through HTML strings):
// headings, paragraphs, emphasis, inline code, fenced code, lists, quotes, rules and links
// (http, https, mailto and relative only). Raw HTML in the source stays visible text.

import { h, safeHref } from "./dom";

function inline(text: string): Node[] {
  const out: Node[] = [];
  // code, link, bold, italic: earliest match wins
  const re = /`([^`]+)`|\[([^\]]+)\]\(([^)\s]+)\)|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*]+)\*|_([^_]+)_/;
  let rest = text;
  while (rest) {
    const m = re.exec(rest);
    if (!m) {
      out.push(document.createTextNode(rest));
      break;
    }
    if (m.index > 0) out.push(document.createTextNode(rest.slice(0, m.index)));
    if (m[1] !== undefined) out.push(h("code", null, m[1]));
    else if (m[2] !== undefined) {
      const url = safeHref(m[3]);
      out.push(h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, ...inline(m[2])));
    } else if (m[4] !== undefined || m[5] !== undefined) out.push(h("strong", null, ...inline(m[4] ?? m[5])));
    else out.push(h("em", null, ...inline(m[6] ?? m[7])));
    rest = rest.slice(m.index + m[0].length);
  }
  return out;
}

export function renderMarkdown(src: string): HTMLElement {
  const root = h("div", { class: "markdown" });
  const lines = src.replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (/^\s*$/.test(line)) {
      i++;
      continue;
    }
    const fence = /^\s*```(.*)$/.exec(line);
    if (fence) {
      const code: string[] = [];
      i++;
      while (i < lines.length && !/^\s*```\s*$/.test(lines[i])) code.push(lines[i++]);
      i++;
      root.appendChild(h("pre", null, h("code", null, code.join("\n"))));
      continue;
    }
    const head = /^(#{1,6})\s+(.*)$/.exec(line);
    if (head) {
      const tag = `h${Math.min(6, head[1].length + 1)}` as "h2";
      root.appendChild(h(tag, null, ...inline(head[2])));
      i++;
      continue;
    }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      root.appendChild(h("hr"));
      i++;
      continue;
    }
    if (/^\s*>/.test(line)) {
      const q: string[] = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) q.push(lines[i++].replace(/^\s*>\s?/, ""));
      root.appendChild(h("blockquote", null, renderMarkdown(q.join("\n"))));
      continue;
    }
    const ul = /^\s*[-*+]\s+/;
    const ol = /^\s*\d+[.)]\s+/;
    if (ul.test(line) || ol.test(line)) {
      const ordered = ol.test(line);
      const re = ordered ? ol : ul;
      const list = h(ordered ? "ol" : "ul");
      while (i < lines.length && re.test(lines[i])) list.appendChild(h("li", null, ...inline(lines[i++].replace(re, ""))));
      root.appendChild(list);
      continue;
    }
    const para: string[] = [];
    while (i < lines.length && !/^\s*$/.test(lines[i]) && !/^(#{1,6}\s|\s*```|\s*>|\s*[-*+]\s|\s*\d+[.)]\s)/.test(lines[i])) para.push(lines[i++]);
    if (para.length === 0) para.push(lines[i++]);
    const p = h("p");
    para.forEach((l, j) => {
      if (j) p.appendChild(document.createTextNode(" "));
      for (const n of inline(l)) p.appendChild(n);
    });
    root.appendChild(p);
  }
  return root;
}
