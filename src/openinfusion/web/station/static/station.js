// Live updates: the server sends a "tick" whenever what the station shows changes; the page fetches its
// live part again and swaps it in, keeping keyboard focus on the element that had it.
(function () {
  "use strict";
  const main = document.querySelector("[data-live]"); // the part of the page that follows the fleet (not forms)
  if (!main || !main.dataset.live || !window.EventSource) return;
  let last = null;
  let busy = false;
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const response = await fetch(main.dataset.live, { credentials: "same-origin" });
      if (response.ok) {
        const focused = document.activeElement && document.activeElement.id;
        main.innerHTML = await response.text();
        if (focused) {
          const again = document.getElementById(focused);
          if (again) again.focus();
        }
      }
    } finally {
      busy = false;
    }
  }
  const source = new EventSource("/station/stream");
  source.addEventListener("tick", function (event) {
    if (event.data !== last) {
      const first = last === null;
      last = event.data;
      if (!first) refresh();
    }
  });
  setInterval(refresh, 10000); // also refresh now and then: "online" turns "offline" with no change at all
})();
