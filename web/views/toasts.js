// Notices in the page, at the top right under the bar (never over the composer or its Send
// button): one per conversation, so three messages from alice make one notice that counts them and
// shows the newest, not three copies. Each goes away by itself, or at its close button.

import { h, setText } from '../dom.js';

const SHOWN_MS = 6000;
const MAX_SHOWN = 3;

export class Toasts {
  constructor() {
    this.byKey = new Map(); // conversation -> {el, title, preview, count, timer}
    this.el = h('div', { id: 'toasts', class: 'toasts', role: 'status', 'aria-live': 'polite' });
  }

  /**
   * Show or update the notice for `key` (a conversation): `title(count)` names who wrote and how
   * many, `preview` is the newest message's text (null: not shown), a click goes to `href`.
   */
  show({ key, title, preview, href }) {
    let item = this.byKey.get(key);
    if (!item) {
      item = this._create(key, href);
      this.byKey.set(key, item);
      this.el.appendChild(item.el);
    }
    item.count += 1;
    setText(item.title, title(item.count));
    setText(item.preview, preview ?? '');
    item.preview.hidden = preview === null || preview === undefined;
    clearTimeout(item.timer);
    item.timer = setTimeout(() => this.dismiss(key), SHOWN_MS);
    while (this.byKey.size > MAX_SHOWN) this.dismiss(this.byKey.keys().next().value);
  }

  _create(key, href) {
    const title = h('span', { class: 'toast-title' });
    const preview = h('span', { class: 'toast-preview' });
    const link = h(
      'a',
      { class: 'toast-link', href, onclick: () => this.dismiss(key) },
      title,
      preview,
    );
    const close = h(
      'button',
      {
        type: 'button',
        class: 'toast-close',
        'aria-label': 'Dismiss',
        onclick: () => this.dismiss(key),
      },
      '×',
    );
    const el = h('div', { class: 'toast', 'data-conversation': key }, link, close);
    return { el, title, preview, count: 0, timer: null };
  }

  /** The notice of `key` goes (the user opened that conversation, or closed it). */
  dismiss(key) {
    const item = this.byKey.get(key);
    if (!item) return;
    clearTimeout(item.timer);
    item.el.remove();
    this.byKey.delete(key);
  }

  destroy() {
    for (const key of [...this.byKey.keys()]) this.dismiss(key);
  }
}
