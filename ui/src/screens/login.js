// Superuser sign-in: password first; when keepd answers 401 with `mfaId`
// (MFA on for _superusers, or TOTP on for this superuser) a second step with
// an authenticator code (auth-with-totp) or a one-time code sent by e-mail
// (request-otp, then auth-with-otp).

const C = "/api/collections/_superusers";

export default async function login(ctx) {
  const { api, h } = ctx;
  const box = h("section", { class: "login card", "aria-labelledby": "login-title" });

  function passwordStep() {
    const email = h("input", { id: "login-email", name: "identity", type: "email", autocomplete: "username", required: true, autofocus: true });
    const password = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
    const form = h(
      "form",
      { onsubmit: submit, novalidate: true },
      h("label", { for: "login-email" }, "E-mail"),
      email,
      h("label", { for: "login-password" }, "Password"),
      password,
      h("button", { type: "submit", class: "primary" }, "Sign in"),
    );
    async function submit(e) {
      e.preventDefault();
      ctx.fieldErrors(form, null);
      try {
        const r = await api("POST", `${C}/auth-with-password`, {
          body: { identity: email.value, password: password.value },
          noSignOut: true,
        });
        ctx.signedIn(r.token, r.record);
      } catch (err) {
        if (err.status === 401 && err.body && err.body.mfaId) {
          secondStep(err.body.mfaId, email.value);
        } else {
          ctx.fieldErrors(form, err);
        }
      }
    }
    show("Sign in", form);
    email.focus();
  }

  async function secondStep(mfaId, email) {
    let otp = false;
    try {
      const m = await api("GET", `${C}/auth-methods`, { noSignOut: true });
      otp = !!(m && m.otp && m.otp.enabled);
    } catch { /* no OTP offer */ }
    let otpId = "";
    const code = h("input", { id: "login-code", name: "code", inputmode: "numeric", autocomplete: "one-time-code", required: true, autofocus: true });
    const hint = h("p", { id: "login-code-hint", class: "muted" }, "Enter the code from your authenticator app (or a recovery code).");
    code.setAttribute("aria-describedby", "login-code-hint");
    const form = h(
      "form",
      { onsubmit: submit, novalidate: true },
      hint,
      h("label", { for: "login-code" }, "Code"),
      code,
      h("button", { type: "submit", class: "primary" }, "Verify"),
      otp && h("button", { type: "button", class: "ghost", id: "login-send-otp", onclick: sendOtp }, "E-mail me a one-time code instead"),
      h("button", { type: "button", class: "ghost", onclick: passwordStep }, "Back"),
    );
    async function sendOtp() {
      try {
        const r = await api("POST", `${C}/request-otp`, { body: { email }, noSignOut: true });
        otpId = r.otpId;
        hint.textContent = "We sent a one-time code to your e-mail address. Enter it here.";
        code.value = "";
        code.focus();
      } catch (err) {
        ctx.fieldErrors(form, err);
      }
    }
    async function submit(e) {
      e.preventDefault();
      ctx.fieldErrors(form, null);
      try {
        const r = otpId
          ? await api("POST", `${C}/auth-with-otp`, { body: { otpId, password: code.value, mfaId }, noSignOut: true })
          : await api("POST", `${C}/auth-with-totp`, { body: { mfaId, code: code.value }, noSignOut: true });
        ctx.signedIn(r.token, r.record);
      } catch (err) {
        if (err.data && err.data.password) err.data = { code: err.data.password };
        ctx.fieldErrors(form, err);
      }
    }
    show("Second step", form);
    code.focus();
  }

  function show(title, form) {
    box.replaceChildren(h("h1", { id: "login-title" }, title), form);
  }

  passwordStep();
  return box;
}
