// Editable pieces shared by the registry pages: a markdown description (rendered safely)
// and a key/value tag table. Each calls back to save and redraws from what it is handed.

import { mlPost } from "./api";
import { h, replace } from "./dom";
import { renderMarkdown } from "./markdown";
import { Run } from "./model";

/** The tag MLflow keeps a run's markdown note in. */
export const NOTE_TAG = "mlflow.note.content";

/** A run's note as a Description section: saved as its mlflow.note.content tag. */
export function runNoteEditor(run: Run): HTMLElement {
  return descriptionEditor(run.tags[NOTE_TAG] ?? "", async (value) => {
    await mlPost("runs/set-tag", { run_id: run.id, key: NOTE_TAG, value });
    run.tags[NOTE_TAG] = value;
  });
}

/** A "Description" section: safe markdown, an Edit button, a textarea with Save/Cancel. */
export function descriptionEditor(text: string, save: (value: string) => Promise<void>): HTMLElement {
  const box = h("div", { class: "description" });
  let current = text;
  const show = () =>
    replace(
      box,
      h("div", { class: "section-head" }, h("h2", null, "Description"), h("button", { class: "edit-description", onclick: edit }, current ? "Edit" : "Add")),
      current ? renderMarkdown(current) : h("p", { class: "muted" }, "No description."),
    );
  const edit = () => {
    const ta = h("textarea", { class: "description-input", rows: "8", "aria-label": "description (markdown)" });
    ta.value = current;
    const err = h("span", { class: "error" });
    const doSave = async () => {
      try {
        await save(ta.value);
        current = ta.value;
        show();
      } catch (e) {
        err.textContent = (e as Error).message;
      }
    };
    replace(
      box,
      h("h2", null, "Description"),
      ta,
      h("div", null, h("button", { class: "save-description", onclick: doSave }, "Save"), h("button", { class: "cancel-description", onclick: show }, "Cancel"), err),
    );
    ta.focus();
  };
  show();
  return box;
}

export interface TagActions {
  set(key: string, value: string): Promise<void>;
  remove(key: string): Promise<void>;
  /** Re-reads the tags after a change; the editor redraws with them. */
  reload(): Promise<Record<string, string>>;
}

/** A "Tags" section: add, edit and delete keys; values are shown as text, never markup. */
export function tagEditor(initial: Record<string, string>, actions: TagActions): HTMLElement {
  const box = h("div", { class: "tag-editor" });
  const draw = (tags: Record<string, string>, message = "") => {
    const err = h("div", { class: "error", role: "alert" }, message);
    const act = async (fn: () => Promise<void>) => {
      try {
        await fn();
        draw(await actions.reload());
      } catch (e) {
        err.textContent = (e as Error).message;
      }
    };
    const keys = Object.keys(tags).sort((a, b) => a.localeCompare(b));
    const row = (k: string) => {
      const valueCell = h("td", { class: "value" }, tags[k]);
      const edit = () => {
        const input = h("input", { type: "text", value: tags[k], class: "tag-value-input", "aria-label": `value of ${k}` });
        replace(
          valueCell,
          h(
            "form",
            { onsubmit: (e: Event) => { e.preventDefault(); void act(() => actions.set(k, input.value)); } },
            input,
            h("button", { type: "submit" }, "Save"),
          ),
        );
        input.focus();
      };
      return h(
        "tr",
        { dataset: { tag: k } },
        h("th", null, k),
        valueCell,
        h(
          "td",
          { class: "actions" },
          h("button", { class: "edit-tag", onclick: edit }, "Edit"),
          h("button", { class: "delete-tag danger", onclick: () => void act(() => actions.remove(k)) }, "Delete"),
        ),
      );
    };
    const key = h("input", { type: "text", placeholder: "key", class: "new-tag-key", "aria-label": "new tag key" });
    const value = h("input", { type: "text", placeholder: "value", class: "new-tag-value", "aria-label": "new tag value" });
    replace(
      box,
      h("h2", null, "Tags"),
      h(
        "form",
        {
          class: "add-tag",
          onsubmit: (e: Event) => {
            e.preventDefault();
            if (key.value.trim()) void act(() => actions.set(key.value.trim(), value.value));
          },
        },
        key,
        value,
        h("button", { type: "submit" }, "Add tag"),
      ),
      err,
      keys.length ? h("table", { class: "kv tags-table" }, h("tbody", null, keys.map(row))) : h("p", { class: "muted" }, "No tags yet."),
    );
  };
  draw(initial);
  return box;
}
