// Tiny hash router: #/login, #/ (contacts), #/c/<name> (conversation), #/c/<name>/m/<id>
// (conversation at a message), #/profile/<name>, #/search/<query>, #/settings, #/groups/new
// (a new group), #/g/<id> (a group's conversation).

export function parseHash(hash = location.hash) {
  const path = hash.replace(/^#/, '') || '/';
  if (path === '/login') return { name: 'login' };
  if (path === '/' || path === '') return { name: 'contacts' };
  if (path === '/settings') return { name: 'settings' };
  if (path === '/groups/new') return { name: 'new-group' };
  const group = /^\/g\/([^/]+)$/.exec(path);
  if (group && safeDecode(group[1])) return { name: 'group', id: safeDecode(group[1]) };
  const search = /^\/search(?:\/(.*))?$/.exec(path);
  if (search) return { name: 'search', query: safeDecode(search[1] || '') ?? '' };
  const profile = /^\/profile\/([^/]+)$/.exec(path);
  if (profile && safeDecode(profile[1])) return { name: 'profile', peer: safeDecode(profile[1]) };
  const anchored = /^\/c\/([^/]+)\/m\/([^/]+)$/.exec(path);
  if (anchored && safeDecode(anchored[1]) && safeDecode(anchored[2])) {
    return { name: 'conversation', peer: safeDecode(anchored[1]), target: safeDecode(anchored[2]) };
  }
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

function safeDecode(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

export function conversationHash(name) {
  return `#/c/${encodeURIComponent(name)}`;
}

/** The conversation, scrolled to one message (a search hit). */
export function messageHash(name, id) {
  return `#/c/${encodeURIComponent(name)}/m/${encodeURIComponent(id)}`;
}

/** A group's conversation (docs/UI_API.md, "Groups"). */
export function groupHash(id) {
  return `#/g/${encodeURIComponent(id)}`;
}

export function profileHash(name) {
  return `#/profile/${encodeURIComponent(name)}`;
}

export function searchHash(query) {
  return `#/search/${encodeURIComponent(query)}`;
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
