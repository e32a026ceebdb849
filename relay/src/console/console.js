// lienthong console: the one script. Parts of a page marked data-refresh are fetched again
// every data-every seconds and replaced, so charts stay current without reloading the page.
"use strict";
for (const part of document.querySelectorAll("[data-refresh]")) {
  const every = Math.max(2, Number(part.dataset.every || 30)) * 1000;
  setInterval(async () => {
    try {
      const answer = await fetch(part.dataset.refresh, { credentials: "same-origin" });
      if (answer.ok) {
        part.innerHTML = await answer.text();
        part.dataset.refreshed = String(Date.now());
      }
    } catch (_) {
      // Unreachable for a moment: the next round tries again.
    }
  }, every);
}
