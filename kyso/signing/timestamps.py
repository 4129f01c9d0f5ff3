"""Time stamps for B-T and above, from kyso's own TSA (RFC 3161).

In the server and the CLI the TSA is called in process (no HTTP round trip to ourselves);
another installation, or a third-party TSA, is reached over HTTP. Both are pyHanko
``TimeStamper``s, so PAdES and CAdES take either.
"""

from __future__ import annotations

from asn1crypto import tsp
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError

from kyso.pki.tsa import TimeStampAuthority, TimeStampResp
from kyso.signing.levels import Level

__all__ = ["InProcessTimeStamper", "Level", "http_timestamper"]


class InProcessTimeStamper(TimeStamper):
    """pyHanko's view of kyso's TSA in this process."""

    def __init__(self, tsa: TimeStampAuthority) -> None:
        super().__init__(include_nonce=True)
        self._tsa = tsa

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        # kyso's TimeStampResp: asn1crypto's own cannot read a rejection (token made mandatory)
        response = TimeStampResp.load(self._tsa.respond(req.dump()))
        if response["status"]["status"].native not in ("granted", "granted_with_mods"):
            status = response["status"]
            text = status["status_string"].native or status["fail_info"].native
            raise TimestampRequestError(f"kyso TSA refused the request: {text}")
        return response


def http_timestamper(url: str, timeout: float = 10) -> TimeStamper:
    """A TSA elsewhere (another kyso, or a third party) over HTTP."""
    from pyhanko.sign.timestamps.requests_client import RequestsHTTPTimeStamper

    return RequestsHTTPTimeStamper(url, timeout=timeout)
