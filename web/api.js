// The local UI API (docs/UI_API.md): the one module that knows its URLs.
// JSON in, JSON out; errors `{error, message}` become ApiError with the
// server's message; a 401 anywhere (but login) triggers the unauthorized hook.
//
// The session is the cookie plus the page token (docs/UI_API.md, "Rules"): the token is kept in
// this origin's sessionStorage (no other port can read it, unlike the cookie) and sent with every
// request: a header on fetch, a subprotocol on the WebSocket, `?token=` on what an element loads.

export const NETWORK_MESSAGE =
  'Cannot reach the Flame daemon. Check that it is running, then try again.';

const FALLBACK_MESSAGES = {
  unauthorized: 'Your session has ended. Please sign in again.',
  wrong_password: 'Wrong password.',
  too_many_attempts: 'Too many attempts. Wait a moment, then try again.',
  unknown_recipient: 'This contact is unknown to the directory. The message was not sent.',
  empty_message: 'Type a message before sending.',
  message_too_long: 'This message is too long to send. Shorten it and try again.',
  key_changed: "This contact's identity key changed. Verify and accept the new key before sending.",
  bad_origin: 'The request was refused (bad origin). Reload the page and try again.',
  blocked: 'You blocked this person. Unblock them to write to them.',
  bad_avatar: 'The picture must be a PNG, JPEG, WebP or GIF image.',
  avatar_too_large: 'This picture is too large.',
  not_author: 'Only the author of a message can change it.',
  too_late: 'A message can be edited or deleted for everyone only within 24 hours of sending it.',
  bad_reaction: 'A reaction is a single emoji.',
  no_message: 'That message is not in this conversation any more.',
  not_admin: 'Only an admin of this group can do that.',
  left_group: 'You are not in this group any more.',
  name_too_long: "A group's name is at most 64 characters.",
  too_many_members: 'A group has at most 100 members.',
};

