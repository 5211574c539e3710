// The signed-in layout: header, directory banner, sidebar, conversation pane.

import { h, setText, spinner } from '../dom.js';
import { hashHue, initial } from '../format.js';
import * as store from '../store.js';
import { ContactList } from './contacts.js';

export const DEGRADED_TEXT =
  'Directory unreachable — working from cache; messages still flow between online peers';

export class Shell {
  constructor({ onLogout, onRetryContacts }) {
    this.onLogout = onLogout;
    this.meName = h('span', { id: 'me-name', class: 'me-name' });
    this.meFingerprint = h('span', { id: 'me-fingerprint', class: 'fingerprint' });
    this.meAvatar = h('span', { class: 'avatar avatar-sm', 'aria-hidden': 'true' });
    this.connection = h(
      'span',
      { id: 'connection-status', class: 'connection-status', role: 'status', hidden: true },
      spinner('spinner-sm'),
      h('span', null, 'Reconnecting…'),
    );
    this.logoutLabel = h('span', { class: 'btn-label' }, 'Log out');
    this.logoutBtn = h(
      'button',
      { id: 'logout', type: 'button', class: 'btn btn-ghost', onclick: () => this._logout() },
      spinner('btn-spinner'),
      this.logoutLabel,
    );
    const header = h(
      'header',
      { class: 'topbar' },
      h(
        'a',
        { class: 'brand', href: '#/', 'aria-label': 'Flame — contacts' },
        h('img', { src: '/static/flame.svg', alt: '', width: 26, height: 26 }),
        h('span', { class: 'brand-name' }, 'Flame'),
      ),
      h('span', { class: 'topbar-spacer' }),
      this.connection,
      h(
        'div',
        { class: 'me', 'aria-label': 'Signed in as' },
        this.meAvatar,
        h(
          'div',
          { class: 'me-text' },
          this.meName,
          h('span', { class: 'me-fp-row' }, h('span', { class: 'fp-label' }, 'Fingerprint '), this.meFingerprint),
        ),
      ),
      this.logoutBtn,
    );

    this.banner = h(
      'div',
      { id: 'directory-banner', class: 'banner banner-warning', role: 'status', hidden: true },
      h('span', { class: 'banner-icon', 'aria-hidden': 'true' }, '⚠'),
      h('span', { class: 'banner-text' }, DEGRADED_TEXT),
    );

    this.contactList = new ContactList({ onRetry: onRetryContacts });
    this.sidebar = h(
      'nav',
      { class: 'sidebar', 'aria-label': 'Contacts' },
      h('h2', { class: 'sidebar-title' }, 'Contacts'),
      this.contactList.el,
    );
    this.pane = h('main', { class: 'pane', id: 'pane' });
    this.el = h(
      'div',
      { class: 'shell' },
      header,
      this.banner,
      h('div', { class: 'layout' }, this.sidebar, this.pane),
    );

    this._unsubs = [
      store.on('me', () => this.renderMe()),
      store.on('directory', () => this.renderDirectory()),
      store.on('contacts', () => this.contactList.render()),
      store.on('connection', (s) => this.renderConnection(s)),
    ];
    this._connTimer = null;
    this.renderMe();
    this.renderDirectory();
    this.renderConnection(store.state.connection);
  }

  renderMe() {
    const me = store.state.me;
    const name = me ? me.username : '';
    setText(this.meName, name);
    setText(this.meFingerprint, me ? me.fingerprint : '');
    this.meFingerprint.title = me ? me.fingerprint : '';
    setText(this.meAvatar, initial(name));
    this.meAvatar.className = `avatar avatar-sm avatar-${hashHue(name)}`;
  }

  renderDirectory() {
    this.banner.hidden = store.state.directory !== 'degraded';
  }

  renderConnection(status) {
    clearTimeout(this._connTimer);
    if (status === 'open' || status === 'idle') {
      this.connection.hidden = true;
      return;
    }
    // Only show the indicator when the outage lasts a moment.
    this._connTimer = setTimeout(() => {
      if (store.state.connection !== 'open') this.connection.hidden = false;
    }, 1500);
  }

  showEmptyPane() {
    this.el.classList.remove('has-conversation');
    this.pane.replaceChildren(
      h(
        'div',
        { class: 'pane-empty' },
        h('img', { src: '/static/flame.svg', alt: '', width: 56, height: 56 }),
        h('p', { class: 'pane-empty-title' }, 'Pick a contact to start chatting'),
        h('p', { class: 'muted' }, 'Messages are end-to-end encrypted between you and your peers.'),
      ),
    );
  }

  showConversation(view) {
    this.el.classList.add('has-conversation');
    this.pane.replaceChildren(view.el);
  }

  async _logout() {
    if (this.logoutBtn.disabled) return;
    this.logoutBtn.disabled = true;
    this.logoutBtn.classList.add('is-busy');
    setText(this.logoutLabel, 'Logging out…');
    try {
      await this.onLogout();
    } finally {
      this.logoutBtn.disabled = false;
      this.logoutBtn.classList.remove('is-busy');
      setText(this.logoutLabel, 'Log out');
    }
  }

  destroy() {
    clearTimeout(this._connTimer);
    for (const u of this._unsubs) u();
  }
}
