// What HTML alone cannot do on the desk: tick call durations, and say when the browser's own
// link to the desk is down (the server reports the Voice API link in #connection itself).
(function () {
  "use strict";

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll(".call-card[data-started]").forEach(function (card) {
      var seconds = Math.max(0, Math.floor(now - Number(card.dataset.started)));
      var out = card.querySelector("[data-duration]");
      if (out) {
        var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
        out.textContent = (h ? h + ":" + pad(m) : m) + ":" + pad(s);
      }
    });
  }
  setInterval(tick, 1000);
  document.addEventListener("htmx:load", tick);

  function browserLink(up) {
    var desk = document.querySelector(".desk");
    if (desk) { desk.classList.toggle("offline", !up); }
    var indicator = document.getElementById("connection");
    if (indicator && !up) {
      indicator.dataset.status = "offline";
      indicator.textContent = "Offline: the desk cannot be reached; reconnecting…";
    }
  }
  document.addEventListener("htmx:wsClose", function () { browserLink(false); });
  document.addEventListener("htmx:wsError", function () { browserLink(false); });
  document.addEventListener("htmx:wsOpen", function () { browserLink(true); });
})();
