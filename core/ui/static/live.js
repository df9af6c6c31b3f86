// The events socket: every job and run change arrives here, and the page
// re-reads what it shows. A closed socket is reopened with a growing,
// jittered delay (a restarting core is not stampeded); each open counts
// as "re-read everything", since events were missed while it was closed.

export function connectLive({ onEvent, onOpen }) {
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
      badge.dataset.state = 'closed';
      badge.textContent = 'reconnecting…';
      if (stopped) return;
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
