"""Who may submit a batch for which centre.

TODO(#7): the security engineer decides this from the broker-validated AMQP
user_id (the batch role is scoped to one centre). Until then every user may
submit for every centre.
"""


def may_submit(user_id: str, center_id: str) -> bool:
    """True when the broker user `user_id` may submit transactions for `center_id`."""
    del user_id, center_id
    return True
