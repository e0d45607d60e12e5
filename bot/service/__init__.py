"""The conversation service (transport-free: a user's turn in, a reply out) and its ports.

``conversation.py`` is the service itself; ``engine_port.py`` is what it needs from the engine.
The rest are its parts: ``workers.py`` (model and store calls off the event loop),
``uploads.py`` (decoding, the embedding cache, the chat's private gallery), ``search.py``
(``[RET]``, ``/search``, ``/more`` and "more like this" to gallery hits), ``scenes.py`` (large
scenes by tiles) and ``turns.py`` (how replies are kept and shown in the history).
"""
