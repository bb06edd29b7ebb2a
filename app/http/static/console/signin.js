/**
 * Sign-in: paste a token. It is kept in this tab's sessionStorage only, and sent as
 * `Authorization: Bearer …` with each call. The bootstrap key never comes near the page: in lab,
 * the operator runs `spine bootstrap` on the server's machine and pastes the admin token it prints.
 */

import { claimsOf, signIn, token } from "./session.js";
import { field, form, h, note } from "./ui.js";

export const title = "Sign in";

/** @param {HTMLElement} root @param {string[]} args  the page to go to once signed in */
export function show(root, [next = "tenants"] = []) {
  const input = h("textarea", {
    name: "token",
    rows: 4,
    required: true,
    autocomplete: "off",
    spellcheck: false,
    placeholder: "eyJhbGciOi…",
  });
  const signInForm = form(
    { class: "token-box", "aria-label": "Sign in with a token" },
    [field("Token", input, "a JWT: Spine's own (bootstrap, POST /v1/tenants/{t}/tokens) or your issuer's")],
    "Sign in",
    async (values) => {
      const pasted = (values.token ?? "").replace(/^Bearer\s+/i, "");
      const claims = claimsOf(pasted);
      if (!claims?.sub || !claims.tenant_id) {
        throw new Error("this is not a Spine token: a JWT has three parts separated by dots, with sub and tenant_id claims");
      }
      location.hash = `#/${next === "sign-in" ? "tenants" : next}`;
      signIn(pasted);
      return null;
    },
  );
  root.append(
    h("h1", {}, "Sign in"),
    ...(token() ? [note("You are signed in already; a token pasted here replaces that identity in this tab.")] : []),
    h(
      "p",
      {},
      "The console is one more client of Spine's public API: every page calls it with the token you paste, " +
        "and sees what that token may see. A member's token gets a member's answers (the admin pages say 403).",
    ),
    signInForm,
    h(
      "p",
      { class: "hint" },
      "The token stays in this tab's session storage until the tab closes or you sign out; it is never written " +
        "to local storage nor put in a URL.",
    ),
    h("h2", {}, "Lab sign-in"),
    h(
      "p",
      {},
      "In lab (what ",
      h("code", {}, "spine serve"),
      " runs by default), the first administrator's token comes from the bootstrap flow. On the server's " +
        "machine, in the directory you started it from, run:",
    ),
    h("pre", { class: "json" }, ".venv/bin/spine bootstrap"),
    h(
      "p",
      {},
      "It reads the bootstrap key Spine generated under ",
      h("code", {}, "./spine-data/secrets/"),
      ", asks Spine for a t_system admin token and prints it: paste that token above. The bootstrap key " +
        "itself never reaches this page. From the Tenants page you can then mint tokens for a tenant's members " +
        "and use one here to see that tenant's log and audit trail.",
    ),
  );
  input.focus();
}
