// The sign-in page of a basic-auth server (labtrack server --app-name basic-auth): the user name
// and password go to labtrack/auth/sign-in as JSON, which answers with an HttpOnly session cookie.

import { ApiError, ltGet, ltPost } from "../api";
import { h, replace } from "../dom";

interface Mode {
  basic_auth: boolean;
  user: { username: string; is_admin: boolean } | null;
}

/** Whether this server signs users in (basic-auth), and who is signed in now. */
export function authMode(): Promise<Mode> {
  return ltGet<Mode>("auth/mode");
}

export function signinView(root: HTMLElement): void {
  const username = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const message = h("p", { class: "signin-message", role: "alert" });
  const button = h("button", { type: "submit" }, "Sign in");
  const submit = async (e: Event) => {
    e.preventDefault();
    button.disabled = true;
    message.textContent = "";
    try {
      await ltPost("auth/sign-in", { username: username.value, password: password.value });
      password.value = "";
      document.body.classList.remove("unauthorized");
      location.hash = "#/";
    } catch (err) {
      message.textContent =
        err instanceof ApiError && err.status === 429
          ? "Too many failed sign-ins. Wait a minute and try again."
          : err instanceof ApiError && err.status === 401
            ? "Wrong user name or password."
            : `Cannot sign in: ${String(err instanceof Error ? err.message : err)}`;
    } finally {
      button.disabled = false;
    }
  };
  replace(
    root,
    h(
      "form",
      { class: "signin", onsubmit: submit },
      h("h2", null, "Sign in to labtrack"),
      h("label", null, "User name", username),
      h("label", null, "Password", password),
      button,
      message,
    ),
  );
  username.focus();
}
