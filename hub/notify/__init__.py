"""The notify wing: telling people about the desk's steps.

Owns the notifier and its channels (``notifier``) and the outbox that replays
unsent notifications after a restart (``outbox``).

May import: ``gridcall.wire``, ``gridcall.config``, ``gridcall.hub.store`` and the desk
wing. Never board or api.
"""
