/* kyso on the phone: the list of requests kept fresh (polling every few seconds, and at once
   when a push arrives), approval with the fingerprint or face (WebAuthn get over the
   request's own challenge), enrolment of this phone (WebAuthn create), and Web Push.
   Every request sends the page's CSRF token in X-CSRF-Token. */
"use strict";
(() => {
  const POLL_MS = 5000;
  const csrf = document.body.dataset.csrf;

  const b64u = {
    decode(text) {
      const s = text.replace(/-/g, "+").replace(/_/g, "/");
      const bin = atob(s + "===".slice((s.length + 3) % 4));
      return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
    },
    encode(buffer) {
      const bytes = new Uint8Array(buffer);
      let bin = "";
      bytes.forEach((b) => { bin += String.fromCharCode(b); });
      return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    },
  };

  async function call(url, body) {
    const init = { credentials: "same-origin", headers: { "accept": "application/json" } };
    if (body !== undefined) {
      init.method = "POST";
      init.headers["content-type"] = "application/json";
      init.headers["x-csrf-token"] = csrf;
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    if (response.status === 401 && data.code === "login_required") {
      window.location.href = document.body.dataset.login;
    }
    if (!response.ok) {
      const error = new Error(data.message || response.statusText);
      error.data = data;
      throw error;
    }
    return data;
  }

  function say(node, text, kind) {
    if (!node) return;
    node.textContent = text || "";
    node.classList.toggle("error", kind === "error");
  }

  // -- the list ------------------------------------------------------------------------------
  const box = document.getElementById("approvals");
  const status = document.getElementById("phone-status");
  let loadedAt = Date.now();

  async function refreshList(force) {
    if (!box) return;
    try {
      const data = await call(box.dataset.poll);
      const ids = data.approvals.map((a) => a.id).join(",");
      const shown = box.querySelector(".list");
      if (!force && shown && shown.dataset.ids === ids) return;
      if (box.contains(document.activeElement) && document.activeElement.matches("input, textarea")) return;
      const response = await fetch(box.dataset.list, { credentials: "same-origin", headers: { "accept": "text/html" } });
      if (!response.ok) return;
      box.innerHTML = await response.text();  // our own server-rendered, escaped fragment
      loadedAt = Date.now();
      tick();
    } catch (e) { /* offline for a moment: the next poll tries again */ }
  }

  function tick() {
    if (!box || !status) return;
    const elapsed = Math.floor((Date.now() - loadedAt) / 1000);
    box.querySelectorAll(".left[data-seconds]").forEach((node) => {
      const left = Math.max(0, Number(node.dataset.seconds) - elapsed);
      node.textContent = left > 0
        ? status.dataset.left.replace("{m}", Math.floor(left / 60)).replace("{s}", left % 60)
        : status.dataset.expired;
    });
  }

  async function approveWithPhone(button) {
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say(status, status.dataset.unsupported, "error");
      return;
    }
    const options = JSON.parse(button.dataset.options);
    button.disabled = true;
    say(status, status.dataset.approving);
    try {
      const credential = await navigator.credentials.get({
        publicKey: {
          challenge: b64u.decode(options.challenge),
          rpId: options.rpId,
          timeout: options.timeout,
          userVerification: options.userVerification,
          allowCredentials: (options.allowCredentials || []).map((c) => ({
            type: c.type, id: b64u.decode(c.id), transports: c.transports,
          })),
        },
      });
      const r = credential.response;
      await call(`/m/api/approvals/${encodeURIComponent(button.dataset.id)}/webauthn`, {
        credential: {
          id: credential.id,
          rawId: b64u.encode(credential.rawId),
          type: credential.type,
          authenticatorAttachment: credential.authenticatorAttachment || null,
          clientExtensionResults: credential.getClientExtensionResults(),
          response: {
            clientDataJSON: b64u.encode(r.clientDataJSON),
            authenticatorData: b64u.encode(r.authenticatorData),
            signature: b64u.encode(r.signature),
            userHandle: r.userHandle ? b64u.encode(r.userHandle) : null,
          },
        },
      });
      say(status, status.dataset.approved);
      await refreshList(true);
    } catch (e) {
      say(status, (e.data && e.data.message) || status.dataset.failed, "error");
      button.disabled = false;
    }
  }

  if (box) {
    box.addEventListener("click", (event) => {
      const button = event.target.closest(".approve-phone");
      if (button) approveWithPhone(button);
    });
    setInterval(() => refreshList(false), POLL_MS);
    setInterval(tick, 1000);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) refreshList(false); });
  }

  // -- enrolling this phone ------------------------------------------------------------------
  const enrol = document.getElementById("enrol-phone");
  if (enrol) {
    enrol.addEventListener("submit", async (event) => {
      event.preventDefault();
      const out = document.getElementById("enrol-status");
      if (!window.PublicKeyCredential || !navigator.credentials) {
        say(out, enrol.dataset.unsupported, "error");
        return;
      }
      const button = enrol.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const form = new FormData(enrol);
        const options = await call(enrol.dataset.options, {
          password: form.get("password") || "", code: form.get("code") || "",
        });
        const credential = await navigator.credentials.create({
          publicKey: {
            ...options,
            challenge: b64u.decode(options.challenge),
            user: { ...options.user, id: b64u.decode(options.user.id) },
            excludeCredentials: (options.excludeCredentials || []).map((c) => ({
              type: c.type, id: b64u.decode(c.id), transports: c.transports,
            })),
          },
        });
        const r = credential.response;
        await call(enrol.dataset.finish, {
          name: form.get("name") || "",
          credential: {
            id: credential.id,
            rawId: b64u.encode(credential.rawId),
            type: credential.type,
            authenticatorAttachment: credential.authenticatorAttachment || null,
            clientExtensionResults: credential.getClientExtensionResults(),
            response: {
              clientDataJSON: b64u.encode(r.clientDataJSON),
              attestationObject: b64u.encode(r.attestationObject),
              transports: r.getTransports ? r.getTransports() : [],
            },
          },
        });
        enrol.reset();
        say(out, enrol.dataset.done);
      } catch (e) {
        say(out, (e.data && e.data.message) || enrol.dataset.failed, "error");
      } finally {
        button.disabled = false;
      }
    });
  }

  // -- Web Push ------------------------------------------------------------------------------
  async function subscribe(registration) {
    const { key } = await call("/m/api/push/key");
    let subscription = await registration.pushManager.getSubscription();
    if (!subscription) {
      subscription = await registration.pushManager.subscribe({
        userVisibleOnly: true, applicationServerKey: b64u.decode(key),
      });
    }
    await call("/m/api/push/subscribe", subscription.toJSON());
  }

  if ("serviceWorker" in navigator && box) {
    navigator.serviceWorker.addEventListener("message", (event) => {
      if (event.data && event.data.kind === "kyso-pending") refreshList(true);
    });
    navigator.serviceWorker.register("/m/sw.js", { scope: "/m" }).then(async (registration) => {
      if (!("PushManager" in window) || !("Notification" in window)) return;
      if (Notification.permission === "granted") {
        subscribe(registration).catch(() => {});
      } else if (Notification.permission === "default") {
        const offer = document.querySelector(".notify");
        const button = document.getElementById("notify-on");
        if (!offer || !button) return;
        offer.hidden = false;
        button.addEventListener("click", async () => {
          if (await Notification.requestPermission() === "granted") {
            offer.hidden = true;
            subscribe(registration).catch(() => {});
          }
        });
      }
    }).catch(() => { /* polling still works */ });
  }
})();
