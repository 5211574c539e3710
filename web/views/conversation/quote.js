// Reply quotes (docs/UI_API.md, `Quote`): the quoted message inside a reply's bubble (a button:
// a click opens the conversation at the original, however far back), and the "Replying to" line
// above the composer.

import { h } from '../../dom.js';
import * as store from '../../store.js';

/** What a quote says: the excerpt, or why there is none. */
export function quoteText(q) {
  if (q.state === 'deleted') return 'This message was deleted.';
  if (q.state !== 'shown') return 'The original message is not available.';
  return q.kind === 'file_offer' ? `📎 ${q.text}` : q.text;
}

/** The quote inside a reply's bubble; onJump(id) opens the conversation at the original. */
export function quoteBlock(q, onJump) {
  const missing = q.state !== 'shown';
  return h(
    'button',
    {
      type: 'button',
      class: ['reply-quote', missing ? 'is-missing' : null],
      'data-quote': q.id,
      'aria-label': `Reply to ${store.displayName(q.author)}: ${quoteText(q)}. Show it.`,
      disabled: q.state === 'missing',
      onclick: (ev) => {
        ev.stopPropagation();
        onJump(q.id);
      },
    },
    h('span', { class: 'reply-quote-author' }, store.displayName(q.author)),
    h('span', { class: 'reply-quote-text' }, quoteText(q)),
  );
}

/** A message as a quote of the reply being written (what the daemon will resolve again). */
export function quoteOf(m) {
  const kind = m.kind === 'file_offer' ? 'file_offer' : 'text';
  const text = kind === 'file_offer' ? (m.file?.name ?? '') : (m.text ?? '');
  return { id: m.id, author: m.author, kind, text, state: 'shown' };
}

/** The composer's context line: "Replying to …" or "Editing", with a button to stop. */
export function composerContext({ label, quote = null, onCancel }) {
  return h(
    'div',
    { id: 'composer-context', class: 'composer-context', role: 'status' },
    h(
      'div',
      { class: 'composer-context-body' },
      h('span', { class: 'composer-context-label' }, label),
      quote ? h('span', { class: 'composer-context-text' }, quoteText(quote)) : null,
    ),
    h(
      'button',
      {
        id: 'composer-context-cancel',
        type: 'button',
        class: 'btn btn-small btn-ghost',
        'aria-label': 'Cancel (Esc)',
        title: 'Cancel (Esc)',
        onclick: onCancel,
      },
      '✕',
    ),
  );
}
