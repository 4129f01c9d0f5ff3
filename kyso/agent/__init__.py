"""kyso's local signing agent (``kyso agent``): signs digests with the user's USB token for
kyso's pages, like the signing plugins Vietnamese CAs ship (VNPT, Viettel, BKAV).

Deferred signing: the kyso server prepares the document and hands the page a digest
(:mod:`kyso.signing.deferred`); the page asks this agent, on ``http://127.0.0.1:<port>``, to
sign it with the token through PKCS#11 (PKCS#11 v2.40; CKM_RSA_PKCS over a DigestInfo, RFC 8017
§9.2, or CKM_ECDSA); the page returns the signature to kyso, which checks and embeds it. The
key never leaves the token; the PIN never leaves the agent.

Threat model — who can reach a server on 127.0.0.1, and what stops each of them:

- **A malicious web page** (any site the user visits) can make the browser send requests to
  127.0.0.1. The agent answers only the one configured kyso origin (exact match of the
  ``Origin`` header, preflight included; anything else, or no ``Origin`` at all, is 403 with
  no CORS headers, so the browser lets the page read nothing), and requires a JSON body, which
  forces a CORS preflight for every cross-origin POST.
- **DNS rebinding** (a hostile name resolving to 127.0.0.1 so the page becomes
  "same-origin" with the agent): the ``Host`` header must be ``127.0.0.1:<port>`` or
  ``localhost:<port>``, else 403.
- **Another origin, or a non-browser program forging ``Origin``**: every request but the
  status and the pairing itself carries an HMAC-SHA256 (RFC 2104) over method, path, origin,
  time, a nonce and the body's SHA-256, keyed with a secret shared once at pairing. Pairing
  needs the code the agent prints in *its own* terminal, which the user types into the page;
  a code allows three tries and lives two minutes. Without the secret a request is 401.
- **Replay** of a captured request: the time must be within :data:`~kyso.agent.pairing.
  SKEW_SECONDS` of the agent's clock and each nonce is accepted once.
- **The page itself** (or script injected into kyso) could ask for any digest to be signed;
  that is inherent to deferred signing. What bounds it: the agent never takes a PIN from a
  request (a body with a PIN is refused) — it asks the user itself, in its terminal or
  through the ``--pin-command`` program (ssh's askpass, gpg's pinentry), after showing the
  document's title, the certificate and the digest; and it logs every signature locally.
- Out of scope: other programs running as the user (they can talk to the token directly)
  and a compromised kyso server (which holds no key, but chooses what the page shows).

Browsers: Chromium's Private Network Access sends a preflight with
``Access-Control-Request-Private-Network: true`` when a public origin calls 127.0.0.1; the
agent answers ``Access-Control-Allow-Private-Network: true`` for the configured origin only.
``http://127.0.0.1`` counts as a secure context, so an https kyso page may call it (Chromium,
Firefox); Safari does not allow it.
"""

from __future__ import annotations

VERSION = "1.0"
DEFAULT_PORT = 8765
