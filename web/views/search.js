// Search results: people and messages for the box's query, with filters by person and date and
// two orders. Snippets come as text segments; hits are wrapped in <mark> elements built here,
// never parsed from markup. A message opens its conversation scrolled to it.

import { api } from '../api.js';
import { h, setText, spinner } from '../dom.js';
import { formatFull, statusLabel } from '../format.js';
import { messageHash, profileHash } from '../router.js';
import * as store from '../store.js';
import { avatarElement, setStatusDot } from './contacts.js';
import { groupHits } from './group-search.js';
import { pageHeader } from './page.js';

function dayStart(value) {
  // <input type=date> gives YYYY-MM-DD: midnight, local time.
  const [y, m, d] = value.split('-').map(Number);
  return new Date(y, m - 1, d).getTime() / 1000;
}

function dateInput(id, label) {
  return h('input', { id, class: 'input', type: 'date', 'aria-label': label });
}

function snippet(parts) {
  return (Array.isArray(parts) ? parts : []).map((p) =>
    p?.hit ? h('mark', null, String(p.text)) : document.createTextNode(String(p?.text ?? '')),
  );
}

export class SearchView {
  constructor(query) {
    this.query = query;
    this.destroyed = false;
    this.controller = null;
    this.peer = h('select', { id: 'search-peer', class: 'input', 'aria-label': 'Person' });
    this.since = dateInput('search-since', 'From');
    this.until = dateInput('search-until', 'Until');
    this.order = h(
      'select',
      { id: 'search-order', class: 'input', 'aria-label': 'Order' },
      h('option', { value: 'newest' }, 'Newest first'),
      h('option', { value: 'relevance' }, 'Best match'),
    );
    for (const el of [this.peer, this.since, this.until, this.order]) {
      el.addEventListener('change', () => this.run());
    }
    this.status = h('p', { class: 'muted', role: 'status' });
    this.people = h('ul', { id: 'search-people', class: 'search-list' });
    this.messages = h('ul', { id: 'search-messages', class: 'search-list' });
    this.peopleHead = h('h3', { class: 'settings-heading' }, 'People');
    this.messagesHead = h('h3', { class: 'settings-heading' }, 'Messages');
    this.groupHead = h('h3', { class: 'settings-heading', hidden: true }, 'Group messages');
    this.groupHits = h('ul', { id: 'search-group-messages', class: 'search-list' });
    this.title = h('h2', { id: 'search-title', class: 'profile-name' });
    this.el = h(
      'section',
      { id: 'search-view', class: 'search-page', 'aria-labelledby': 'search-title' },
      pageHeader(this.title),
      h(
        'div',
        { class: 'search-filters' },
        h('label', null, 'Person ', this.peer),
        h('label', null, 'From ', this.since),
        h('label', null, 'Until ', this.until),
        h('label', null, 'Order ', this.order),
      ),
      this.status,
      h(
        'div',
        { id: 'search-results' },
        this.peopleHead,
        this.people,
        this.messagesHead,
        this.messages,
        this.groupHead,
        this.groupHits,
      ),
    );
    this._fillPeople();
    this._unsub = store.on('contacts', () => this._fillPeople());
  }

  _fillPeople() {
    const chosen = this.peer.value;
    this.peer.replaceChildren(
      h('option', { value: '' }, 'Everyone'),
      ...[...store.state.contacts.values()].map((c) =>
        h('option', { value: c.username }, store.displayLabel(c.username)),
      ),
    );
    this.peer.value = chosen;
  }

  setQuery(query) {
    this.query = query;
    this.run();
  }

  async run() {
    setText(this.title, `Results for “${this.query}”`);
    if (this.controller) this.controller.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.status.replaceChildren(spinner('spinner-sm'), ' Searching…');
    const since = this.since.value ? dayStart(this.since.value) : null;
    const until = this.until.value ? dayStart(this.until.value) + 86400 : null;
    try {
      const res = await api.search(this.query, {
        peer: this.peer.value,
        since,
        until,
        order: this.order.value,
        signal: controller.signal,
      });
      if (this.destroyed || controller !== this.controller) return;
      this.render(res);
      const hits = this.peer.value ? [] : await groupHits(this.query); // groups: no filters
      if (this.destroyed || controller !== this.controller) return;
      this.groupHits.replaceChildren(...hits);
      this.groupHead.hidden = hits.length === 0;
    } catch (err) {
      if (err.name === 'AbortError' || this.destroyed || err.status === 401) return;
      setText(this.status, err.message);
    }
  }

  render(res) {
    const people = Array.isArray(res.people) ? res.people : [];
    const messages = Array.isArray(res.messages) ? res.messages : [];
    this.people.replaceChildren(
      ...people.map((p) => {
        const avatar = avatarElement(p.username, 'avatar-sm');
        avatar.update(p.avatar_url, p.display_name || p.username);
        const dot = h('span', { class: 'status-dot', 'aria-hidden': 'true' });
        setStatusDot(dot, p.status);
        return h(
          'li',
          { class: 'search-person', 'data-user': p.username },
          h(
            'a',
            { href: profileHash(p.username) },
            avatar.el,
            h(
              'span',
              { class: 'search-person-text' },
              h('strong', null, p.display_name || p.username),
              ' ',
              h('span', { class: 'muted' }, `@${p.username}`),
              p.position ? h('span', { class: 'muted' }, ` · ${p.position}`) : null,
            ),
            h(
              'span',
              { class: 'conv-status' },
              dot,
              h('span', { class: 'status-text' }, statusLabel(p.status)),
            ),
          ),
        );
      }),
    );
    this.messages.replaceChildren(
      ...messages.map(({ message: m, snippet: parts }) =>
        h(
          'li',
          { class: 'search-message', 'data-id': m.id },
          h(
            'a',
            { href: messageHash(m.peer, m.id) },
            h(
              'span',
              { class: 'search-meta' },
              h(
                'strong',
                null,
                m.direction === 'out'
                  ? `You → ${store.displayLabel(m.peer)}`
                  : store.displayLabel(m.author),
              ),
              ' ',
              h('time', { class: 'muted' }, formatFull(m.sent_at)),
            ),
            h('span', { class: 'search-snippet' }, ...snippet(parts)),
          ),
        ),
      ),
    );
    this.peopleHead.hidden = people.length === 0;
    this.messagesHead.hidden = messages.length === 0;
    setText(
      this.status,
      people.length + messages.length === 0
        ? 'Nothing found. Search looks for whole words; add * to match the start of a word.'
        : `${messages.length} message${messages.length === 1 ? '' : 's'}, ${people.length} ${people.length === 1 ? 'person' : 'people'}` +
            (res.order === 'relevance' ? ' (best matches among the most recent)' : ''),
    );
  }

  destroy() {
    this.destroyed = true;
    if (this.controller) this.controller.abort();
    this._unsub();
  }
}
