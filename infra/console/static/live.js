// ordertasks console: keeps the parts of a page marked data-live-src up to date.
// Every data-live-every seconds (5 by default) it fetches the part's URL, an HTML fragment
// the console renders (escaped by Jinja like every page), and swaps it in: no reload, no
// library. It pauses while the tab is hidden; a failed fetch marks the part stale and the
// next turn tries again. Without JavaScript the page simply stays as it was rendered.
"use strict";

(function () {
  function keepFresh(part) {
    var every = Math.max(1, Number(part.dataset.liveEvery || 5)) * 1000;
    function turn() {
      if (document.hidden) {
        window.setTimeout(turn, every);
        return;
      }
      fetch(part.dataset.liveSrc, { credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" } })
        .then(function (answer) {
          if (!answer.ok) { throw new Error("HTTP " + answer.status); }
          return answer.text();
        })
        .then(function (html) {
          part.innerHTML = html;
          part.classList.remove("stale");
          part.dataset.liveRefreshes = String(Number(part.dataset.liveRefreshes || 0) + 1);
        })
        .catch(function () { part.classList.add("stale"); })
        .then(function () { window.setTimeout(turn, every); });
    }
    window.setTimeout(turn, every);
  }
  document.querySelectorAll("[data-live-src]").forEach(keepFresh);
}());
