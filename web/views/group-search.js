// Group messages matching the search box (docs/UI_API.md, GET /ui/api/group-search), listed under
// the search page's own results; each opens its group.

import { groupApi } from '../api.js';
import { h } from '../dom.js';
import { formatFull } from '../format.js';
import { groupHash } from '../router.js';
import * as store from '../store.js';

/** The list items of the group messages matching `query` (none on any failure: the page's own
 * search already says what went wrong). */
export async function groupHits(query) {
  let found;
  try {
    found = (await groupApi.search(query)).messages;
  } catch {
    return [];
  }
  return found.map((m) =>
    h(
      'li',
      { class: 'search-message', 'data-group-hit': m.id },
      h(
        'a',
        { href: groupHash(m.group) },
        h(
          'span',
          { class: 'search-meta' },
          h('strong', null, m.direction === 'out' ? 'You' : store.displayLabel(m.author)),
          ' ',
          h('time', { class: 'muted' }, formatFull(m.sent_at)),
        ),
        h('span', { class: 'search-snippet' }, m.text),
      ),
    ),
  );
}
