// The signed-in layout: header, directory banner, sidebar, conversation pane.

import { busyButton, h, setText, spinner, whileBusy } from '../dom.js';
import { STATUSES } from '../format.js';
import { navigate, profileHash, searchHash } from '../router.js';
import * as store from '../store.js';
import { avatarElement, ContactList, setStatusDot } from './contacts.js';
import { KeyLogBanner } from './keylog.js';

export const DEGRADED_TEXT =
  'Directory unreachable — working from cache; messages still flow between online peers';

// What appearing offline means (PROTOCOL.md §12.2).
const HIDDEN_TITLE =
  'Nobody can tell you are here. Messages to you wait until you choose another status.';

export class Shell {
  constructor({ onLogout, onRetryContacts, onStatus }) {
    this.onLogout = onLogout;
    this.onStatus = onStatus;
    this.meName = h('span', { id: 'me-name', class: 'me-name' });
    this.meFingerprint = h('span', { id: 'me-fingerprint', class: 'fingerprint' });
    this.meAvatar = null;
    this.meAvatarBox = h('a', {
      class: 'me-avatar',
      href: '#/settings',
      title: 'Your profile and settings',
    });
    this.myDot = h('span', {
      id: 'my-status-dot',
      class: 'status-dot status-online',
      'aria-hidden': 'true',
    });
    this.statusSelect = h(
      'select',
      {
        id: 'my-status',
        class: 'input status-select',
        'aria-label': 'Your status',
        onchange: () => this._chooseStatus(),
      },
      ...Object.entries(STATUSES).map(([value, label]) =>
        value === 'offline'
          ? h('option', { value, title: HIDDEN_TITLE }, 'Appear offline')
          : h('option', { value }, label),
      ),
    );
    this.searchInput = h('input', {
      id: 'search-input',
      class: 'input search-input',
      type: 'search',
      placeholder: 'Search people and messages',
      'aria-label': 'Search people and messages',
      autocomplete: 'off',
      maxlength: '256',
    });
    const searchForm = h(
      'form',
      { class: 'search-form', role: 'search', novalidate: true },
      this.searchInput,
    );
    searchForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = this.searchInput.value.trim();
      if (q) navigate(searchHash(q));
    });
    this.connection = h(
      'span',
      { id: 'connection-status', class: 'connection-status', role: 'status', hidden: true },
      spinner('spinner-sm'),
      h('span', null, 'Reconnecting…'),
    );
    this.logout = busyButton(
      { id: 'logout', type: 'button', class: 'btn btn-ghost', onclick: () => this._logout() },
      'Log out',
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
      searchForm,
      h('span', { class: 'topbar-spacer' }),
      this.connection,
      h('label', { class: 'my-status' }, this.myDot, this.statusSelect),
      h(
        'div',
        { class: 'me', 'aria-label': 'Signed in as' },
        this.meAvatarBox,
        h(
          'div',
          { class: 'me-text' },
          this.meName,
          h(
            'span',
            { class: 'me-fp-row' },
            h('span', { class: 'fp-label' }, 'Fingerprint '),
            this.meFingerprint,
          ),
        ),
      ),
      h('a', { id: 'settings-link', class: 'btn btn-ghost', href: '#/settings' }, 'Settings'),
      this.logout.el,
    );
    this.toasts = h('div', {
      id: 'toasts',
      class: 'toasts',
      role: 'status',
      'aria-live': 'polite',
    });

    this.banner = h(
      'div',
      { id: 'directory-banner', class: 'banner banner-warning', role: 'status', hidden: true },
      h('span', { class: 'banner-icon', 'aria-hidden': 'true' }, '⚠'),
      h('span', { class: 'banner-text' }, DEGRADED_TEXT),
    );

    this.keyLogBanner = new KeyLogBanner();
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
      this.keyLogBanner.el,
      this.banner,
      h('div', { class: 'layout' }, this.sidebar, this.pane),
      this.toasts,
    );

    this._unsubs = [
      store.on('me', () => this.renderMe()),
      store.on('profile', (view) => {
        if (view?.is_me) this.renderMe();
      }),
      store.on('my_status', () => this.renderStatus()),
      store.on('directory', () => this.renderDirectory()),
      store.on('contacts', () => this.contactList.render()),
      store.on('connection', (s) => this.renderConnection(s)),
    ];
    this._connTimer = null;
    this.renderMe();
    this.renderStatus();
    this.renderDirectory();
    this.renderConnection(store.state.connection);
  }

  renderMe() {
    const me = store.state.me;
    const name = me ? me.username : '';
    setText(this.meName, name);
    setText(this.meFingerprint, me ? me.fingerprint : '');
    this.meFingerprint.title = me ? me.fingerprint : '';
    if (!this.meAvatar || this.meAvatar.name !== name) {
      this.meAvatar = { name, ...avatarElement(name, 'avatar-sm') };
      this.meAvatarBox.replaceChildren(this.meAvatar.el);
      this.meAvatarBox.setAttribute('href', name ? profileHash(name) : '#/settings');
    }
    const profile = store.state.myProfile;
    this.meAvatar.update(profile ? profile.avatar_url : null, store.displayName(name));
    this.meName.title = profile?.display_name ? profile.display_name : name;
  }

  renderStatus() {
    const { choice, status } = store.state.myStatus;
    this.statusSelect.value = choice;
    setStatusDot(this.myDot, status);
    this.myDot.title = choice === status ? '' : `Shown to others as ${status}`;
  }

  async _chooseStatus() {
    const value = this.statusSelect.value;
    this.statusSelect.disabled = true;
    try {
      await this.onStatus(value);
    } finally {
      this.statusSelect.disabled = false;
      this.renderStatus();
    }
  }

  /** A short notice at the corner (new messages); it goes away by itself. */
  toast(text, href) {
    const item = h('a', { class: 'toast', href: href || '#/' }, text);
    this.toasts.appendChild(item);
    while (this.toasts.children.length > 3) this.toasts.firstElementChild.remove();
    setTimeout(() => item.remove(), 6000);
  }

  showView(view, cls) {
    this.el.classList.add('has-conversation');
    this.pane.replaceChildren(view.el);
    this.pane.dataset.view = cls || '';
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
    if (this.logout.el.disabled) return;
    await whileBusy(this.logout, () => this.onLogout(), 'Logging out…');
  }

  destroy() {
    clearTimeout(this._connTimer);
    this.keyLogBanner.destroy();
    for (const u of this._unsubs) u();
  }
}
