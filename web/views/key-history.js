// A person's keys as the directory's key log has them (PROTOCOL.md §18.6), oldest first, and a
// notice when they changed recently: someone who meets a person only now sees it too.

import { h, setText } from '../dom.js';
import { formatFull, keyChangedText } from '../format.js';

const KIND_LABELS = { enroll: 'Enrolled', rekey: 'New key' };

export class KeyHistory {
  constructor(name) {
    this.name = name;
    this.notice = h('p', { id: 'profile-key-notice', class: 'key-notice', hidden: true });
    this.list = h('ol', { id: 'profile-key-history', class: 'key-history' });
    this.el = h(
      'div',
      { class: 'profile-key-log', hidden: true },
      h('h3', { class: 'profile-section-title' }, 'Key history'),
      this.notice,
      this.list,
    );
  }

  render(view) {
    const history = Array.isArray(view?.key_history) ? view.key_history : [];
    this.el.hidden = history.length === 0;
    this.list.replaceChildren(
      ...history.map((k) =>
        h(
          'li',
          { class: 'key-event', 'data-kind': String(k.kind) },
          h('span', { class: 'key-event-kind' }, KIND_LABELS[k.kind] || String(k.kind)),
          ' ',
          h('span', { class: 'key-event-when' }, formatFull(k.at)),
          ' ',
          h('span', { class: 'fingerprint' }, String(k.fingerprint)),
        ),
      ),
    );
    const changed = view?.key_changed_at;
    this.notice.hidden = !Number.isFinite(changed);
    if (Number.isFinite(changed)) {
      setText(
        this.notice,
        `${view.is_me ? 'Your' : `${this.name}'s`} ${keyChangedText(changed)} (${formatFull(changed)}). ` +
          (view.is_me
            ? 'If it was not you, tell your directory’s administrator.'
            : 'Compare the safety number with them in person or by phone before you trust it.'),
      );
    }
  }
}
