// Tiny hash router: #/login, #/ (contacts), #/c/<name> (conversation).

export function parseHash(hash = location.hash) {
  const path = hash.replace(/^#/, '') || '/';
  if (path === '/login') return { name: 'login' };
  if (path === '/' || path === '') return { name: 'contacts' };
  const m = /^\/c\/(.+)$/.exec(path);
  if (m) {
    try {
      const peer = decodeURIComponent(m[1]);
      if (peer) return { name: 'conversation', peer };
    } catch {
      /* malformed escape: fall through */
    }
  }
  return { name: 'unknown' };
}

export function conversationHash(name) {
  return `#/c/${encodeURIComponent(name)}`;
}

let handler = null;

function fire() {
  if (handler) handler(parseHash());
}

/** Go to a hash. replace=true does not add a history entry. Always re-routes. */
export function navigate(hash, { replace = false } = {}) {
  if (location.hash === hash) {
    fire();
    return;
  }
  if (replace) {
    history.replaceState(null, '', hash);
    fire();
  } else {
    location.hash = hash; // fires hashchange
  }
}

export function startRouter(fn) {
  handler = fn;
  window.addEventListener('hashchange', fire);
  fire();
}
