// One message of the timeline: its bubble (the text, or a file's card), time and state.

import { h } from '../../dom.js';
import { formatFull, formatTime, messageStateInfo, toDate } from '../../format.js';
import { linkify } from '../../links.js';

function stateIndicator(m) {
  const info = messageStateInfo(m.state);
  const failed = m.state === 'failed';
  return h(
    'span',
    {
      class: ['message-state', info.className],
      'data-state': m.state ?? '',
      role: info.icon ? 'img' : null,
      'aria-label': info.icon
        ? failed && m.error
          ? `${info.label}: ${m.error}`
          : info.label
        : null,
      'aria-hidden': info.icon ? null : 'true',
      title: failed ? m.error || info.label : info.label,
    },
    info.icon,
  );
}

/**
 * Fill li (the message's list item, kept while the message is shown) with message m. A file
 * message's bubble holds its FileCard, kept across re-renders so media keeps playing.
 */
export function fillMessage(li, m, card = null) {
  const out = m.direction === 'out';
  li.className = ['message', out ? 'out' : 'in', m.state === 'failed' ? 'failed' : '']
    .filter(Boolean)
    .join(' ');
  li.dataset.id = m.id;

  const time = h(
    'time',
    {
      class: 'message-time',
      datetime: toDate(m.sent_at).toISOString(),
      title: formatFull(m.sent_at),
    },
    formatTime(m.sent_at),
  );
  const bubble = h(
    'div',
    { class: ['bubble', card ? 'bubble-file' : null] },
    card ? card.el : h('div', { class: 'message-text' }, linkify(m.text ?? '')),
    h('span', { class: 'message-meta' }, time, stateIndicator(m)),
  );
  const children = [bubble];
  if (out && m.state === 'failed') {
    children.push(
      h('div', { class: 'message-error' }, m.error ? `Not sent — ${m.error}` : 'Not sent'),
    );
  }
  li.replaceChildren(...children);
}
