// Tiny DOM helper. Text is only ever set through textContent / text nodes:
// nothing in this module (or the app) parses HTML from strings.

const FORBIDDEN_KEYS = new Set(['innerHTML', 'outerHTML', 'srcdoc', 'style']);

function safeUrl(value) {
  const s = String(value);
  // Only in-app hashes and same-origin absolute paths.
  if (s.startsWith('#') || (s.startsWith('/') && !s.startsWith('//'))) return s;
  throw new Error(`refusing unsafe URL: ${s}`);
}

function appendChildren(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) appendChildren(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/**
 * h('button', {class: 'btn', onclick: fn, 'data-x': 1}, 'label', otherNode)
 * - class: string or array (falsy entries dropped)
 * - on<event>: function listeners only
 * - text: sets textContent
 * - value / checked: set as properties
 * - true => boolean attribute, false/null/undefined => omitted
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (FORBIDDEN_KEYS.has(key)) throw new Error(`h(): "${key}" is not allowed`);
      if (key === 'class') {
        el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : String(value);
      } else if (key.startsWith('on')) {
        if (typeof value !== 'function') throw new Error(`h(): ${key} must be a function`);
        el.addEventListener(key.slice(2).toLowerCase(), value);
      } else if (key === 'text') {
        el.textContent = String(value);
      } else if (key === 'value' || key === 'checked') {
        el[key] = value;
      } else if (key === 'href' || key === 'src') {
        el.setAttribute(key, safeUrl(value));
      } else if (value === true) {
        el.setAttribute(key, '');
      } else {
        el.setAttribute(key, String(value));
      }
    }
  }
  appendChildren(el, children);
  return el;
}

// The schemes a link in a message may have: anything else (javascript:, data:, file:…) stays text.
const LINK_SCHEMES = new Set(['http:', 'https:', 'mailto:']);

/** The URL as a link may carry it, or null when it is not an http, https or mailto address. */
export function linkTarget(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  return LINK_SCHEMES.has(url.protocol) ? url.href : null;
}

/**
 * A link out of the app, for an address someone wrote: opened in a new tab with neither the
 * page's `window.opener` nor a Referer; its text is the address as written. Null when the
 * address is not one of LINK_SCHEMES.
 */
export function externalLink(address) {
  const href = linkTarget(address);
  if (href === null) return null;
  const a = document.createElement('a');
  a.className = 'message-link';
  a.setAttribute('href', href);
  a.setAttribute('target', '_blank');
  a.setAttribute('rel', 'noopener noreferrer');
  a.textContent = address;
  return a;
}

/** Replace all children of el with the given children (text is text). */
export function setChildren(el, ...children) {
  el.replaceChildren();
  appendChildren(el, children);
  return el;
}

/** Set text only when it changed (keeps selections / avoids churn). */
export function setText(el, text) {
  const s = text === null || text === undefined ? '' : String(text);
  if (el.textContent !== s) el.textContent = s;
}

export function toggleClass(el, cls, on) {
  el.classList.toggle(cls, Boolean(on));
}

export function spinner(extra) {
  return h('span', { class: ['spinner', extra], 'aria-hidden': 'true' });
}

/** Show el with this text (an error or notice line kept hidden while empty). */
export function showText(el, text) {
  setText(el, text);
  el.hidden = false;
}

/**
 * A button that shows a spinner while busy: h('button', attrs) holding the spinner and a label.
 * Returns {el, label}; whileBusy runs an action on it.
 */
export function busyButton(attrs, text) {
  const label = h('span', { class: 'btn-label' }, text);
  return { el: h('button', attrs, spinner('btn-spinner'), label), label };
}

/**
 * Run fn while the busyButton is disabled and shows its spinner (and busyText, when given, in
 * place of its label); afterwards it is enabled again with its label back.
 */
export async function whileBusy({ el, label }, fn, busyText = null) {
  const idleText = label.textContent;
  el.disabled = true;
  el.classList.add('is-busy');
  if (busyText !== null) setText(label, busyText);
  try {
    return await fn();
  } finally {
    el.disabled = false;
    el.classList.remove('is-busy');
    if (busyText !== null) setText(label, idleText);
  }
}
