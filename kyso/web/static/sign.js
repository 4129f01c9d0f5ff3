// kyso: placing a signature stamp by clicking on a page preview (/sign/{id}).
// Without this file the form still works: the page and position are typed by hand, or a text
// anchor is used. A click is turned into PDF points (origin at the page's bottom left, as
// kyso.signing.placement expects) and written into the page / x / y fields.
"use strict";

(() => {
  // Approximate stamp sizes in points (kyso.signing.stamps.natural_size), for the marker only.
  const SIZES = {
    approval: [170, 100],
    issuing: [170, 100],
    attachment: [216, 31],
    copy: [216, 55],
    incoming: [216, 67],
  };

  // Click position as fractions of the shown image → PDF user space of the page's crop box,
  // undoing the page's /Rotate (the preview is drawn rotated, as a viewer shows it).
  function toPdf(fx, fy, box, rotation) {
    const [x1, y1, x2, y2] = box;
    const w = x2 - x1, h = y2 - y1;
    switch (rotation) {
      case 90: return [x1 + fy * w, y1 + fx * h];
      case 180: return [x2 - fx * w, y1 + fy * h];
      case 270: return [x2 - fy * w, y2 - fx * h];
      default: return [x1 + fx * w, y2 - fy * h];
    }
  }

  function toFraction(x, y, box, rotation) {
    const [x1, y1, x2, y2] = box;
    const w = x2 - x1, h = y2 - y1;
    switch (rotation) {
      case 90: return [(y - y1) / h, (x - x1) / w];
      case 180: return [(x2 - x) / w, (y - y1) / h];
      case 270: return [(y2 - y) / h, (x2 - x) / w];
      default: return [(x - x1) / w, (y2 - y) / h];
    }
  }

  function figureData(figure) {
    return {
      page: Number(figure.dataset.page),
      box: figure.dataset.box.split(",").map(Number),
      rotation: Number(figure.dataset.rotation) || 0,
    };
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("sign-form");
    if (!form) return;
    const field = (name) => form.elements.namedItem(name);
    const kind = field("kind");
    const pageInput = field("page"), xInput = field("x"), yInput = field("y");
    const figures = Array.from(document.querySelectorAll(".sign-page"));

    // Only the fields the chosen kind of signature needs.
    const showKind = () => {
      const chosen = kind.value;
      form.querySelectorAll("[data-kinds]").forEach((block) => {
        block.hidden = Boolean(chosen) && !block.dataset.kinds.split(" ").includes(chosen);
      });
      drawMarker();
    };

    // Only the inputs of the chosen way of placing the stamp.
    const radios = Array.from(form.querySelectorAll('input[name="place"]'));
    const showPlace = () => {
      const chosen = (radios.find((r) => r.checked) || {}).value;
      form.querySelectorAll("[data-place]").forEach((block) => {
        block.hidden = block.dataset.place !== chosen;
      });
      drawMarker();
    };
    const choosePlace = (value) => {
      radios.forEach((r) => { r.checked = r.value === value; });
      showPlace();
    };

    function drawMarker() {
      figures.forEach((f) => { f.querySelector(".stamp-mark").hidden = true; });
      const placeClick = radios.find((r) => r.checked && r.value === "click");
      const page = Number(pageInput.value), x = parseFloat(xInput.value), y = parseFloat(yInput.value);
      if (!placeClick || !page || Number.isNaN(x) || Number.isNaN(y)) return;
      const figure = figures.find((f) => Number(f.dataset.page) === page);
      if (!figure) return;
      const { box, rotation } = figureData(figure);
      const [fx, fy] = toFraction(x, y, box, rotation);
      const img = figure.querySelector("img");
      const mark = figure.querySelector(".stamp-mark");
      const pageWidth = rotation === 90 || rotation === 270 ? box[3] - box[1] : box[2] - box[0];
      const scale = img.clientWidth / pageWidth;
      let [w, h] = SIZES[kind.value] || SIZES.approval;
      if (rotation === 90 || rotation === 270) [w, h] = [h, w];
      mark.style.width = `${w * scale}px`;
      mark.style.height = `${h * scale}px`;
      mark.style.left = `${fx * img.clientWidth - (w * scale) / 2}px`;
      mark.style.top = `${fy * img.clientHeight - (h * scale) / 2}px`;
      mark.hidden = false;
    }

    figures.forEach((figure) => {
      const img = figure.querySelector("img");
      img.addEventListener("click", (event) => {
        const rect = img.getBoundingClientRect();
        const fx = (event.clientX - rect.left) / rect.width;
        const fy = (event.clientY - rect.top) / rect.height;
        const { page, box, rotation } = figureData(figure);
        const [x, y] = toPdf(fx, fy, box, rotation);
        pageInput.value = String(page);
        xInput.value = x.toFixed(1);
        yInput.value = y.toFixed(1);
        choosePlace("click");
        const status = document.getElementById("sign-status");
        if (status) status.textContent = status.dataset.template.replace("%(page)s", String(page));
      });
      img.addEventListener("load", drawMarker);
    });

    kind.addEventListener("change", () => {
      // Attachments, copies and the incoming mark have a fixed corner (Decree 30/2020 Annex I)
      // unless the clerk already clicked somewhere.
      if (["attachment", "copy", "incoming"].includes(kind.value) && !pageInput.value) {
        choosePlace("corner");
      }
      showKind();
    });
    radios.forEach((r) => r.addEventListener("change", showPlace));
    [pageInput, xInput, yInput].forEach((input) => input.addEventListener("input", drawMarker));
    window.addEventListener("resize", drawMarker);
    showKind();
    showPlace();
  });
})();

