// kyso: signing with a USB token through the kyso agent on this computer (kyso.agent).
// The agent listens on http://127.0.0.1:8765 and answers only this site. Steps: find it
// (GET /v1/status; only when the user asks, or on its own once this browser has paired, so
// a page never reaches into the user's computer unasked), pair once (the user types the code the agent shows in its own window;
// the shared secret is kept in localStorage), list the token's certificates, then for a
// signature: kyso prepares (POST /api/v1/agent/prepare → the digest), the agent signs after
// asking the PIN itself (POST /v1/sign), kyso embeds (POST /api/v1/agent/finish).
// Every request to the agent carries an HMAC-SHA256 of method, path, origin, time, nonce and
// body (kyso.agent.pairing). The page never asks for, holds or sends the token's PIN.
"use strict";

(() => {
  const box = document.getElementById("agent-sign");
  if (!box || !window.crypto || !crypto.subtle) return;
  const form = document.getElementById("sign-form");
  const port = localStorage.getItem("kyso.agent.port") || box.dataset.port || "8765";
  const base = `http://127.0.0.1:${port}`;
  const STORE = "kyso.agent.pairing";
  const statusLine = document.getElementById("agent-status");
  const pairBox = document.getElementById("agent-pair");
  const certBox = document.getElementById("agent-certs");
  const codeInput = document.getElementById("agent-code");
  const pairButton = document.getElementById("agent-pair-button");
  const certSelect = document.getElementById("agent-cert");
  const signButton = document.getElementById("agent-sign-button");
  const findButton = document.getElementById("agent-find-button");
  const encoder = new TextEncoder();
  let certificates = [];
  let pairingId = null;

  const say = (text, kind) => {
    statusLine.textContent = text;
    statusLine.className = kind ? `flash ${kind}` : "";
  };
  const hex = (buffer) =>
    Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
  const fromHex = (text) => new Uint8Array(text.match(/../g).map((h) => parseInt(h, 16)));
  const nonce = () =>
    btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(18))))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

  function pairing() {
    try {
      return JSON.parse(localStorage.getItem(STORE) || "null");
    } catch (error) {
      return null;
    }
  }

  async function macHeaders(method, path, body) {
    const paired = pairing();
    if (!paired) return {};
    const when = String(Math.floor(Date.now() / 1000));
    const once = nonce();
    const bodyHash = hex(await crypto.subtle.digest("SHA-256", encoder.encode(body)));
    const message = ["kyso-agent-v1", method, path, location.origin, when, once, bodyHash].join("\n");
    const key = await crypto.subtle.importKey(
      "raw", fromHex(paired.secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const mac = hex(await crypto.subtle.sign("HMAC", key, encoder.encode(message)));
    return { "x-kyso-client": paired.client, "x-kyso-time": when, "x-kyso-nonce": once, "x-kyso-mac": mac };
  }

  class Problem extends Error {
    constructor(message, code, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  async function agent(method, path, data) {
    const body = data === undefined ? "" : JSON.stringify(data);
    const headers = await macHeaders(method, path, body);
    if (data !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await fetch(base + path, { method, headers, body: data === undefined ? undefined : body });
    } catch (error) {
      throw new Problem("Không liên lạc được với bộ ký kyso trên máy này. Hãy chạy bộ ký (lệnh kyso agent) rồi thử lại.", "agent_unreachable", 0);
    }
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Problem(answer.message || `Bộ ký trả lỗi ${response.status}.`, answer.code, response.status);
    }
    return answer;
  }

  async function kyso(path, body, json) {
    const csrf = form ? form.querySelector("input[name=csrf_token]") : null;
    const headers = { "x-csrf-token": csrf ? csrf.value : "", accept: "application/json" };
    if (json) headers["content-type"] = "application/json";
    const response = await fetch(path, {
      method: "POST", body: json ? JSON.stringify(body) : body, headers, credentials: "same-origin",
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const fields = answer.fields ? Object.values(answer.fields).join(" ") : "";
      throw new Problem(fields || answer.message || `kyso trả lỗi ${response.status}.`, answer.code, response.status);
    }
    return answer;
  }

  function showPairing() {
    certBox.hidden = true;
    pairBox.hidden = false;
    codeInput.value = "";
    pairingId = null;
    pairButton.textContent = "Ghép nối với bộ ký kyso";
    say("Bộ ký kyso đang chạy nhưng trang này chưa được ghép nối. Bấm “Ghép nối”, rồi nhập mã sáu chữ số hiện trên cửa sổ bộ ký.");
  }

  async function loadCertificates() {
    say("Đang đọc các chứng thư trên thiết bị USB…");
    const listed = await agent("GET", "/v1/certificates");
    certificates = listed.certificates || [];
    certSelect.replaceChildren();
    if (!certificates.length) {
      certBox.hidden = true;
      say("Không thấy chứng thư nào trên thiết bị USB. Hãy cắm thiết bị rồi bấm “Tìm bộ ký kyso” lần nữa.", "warn");
      return;
    }
    certificates.forEach((cert, index) => {
      const name = (cert.subject.match(/CN=([^,]+)/) || [null, cert.subject])[1];
      const until = new Date(cert.not_after).toLocaleDateString("vi-VN");
      certSelect.append(new Option(`${name} — số sê-ri ${cert.serial}, hết hạn ${until}`, String(index)));
    });
    pairBox.hidden = true;
    certBox.hidden = false;
    say("Đã kết nối bộ ký kyso. Chọn chứng thư rồi bấm “Ký bằng thiết bị USB”.", "ok");
  }

  function handle(error) {
    if (error.code === "agent_not_paired") {
      localStorage.removeItem(STORE);
      showPairing();
      say(error.message, "error");
      return;
    }
    say(error.message || "Đã có lỗi; chưa ký gì.", "error");
  }

  async function detect() {
    say("Đang tìm bộ ký kyso trên máy tính này…");
    try {
      const status = await agent("GET", "/v1/status");
      if (status.paired) {
        await loadCertificates();
      } else {
        localStorage.removeItem(STORE);
        showPairing();
      }
    } catch (error) {
      if (error.code === "agent_unreachable") {
        say("Không thấy bộ ký kyso trên máy này. Muốn ký bằng thiết bị USB, hãy chạy bộ ký (lệnh kyso agent) rồi bấm “Tìm bộ ký kyso” lần nữa.");
      } else {
        handle(error);
      }
    }
  }

  pairButton.addEventListener("click", async () => {
    pairButton.disabled = true;
    try {
      if (!pairingId) {
        const started = await agent("POST", "/v1/pair", {});
        pairingId = started.pairing;
        pairButton.textContent = "Xác nhận mã ghép nối";
        say("Nhập mã sáu chữ số hiện trên cửa sổ bộ ký kyso, rồi bấm “Xác nhận mã ghép nối”.");
        codeInput.focus();
        return;
      }
      const done = await agent("POST", "/v1/pair", { pairing: pairingId, code: codeInput.value.trim() });
      localStorage.setItem(STORE, JSON.stringify({ client: done.client, secret: done.secret }));
      await loadCertificates();
    } catch (error) {
      if (error.code === "agent_wrong_pairing_code") {
        pairingId = null;
        pairButton.textContent = "Ghép nối với bộ ký kyso";
      }
      handle(error);
    } finally {
      pairButton.disabled = false;
    }
  });

  signButton.addEventListener("click", async () => {
    const cert = certificates[Number(certSelect.value)];
    if (!cert) return;
    signButton.disabled = true;
    try {
      say("Đang chuẩn bị tài liệu để ký…");
      const data = form ? new FormData(form) : new FormData();
      data.delete("key_id");
      data.set("upload", box.dataset.upload);
      data.set("certificate", cert.der);
      const prepared = await kyso("/api/v1/agent/prepare", data, false);
      say("Hãy xem lại tài liệu và nhập mã PIN của thiết bị trên cửa sổ bộ ký kyso (không nhập trên trang này)…");
      const signed = await agent("POST", "/v1/sign", {
        digest: prepared.digest, hash: prepared.hash, serial: prepared.serial, summary: prepared.summary,
      });
      say("Đang gắn chữ ký vào tài liệu…");
      const done = await kyso("/api/v1/agent/finish", { id: prepared.id, signature: signed.signature }, true);
      say("Đã ký xong.", "ok");
      location.assign(done.next);
    } catch (error) {
      handle(error);
    } finally {
      signButton.disabled = false;
    }
  });

  findButton.addEventListener("click", async () => {
    findButton.disabled = true;
    try {
      await detect();
    } finally {
      findButton.disabled = false;
    }
  });

  if (localStorage.getItem(STORE)) detect();
})();
