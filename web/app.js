// Flame browser UI — bootstrap and wiring.

import { api, onUnauthorized } from './api.js';
import { h, spinner } from './dom.js';
import { installShortcuts } from './keys.js';
import { noticeOfFailedAction, notifyOf } from './notices.js';
import { conversationHash, navigate, startRouter } from './router.js';
import * as store from './store.js';
import { ConversationView } from './views/conversation/index.js';
import { Groups } from './views/groups.js';
import { renderLogin } from './views/login.js';
import { ProfileView } from './views/profile.js';
import { SearchView } from './views/search.js';
import { SettingsView } from './views/settings.js';
import { Shell } from './views/shell.js';
import { openSwitcher } from './views/switcher.js';
import { LiveSocket, reportActivity } from './ws.js';

const root = document.getElementById('app');
const socket = new LiveSocket();
const groups = new Groups(socket); // the group list, routes and events (views/groups.js)

let shell = null;
let conversation = null;
let page = null; // the profile, search or settings view in the pane
let hellos = 0;
let contactsRequest = 0;
let routerStarted = false;
let focusAfterLogin = false; // the login just happened: focus goes to the contact list

function authed() {
  return store.state.me !== null;
}

// ---------- session ----------

function startSession(me) {
  store.reset();
  store.setMe(me);
  hellos = 0;
  socket.start();
  loadContacts();
  loadKeyLog();
  api.myProfile().then(
    (view) => authed() && store.applyProfile(view),
    () => {},
  );
}

function closePage() {
  if (page) page.destroy();
  page = null;
}

function endSession() {
  socket.stop();
  groups.close();
  closePage();
  if (conversation) conversation.destroy();
  conversation = null;
  if (shell) shell.destroy();
  shell = null;
  store.reset();
  document.title = 'Flame';
}

onUnauthorized(() => {
  if (!authed()) return;
  endSession();
  navigate('#/login', { replace: true });
});

async function logout() {
  try {
    await api.logout();
  } catch (err) {
    console.warn('logout failed:', err.message);
  }
  endSession();
  navigate('#/login');
}

async function loadContacts() {
  const ticket = ++contactsRequest;
  if (store.state.contactsStatus !== 'ready') store.setContactsLoading();
  try {
    const res = await api.contacts({ blocked: true }); // the list hides them unless asked
    if (ticket !== contactsRequest || !authed()) return;
    store.setContacts(res.contacts);
  } catch (err) {
    if (ticket !== contactsRequest || !authed() || err.status === 401) return;
    if (store.state.contactsStatus !== 'ready') store.setContactsError(err);
  }
}

function loadKeyLog() {
  api.keyLog().then(
    (view) => authed() && store.setKeyLog(view),
    () => {},
  );
}

let contactsRefetchTimer = null;
function refetchContactsSoon() {
  clearTimeout(contactsRefetchTimer);
  contactsRefetchTimer = setTimeout(loadContacts, 300);
}

function resync() {
  loadContacts();
  loadKeyLog();
  if (conversation) conversation.resync();
}

// ---------- live events ----------

socket.subscribe('hello', (evt) => {
  if (evt.me) store.setMe(evt.me);
  hellos += 1;
  // First hello: the initial loads are already under way. Later ones mean a
  // reconnect: whatever happened meanwhile is fetched again.
  if (hellos > 1 || store.state.contactsStatus === 'error') resync();
});

// The user sees an incoming message when its conversation is open in a visible tab: tell the
// daemon (it sends read receipts, unless they are turned off). Coalesced per conversation.
const readPending = new Set();
function markReadSoon(peer) {
  if (readPending.has(peer)) return;
  readPending.add(peer);
  setTimeout(() => {
    readPending.delete(peer);
    if (conversation && conversation.peer === peer && document.visibilityState === 'visible') {
      api.markRead(peer).catch(() => {});
    }
  }, 300);
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && conversation) markReadSoon(conversation.peer);
});

