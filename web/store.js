// Client-side state shared by the views, with a tiny event emitter.
// Events: 'me', 'directory', 'contacts', 'connection', 'unreachable', 'my_status', 'profile',
// 'keylog'.

import { compareMessages, normalizeStatus } from './format.js';

const listeners = new Map();

export function on(type, fn) {
  if (!listeners.has(type)) listeners.set(type, new Set());
  listeners.get(type).add(fn);
  return () => listeners.get(type)?.delete(fn);
}

function emit(type, payload) {
  for (const fn of [...(listeners.get(type) || [])]) {
    try {
      fn(payload);
    } catch (e) {
      console.error(e);
    }
  }
}

export const state = {
  me: null,
  directory: 'unknown',
  contacts: new Map(), // name -> Contact, kept sorted by name
  contactsStatus: 'idle', // idle | loading | ready | error
  contactsError: null,
  activePeer: null,
  connection: 'idle', // idle | connecting | open | closed
  unreachable: false, // the live feed has been down for a moment: the daemon cannot be reached
  myStatus: { choice: 'online', status: 'online' },
  myProfile: null, // this user's profile view (display name, avatar_url, ...)
  keyLog: { state: 'unknown', size: null, alarms: [] }, // the directory's key log, as checked
  showBlocked: readFlag('flame.showBlocked'),
};

function readFlag(key) {
  try {
    return localStorage.getItem(key) === '1';
  } catch {
    return false;
  }
}

function writeFlag(key, on) {
  try {
    localStorage.setItem(key, on ? '1' : '0');
  } catch {
    /* storage may be unavailable: the flag lasts for this page only */
  }
}

// Ids of incoming messages already counted as unread (bounded).
const counted = new Set();
function markCounted(id) {
  counted.add(id);
  if (counted.size > 2000) counted.delete(counted.values().next().value);
}

export function reset() {
  state.me = null;
  state.directory = 'unknown';
  state.contacts = new Map();
  state.contactsStatus = 'idle';
  state.contactsError = null;
  state.activePeer = null;
  state.connection = 'idle';
  state.unreachable = false;
  state.myStatus = { choice: 'online', status: 'online' };
  state.myProfile = null;
  state.keyLog = { state: 'unknown', size: null, alarms: [] };
  counted.clear();
  emit('me', null);
  emit('directory', state.directory);
  emit('contacts');
}

export function setMe(me) {
  state.me = me || null;
  emit('me', state.me);
  if (me && typeof me.directory === 'string') setDirectory(me.directory);
}

export function setDirectory(value) {
  const v = value === 'degraded' || value === 'ok' ? value : 'unknown';
  if (state.directory === v) return;
  state.directory = v;
  emit('directory', v);
}

/** The daemon's view of the key log (`KeyLog`, docs/UI_API.md). */
export function setKeyLog(view) {
  if (!view || !Array.isArray(view.alarms)) return;
  state.keyLog = { state: String(view.state), size: view.size ?? null, alarms: view.alarms };
  emit('keylog', state.keyLog);
}

/** A `key_log_alarm` event: one more alarm (the same one twice is shown once). */
export function addKeyLogAlarm(alarm) {
  if (!alarm || state.keyLog.alarms.some((a) => a.id === alarm.id)) return;
  state.keyLog = { ...state.keyLog, state: 'alarm', alarms: [...state.keyLog.alarms, alarm] };
  emit('keylog', state.keyLog);
}

export function setConnection(status) {
  if (state.connection === status) return;
  state.connection = status;
  emit('connection', status);
  if (status === 'open' || status === 'idle') setUnreachable(false);
}

/** The own daemon cannot be reached (or can again): the composer waits for it. */
export function setUnreachable(on) {
  if (state.unreachable === Boolean(on)) return;
  state.unreachable = Boolean(on);
  emit('unreachable', state.unreachable);
}

