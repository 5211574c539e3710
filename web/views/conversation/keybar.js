// The bar shown while a contact's identity key has changed: sending is paused until the user
// compares the new safety number and accepts the key.

import { api } from '../../api.js';
import { busyButton, h, showText, whileBusy } from '../../dom.js';
import * as store from '../../store.js';

export class KeyChangeBar {
  /** onAccepted: the new key was accepted (the composer takes over again). */
  constructor(peer, { onAccepted }) {
    this.peer = peer;
    this.onAccepted = onAccepted;
    this.destroyed = false;
    this.accept = busyButton(
      { id: 'accept-key', type: 'button', class: 'btn btn-warning', onclick: () => this._accept() },
      'Accept new key',
    );
    this.error = h('p', { class: 'key-change-error', hidden: true });
    this.el = h(
      'div',
      { id: 'key-change', class: 'key-change', role: 'alert', hidden: true },
      h('span', { class: 'key-change-icon', 'aria-hidden': 'true' }, '⚠'),
      h(
        'div',
        { class: 'key-change-body' },
        h(
          'p',
          { class: 'key-change-text' },
          h('strong', null, `${peer}'s identity key has changed.`),
          ' Sending is paused. Compare the new safety number with them over another channel (in person or by phone) before you accept it.',
        ),
        this.error,
      ),
      this.accept.el,
    );
  }

  destroy() {
    this.destroyed = true;
  }

  /** c: the contact, or null for someone not in the contacts. */
  render(c) {
    if (!c) {
      this.el.hidden = true;
      return;
    }
    const wasHidden = this.el.hidden;
    this.el.hidden = !c.key_changed;
    if (!wasHidden && this.el.hidden) this.error.hidden = true;
  }

  async _accept() {
    if (this.accept.el.disabled) return;
    await whileBusy(
      this.accept,
      async () => {
        this.error.hidden = true;
        try {
          const contact = await api.acceptKey(this.peer);
          if (contact && typeof contact.username === 'string') store.upsertContact(contact);
          else {
            const c = store.state.contacts.get(this.peer);
            if (c) store.upsertContact({ ...c, key_changed: false });
          }
          if (!this.destroyed) this.onAccepted();
        } catch (err) {
          if (this.destroyed || err.status === 401) return;
          showText(this.error, err.message);
        }
      },
      'Accepting…',
    );
  }
}
