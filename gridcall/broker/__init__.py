"""The MQTT broker's side of trust: who may publish and read which topics, from config.

- ``policy.py``: the policy, pure and broker-neutral (one :class:`~.policy.Principal` per
  login with its grants), built from the config set;
- ``mosquitto.py``: that policy as mosquitto 2's ``acl_file`` and ``password_file``;
- ``credentials.py``: the logins' passwords, generated once into a 0600 file and never
  changed by a later run.

``gridcall broker acl`` (:mod:`gridcall.cli.broker`) writes them; docs/security.md gives
the same policy for EMQX. A CLI-level package: it imports config and wire.
"""
