// Attaching files: the attach button with its hidden file input, and dropping files anywhere on
// the conversation. (A picture pasted into the composer goes the same way: composer.js.)

import { h } from '../../dom.js';

/** The hidden file input and the button that opens it; chosen files go to onFiles. */
export function attachControls(onFiles) {
  const input = h('input', {
    type: 'file',
    id: 'file-input',
    class: 'visually-hidden',
    multiple: true,
    tabindex: '-1',
    'aria-hidden': 'true',
  });
  input.addEventListener('change', () => {
    const files = [...(input.files || [])];
    input.value = '';
    onFiles(files);
  });
  const button = h(
    'button',
    {
      id: 'attach',
      type: 'button',
      class: 'btn attach-button',
      title: 'Attach files (or drop them here, or paste a picture)',
      'aria-label': 'Attach files',
      onclick: () => input.click(),
    },
    h('img', { src: '/static/attach.svg', alt: '', class: 'attach-icon', 'aria-hidden': 'true' }),
  );
  return [input, button];
}

const hasFiles = (ev) => ev.dataTransfer && [...ev.dataTransfer.types].includes('Files');

/** Files dropped anywhere on el go to onFiles; el is marked as a drop target while dragged over. */
export function acceptDrops(el, onFiles) {
  let depth = 0;
  el.addEventListener('dragenter', (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    depth += 1;
    el.classList.add('is-drop-target');
  });
  el.addEventListener('dragover', (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = 'copy';
  });
  el.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) el.classList.remove('is-drop-target');
  });
  el.addEventListener('drop', (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    depth = 0;
    el.classList.remove('is-drop-target');
    onFiles([...ev.dataTransfer.files]);
  });
}
