// The inbox: live updates by polling /inbox/state every 2 s (same query, same filters; see
// approve.js for why polling). When the requests waiting or the recent decisions change, the
// page reloads — it holds no input worth keeping except the filters, which are in its URL.
(() => {
  let last = null;
  async function poll() {
    if (document.visibilityState !== 'visible') return;
    try {
      const res = await fetch('/inbox/state' + window.location.search, { credentials: 'same-origin' });
      if (res.status !== 200) return;
      const text = JSON.stringify(await res.json());
      if (last !== null && text !== last) window.location.reload();
      last = text;
    } catch (_e) {
      // Offline for a moment: the next poll tries again.
    }
  }
  poll();
  setInterval(poll, 2000);
})();
