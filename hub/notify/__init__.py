"""The notify wing: telling people about the desk's steps.

Owns the notifier (``notifier``), its channels (``channels``: one module per
notify.yaml ``type``, registered in ``channels.CHANNELS``), one message per incident
(``incident``) and the outbox that replays
unsent notifications after a restart (``outbox``).

May import: ``gridcall.wire``, ``gridcall.config``, ``gridcall.hub.store`` and the desk
wing. Never board or api.
"""
