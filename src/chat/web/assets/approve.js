// The approval page: Approve, Deny (with a reason) and Approve with changes as JSON POSTs
// (AgentOTP.post sends the CSRF token), and live updates. Live updates poll /approve/<id>/state
// every 2 s rather than hold a Server-Sent Events stream: a poll is answered by whichever
// instance the load balancer picks (no sticky connection, no per-tab waiter), survives proxies
// that buffer streams, and 2 s is well within "decided elsewhere" for a human watching the page.
// Polling pauses while the tab is hidden.
(() => {
  const section = document.getElementById('decide');
  if (!section) return;
  const id = section.getAttribute('data-id');
  const outcome = document.getElementById('outcome');
  let busy = false;

  function clearErrors() {
    const errors = document.querySelectorAll('p.error[id^="error-"]');
    for (let i = 0; i < errors.length; i++) errors[i].textContent = '';
  }

  function formBody(decision) {
    const body = { decision: decision, reason: document.getElementById('reason').value };
    if (decision !== 'approve_with_changes') return body;
    body.caps = {};
    body.lists = {};
    const caps = document.querySelectorAll('input[data-cap]');
    for (let i = 0; i < caps.length; i++) body.caps[caps[i].getAttribute('data-cap')] = caps[i].value;
    const lists = document.querySelectorAll('fieldset[data-list]');
    for (let j = 0; j < lists.length; j++) {
      const kept = [];
      const boxes = lists[j].querySelectorAll('input[type="checkbox"]');
      for (let k = 0; k < boxes.length; k++) if (boxes[k].checked) kept.push(boxes[k].value);
      body.lists[lists[j].getAttribute('data-list')] = kept;
    }
    return body;
  }

  async function decide(decision) {
    if (busy) return;
    busy = true;
    clearErrors();
    outcome.textContent = 'Sending…';
    outcome.className = 'muted';
    try {
      const res = await window.AgentOTP.post(
        '/approve/' + encodeURIComponent(id) + '/decision',
        formBody(decision),
      );
      const data = res.data || {};
      if (res.status === 422 && data.errors) {
        outcome.textContent = 'Please correct the fields marked below.';
        outcome.className = 'error';
        for (const key in data.errors) {
          const el = document.getElementById('error-' + key) || document.getElementById('error-_form');
          if (el) el.textContent = data.errors[key];
        }
      } else {
        outcome.textContent = data.message || 'Something went wrong (' + res.status + ').';
        outcome.className = res.status === 200 ? 'muted' : 'error';
        if (data.login) {
          // A step-up approval with an old sign-in: confirm the passkey again, then come back.
          const link = document.createElement('a');
          link.href = data.login;
          link.textContent = ' Sign in with your passkey again';
          outcome.appendChild(link);
        }
        await refresh();
      }
    } catch (_e) {
      outcome.textContent = 'Could not reach the server: try again.';
      outcome.className = 'error';
    } finally {
      busy = false;
    }
  }

  const buttons = document.querySelectorAll('button[data-decision]');
  for (let i = 0; i < buttons.length; i++) {
    buttons[i].addEventListener('click', (event) =>
      decide(event.currentTarget.getAttribute('data-decision')),
    );
  }

  const status = document.getElementById('status');
  const progress = document.getElementById('progress');
  const votes = document.getElementById('votes');
  const deadline = document.getElementById('deadline');
  const timeLeft = document.getElementById('time-left');

  function render(state) {
    status.textContent = state.text;
    status.setAttribute('data-status', state.status);
    progress.textContent = state.approvals.count + '/' + state.approvals.required;
    votes.textContent = '';
    if (state.votes.length === 0) {
      const none = document.createElement('li');
      none.className = 'muted';
      none.textContent = 'none yet';
      votes.appendChild(none);
    }
    for (let i = 0; i < state.votes.length; i++) {
      const li = document.createElement('li');
      li.textContent = state.votes[i];
      votes.appendChild(li);
    }
    deadline.setAttribute('data-expires', state.expiresAt);
    if (state.status !== 'pending') section.hidden = true;
  }

  async function refresh() {
    try {
      const res = await fetch('/approve/' + encodeURIComponent(id) + '/state', {
        credentials: 'same-origin',
      });
      if (res.status === 200) render(await res.json());
    } catch (_e) {
      // Offline for a moment: the next poll tries again.
    }
  }

  function tick() {
    const ms = Date.parse(deadline.getAttribute('data-expires')) - Date.now();
    if (!(ms > 0) || section.hidden) {
      timeLeft.textContent = '';
      return;
    }
    const s = Math.floor(ms / 1000);
    timeLeft.textContent = '(' + Math.floor(s / 60) + ' min ' + (s % 60) + ' s left)';
  }

  tick();
  setInterval(tick, 1000);
  setInterval(() => {
    if (document.visibilityState === 'visible' && !busy) refresh();
  }, 2000);
})();
