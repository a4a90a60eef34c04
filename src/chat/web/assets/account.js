// The account page (GET /account): sign out, add a passkey, remove one. Every change is a POST
// carrying the page's CSRF token (web.js).
(() => {
  const A = window.AgentOTP;
  function message(res) {
    return res.data?.error ? res.data.error.message : 'The server refused (' + res.status + ')';
  }
  async function run(work) {
    try {
      const res = await work();
      if (res.status !== 200) throw new Error(message(res));
      window.location.assign(res.data.redirect);
    } catch (err) {
      A.show('status', err?.message ? err.message : 'That did not work.', true);
    }
  }
  const signOut = document.getElementById('sign-out');
  if (signOut) signOut.addEventListener('click', () => run(() => A.post('/logout', {})));
  const add = document.getElementById('add-passkey');
  if (add)
    add.addEventListener('click', () =>
      run(async () => {
        const options = await A.post('/web/passkeys/options', {});
        if (options.status !== 200) return options;
        const response = await window.SimpleWebAuthnBrowser.startRegistration({
          optionsJSON: options.data.options,
        });
        return A.post('/web/passkeys/verify', { response: response });
      }),
    );
  document.querySelectorAll('button.remove-passkey').forEach((button) => {
    button.addEventListener('click', () =>
      run(() => A.post('/web/passkeys/remove', { credentialId: button.getAttribute('data-credential') })),
    );
  });
})();