export class ApiError extends Error {
  constructor(message, { status = 0, code = 'network', retryAfter = null } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

let unauthorizedHandler = null;

const TOKEN_KEY = 'flame.token';
export const TOKEN_HEADER = 'X-Flame-Token';
let pageToken = readToken();

function readToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

function keepToken(token) {
  pageToken = token || '';
  try {
    if (pageToken) sessionStorage.setItem(TOKEN_KEY, pageToken);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage refused: the token lives in memory until the page goes */
  }
}

/** The page token, for the WebSocket's subprotocol (ws.js). */
export function sessionToken() {
  return pageToken;
}

/** A URL that an element (img, video, a download link) loads, with the page token. */
export function withToken(url) {
  if (!url) return url;
  return `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(pageToken)}`;
}

/** The live feed said the session ended (a logout elsewhere, or the daemon locked). */
export function sessionEnded() {
  keepToken('');
  if (unauthorizedHandler) unauthorizedHandler(new ApiError(FALLBACK_MESSAGES.unauthorized));
}

/** Register the single handler called when an API call answers 401. */
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

function fallbackMessage(code, status) {
  if (FALLBACK_MESSAGES[code]) return FALLBACK_MESSAGES[code];
  if (status >= 500) return `The Flame daemon hit an error (HTTP ${status}). Try again.`;
  return `The request failed (HTTP ${status}).`;
}

/** fetch, with a daemon that cannot be reached turned into an ApiError (an abort stays one). */
async function send(path, init) {
  try {
    return await fetch(path, init);
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(NETWORK_MESSAGE, { status: 0, code: 'network' });
  }
}

export async function request(method, path, body, { handle401 = true, signal } = {}) {
  const init = {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { Accept: 'application/json', [TOKEN_HEADER]: pageToken },
    signal,
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await send(path, init);
  let data = null;
  let raw = '';
  try {
    raw = await res.text();
  } catch {
    raw = '';
  }
  if (raw) {
    try {
      data = JSON.parse(raw);
    } catch {
      data = null;
    }
  }
  if (res.ok) return data ?? {};

  const code = data && typeof data.error === 'string' ? data.error : `http_${res.status}`;
  const message =
    data && typeof data.message === 'string' && data.message.trim()
      ? data.message
      : fallbackMessage(code, res.status);
  const err = new ApiError(message, {
    status: res.status,
    code,
    retryAfter: res.headers.get('Retry-After'),
  });
  if (res.status === 401 && path !== '/ui/api/login') keepToken('');
  if (res.status === 401 && handle401 && unauthorizedHandler) {
    try {
      unauthorizedHandler(err);
    } catch (e) {
      console.error(e);
    }
  }
  throw err;
}

const enc = encodeURIComponent;

/** The live events: a WebSocket on this host (ws.js). */
export const WS_PATH = '/ui/api/ws';

export const api = {
  me: (opts) => request('GET', '/ui/api/me', undefined, opts),
  login: async (password) => {
    const res = await request('POST', '/ui/api/login', { password }, { handle401: false });
    keepToken(res.token);
    return res.me;
  },
  logout: async () => {
    try {
      return await request('POST', '/ui/api/logout', {}, { handle401: false });
    } finally {
      keepToken('');
    }
  },
  contacts: ({ blocked = false } = {}) =>
    request('GET', blocked ? '/ui/api/contacts?blocked=1' : '/ui/api/contacts'),
  acceptKey: (name) => request('POST', `/ui/api/contacts/${enc(name)}/accept-key`, {}),
  verify: (name, verified) => request('POST', `/ui/api/contacts/${enc(name)}/verify`, { verified }),
  loginInfo: () => request('GET', '/ui/api/login', undefined, { handle401: false }),
  messages: (name, { before = null, limit = 50, signal } = {}) => {
    const q = new URLSearchParams();
    if (before !== null && before !== undefined) q.set('before', String(before));
    q.set('limit', String(limit));
    return request('GET', `/ui/api/conversations/${enc(name)}/messages?${q}`, undefined, {
      signal,
    });
  },
  send: (name, text, replyTo = null) =>
    request(
      'POST',
      `/ui/api/conversations/${enc(name)}/messages`,
      replyTo ? { text, reply_to: replyTo } : { text },
    ),
  markRead: (name, upTo) =>
    request('POST', `/ui/api/conversations/${enc(name)}/read`, upTo ? { up_to: upTo } : {}),
  settings: () => request('GET', '/ui/api/settings'),
  keyLog: () => request('GET', '/ui/api/keylog'),
  saveSettings: (settings) => request('POST', '/ui/api/settings', settings),
  context: (name, id, { before = 25, after = 25 } = {}) =>
    request(
      'GET',
      `/ui/api/conversations/${enc(name)}/messages/${enc(id)}/context?before=${before}&after=${after}`,
    ),
  // Profiles, status, blocking, search (docs/UI_API.md).
  myProfile: () => request('GET', '/ui/api/profile'),
  saveProfile: (fields) => request('PUT', '/ui/api/profile', fields),
  saveAvatar: (base64OrNull) => request('PUT', '/ui/api/profile/avatar', { image: base64OrNull }),
  profile: (name) => request('GET', `/ui/api/profiles/${enc(name)}`),
  status: () => request('GET', '/ui/api/status'),
  setStatus: (status) => request('PUT', '/ui/api/status', { status }),
  blocks: () => request('GET', '/ui/api/blocks'),
  block: (username) => request('POST', '/ui/api/blocks', { username }),
  unblock: (username) => request('DELETE', `/ui/api/blocks/${enc(username)}`, {}),
  search: (q, { peer = '', since = null, until = null, order = 'newest', signal } = {}) => {
    const p = new URLSearchParams({ q, order });
    if (peer) p.set('peer', peer);
    if (since !== null) p.set('since', String(since));
    if (until !== null) p.set('until', String(until));
    return request('GET', `/ui/api/search?${p}`, undefined, { signal });
  },
};

// ---------- replies, edits, deletes, reactions, typing (docs/UI_API.md) ----------

const messageBase = (peer, id) => `/ui/api/conversations/${enc(peer)}/messages/${enc(id)}`;

export const actionApi = {
  edit: (peer, id, text) => request('POST', `${messageBase(peer, id)}/edit`, { text }),
  /** scope: 'everyone' | 'me' */
  remove: (peer, id, scope) => request('POST', `${messageBase(peer, id)}/delete`, { for: scope }),
  react: (peer, id, emoji, on) =>
    request('POST', `${messageBase(peer, id)}/reactions`, { emoji, on }),
  history: (peer, id) => request('GET', `${messageBase(peer, id)}/history`),
  typing: (peer, typing) =>
    request('POST', `/ui/api/conversations/${enc(peer)}/typing`, { typing }),
};

// ---------- groups (docs/UI_API.md, "Groups") ----------

const groupBase = (id) => `/ui/api/groups/${enc(id)}`;

export const groupApi = {
  list: () => request('GET', '/ui/api/groups'),
  get: (id) => request('GET', groupBase(id)),
  create: (name, members, picture = null) =>
    request('POST', '/ui/api/groups', { name, members, picture }),
  /** op: add | remove | promote (members), rename (name), picture (picture), leave. */
  change: (id, op, { members = [], name = null, picture = null } = {}) =>
    request('POST', `${groupBase(id)}/changes`, { op, members, name, picture }),
  messages: (id, { limit = 100 } = {}) =>
    request('GET', `${groupBase(id)}/messages?limit=${limit}`),
  send: (id, text) => request('POST', `${groupBase(id)}/messages`, { text }),
  markRead: (id) => request('POST', `${groupBase(id)}/read`, {}),
  search: (q) => request('GET', `/ui/api/group-search?${new URLSearchParams({ q })}`),
};

// ---------- files (docs/UI_API.md, "Files") ----------

const filesBase = (peer) => `/ui/api/conversations/${enc(peer)}/files`;

export const fileApi = {
  announce: (peer, file, caption = '') =>
    request('POST', filesBase(peer), announcement(file, caption)),
  cancel: (peer, id) => request('POST', `${filesBase(peer)}/${enc(id)}/cancel`, {}),
  decline: (peer, id) => request('POST', `${filesBase(peer)}/${enc(id)}/decline`, {}),
  view: (peer, id) => request('GET', `${filesBase(peer)}/${enc(id)}`),
  /** For the page's elements (img, video, a download link): with the page token. */
  contentUrl: (peer, id, download = false) =>
    withToken(`${filesBase(peer)}/${enc(id)}/content${download ? '?download=1' : ''}`),

  /** Stream a File/Blob to our daemon: the browser reads it from disk as it sends. */
  upload: (peer, id, file, signal) =>
    uploadTo(`${filesBase(peer)}/${enc(id)}/content`, file, signal),
};

function announcement(file, caption) {
  return {
    name: file.name || 'file',
    size: file.size,
    type: file.type || '',
    ...(caption ? { caption } : {}),
  };
}

// Files in groups (docs/UI_API.md, "Group files"): the same upload, offered to every member.
const groupFile = (id, author, tid) => `${groupBase(id)}/files/${enc(author)}/${enc(tid)}`;

export const groupFileApi = {
  announce: (id, file, caption = '') =>
    request('POST', `${groupBase(id)}/files`, announcement(file, caption)),
  upload: (id, tid, file, signal) =>
    uploadTo(`${groupBase(id)}/files/${enc(tid)}/content`, file, signal),
  cancel: (id, tid) => request('POST', `${groupBase(id)}/files/${enc(tid)}/cancel`, {}),
  decline: (id, author, tid) => request('POST', `${groupFile(id, author, tid)}/decline`, {}),
  contentUrl: (id, author, tid, download = false) =>
    withToken(`${groupFile(id, author, tid)}/content${download ? '?download=1' : ''}`),
};

async function uploadTo(url, file, signal) {
  const res = await send(url, {
    method: 'PUT',
    body: file,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: {
      'Content-Type': 'application/octet-stream',
      Accept: 'application/json',
      [TOKEN_HEADER]: pageToken,
    },
    signal,
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (res.ok && data) return data;
  const message =
    data && typeof data.message === 'string'
      ? data.message
      : `The upload failed (HTTP ${res.status}).`;
  throw new ApiError(message, {
    status: res.status,
    code: data?.error ? data.error : `http_${res.status}`,
  });
}
