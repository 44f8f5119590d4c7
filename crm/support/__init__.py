"""The support conversation, chat-agnostic: flows decide, in one transaction, and return effects.

``flows`` (what happens when customers and agents act), ``outcomes`` (the effects), ``inbox``
(updates stored before they are confirmed), ``outbox`` (effects stored with the state change),
``runner`` (one transaction per flow). Nothing here imports ``telegram``.
"""
