// The lightbox: a picture shown large over the page (one dialog per page, made on first use).

import { h, setText } from '../../dom.js';

let lightbox = null;

/** Show the picture at src, named name, over the page; a click or Close closes it. */
export function openLightbox(src, name) {
  if (!lightbox) {
    const img = h('img', { class: 'lightbox-image', alt: '' });
    const caption = h('p', { class: 'lightbox-caption' });
    const close = h('button', { type: 'button', class: 'btn btn-small lightbox-close' }, 'Close');
    lightbox = h(
      'dialog',
      { class: 'lightbox', id: 'lightbox', 'aria-label': 'Picture' },
      img,
      caption,
      close,
    );
    close.addEventListener('click', () => lightbox.close());
    lightbox.addEventListener('click', (ev) => {
      if (ev.target === lightbox || ev.target === img) lightbox.close();
    });
    lightbox.img = img;
    lightbox.caption = caption;
    document.body.appendChild(lightbox);
  }
  lightbox.img.setAttribute('src', src);
  lightbox.img.setAttribute('alt', name);
  setText(lightbox.caption, name);
  if (!lightbox.open) lightbox.showModal();
}
