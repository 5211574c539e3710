// Links in what people write: http, https and mailto addresses become links (dom.js
// externalLink: a new tab, no opener, no Referer); everything else, and the links' own text, stays
// text. Nothing is fetched for a link: no preview, no title, no icon.

import { externalLink } from './dom.js';

// A candidate: a scheme the page links, then anything up to white space or a bracket that cannot
// be in an address as people write one.
const CANDIDATE = /\b(?:https?:\/\/|mailto:)[^\s<>"'`]+/giu;
// Punctuation that ends a sentence rather than the address ("see https://x.com/a.").
const TRAILING = /[.,;:!?…]+$/u;

/** `text` as nodes: text, and a link for each address in it. */
export function linkify(text) {
  const nodes = [];
  let last = 0;
  for (const match of String(text).matchAll(CANDIDATE)) {
    let address = match[0].replace(TRAILING, '');
    // A closing bracket belongs to the address only when it opened one: "(see https://x.com/a)".
    while (address.endsWith(')') && count(address, '(') < count(address, ')')) {
      address = address.slice(0, -1).replace(TRAILING, '');
    }
    const link = externalLink(address);
    if (link === null) continue;
    if (match.index > last) nodes.push(document.createTextNode(text.slice(last, match.index)));
    nodes.push(link);
    last = match.index + address.length;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

function count(text, ch) {
  return text.split(ch).length - 1;
}
