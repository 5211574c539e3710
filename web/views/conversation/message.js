// One message of the timeline: its bubble (the text, or a file's card; the message it quotes;
// or, deleted for everyone, a tombstone), time and state, its reactions and its actions.

import { h } from '../../dom.js';
import { formatFull, formatTime, messageStateInfo, toDate } from '../../format.js';
import { linkify } from '../../links.js';
import { editedMark, messageActions, reactionChips } from './message-actions.js';
import { quoteBlock } from './quote.js';

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
export function fillMessage(li, m, card = null, actions = null) {
  const out = m.direction === 'out';
  // Kept across re-renders: the open actions, and the mark of a message jumped to (a receipt or
  // an edit that comes meanwhile must not take it away).
  const kept = ['show-actions', 'is-target'].filter((c) => li.classList.contains(c));
  li.className = [
    'message',
    out ? 'out' : 'in',
    m.state === 'failed' ? 'failed' : '',
    m.deleted ? 'deleted' : '',
    ...kept,
  ]
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
  let content;
  if (m.deleted) content = h('p', { class: 'message-tombstone' }, 'This message was deleted.');
  else if (card) content = card.el;
  else content = h('div', { class: 'message-text' }, linkify(m.text ?? ''));
  const quote = m.reply_to && !m.deleted && actions ? quoteBlock(m.reply_to, actions.jump) : null;
  const edited = m.edited_at && !m.deleted && actions ? editedMark(li, m, actions) : null;
  // The actions: a toolbar, and its "⋯" button in the meta line (touch screens, the keyboard).
  const [bar, more] =
    actions && !m.id.startsWith('upload:') ? messageActions(li, m, actions) : [null, null];
  const bubble = h(
    'div',
    { class: ['bubble', card && !m.deleted ? 'bubble-file' : null] },
    quote,
    content,
    h('span', { class: 'message-meta' }, edited, time, m.deleted ? null : stateIndicator(m), more),
  );
  const children = [bubble, bar];
  if (actions && !m.deleted) children.push(reactionChips(m, actions));
  if (out && m.state === 'failed' && !m.deleted) {
    children.push(
      h('div', { class: 'message-error' }, m.error ? `Not sent — ${m.error}` : 'Not sent'),
    );
  }
  // An open picker or menu stays open while the message changes under it (a state, a reaction).
  const open = li.querySelector(':scope > .message-popover');
  li.replaceChildren(...[...children, open].filter(Boolean));
}
