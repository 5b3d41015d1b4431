// billclear console: a little progressive enhancement. Every page works
// without it; nothing here talks to the server.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // "Select all" boxes: <input type=checkbox data-select-all="name">.
  document.querySelectorAll("input[data-select-all]").forEach(function (all) {
    all.addEventListener("change", function () {
      var name = all.getAttribute("data-select-all");
      document.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (b) {
        b.checked = all.checked;
      });
    });
  });
  // Forms that move money or routes ask once more: <form data-confirm="...">.
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.getAttribute("data-confirm"))) { e.preventDefault(); }
    });
  });
});
