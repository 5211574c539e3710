// A person's profile page: picture, name, position, location, bio, status, key fingerprint, and
// the safety number to compare with them (in groups of five digits), which the user marks as
// verified once it matched; message, block (asked first) or unblock them. Everything is text.

import { api } from '../api.js';
import { busyButton, h, setText, showText, spinner, whileBusy } from '../dom.js';
import { digitGroups, statusLabel } from '../format.js';
import { conversationHash } from '../router.js';
import * as store from '../store.js';
import { avatarElement, setStatusDot } from './contacts.js';
import { confirmBlock } from './dialog.js';
import { KeyHistory } from './key-history.js';
import { pageHeader } from './page.js';

export class ProfileView {
  constructor(name) {
    this.name = name;
    this.destroyed = false;
    this.view = null;
    this.avatar = avatarElement(name, 'avatar-xl');
    this.displayName = h('h2', { id: 'profile-name', class: 'profile-name' }, name);
    this.username = h('p', { id: 'profile-username', class: 'muted profile-username' }, `@${name}`);
    this.dot = h('span', { class: 'status-dot status-offline', 'aria-hidden': 'true' });
    this.statusText = h('span', { class: 'status-text' }, '…');
    this.position = h('p', { id: 'profile-position', class: 'profile-position' });
    this.location = h('p', { id: 'profile-location', class: 'muted profile-location' });
    this.bio = h('p', { id: 'profile-bio', class: 'profile-bio' });
    this.fingerprint = h('span', { id: 'profile-fingerprint', class: 'fingerprint' });
    this.safety = h('div', {
      id: 'profile-safety',
      class: 'safety-grid',
      role: 'group',
      'aria-label': 'Safety number',
    });
    this.verifiedMark = h(
      'span',
      { id: 'profile-verified', class: 'verified-mark', hidden: true },
      '✓ Verified',
    );
    this.verify = busyButton(
      {
        id: 'profile-verify',
        type: 'button',
        class: 'btn btn-small',
        onclick: () => this._verify(),
      },
      'Mark as verified',
    );
    this.safetyRow = h(
      'section',
      { class: 'safety-box', hidden: true, 'aria-labelledby': 'safety-title' },
      h(
        'h3',
        { id: 'safety-title', class: 'settings-heading' },
        'Safety number ',
        this.verifiedMark,
      ),
      h(
        'p',
        { class: 'muted' },
        `Compare these digits with ${name}, in person or on a call. If they match, nobody is in `,
        'between you.',
      ),
      this.safety,
      h('div', { class: 'profile-actions' }, this.verify.el),
    );
    this.warning = h('p', {
      id: 'profile-warning',
      class: 'form-error',
      role: 'alert',
      hidden: true,
    });
    this.error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    this.keyHistory = new KeyHistory(name);
    this.messageLink = h(
      'a',
      { id: 'profile-message', class: 'btn btn-primary', href: conversationHash(name) },
      'Message',
    );
    this.block = busyButton(
      { id: 'profile-block', type: 'button', class: 'btn', onclick: () => this._toggleBlock() },
      'Block',
    );
    this.editLink = h(
      'a',
      { id: 'profile-edit', class: 'btn', href: '#/settings', hidden: true },
      'Edit your profile',
    );
    this.loading = h('div', { class: 'messages-loading', role: 'status' }, spinner(), 'Loading…');
    this.el = h(
      'section',
      {
        id: 'profile',
        class: 'profile-page',
        'data-user': name,
        'aria-labelledby': 'profile-name',
      },
      pageHeader(
        this.avatar.el,
        h(
          'div',
          { class: 'profile-title' },
          this.displayName,
          this.username,
          h('div', { class: 'conv-status', id: 'profile-status' }, this.dot, this.statusText),
        ),
      ),
      this.loading,
      this.warning,
      this.error,
      h(
        'div',
        { class: 'profile-body' },
        this.position,
        this.location,
        this.bio,
        h(
          'div',
          { class: 'profile-key-row' },
          h('span', { class: 'fp-label' }, 'Key fingerprint '),
          this.fingerprint,
        ),
        this.safetyRow,
        this.keyHistory.el,
      ),
      h('div', { class: 'profile-actions' }, this.messageLink, this.block.el, this.editLink),
    );
    this._unsubs = [
      store.on('profile', (view) => {
        if (view && view.username === this.name) this.render({ ...this.view, ...view });
      }),
      store.on('contacts', () => this._renderStatus()),
      store.on('my_status', () => this._renderStatus()),
    ];
  }

  async load() {
    try {
      const view = await api.profile(this.name);
      if (!this.destroyed) this.render(view);
    } catch (err) {
      if (this.destroyed || err.status === 401) return;
      this.loading.hidden = true;
      showText(this.error, err.message);
    }
  }

  /** The daemon refused a profile this person's daemon sent (it did not verify). */
  rejected(reason) {
    showText(
      this.warning,
      `A profile update from ${this.name} was ignored: it is not signed by their key (${reason}).`,
    );
  }

  render(view) {
    if (this.destroyed || !view) return;
    this.view = view;
    this.loading.hidden = true;
    setText(this.displayName, view.display_name || view.username);
    setText(this.position, view.position || '');
    this.position.hidden = !view.position;
    setText(this.location, view.location || '');
    this.location.hidden = !view.location;
    setText(this.bio, view.bio || '');
    this.bio.hidden = !view.bio;
    setText(this.fingerprint, view.fingerprint || '—');
    this.safety.replaceChildren(
      ...digitGroups(view.safety_number).map((group) =>
        h('span', { class: 'safety-group' }, group),
      ),
    );
    this.safetyRow.hidden = !view.safety_number;
    this.verifiedMark.hidden = !view.verified;
    setText(this.verify.label, view.verified ? 'Remove the verified mark' : 'Mark as verified');
    this.keyHistory.render(view);
    this.avatar.update(view.avatar_url, view.display_name || view.username);
    this.messageLink.hidden = view.is_me;
    this.block.el.hidden = view.is_me;
    this.editLink.hidden = !view.is_me;
    setText(this.block.label, view.blocked ? 'Unblock' : 'Block');
    this.block.el.classList.toggle('btn-warning', !view.blocked);
    this._renderStatus();
  }

  _renderStatus() {
    if (this.destroyed || !this.view) return;
    let status = this.view.status;
    if (this.view.is_me) status = store.state.myStatus.status;
    else {
      const c = store.state.contacts.get(this.name);
      if (c) status = c.status;
    }
    setStatusDot(this.dot, status);
    setText(this.statusText, statusLabel(status));
  }

  async _verify() {
    if (!this.view || this.verify.el.disabled) return;
    const verified = !this.view.verified;
    await whileBusy(this.verify, async () => {
      this.error.hidden = true;
      try {
        const contact = await api.verify(this.name, verified);
        store.upsertContact(contact);
        this.render({ ...this.view, verified: contact.verified });
      } catch (err) {
        if (this.destroyed || err.status === 401) return;
        showText(this.error, err.message);
      }
    });
  }

  async _toggleBlock() {
    if (!this.view || this.block.el.disabled) return;
    if (!this.view.blocked && !(await confirmBlock(this.name))) return;
    await whileBusy(this.block, async () => {
      this.error.hidden = true;
      try {
        const view = this.view.blocked ? await api.unblock(this.name) : await api.block(this.name);
        store.applyBlocked(this.name, view.blocked);
        this.render(view);
      } catch (err) {
        if (this.destroyed || err.status === 401) return;
        showText(this.error, err.message);
      }
    });
  }

  destroy() {
    this.destroyed = true;
    for (const u of this._unsubs) u();
  }
}
