// Login page: one password field.

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
  const form = h(
    'form',
    { id: 'login-form', class: 'login-card', novalidate: true, 'aria-labelledby': 'login-title' },
    h(
      'div',
      { class: 'login-brand' },
      h('img', { src: '/static/flame.svg', alt: '', width: 48, height: 48 }),
    ),
    h('h1', { id: 'login-title', class: 'login-title' }, 'Unlock Flame'),
    h('p', { class: 'login-sub' }, 'Enter your password to open your messages.'),
    // Lets password managers file the password under "Flame"; never shown.
    h('input', {
      type: 'text',
      name: 'username',
      autocomplete: 'username',
      value: 'flame',
      hidden: true,
      tabindex: '-1',
      'aria-hidden': 'true',
    }),
    h('label', { for: 'password', class: 'field-label' }, 'Password'),
    password,
    error,
    button,
  );

  let busy = false;
  function setBusy(on) {
    busy = on;
    button.disabled = on;
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

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (busy) return;
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
      showError(err.message);
      password.focus();
      password.select();
      return;
    }
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