// Waiting for the phone (/sign/approvals/{id}): the status is asked for every 2 seconds until
// it is final (done, refused, expired, failed); the time left counts down between answers.
// Without this file the page still shows the state it was rendered with (reload to update).
(() => {
  const FINAL = ["done", "refused", "expired", "failed"];
  const EVERY_MS = 2000;

  function clockText(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  function link(box, templateId, href) {
    const node = box.querySelector(`#${templateId}`).content.firstElementChild.cloneNode(true);
    node.href = href;
    return node;
  }

  function show(box, status) {
    box.dataset.state = status.status;
    const reason = box.querySelector("[data-reason]");
    if (reason && status.reason) reason.textContent = status.reason;
    const error = box.querySelector("[data-error]");
    if (error && status.error) error.textContent = status.error.message;
    (status.documents || []).forEach((d) => {
      const cell = box.querySelector(`tr[data-position="${d.position}"] [data-result]`);
      if (!cell) return;
      if (d.download) {
        cell.replaceChildren(link(box, "download-link", d.download));
        if (d.request) cell.append(" ", link(box, "returned-link", d.request));
      } else if (d.error) {
        const span = document.createElement("span");
        span.className = "error";
        span.textContent = d.error.message;
        cell.replaceChildren(span);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const box = document.getElementById("approval");
    if (!box) return;
    const timeLeft = box.querySelector("[data-time-left]");
    let deadline = Date.now() + Number(box.dataset.secondsLeft || 0) * 1000;
    const tick = setInterval(() => {
      if (timeLeft) timeLeft.textContent = clockText((deadline - Date.now()) / 1000);
    }, 1000);

    async function poll() {
      if (FINAL.includes(box.dataset.state)) {
        clearInterval(tick);
        return;
      }
      try {
        const answer = await fetch(box.dataset.statusUrl, {
          headers: { accept: "application/json" },
          credentials: "same-origin",
          cache: "no-store",
        });
        if (answer.ok) {
          const status = await answer.json();
          deadline = Date.now() + Number(status.seconds_left || 0) * 1000;
          show(box, status);
        }
      } catch (_) {
        // offline for a moment: ask again at the next turn
      }
      setTimeout(poll, EVERY_MS);
    }
    setTimeout(poll, EVERY_MS);
  });
})();
