"""File transfers (PROTOCOL.md §11): `incoming` takes offers and chunks, `outgoing` pushes files
to peers, `common` holds the paths, events and thread hops both need, `runtime` what they share
in memory. The browser's side (uploads, cancel, decline, serving) is `flame.files`."""
