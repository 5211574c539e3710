// Login page: whose daemon this is, and one password field. After too many wrong passwords the
// daemon says how long to wait (Retry-After): the page counts it down and keeps the button off
// until then.

import { api } from '../api.js';
import { busyButton, h, setText, showText } from '../dom.js';

export function renderLogin(root, { onSuccess }) {
  const password = h('input', {
    id: 'password',
    name: 'password',
    type: 'password',
    class: 'input',
    autocomplete: 'current-password',
    required: true,
    spellcheck: 'false',
    'aria-describedby': 'login-error',
  });
  const error = h('p', { id: 'login-error', class: 'form-error', role: 'alert', hidden: true });
  const { el: button, label } = busyButton(
    { id: 'login-button', type: 'submit', class: 'btn btn-primary btn-block' },
    'Unlock',
  );
  const title = h('h1', { id: 'login-title', class: 'login-title' }, 'Unlock Flame');
  const sub = h('p', { class: 'login-sub' }, 'Enter your password to open your messages.');
  // Lets password managers file the password under the account; never shown.
  const account = h('input', {
    type: 'text',
    name: 'username',
    autocomplete: 'username',
    value: 'flame',
    hidden: true,
    tabindex: '-1',
    'aria-hidden': 'true',
  });
  const form = h(
    'form',
    { id: 'login-form', class: 'login-card', novalidate: true, 'aria-labelledby': 'login-title' },
    h(
      'div',
      { class: 'login-brand' },
      h('img', { src: '/static/flame.svg', alt: '', width: 48, height: 48 }),
    ),
    title,
    sub,
    account,
    h('label', { for: 'password', class: 'field-label' }, 'Password'),
    password,
    error,
    button,
  );

  // Whose daemon this is: the page may have been opened on someone else's port.
  api.loginInfo().then(
    (info) => {
      if (typeof info.username !== 'string' || !info.username) return;
      setText(title, `Unlock ${info.username}'s Flame`);
      setText(sub, `Enter ${info.username}'s password to open the messages.`);
      account.value = info.username;
    },
    () => {}, // the title stays general; the login itself says what is wrong
  );

  let busy = false;
  let waitUntil = 0; // the throttle's end, in ms
  let countdown = null;
  function setBusy(on) {
    busy = on;
    button.disabled = on || Date.now() < waitUntil;
    button.classList.toggle('is-busy', on);
    button.setAttribute('aria-busy', on ? 'true' : 'false');
    password.readOnly = on;
    setText(label, on ? 'Unlocking…' : 'Unlock');
  }
  function showError(message) {
    showText(error, message);
    password.setAttribute('aria-invalid', 'true');
  }
  function clearError() {
    setText(error, '');
    error.hidden = true;
    password.removeAttribute('aria-invalid');
  }
  /** Too many attempts: "try again in 6 s", counting down; the button comes back at 0. */
  function throttled(seconds) {
    waitUntil = Date.now() + seconds * 1000;
    clearInterval(countdown);
    const tick = () => {
      const left = Math.ceil((waitUntil - Date.now()) / 1000);
      if (left <= 0 || !page.isConnected) {
        clearInterval(countdown);
        button.disabled = busy;
        if (page.isConnected) clearError();
        return;
      }
      button.disabled = true;
      showError(`Too many attempts. Try again in ${left} s.`);
    };
    tick();
    countdown = setInterval(tick, 250);
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (busy || Date.now() < waitUntil) return;
    const value = password.value;
    if (!value) {
      showError('Enter your password.');
      password.focus();
      return;
    }
    clearError();
    setBusy(true);
    let me;
    try {
      me = await api.login(value);
    } catch (err) {
      setBusy(false);
      const retry = Number(err.retryAfter);
      if (err.code === 'too_many_attempts' && retry > 0) throttled(retry);
      else showError(err.message);
      password.focus();
      password.select();
      return;
    }
    clearInterval(countdown);
    setBusy(false);
    password.value = '';
    onSuccess(me);
  });
  password.addEventListener('input', () => {
    if (!error.hidden) password.removeAttribute('aria-invalid');
  });

  const page = h('main', { class: 'login-page' }, form);
  root.replaceChildren(page);
  password.focus();
  return page;
}
