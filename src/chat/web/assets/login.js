// Sign-in (GET /login): asks the browser for one of this site's passkeys (discoverable: no
// username), then goes where the page was asked to (`?next=`, a path on this server).
(() => {
  const form = document.getElementById('login');
  if (!form) return;
  const next = form.getAttribute('data-next');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const A = window.AgentOTP;
    const button = document.getElementById('sign-in');
    button.disabled = true;
    A.show('status', 'Waiting for your passkey…', false);
    try {
      const options = await A.post('/web/login/options', {});
      if (options.status !== 200) throw new Error(message(options));
      const response = await window.SimpleWebAuthnBrowser.startAuthentication({
        optionsJSON: options.data.options,
      });
      const verified = await A.post('/web/login/verify', { response: response, next: next });
      if (verified.status !== 200) throw new Error(message(verified));
      window.location.assign(verified.data.redirect);
    } catch (err) {
      A.show('status', err?.message ? err.message : 'Sign-in failed.', true);
      button.disabled = false;
    }
  });
  function message(res) {
    return res.data?.error ? res.data.error.message : 'The server refused (' + res.status + ')';
  }
})();