function normalizeContact(c) {
  return {
    username: String(c.username),
    status: normalizeStatus(c.status),
    fingerprint: c.fingerprint ?? '',
    safety_number: c.safety_number ?? '',
    key_changed: Boolean(c.key_changed),
    protocol_version: Number(c.protocol_version) || 2,
    session_reset_at: Number(c.session_reset_at) || null,
    unread: Math.max(0, Number(c.unread) || 0),
    last_message: c.last_message || null,
    display_name: typeof c.display_name === 'string' ? c.display_name : '',
    position: typeof c.position === 'string' ? c.position : '',
    avatar_url: typeof c.avatar_url === 'string' ? c.avatar_url : null,
    blocked: Boolean(c.blocked),
    verified: Boolean(c.verified),
    key_changed_at: Number.isFinite(c.key_changed_at) ? c.key_changed_at : null,
  };
}

/** The name to show for a person: their display name, else their username. */
export function displayName(name) {
  if (state.me && name === state.me.username && state.myProfile?.display_name) {
    return state.myProfile.display_name;
  }
  const c = state.contacts.get(name);
  return c?.display_name || name;
}

// Letters of other scripts that look like Latin ones (a few of Unicode's confusables, enough for
// names): "аlice" with a Cyrillic а looks like alice.
const LOOKALIKE_FROM = 'авекмнорстухіјѕԁԛԝһӏαβεικνορτυχøł0135ı';
const LOOKALIKE_TO = 'abekmhopctyxijsdqwhlabeikvoptuxololesi';

/** How a name looks, for comparing: compatibility forms folded, accents, spaces, punctuation
 * and case dropped, lookalike letters mapped, and i, j and l (which fonts confuse) made one. */
export function nameSkeleton(text) {
  const folded = (text || '').normalize('NFKD').toLowerCase();
  let out = '';
  for (const ch of folded.replace(/[\p{M}\p{Cf}\p{Z}\p{P}\p{S}]/gu, '')) {
    const at = LOOKALIKE_FROM.indexOf(ch);
    out += at < 0 ? ch : LOOKALIKE_TO[at];
  }
  return out.replace(/[ijl]/g, 'l');
}

/** Whether `name`'s display name could be taken for someone else: another person shown here
 * (a contact, or this user) has a display name or username that looks the same. The username is
 * then shown beside it; the conversation's header always shows it. */
export function isConfusable(name) {
  const own = displayName(name);
  if (own === name) return false;
  const looks = nameSkeleton(own);
  const people = [...state.contacts.keys()];
  if (state.me && !state.contacts.has(state.me.username)) people.push(state.me.username);
  for (const other of people) {
    if (other === name) continue;
    if (nameSkeleton(other) === looks || nameSkeleton(displayName(other)) === looks) return true;
  }
  return false;
}

/** The display name, with the username after it whenever it could be confused. */
export function displayLabel(name) {
  const shown = displayName(name);
  return isConfusable(name) ? `${shown} (${name})` : shown;
}

export function setMyStatus(evt) {
  const choice = normalizeStatus(evt?.choice);
  const status = normalizeStatus(evt?.status);
  state.myStatus = { choice, status };
  emit('my_status', state.myStatus);
}

export function setShowBlocked(on) {
  state.showBlocked = Boolean(on);
  writeFlag('flame.showBlocked', state.showBlocked);
  emit('contacts');
}

/** A `profile` event or answer: refresh what the contact list shows. */
export function applyProfile(view) {
  if (!view || typeof view.username !== 'string') return;
  if (view.is_me) state.myProfile = view;
  const c = state.contacts.get(view.username);
  if (c) {
    c.display_name = view.display_name || '';
    c.position = view.position || '';
    c.avatar_url = view.avatar_url || null;
    c.blocked = Boolean(view.blocked);
    emit('contacts');
  }
  emit('profile', view);
}

/** Change a known contact in place and tell the views. Returns false when the contact is unknown. */
function changeContact(username, change) {
  const c = state.contacts.get(username);
  if (!c) return false;
  change(c);
  emit('contacts');
  return true;
}

