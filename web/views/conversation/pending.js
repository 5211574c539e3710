// Why messages have not gone yet, under the newest of them: the contact is offline (they go when
// the contact is back), or relays hold them and since when (PROTOCOL.md §13.3). When the own
// daemon is unreachable the page's banner says so instead, and the composer waits.

import { h, setText } from '../../dom.js';
import { formatTime } from '../../format.js';
import * as store from '../../store.js';

const plural = (n, one, many) => (n === 1 ? one : many);

export class PendingNote {
  constructor(peer) {
    this.peer = peer;
    this.relayedAt = new Map(); // message id -> when a live event said relays took it
    this.el = h('p', { id: 'pending-note', class: 'pending-note', role: 'status', hidden: true });
  }

  /** A live `message_state`: a message that went to relays just now has no `relayed_at` yet. */
  sawState(evt) {
    if (evt.state === 'relayed' && !this.relayedAt.has(evt.id)) {
      this.relayedAt.set(evt.id, Date.now() / 1000);
    }
  }

  /** pending: this user's messages not at the contact yet; c: the contact, or null. */
  render(pending, c) {
    const relayed = pending.filter((m) => m.state === 'relayed');
    const waiting = pending.filter((m) => m.state === 'sending');
    const name = store.displayName(this.peer);
    const offline = !c || c.status === 'offline';
    const parts = [];
    if (waiting.length && offline) {
      const n = waiting.length;
      parts.push(
        `${name} is offline: ${plural(n, 'your message', `${n} messages`)} will be delivered ` +
          'when they are online.',
      );
    }
    if (relayed.length) {
      const since = Math.min(
        ...relayed.map((m) => Number(m.relayed_at ?? this.relayedAt.get(m.id) ?? m.sent_at)),
      );
      const n = relayed.length;
      parts.push(
        `${plural(n, 'A message is', `${n} messages are`)} held by relays since ` +
          `${formatTime(since)}, to be delivered when ${name} is online.`,
      );
    }
    setText(this.el, parts.join(' '));
    this.el.hidden = parts.length === 0 || store.state.unreachable;
  }
}