socket.subscribe('message', (evt) => {
  const m = evt.message;
  if (!m || typeof m.id !== 'string' || typeof m.peer !== 'string') return;
  if (!store.applyMessage(m)) refetchContactsSoon();
  if (conversation && conversation.peer === m.peer) {
    conversation.addLive(m);
    if (m.direction === 'in') markReadSoon(m.peer);
  }
  if (shell) notifyOf(m, { toasts: shell.toasts, openPeer: conversation?.peer ?? null });
});

// Edits, deletes, reactions and typing (docs/UI_API.md, "Replies, edits, deletes, …").
socket.subscribe('message_changed', (evt) => {
  const m = evt.message;
  if (!m || typeof m.id !== 'string' || typeof m.peer !== 'string') return;
  store.applyMessageChange(m);
  if (conversation) conversation.applyChange(m);
});

socket.subscribe('message_removed', (evt) => {
  if (conversation && typeof evt.id === 'string') conversation.applyRemoved(evt);
  refetchContactsSoon(); // the list's last message may be the one removed
});

socket.subscribe('typing', (evt) => {
  if (conversation) conversation.applyTyping(evt);
});

socket.subscribe('action_failed', (evt) => {
  if (conversation && conversation.peer === evt.peer) conversation.actionFailed(evt);
  else if (shell) noticeOfFailedAction(evt, shell.toasts);
});

socket.subscribe('my_status', (evt) => store.setMyStatus(evt));

socket.subscribe('profile', (evt) => {
  if (evt.profile) store.applyProfile(evt.profile);
});

socket.subscribe('profile_rejected', (evt) => {
  if (page && page instanceof ProfileView && page.name === evt.username) page.rejected(evt.reason);
});

// Activity in this page keeps the status online (the daemon turns it to away when idle).
reportActivity(socket, authed);

socket.subscribe('message_state', (evt) => {
  if (typeof evt.id !== 'string') return;
  store.applyMessageState(evt);
  if (conversation) conversation.applyState(evt);
});

// Files: a transfer changed state, or moved on (docs/UI_API.md, "Files").
for (const type of ['file_state', 'file_progress']) {
  socket.subscribe(type, (evt) => {
    if (conversation) conversation.applyFileEvent(evt);
  });
}

// A contact changed: applied in place, or the list fetched again when it does not know them.
const contactEvents = {
  presence: (e) => store.applyPresence(e.username, e.status),
  key_change: (e) => store.applyKeyChange(e.username),
  session_reset: (e) => store.applySessionReset(e.username),
  version: (e) => store.applyVersion(e.username, e.protocol_version),
  blocked: (e) => store.applyBlocked(e.username, e.blocked),
};
for (const [type, apply] of Object.entries(contactEvents)) {
  socket.subscribe(type, (evt) => {
    if (!apply(evt)) refetchContactsSoon();
  });
}

socket.subscribe('directory', (evt) => store.setDirectory(evt.state));

socket.subscribe('key_log_alarm', (evt) => store.addKeyLogAlarm(evt.alarm));

socket.onStatus((status, info) => {
  store.setConnection(status);
  if (status === 'closed' && authed()) {
    // A refused handshake looks like any other close: ask whether the session
    // is still valid (a 401 here sends the user to the login page).
    api.me().then(
      (me) => {
        if (authed() && me && info && !info.wasOpen) store.setMe(me);
      },
      () => {},
    );
  }
});

store.on('contacts', () => {
  const n = store.totalUnread();
  document.title = n > 0 ? `(${n}) Flame` : 'Flame';
  if (focusAfterLogin && shell && store.state.contactsStatus !== 'loading') {
    focusAfterLogin = false;
    shell.focusStart();
  }
});

