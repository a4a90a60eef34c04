// Agent OTP web pages: shared helpers for the page scripts (no framework, no inline code: the
// Content-Security-Policy allows only our own files). Every state-changing call is a POST with
// the page's CSRF token in the X-CSRF-Token header, read from <meta name="csrf-token">.
(() => {
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute('content') : '';
  }
  async function post(url, body) {
    var res = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrfToken() },
      body: JSON.stringify(body || {}),
    });
    var data = null;
    try {
      data = await res.json();
    } catch {
      // Not JSON (a proxy's error page): the status still tells the page what happened.
      data = null;
    }
    return { status: res.status, data: data };
  }
  function show(id, text, isError) {
    var el = document.getElementById(id);
    if (!el) return;
    el.textContent = text;
    el.className = isError ? 'error' : 'muted';
  }
  window.AgentOTP = { post: post, show: show, csrfToken: csrfToken };
})();
