"""The conversation service (transport-free: a user's turn in, a reply out) and its ports.

``conversation.py`` is the service itself; ``engine_port.py`` and ``store_port.py`` are what it
needs from the engine and the store, and ``store_adapter.py`` is the store port over the real
store (``store.Store``). The rest are its parts: ``workers.py`` (model and store calls off the
event loop), ``uploads.py`` (decoding, the embedding cache, the chat's private gallery),
``search.py`` (``[RET]``, ``/search``, ``/more`` and "more like this" to gallery hits),
``scenes.py`` (large scenes by tiles), ``turns.py`` (how replies are kept and shown in the
history) and ``user_ref.py`` (who is talking, as a transport knows them).
"""
