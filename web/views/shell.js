// The signed-in layout: header, banners (directory, own daemon, notifications), sidebar with the
// contact list and "New chat", the pane, and the notices in the page.

import { busyButton, h, setText, whileBusy } from '../dom.js';
import { STATUSES } from '../format.js';
import * as notify from '../notify.js';
import { navigate, profileHash, searchHash } from '../router.js';
import * as store from '../store.js';
import { avatarElement, ContactList, setStatusDot } from './contacts.js';
import { KeyLogBanner } from './keylog.js';
import { openSwitcher } from './switcher.js';
import { Toasts } from './toasts.js';

export const DEGRADED_TEXT =
  'Directory unreachable — working from cache; messages still flow between online peers';
export const UNREACHABLE_TEXT =
  'Flame cannot reach your daemon, so nothing can be sent or received. ' +
  'Check that it is still running; this page reconnects by itself when it is back.';

// What appearing offline means (PROTOCOL.md §12.2).
const HIDDEN_TITLE =
  'Nobody can tell you are here. Messages to you wait until you choose another status.';
// How long the live feed may be down before the page says the daemon is unreachable (a restart
// of the feed, or a laptop waking up, takes less).
const UNREACHABLE_AFTER_MS = 1500;

function banner(id, cls, icon, text, ...actions) {
  return h(
    'div',
    { id, class: ['banner', cls], role: 'status', hidden: true },
    icon ? h('span', { class: 'banner-icon', 'aria-hidden': 'true' }, icon) : null,
    h('span', { class: 'banner-text' }, text),
    ...actions,
  );
}

export class Shell {
  constructor({ onLogout, onRetryContacts, onStatus }) {
    this.onLogout = onLogout;
    this.onStatus = onStatus;
    this.meName = h('span', { id: 'me-name', class: 'me-name' });
    this.meUsername = h('span', { id: 'me-username', class: 'me-username' });
    this.meAvatar = null;
    this.meAvatarBox = h('a', {
      class: 'me-avatar',
      href: '#/settings',
      title: 'Your profile',
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
      h('label', { class: 'my-status' }, this.myDot, this.statusSelect),
      h(
        'div',
        { class: 'me', 'aria-label': 'Signed in as' },
        this.meAvatarBox,
        h('div', { class: 'me-text' }, this.meName, this.meUsername),
      ),
      h('a', { id: 'settings-link', class: 'btn btn-ghost', href: '#/settings' }, 'Settings'),
      this.logout.el,
    );
    this.toasts = new Toasts();

    this.banner = banner('directory-banner', 'banner-warning', '⚠', DEGRADED_TEXT);
    // The live feed is down: the page cannot send (the composer waits) nor hear anything.
    this.connection = banner('connection-status', 'banner-danger', '⚠', UNREACHABLE_TEXT);
    this.notifyOffer = banner(
      'notify-offer',
      'banner-info',
      null,
      'Get a desktop notification when a message arrives while Flame is in the background.',
      h(
        'button',
        {
          id: 'notify-allow',
          type: 'button',
          class: 'btn btn-small btn-primary',
          onclick: () => notify.askPermission(),
        },
        'Turn on',
      ),
      h(
        'button',
        {
          id: 'notify-dismiss',
          type: 'button',
          class: 'btn btn-small btn-ghost',
          onclick: () => notify.dismissOffer(),
        },
        'Not now',
      ),
    );

    this.keyLogBanner = new KeyLogBanner();
    this.contactList = new ContactList({ onRetry: onRetryContacts });
    this.sidebar = h(
      'nav',
      { class: 'sidebar', 'aria-label': 'Contacts' },
      h(
        'div',
        { class: 'sidebar-head' },
        h('h2', { class: 'sidebar-title' }, 'Contacts'),
        h(
          'button',
          {
            id: 'new-chat',
            type: 'button',
            class: 'btn btn-small',
            title: 'Write to someone (Ctrl+K)',
            onclick: () => openSwitcher('New chat'),
          },
          'New chat',
        ),
      ),
      this.contactList.el,
    );
    this.pane = h('main', { class: 'pane', id: 'pane' });
    this.el = h(
      'div',
      { class: 'shell' },
      header,
      this.keyLogBanner.el,
      this.connection,
      this.banner,
      this.notifyOffer,
      h('div', { class: 'layout' }, this.sidebar, this.pane),
      this.toasts.el,
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
      notify.onChange(() => this.renderNotifyOffer()),
    ];
    this._connTimer = null;
    this.renderMe();
    this.renderStatus();
    this.renderDirectory();
    this.renderNotifyOffer();
    this.renderConnection(store.state.connection);
  }

  renderMe() {
    const me = store.state.me;
    const name = me ? me.username : '';
    setText(this.meName, store.displayName(name));
    setText(this.meUsername, name);
    this.meUsername.hidden = store.displayName(name) === name;
    this.meName.title = me ? `Your key fingerprint: ${me.fingerprint}` : '';
    if (!this.meAvatar || this.meAvatar.name !== name) {
      this.meAvatar = { name, ...avatarElement(name, 'avatar-sm') };
      this.meAvatarBox.replaceChildren(this.meAvatar.el);
      this.meAvatarBox.setAttribute('href', name ? profileHash(name) : '#/settings');
    }
    const profile = store.state.myProfile;
    this.meAvatar.update(profile ? profile.avatar_url : null, store.displayName(name));
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

  showView(view, cls) {
    this.el.classList.add('has-conversation');
    this.pane.replaceChildren(view.el);
    this.pane.dataset.view = cls || '';
  }

  renderDirectory() {
    this.banner.hidden = store.state.directory !== 'degraded';
  }

  renderNotifyOffer() {
    this.notifyOffer.hidden = !notify.shouldOffer();
  }

  renderConnection(status) {
    clearTimeout(this._connTimer);
    if (status === 'open' || status === 'idle') {
      this.connection.hidden = true;
      return;
    }
    // Only when the outage lasts a moment (store.unreachable tells the composer too).
    this._connTimer = setTimeout(() => {
      if (store.state.connection !== 'open') {
        this.connection.hidden = false;
        store.setUnreachable(true);
      }
    }, UNREACHABLE_AFTER_MS);
  }

  showEmptyPane() {
    this.el.classList.remove('has-conversation');
    this.pane.replaceChildren(
      h(
        'div',
        { class: 'pane-empty' },
        h('img', { src: '/static/flame.svg', alt: '', width: 56, height: 56 }),
        h('p', { class: 'pane-empty-title' }, 'Pick a contact to start chatting'),
        h(
          'p',
          { class: 'muted' },
          'Messages are end-to-end encrypted between you and your peers. ',
          'Ctrl+K finds anyone.',
        ),
      ),
    );
  }

  showConversation(view) {
    this.el.classList.add('has-conversation');
    this.pane.replaceChildren(view.el);
  }

  /** After the login: the most recent conversation, so Enter opens it (else "New chat"). */
  focusStart() {
    this.contactList.render(); // the list may not have heard of the contacts that came yet
    const first = this.contactList.list.querySelector('a.contact');
    (first ?? this.sidebar.querySelector('#new-chat')).focus();
  }

  async _logout() {
    if (this.logout.el.disabled) return;
    await whileBusy(this.logout, () => this.onLogout(), 'Logging out…');
  }

  destroy() {
    clearTimeout(this._connTimer);
    this.toasts.destroy();
    this.keyLogBanner.destroy();
    for (const u of this._unsubs) u();
  }
}
