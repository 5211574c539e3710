"""The browser's app (docs/UI_API.md): the static page, the JSON API and the live feed, behind the
guards of guard.py and the session check of session.py. `build` lists every route. It listens on
loopback only; peers never reach it."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from flame.api.ui import (
    actions,
    auth,
    conversations,
    feed,
    files,
    group_files,
    groups,
    keylog,
    social,
    static,
)
from flame.api.ui.guard import UiOrigin, headers_middleware, host_and_origin_middleware
from flame.api.ui.session import LoginThrottle, require_session
from flame.api.ui.state import UI, UiState, Unlock, activity_middleware
from flame.net.http import error_middleware
from flame.services.registry import ServiceHolder


def build(
    holder: ServiceHolder, web_dir: Path, unlock: Unlock, origin: UiOrigin
) -> web.Application:
    """Before the first login only the page, its static files and the login itself answer (every
    other API route needs a session); the login unlocks the daemon and so makes the services."""
    security = holder.settings.security
    state = UiState(
        holder, unlock, origin, LoginThrottle(security.login_delay_s, security.login_max_delay_s)
    )
    app = web.Application(
        middlewares=[
            headers_middleware(),
            error_middleware,
            host_and_origin_middleware(origin),
            require_session(state.sessions, lambda: origin.port, holder.clock.now),
            activity_middleware(state),
        ],
        client_max_size=holder.settings.daemon.max_body_bytes,
    )
    app[UI] = state
    static.add_routes(app, web_dir)
    api, person = "/ui/api", "/ui/api/profiles/{name}"
    talk, files_base = "/ui/api/conversations/{name}", "/ui/api/conversations/{name}/files"
    router = app.router
    router.add_get(f"{api}/login", auth.login_info)
    router.add_post(f"{api}/login", auth.login)
    router.add_post(f"{api}/logout", auth.logout)
    router.add_get(f"{api}/me", auth.me)
    router.add_get(f"{api}/ws", feed.websocket)
    router.add_get(f"{api}/contacts", conversations.contacts)
    router.add_post(f"{api}/contacts/{{name}}/accept-key", conversations.accept_key)
    router.add_post(f"{api}/contacts/{{name}}/verify", conversations.verify)
    router.add_get(f"{talk}/messages", conversations.list_messages)
    router.add_post(f"{talk}/messages", conversations.post_message)
    router.add_post(f"{talk}/read", conversations.mark_read)
    router.add_get(f"{talk}/messages/{{id}}/context", conversations.context)
    router.add_post(f"{talk}/messages/{{id}}/edit", actions.edit)
    router.add_post(f"{talk}/messages/{{id}}/delete", actions.delete)
    router.add_post(f"{talk}/messages/{{id}}/reactions", actions.react)
    router.add_get(f"{talk}/messages/{{id}}/history", actions.history)
    router.add_post(f"{talk}/typing", actions.typing)
    router.add_get(f"{api}/diagnostics", conversations.diagnostics)
    router.add_get(f"{api}/keylog", keylog.key_log)
    router.add_get(f"{api}/settings", conversations.get_settings)
    router.add_post(f"{api}/settings", conversations.put_settings)
    router.add_post(files_base, files.announce)
    router.add_get(files_base + "/{id}", files.view)
    router.add_put(files_base + "/{id}/content", files.upload, name=files.UPLOAD_ROUTE)
    router.add_get(files_base + "/{id}/content", files.content, name="ui_file_content")
    router.add_post(files_base + "/{id}/cancel", files.cancel)
    router.add_post(files_base + "/{id}/decline", files.decline)
    router.add_get(f"{api}/profile", social.get_own)
    router.add_put(f"{api}/profile", social.put_own)
    router.add_put(f"{api}/profile/avatar", social.put_avatar)
    router.add_get(person, social.get_profile)
    router.add_get(f"{person}/avatar", social.get_avatar, name="ui_avatar")
    router.add_get(f"{api}/status", social.get_status)
    router.add_put(f"{api}/status", social.put_status)
    router.add_get(f"{api}/blocks", social.list_blocks)
    router.add_post(f"{api}/blocks", social.add_block)
    router.add_delete(f"{api}/blocks/{{name}}", social.remove_block)
    router.add_get(f"{api}/search", social.search)
    team = f"{api}/groups/{{id}}"  # docs/UI_API.md, "Groups"
    router.add_get(f"{api}/groups", groups.list_groups)
    router.add_post(f"{api}/groups", groups.create)
    router.add_get(f"{api}/group-search", groups.search)
    router.add_get(team, groups.get_group)
    router.add_post(f"{team}/changes", groups.change)
    router.add_get(f"{team}/messages", groups.list_messages)
    router.add_post(f"{team}/messages", groups.post_message)
    router.add_post(f"{team}/read", groups.mark_read)
    router.add_get(f"{team}/picture", groups.picture, name=groups.PICTURE_ROUTE)
    team_files, their_file = f"{team}/files", f"{team}/files/{{author}}/{{transfer_id}}"
    router.add_post(team_files, group_files.announce)  # docs/UI_API.md, "Group files"
    router.add_put(
        team_files + "/{transfer_id}/content", group_files.upload, name=group_files.UPLOAD_ROUTE
    )
    router.add_post(team_files + "/{transfer_id}/cancel", group_files.cancel)
    router.add_get(their_file, group_files.view)
    router.add_get(their_file + "/content", group_files.content, name="ui_group_file_content")
    router.add_post(their_file + "/decline", group_files.decline)
    return app
