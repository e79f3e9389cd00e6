// The app shell: a top bar, the token notice, and a hash router that mounts one view at a time.

import { onBusy, onUnauthorized } from "./api";
import { h, replace } from "./dom";
import { current, Route } from "./router";
import { experimentsView } from "./views/experiments";
import { runsView } from "./views/runs";
import { runView } from "./views/run";
import { tracesView } from "./views/traces";
import { traceView } from "./views/trace";
import { scorersView } from "./views/scorers";
import { compareView } from "./views/compare";
import { mediaView } from "./views/media";
import { modelsView } from "./views/models";
import { modelView, versionView } from "./views/model";
import { promptsView, promptView } from "./views/prompts";
import { playgroundView } from "./views/playground";
import { authMode, signinView } from "./views/signin";
import { savedViewRoute } from "./savedviews";

export interface View {
  dispose?: () => void;
}

type ViewFn = (root: HTMLElement, route: Route) => View | void;

function pick(route: Route): ViewFn {
  const [a, b, c] = route.parts;
  if (a === "experiments" && b && c === "runs") return runsView;
  if (a === "experiments" && b && c === "views" && route.parts[3]) return savedViewRoute;
  if (a === "experiments" && b && c === "traces") return tracesView;
  if (a === "experiments" && b && c === "scorers") return scorersView;
  if (a === "traces" && b) return traceView;
  if (a === "runs" && b) return runView;
  if (a === "runs") return runsView;
  if (a === "compare") return compareView;
  if (a === "media") return mediaView;
  if (a === "models" && b && c === "versions" && route.parts[3]) return versionView;
  if (a === "models" && b) return modelView;
  if (a === "models") return modelsView;
  if (a === "prompts" && b) return promptView;
  if (a === "prompts") return promptsView;
  if (a === "playground") return playgroundView;
  if (a === "signin") return signinView;
  return experimentsView;
}

function start(): void {
  const app = document.getElementById("app")!;
  const spinner = h("span", { class: "spinner", hidden: true, "aria-label": "loading" });
  const notice = h("div", { class: "notice", hidden: true, role: "alert" });
  const main = h("main", { id: "main" });
  replace(
    app,
    h(
      "header",
      { class: "topbar" },
      h("a", { class: "brand", href: "#/" }, h("img", { src: "static/favicon.svg", alt: "" }), "labtrack"),
      h("nav", null, h("a", { href: "#/" }, "Experiments"), h("a", { href: "#/runs" }, "All runs"), h("a", { href: "#/models", class: "nav-models" }, "Models"), h("a", { href: "#/prompts", class: "nav-prompts" }, "Prompts"), h("a", { href: "#/playground", class: "nav-playground" }, "Playground")),
      spinner,
    ),
    notice,
    main,
  );
  onBusy((n) => {
    spinner.hidden = n === 0;
  });
  onUnauthorized(async () => {
    // A server with users (basic-auth) has a sign-in page; a personal server asks for its token.
    const mode = await authMode().catch(() => null);
    if (mode?.basic_auth) {
      if (current().parts[0] !== "signin") location.hash = "#/signin";
      return;
    }
    notice.hidden = false;
    replace(
      notice,
      h("b", null, "Token required. "),
      "This labtrack server asks for its access token. Open the page once with ",
      h("code", null, "?token=<your token>"),
      " added to its address (the server then remembers it in a cookie), or open it from JupyterLab's launcher tile.",
    );
    document.body.classList.add("unauthorized");
  });
  let view: View | void;
  const render = () => {
    view?.dispose?.();
    view = undefined;
    const route = current();
    const root = h("div", { class: "view" });
    replace(main, root);
    view = pick(route)(root, route);
  };
  window.addEventListener("hashchange", render);
  render();
}

start();
