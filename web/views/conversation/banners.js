// The conversation's banners: "you blocked them", and "you are looking at older messages".

import { h } from '../../dom.js';

export function blockedBanner(peer) {
  return h(
    'div',
    { id: 'blocked-banner', class: 'banner banner-warning', role: 'status', hidden: true },
    h(
      'span',
      { class: 'banner-text' },
      `You blocked ${peer}. They cannot write to you; unblock them to talk again.`,
    ),
  );
}

/** Shown while an older page is shown (a search hit); onJump goes to the newest messages. */
export function anchorBanner(onJump) {
  return h(
    'div',
    { id: 'anchor-bar', class: 'banner', role: 'status', hidden: true },
    h('span', { class: 'banner-text' }, 'You are looking at older messages. '),
    h(
      'button',
      { id: 'jump-to-latest', type: 'button', class: 'btn btn-small', onclick: onJump },
      'Jump to the latest',
    ),
  );
}