/** Returns false when the contact is unknown. */
export function applyBlocked(username, blocked) {
  return changeContact(username, (c) => {
    c.blocked = Boolean(blocked);
  });
}

/** Most recent conversation first; people never written with after them, by name. */
function byRecency(a, b) {
  const ta = Number(a.last_message?.sent_at) || 0;
  const tb = Number(b.last_message?.sent_at) || 0;
  if (ta !== tb) return tb - ta;
  return displayName(a.username).localeCompare(displayName(b.username));
}

/** Contacts as the list shows them, most recent conversation first: blocked people only when
 * asked for. */
export function visibleContacts() {
  return [...state.contacts.values()]
    .filter((c) => state.showBlocked || !c.blocked)
    .sort(byRecency);
}

function sortContacts() {
  state.contacts = new Map(
    [...state.contacts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
}

export function setContactsLoading() {
  state.contactsStatus = 'loading';
  state.contactsError = null;
  emit('contacts');
}

export function setContactsError(err) {
  state.contactsStatus = 'error';
  state.contactsError = err;
  emit('contacts');
}

export function setContacts(list) {
  const map = new Map();
  for (const raw of Array.isArray(list) ? list : []) {
    if (!raw || typeof raw.username !== 'string') continue;
    const c = normalizeContact(raw);
    if (c.username === state.activePeer) c.unread = 0;
    if (c.last_message?.id) markCounted(c.last_message.id);
    map.set(c.username, c);
  }
  state.contacts = map;
  sortContacts();
  state.contactsStatus = 'ready';
  state.contactsError = null;
  emit('contacts');
}

export function upsertContact(raw) {
  if (!raw || typeof raw.username !== 'string') return;
  const c = normalizeContact(raw);
  if (c.username === state.activePeer) c.unread = 0;
  const isNew = !state.contacts.has(c.username);
  state.contacts.set(c.username, c);
  if (isNew) sortContacts();
  emit('contacts');
}

export function setActivePeer(name) {
  state.activePeer = name || null;
  const c = name ? state.contacts.get(name) : null;
  if (c) c.unread = 0;
  emit('contacts');
}

/** A live `message` event. Returns false when the peer is not a known contact. */
export function applyMessage(m) {
  const c = state.contacts.get(m.peer);
  if (!c) return false;
  const last = c.last_message;
  if (!last || last.id === m.id || compareMessages(last, m) <= 0) c.last_message = m;
  if (m.direction === 'in' && !counted.has(m.id)) {
    markCounted(m.id);
    if (m.peer !== state.activePeer) c.unread += 1;
  }
  emit('contacts');
  return true;
}

/** A `message_changed` event (edited, deleted, reacted to): the list's last message follows. */
export function applyMessageChange(m) {
  const c = state.contacts.get(m.peer);
  if (c?.last_message && c.last_message.id === m.id) {
    c.last_message = m;
    emit('contacts');
  }
}

export function applyMessageState(evt) {
  const c = state.contacts.get(evt.peer);
  if (c?.last_message && c.last_message.id === evt.id) {
    c.last_message = { ...c.last_message, state: evt.state, error: evt.error ?? null };
    emit('contacts');
  }
}

/** Returns false when the contact is unknown. */
export function applyPresence(username, status) {
  return changeContact(username, (c) => {
    c.status = normalizeStatus(status);
  });
}

/** Returns false when the contact is unknown. */
export function applyKeyChange(username) {
  return changeContact(username, (c) => {
    c.key_changed = true;
  });
}

/** The secure session with `username` was reset (the conversation keeps a notice). */
export function applySessionReset(username) {
  return changeContact(username, (c) => {
    c.session_reset_at = Date.now() / 1000;
  });
}

export function applyVersion(username, version) {
  return changeContact(username, (c) => {
    c.protocol_version = Number(version) || 2;
  });
}

export function totalUnread() {
  let n = 0;
  for (const c of state.contacts.values()) if (!c.blocked) n += c.unread;
  return n;
}