/** Alt+↑ / Alt+↓: the conversation above or below the open one in the contact list. */
function moveConversation(delta) {
  const names = store.visibleContacts().map((c) => c.username);
  if (!names.length) return;
  const at = names.indexOf(store.state.activePeer);
  const next = at < 0 ? (delta > 0 ? 0 : names.length - 1) : at + delta;
  if (next >= 0 && next < names.length) navigate(conversationHash(names[next]));
}

installShortcuts({ enabled: () => Boolean(shell), openSwitcher, move: moveConversation });

// ---------- routing ----------

function ensureShell() {
  if (!shell) {
    shell = new Shell({
      onLogout: logout,
      onRetryContacts: loadContacts,
      onStatus: async (value) => {
        try {
          store.setMyStatus(await api.setStatus(value));
        } catch (err) {
          console.warn('status not changed:', err.message);
        }
      },
    });
    root.replaceChildren(shell.el);
  }
  return shell;
}

function route(r) {
  if (r.name === 'login') {
    if (authed()) {
      navigate('#/', { replace: true });
      return;
    }
    if (conversation) conversation.destroy();
    conversation = null;
    closePage();
    if (shell) shell.destroy();
    shell = null;
    renderLogin(root, {
      onSuccess: (me) => {
        focusAfterLogin = true;
        startSession(me);
        navigate('#/');
        if (focusAfterLogin) shell?.focusStart(); // the list may still load: refocused then
      },
    });
    return;
  }
  if (!authed()) {
    navigate('#/login', { replace: true });
    return;
  }
  if (r.name === 'unknown') {
    navigate('#/', { replace: true });
    return;
  }
  const s = ensureShell();
  groups.attach(s);
  if (groups.route(r, s)) {
    if (conversation) conversation.destroy();
    conversation = null;
    store.setActivePeer(null);
    closePage();
    return;
  }
  if (r.name !== 'conversation') {
    if (conversation) conversation.destroy();
    conversation = null;
    store.setActivePeer(null);
  }
  if (r.name === 'search' && page instanceof SearchView) {
    page.setQuery(r.query);
    return;
  }
  closePage();
  if (r.name === 'contacts') {
    s.showEmptyPane();
    return;
  }
  if (r.name === 'profile' || r.name === 'search' || r.name === 'settings') {
    if (r.name === 'profile') page = new ProfileView(r.peer);
    else if (r.name === 'search') page = new SearchView(r.query);
    else page = new SettingsView();
    s.showView(page, r.name);
    if (r.name === 'search') page.run();
    else page.load();
    return;
  }
  // conversation, perhaps at one message
  s.toasts.dismiss(r.peer); // its notice is answered
  const target = r.target || null;
  if (conversation && conversation.peer === r.peer && conversation.target === target) return;
  if (conversation) conversation.destroy();
  store.setActivePeer(r.peer);
  conversation = new ConversationView(r.peer, { target });
  s.showConversation(conversation);
  conversation.load();
  if (!target) conversation.focusComposer();
}

// ---------- boot ----------

function showBootError(err) {
  root.replaceChildren(
    h(
      'main',
      { class: 'login-page' },
      h(
        'div',
        { class: 'login-card', role: 'alert' },
        h('h1', { class: 'login-title' }, 'Flame is not reachable'),
        h('p', { class: 'login-sub' }, err.message),
        h(
          'button',
          { type: 'button', class: 'btn btn-primary btn-block', onclick: boot },
          'Try again',
        ),
      ),
    ),
  );
}

async function boot() {
  root.replaceChildren(
    h('div', { class: 'boot', role: 'status' }, spinner(), h('span', null, 'Loading Flame…')),
  );
  let me = null;
  try {
    me = await api.me({ handle401: false });
  } catch (err) {
    if (err.status !== 401) {
      showBootError(err);
      return;
    }
  }
  if (me) startSession(me);
  if (!routerStarted) {
    routerStarted = true;
    startRouter(route);
  } else {
    navigate(location.hash || '#/', { replace: true });
  }
}

boot();
