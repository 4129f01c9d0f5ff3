"""A request's life: draft → submitted → approved (or rejected, with a reason) → issued →
handed over; a draft may be cancelled.

This package is the workflow's public face; pages, the REST API and the CLI call it as
``workflow.create``, ``workflow.approve`` and so on. Inside, one module per part of the life:

- :mod:`.states`: the states, the moves between them (each one an event and an audit
  entry), what a request stores (:class:`Envelope`), loading a request locked;
- :mod:`.drafts`: creating and editing a draft, tied to the registry;
- :mod:`.preparation`: what carrying out needs, checked on submission and again at the end;
- :mod:`.decisions`: submit, cancel, approve (several approvers if the type needs them),
  reject;
- :mod:`.subscribers`: an existing subscriber's record, changed only as an approver
  confirmed;
- :mod:`.execution`: carrying an approved request out (issuing, revoking, restoring a
  device), and :func:`issue` for a key that waited for its token;
- :mod:`.handover`: handing the certificate over;
- :mod:`.views`: reading and searching requests.

Two approvers pressing "approve" at the same moment must produce one certificate: the
request row is taken with ``SELECT … FOR UPDATE`` and its ``version`` checked on every
UPDATE, so the second approver waits, then finds the request already issued and is refused.
"""

from kyso.lifecycle.workflow.decisions import approve, cancel, reject, submit
from kyso.lifecycle.workflow.drafts import DraftChanges, NewRequest, create, edit, requesting_unit
from kyso.lifecycle.workflow.execution import issue
from kyso.lifecycle.workflow.handover import hand_over
from kyso.lifecycle.workflow.preparation import Prepared, prepare, subscriber_name
from kyso.lifecycle.workflow.states import (
    DEFAULT_ALGORITHM,
    STATE_LABELS,
    TRANSITIONS,
    Envelope,
    RequestTransitionError,
    aware,
    envelope,
)
from kyso.lifecycle.workflow.subscribers import (
    FieldChange,
    SubscriberChanges,
    SubscriberChangesUnconfirmed,
    subscriber_changes,
)
from kyso.lifecycle.workflow.views import RequestView, get, search

__all__ = [
    "DEFAULT_ALGORITHM",
    "STATE_LABELS",
    "TRANSITIONS",
    "DraftChanges",
    "Envelope",
    "FieldChange",
    "NewRequest",
    "Prepared",
    "RequestTransitionError",
    "RequestView",
    "SubscriberChanges",
    "SubscriberChangesUnconfirmed",
    "approve",
    "aware",
    "cancel",
    "create",
    "edit",
    "envelope",
    "get",
    "hand_over",
    "issue",
    "prepare",
    "reject",
    "requesting_unit",
    "search",
    "submit",
    "subscriber_changes",
    "subscriber_name",
]
