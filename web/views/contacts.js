// Sidebar contact list, updated in place (keyed by username).

import { withToken } from '../api.js';
import { h, setText, spinner } from '../dom.js';
import {
  formatFull,
  formatListTime,
  hashHue,
  initial,
  keyChangedText,
  normalizeStatus,
  statusLabel,
  toDate,
} from '../format.js';
import { conversationHash } from '../router.js';
import { displayName, isConfusable, state, visibleContacts } from '../store.js';

const STATUS_CLASSES = ['status-online', 'status-away', 'status-busy', 'status-offline'];

export function setStatusDot(dot, status) {
  const s = normalizeStatus(status);
  for (const cls of STATUS_CLASSES) dot.classList.toggle(cls, cls === `status-${s}`);
  dot.dataset.status = s;
}

/** A person's avatar: their picture when they published one, else a coloured initial. Returns
 * an element to keep and an update function. */
export function avatarElement(name, size = '') {
  const el = h('span', {
    class: ['avatar', size, `avatar-${hashHue(name)}`],
    'aria-hidden': 'true',
  });
  let shown;
  const update = (url, label) => {
    if (url === shown && el.childNodes.length) {
      if (!url) setText(el, initial(label || name));
      return;
    }
    shown = url;
    if (url) {
      el.replaceChildren(h('img', { class: 'avatar-img', src: withToken(url), alt: '' }));
    } else {
      el.replaceChildren(document.createTextNode(initial(label || name)));
    }
  };
  update(null, name);
  return { el, update };
}

function previewText(m) {
  if (!m || typeof m.text !== 'string') return '';
  if (m.deleted) return 'This message was deleted.';
  const file = m.file && typeof m.file.name === 'string' ? `File: ${m.file.name}` : null;
  const text = file ?? m.text;
  const firstLine = text.split('\n').find((l) => l.trim()) ?? '';
  const cut = firstLine.length > 120 ? `${firstLine.slice(0, 120)}…` : firstLine;
  return m.direction === 'out' ? `You: ${cut}` : cut;
}

export class ContactList {
  constructor({ onRetry }) {
    this.onRetry = onRetry;
    this.items = new Map();
    this.statusBox = h('div', { class: 'contacts-status', role: 'status' });
    this.list = h('ul', { class: 'contact-list', id: 'contact-list', 'aria-label': 'Contacts' });
    this.el = h('div', { class: 'contacts' }, this.statusBox, this.list);
    this.render();
  }

  _createItem(name) {
    const dot = h('span', { class: 'status-dot status-offline', 'aria-hidden': 'true' });
    const avatar = avatarElement(name);
    const avatarWrap = h('span', { class: 'avatar-wrap' }, avatar.el, dot);
    const nameEl = h('span', { class: 'contact-name' }, name);
    // The username, shown when the display name could be taken for someone else's.
    const usernameEl = h('span', { class: 'contact-username', hidden: true }, name);
    const warn = h(
      'span',
      {
        class: 'key-warning',
        title: 'Identity key changed — verify before sending',
        role: 'img',
        'aria-label': 'Identity key changed',
        hidden: true,
      },
      '⚠',
    );
    // Their key changed recently (the key log says so, PROTOCOL.md §18.6).
    const recent = h('span', { class: 'key-recent', hidden: true }, 'new key');
    const badge = h('span', { class: 'unread-badge', hidden: true });
    const time = h('time', { class: 'contact-time', hidden: true });
    const statusText = h('span', { class: 'status-text' }, 'Offline');
    const preview = h('span', { class: 'contact-preview' });
    const link = h(
      'a',
      { class: 'contact', href: conversationHash(name), 'data-contact': name },
      avatarWrap,
      h(
        'span',
        { class: 'contact-main' },
        h('span', { class: 'contact-line' }, nameEl, usernameEl, warn, recent, time),
        h('span', { class: 'contact-line contact-sub' }, statusText, preview, badge),
      ),
    );
    const li = h('li', { class: 'contact-item' }, link);
    return {
      li,
      link,
      dot,
      statusText,
      badge,
      time,
      warn,
      recent,
      preview,
      nameEl,
      usernameEl,
      avatar,
    };
  }

  _updateItem(item, c) {
    setText(item.nameEl, displayName(c.username));
    item.nameEl.title = c.username;
    item.usernameEl.hidden = !isConfusable(c.username);
    item.avatar.update(c.avatar_url, displayName(c.username));
    item.link.classList.toggle('is-blocked', c.blocked);
    item.li.dataset.blocked = c.blocked ? 'true' : 'false';
    setStatusDot(item.dot, c.status);
    setText(
      item.statusText,
      c.blocked ? `${statusLabel(c.status)} · Blocked` : statusLabel(c.status),
    );
    item.statusText.dataset.status = normalizeStatus(c.status);
    item.warn.hidden = !c.key_changed;
    item.recent.hidden = c.key_changed || c.key_changed_at === null;
    item.recent.title = c.key_changed_at === null ? '' : keyChangedText(c.key_changed_at);
    item.link.classList.toggle('key-changed', c.key_changed);
    const unread = c.unread || 0;
    item.badge.hidden = unread <= 0;
    setText(item.badge, unread > 99 ? '99+' : String(unread));
    item.badge.setAttribute('aria-label', `${unread} unread`);
    item.link.classList.toggle('has-unread', unread > 0);
    const last = c.last_message;
    item.time.hidden = !last;
    if (last) {
      setText(item.time, formatListTime(last.sent_at));
      item.time.setAttribute('datetime', toDate(last.sent_at).toISOString());
      item.time.title = formatFull(last.sent_at);
    }
    const p = previewText(c.last_message);
    setText(item.preview, p);
    item.preview.hidden = !p;
    if (c.username === state.activePeer) item.link.setAttribute('aria-current', 'page');
    else item.link.removeAttribute('aria-current');
  }

  render() {
    const { contactsStatus, contactsError } = state;
    const contacts = new Map(visibleContacts().map((c) => [c.username, c]));

    // Status line (loading / error / empty).
    if (contactsStatus === 'loading' && contacts.size === 0) {
      this.statusBox.replaceChildren(spinner(), h('span', null, 'Loading contacts…'));
      this.statusBox.hidden = false;
    } else if (contactsStatus === 'error' && contacts.size === 0) {
      this.statusBox.replaceChildren(
        h('span', { class: 'error-text' }, contactsError?.message || 'Could not load contacts.'),
        h(
          'button',
          { type: 'button', class: 'btn btn-small', onclick: () => this.onRetry() },
          'Retry',
        ),
      );
      this.statusBox.hidden = false;
    } else if (contactsStatus === 'ready' && contacts.size === 0) {
      this.statusBox.replaceChildren(h('span', { class: 'muted' }, 'No contacts yet.'));
      this.statusBox.hidden = false;
    } else {
      this.statusBox.replaceChildren();
      this.statusBox.hidden = true;
    }

    // Keyed update.
    for (const [name, item] of this.items) {
      if (!contacts.has(name)) {
        item.li.remove();
        this.items.delete(name);
      }
    }
    let prev = null;
    for (const [name, c] of contacts) {
      let item = this.items.get(name);
      if (!item) {
        item = this._createItem(name);
        this.items.set(name, item);
      }
      this._updateItem(item, c);
      const expected = prev ? prev.nextSibling : this.list.firstChild;
      if (expected !== item.li) this.list.insertBefore(item.li, expected);
      prev = item.li;
    }
  }
}
