// The artifact browser (a lazy tree and a preview pane) and one run's images per step on a slider.

import { getText } from "./api";
import { h, replace } from "./dom";
import { fmtBytes } from "./format";
import { ArtifactFile, artifactUrl, listArtifacts, Run } from "./model";
import type { MediaSeries } from "./views/media";
import { isLoggedTable, sortableTable } from "./views/training";

const IMAGE = /\.(png|jpe?g|gif|svg|webp|bmp|avif)$/i;
const TEXT = /(\.(txt|log|ya?ml|md|py|r|sh|cfg|ini|toml|conf|out|err|sql|js|ts|html?|xml|csv|tsv|json|jsonl|ipynb)|(^|\/)(MLmodel|requirements\.txt|Dockerfile|LICENSE|README)[^/]*)$/i;
const MAX_TEXT = 256 * 1024;

function basename(p: string): string {
  return p.split("/").pop() ?? p;
}

/** Splits one CSV line, honouring double quotes. */
export function csvLine(line: string, sep: string): string[] {
  const out: string[] = [];
  let cur = "";
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (q) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') q = false;
      else cur += ch;
    } else if (ch === '"') q = true;
    else if (ch === sep) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

async function preview(run: Run, f: ArtifactFile): Promise<HTMLElement> {
  const url = artifactUrl(run, f.path);
  const head = h(
    "div",
    { class: "preview-head" },
    h("b", { class: "preview-name" }, f.path),
    h("span", { class: "muted" }, f.size !== undefined ? ` ${fmtBytes(f.size)} ` : " "),
    h("a", { class: "button download", href: url, download: basename(f.path) }, "Download"),
  );
  if (IMAGE.test(f.path)) return h("div", { class: "preview" }, head, h("img", { class: "preview-image", src: url, alt: f.path }));
  if (!TEXT.test(f.path) && !/^[^.]+$/.test(basename(f.path))) {
    return h("div", { class: "preview" }, head, h("p", { class: "muted" }, "No preview for this file type."));
  }
  let body: HTMLElement;
  try {
    const { text, truncated } = await getText(url, MAX_TEXT);
    const note = truncated ? h("p", { class: "muted" }, `Showing the first ${fmtBytes(MAX_TEXT)}.`) : null;
    const table = /\.json$/i.test(f.path) && !truncated && isLoggedTable(run, f.path) ? sortableTable(text) : null;
    if (table) {
      body = table; // a log_table artifact: rows sortable by any column
    } else if (/\.json$/i.test(f.path) && !truncated) {
      let pretty = text;
      try {
        pretty = JSON.stringify(JSON.parse(text), null, 2);
      } catch {
        /* not valid JSON: show as text */
      }
      body = h("pre", { class: "preview-text json" }, pretty);
    } else if (/\.(csv|tsv)$/i.test(f.path)) {
      const sep = /\.tsv$/i.test(f.path) ? "\t" : ",";
      const lines = text.split(/\r?\n/).filter((l) => l.length);
      const rows = lines.slice(0, 501).map((l) => csvLine(l, sep));
      body = h(
        "div",
        { class: "csv-wrap" },
        h(
          "table",
          { class: "grid csv-table" },
          h("thead", null, h("tr", null, (rows[0] ?? []).map((c) => h("th", null, c)))),
          h("tbody", null, rows.slice(1).map((r) => h("tr", null, r.map((c) => h("td", null, c))))),
        ),
        lines.length > 501 ? h("p", { class: "muted" }, `First 500 of ${lines.length - 1}${truncated ? "+" : ""} rows.`) : null,
      );
    } else {
      body = h("pre", { class: "preview-text" }, text);
    }
    return h("div", { class: "preview" }, head, body, note);
  } catch (e) {
    return h("div", { class: "preview" }, head, h("div", { class: "error" }, (e as Error).message));
  }
}

export function artifactBrowser(run: Run, initial?: string): HTMLElement {
  const tree = h("div", { class: "artifact-tree", role: "tree" });
  const pane = h("div", { class: "artifact-preview" }, h("p", { class: "muted" }, "Select a file to preview it."));
  let active: HTMLElement | null = null;

  const open = async (f: ArtifactFile, el: HTMLElement) => {
    active?.classList.remove("active");
    active = el;
    el.classList.add("active");
    replace(pane, h("p", { class: "muted" }, "Loading…"));
    replace(pane, await preview(run, f));
  };

  const level = async (dir: string, into: HTMLElement, depth: number) => {
    let files: ArtifactFile[];
    try {
      files = await listArtifacts(run, dir);
    } catch (e) {
      replace(into, h("div", { class: "error" }, (e as Error).message));
      return;
    }
    files.sort((a, b) => Number(b.isDir) - Number(a.isDir) || a.path.localeCompare(b.path));
    if (files.length === 0 && depth === 0) {
      replace(into, h("p", { class: "muted" }, "No artifacts."));
      return;
    }
    replace(
      into,
      files.map((f) => {
        const label = h("span", { class: "art-name" }, basename(f.path));
        if (f.isDir) {
          const kids = h("div", { class: "art-children", hidden: true });
          let loaded = false;
          const row = h(
            "div",
            {
              class: "art-item art-dir",
              role: "treeitem",
              style: { paddingLeft: `${depth * 14 + 4}px` },
              dataset: { path: f.path },
              onclick: async () => {
                kids.hidden = !kids.hidden;
                row.classList.toggle("open", !kids.hidden);
                if (!loaded) {
                  loaded = true;
                  await level(f.path, kids, depth + 1);
                }
              },
            },
            h("span", { class: "art-icon dir-icon" }),
            label,
          );
          // a link to a folder (or to a file inside it) opens the folders on the way
          if (initial && (initial === f.path || initial.startsWith(`${f.path}/`))) row.click();
          return h("div", null, row, kids);
        }
        const row: HTMLElement = h(
          "div",
          { class: "art-item art-file", role: "treeitem", style: { paddingLeft: `${depth * 14 + 4}px` }, dataset: { path: f.path }, onclick: () => void open(f, row) },
          h("span", { class: `art-icon ${IMAGE.test(f.path) ? "img-icon" : "file-icon"}` }),
          label,
          h("span", { class: "muted art-size" }, fmtBytes(f.size)),
        );
        if (initial && f.path === initial) void open(f, row);
        return row;
      }),
    );
  };
  void level("", tree, 0);
  return h("div", { class: "artifact-browser" }, tree, pane);
}

// ---- images per step (the series come from the server's media/images, views/media.ts runImages)

export function imageStepper(run: Run, s: MediaSeries): HTMLElement {
  const img = h("img", { class: "step-image", alt: s.key });
  const label = h("span", { class: "step-label" });
  const slider = h("input", {
    type: "range",
    min: "0",
    max: String(s.steps.length - 1),
    step: "1",
    value: String(s.steps.length - 1),
    class: "step-slider",
    "aria-label": `step of ${s.key}`,
    oninput: () => show(),
  });
  const show = () => {
    const st = s.steps[Number(slider.value)];
    img.src = artifactUrl(run, st.path);
    label.textContent = `step ${st.step} (${Number(slider.value) + 1} of ${s.steps.length})`;
  };
  show();
  return h("div", { class: "image-series", dataset: { key: s.key } }, h("div", { class: "chart-head" }, h("b", null, s.key), label), slider, h("div", null, img));
}
