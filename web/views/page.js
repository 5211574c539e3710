// Pieces every page in the pane shares: the back link (shown on narrow screens) and the header.

import { h } from '../dom.js';

/** "‹": back to the contact list. */
export function backLink(onclick) {
  return h('a', { class: 'back-link', href: '#/', 'aria-label': 'Back to contacts', onclick }, '‹');
}

/** A page's header: the back link, then the given title and actions. */
export function pageHeader(...children) {
  return h('header', { class: 'profile-header' }, backLink(), ...children);
}
