// Enrolment (GET /enrol/<token>): creates a passkey with the browser's WebAuthn API through
// @simplewebauthn/browser (webauthn.js), then goes to the account page, signed in.
(() => {
  const form = document.getElementById('enrol');
  if (!form) return;
  const token = form.getAttribute('data-token');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const A = window.AgentOTP;
    const button = document.getElementById('create-passkey');
    button.disabled = true;
    A.show('status', 'Waiting for your device…', false);
    try {
      const options = await A.post('/web/enrol/options', { token: token });
      if (options.status !== 200) throw new Error(message(options));
      const response = await window.SimpleWebAuthnBrowser.startRegistration({
        optionsJSON: options.data.options,
      });
      const name = document.getElementById('passkey-name').value;
      const verified = await A.post('/web/enrol/verify', {
        token: token,
        response: response,
        name: name || undefined,
      });
      if (verified.status !== 200) throw new Error(message(verified));
      A.show('status', 'Passkey created. Signing you in…', false);
      window.location.assign(verified.data.redirect);
    } catch (err) {
      A.show('status', err?.message ? err.message : 'The passkey could not be created.', true);
      button.disabled = false;
    }
  });
  function message(res) {
    return res.data?.error ? res.data.error.message : 'The server refused (' + res.status + ')';
  }
})();
