// The key log's alarms (PROTOCOL.md §18.6): a red banner above everything else while there is
// one, each alarm in the daemon's own words (text, never markup).

import { h } from '../dom.js';
import { formatFull } from '../format.js';
import * as store from '../store.js';

export class KeyLogBanner {
  constructor() {
    this.list = h('ul', { class: 'keylog-alarms' });
    this.el = h(
      'div',
      { id: 'keylog-banner', class: 'banner banner-danger', role: 'alert', hidden: true },
      h('span', { class: 'banner-icon', 'aria-hidden': 'true' }, '⚠'),
      h(
        'div',
        { class: 'banner-text' },
        h('strong', null, 'The directory may be impersonating people.'),
        this.list,
      ),
    );
    this.unsubscribe = store.on('keylog', () => this.render());
    this.render();
  }

  render() {
    const { alarms } = store.state.keyLog;
    this.el.hidden = alarms.length === 0;
    this.list.replaceChildren(
      ...alarms.map((a) =>
        h(
          'li',
          { class: 'keylog-alarm', 'data-kind': String(a.kind) },
          h('span', { class: 'keylog-alarm-when' }, formatFull(a.raised_at)),
          ' ',
          String(a.message),
        ),
      ),
    );
  }

  destroy() {
    this.unsubscribe();
  }
}
