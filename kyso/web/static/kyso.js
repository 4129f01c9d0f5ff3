// kyso: small progressive enhancements. Every page works without this file.
"use strict";
document.documentElement.classList.add("js");

document.addEventListener("DOMContentLoaded", () => {
  // The phone menu.
  const toggle = document.querySelector(".menu-toggle");
  const menu = document.getElementById("main-nav");
  if (toggle && menu) {
    toggle.addEventListener("click", () => {
      const open = menu.classList.toggle("open");
      toggle.setAttribute("aria-expanded", String(open));
    });
  }

  // <form data-confirm="…">: ask before a consequential action (revoke, reject, report lost).
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  // <input type="checkbox" data-check-all="name">: tick every box of that name (bulk approval).
  document.querySelectorAll("input[data-check-all]").forEach((box) => {
    box.addEventListener("change", () => {
      document.querySelectorAll(`input[type=checkbox][name="${box.dataset.checkAll}"]`)
        .forEach((other) => { other.checked = box.checked; });
    });
  });

  // <a data-print>: print the page (hand-over minutes, reports).
  document.querySelectorAll("[data-print]").forEach((el) => {
    el.addEventListener("click", (event) => { event.preventDefault(); window.print(); });
  });

  // <div data-poll="/url" data-until="done">: refresh a progress block until the job ends.
  document.querySelectorAll("[data-poll]").forEach((block) => {
    const url = block.dataset.poll;
    const tick = async () => {
      try {
        const response = await fetch(url, { headers: { "accept": "text/html" }, credentials: "same-origin" });
        if (response.ok) {
          block.innerHTML = await response.text();
          if (block.querySelector("[data-finished]")) return;
        }
      } catch (e) { /* try again */ }
      setTimeout(tick, 1000);
    };
    setTimeout(tick, 1000);
  });
});
