"""Files (PROTOCOL.md §11): `uploads` is the user's side (the browser's upload, the offer, cancel,
decline, what may be served), `offers` takes the offers, cancels and declines that arrive as
envelopes, `chunks` the streamed bytes, `sender` pushes files to peers; `runtime` is what runs in
memory and how a transfer closes, `disk` where the bytes live."""
