// The conversation's header: back link, the person (picture, name linking to their profile, the
// "verified" mark once the user compared safety numbers there, status), and block/unblock (asked
// first). The safety number itself is on the profile page, where it is verified.

import { api } from '../../api.js';
import { busyButton, h, setText, whileBusy } from '../../dom.js';
import { statusLabel } from '../../format.js';
import { profileHash } from '../../router.js';
import * as store from '../../store.js';
import { avatarElement, setStatusDot } from '../contacts.js';
import { confirmBlock } from '../dialog.js';
import { backLink } from '../page.js';

export class ConversationHeader {
  /** onError(text): blocking failed, said in the composer's error line. */
  constructor(peer, { onBack, onError }) {
    this.peer = peer;
    this.onError = onError;
    this.destroyed = false;
    this.dot = h('span', { class: 'status-dot status-offline', 'aria-hidden': 'true' });
    this.statusText = h('span', { class: 'status-text' }, '…');
    // "typing…" in place of the status while the contact writes (PROTOCOL.md §17.5).
    this.typing = h(
      'span',
      { class: 'conv-typing', id: 'typing-indicator', role: 'status', hidden: true },
      'typing…',
    );
    this.avatar = avatarElement(peer, 'avatar-lg');
    this.titleName = h('span', { class: 'conv-title-name' }, peer);
    // Always the username too: a display name proves nothing (anyone can choose "Alice").
    this.titleUsername = h('span', { class: 'conv-title-username', id: 'conv-username' }, peer);
    this.verified = h(
      'a',
      {
        id: 'conv-verified',
        class: 'verified-mark',
        href: profileHash(peer),
        title: 'You compared safety numbers with them',
        hidden: true,
      },
      '✓ Verified',
    );
    this.block = busyButton(
      {
        id: 'block-toggle',
        type: 'button',
        class: 'btn btn-small btn-ghost',
        onclick: () => this._toggleBlock(),
      },
      'Block',
    );
    this.el = h(
      'header',
      { class: 'conv-header' },
      backLink(onBack),
      this.avatar.el,
      h(
        'div',
        { class: 'conv-title-block' },
        h(
          'h2',
          { class: 'conv-title', id: 'conv-title' },
          h(
            'a',
            { id: 'conv-profile-link', href: profileHash(peer), title: `${peer}'s profile` },
            this.titleName,
          ),
          this.titleUsername,
        ),
        h('div', { class: 'conv-status' }, this.dot, this.statusText, this.verified, this.typing),
      ),
      this.block.el,
    );
  }

  destroy() {
    this.destroyed = true;
  }

  setTyping(on) {
    this.typing.hidden = !on;
    this.statusText.hidden = on;
  }

  /** c: the contact, or null for someone not in the contacts. */
  render(c) {
    setText(this.titleName, store.displayName(this.peer));
    this.titleUsername.hidden = store.displayName(this.peer) === this.peer;
    this.avatar.update(c ? c.avatar_url : null, store.displayName(this.peer));
    this.block.el.hidden = !c;
    setText(this.block.label, c?.blocked ? 'Unblock' : 'Block');
    this.verified.hidden = !c?.verified;
    if (c) {
      setStatusDot(this.dot, c.status);
      setText(this.statusText, statusLabel(c.status));
    } else {
      setStatusDot(this.dot, 'offline');
      setText(
        this.statusText,
        store.state.contactsStatus === 'ready' ? 'Not in your contacts' : '…',
      );
    }
  }

  async _toggleBlock() {
    const c = store.state.contacts.get(this.peer);
    if (!c || this.block.el.disabled) return;
    if (!c.blocked && !(await confirmBlock(this.peer))) return;
    await whileBusy(this.block, async () => {
      try {
        const view = c.blocked ? await api.unblock(this.peer) : await api.block(this.peer);
        store.applyBlocked(this.peer, view.blocked);
      } catch (err) {
        if (!this.destroyed && err.status !== 401) this.onError(err.message);
      }
    });
  }
}
