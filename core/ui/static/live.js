// The events socket: every job and run change arrives here, and the page
// re-reads what it shows. A closed socket is reopened with a growing,
// jittered delay (a restarting core is not stampeded); each open counts
// as "re-read everything", since events were missed while it was closed.

export function connectLive({ onEvent, onOpen, onClose }) {
  const badge = document.getElementById('live');
  let delay = 500;
  let opens = 0;
  let stopped = false;
  let ws = null;
  let timer = null;

  function open() {
    if (stopped) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    ws = new WebSocket(`${proto}//${location.host}/api/v1/events`);
    ws.addEventListener('open', () => {
      delay = 500;
      opens++;
      badge.dataset.state = 'open';
      badge.dataset.opens = String(opens);
      badge.textContent = 'live';
      onOpen();
    });
    ws.addEventListener('message', (m) => {
      let e;
      try { e = JSON.parse(m.data); } catch { return; }
      onEvent(e);
    });
    ws.addEventListener('close', () => {
      // stop() has said "offline" already; the close it caused arrives
      // after it and must not say "reconnecting".
      if (stopped) return;
      badge.dataset.state = 'closed';
      badge.textContent = 'reconnecting…';
      // The socket gives no reason for a refused upgrade: the app asks
      // whether the session is still good (a core with a new secret, or
      // an expired cookie, refuses it every time).
      if (onClose) onClose();
      timer = setTimeout(open, delay * (0.75 + Math.random() / 2));
      delay = Math.min(delay * 2, 10000);
    });
  }
  open();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      if (ws) ws.close();
      badge.dataset.state = 'closed';
      badge.textContent = 'offline';
    },
  };
}
