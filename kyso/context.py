"""Everything a command or a request needs, opened once per process."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from kyso.keys.base import KeyStore
from kyso.keys.factory import open_keystore
from kyso.pki.authority import Authority
from kyso.pki.batcher import IssuanceBatcher
from kyso.pki.ocsp import Responder
from kyso.pki.tsa import TimeStampAuthority
from kyso.settings import Settings
from kyso.store.db import Database


@dataclass
class Context:
    settings: Settings
    db: Database = field(init=False)

    def __post_init__(self) -> None:
        # The key store seals small secrets kept in the database (TOTP seeds); opened only
        # when one is read or written.
        self.db = Database(self.settings.database_url, sealer=lambda: self.keystore)

    @cached_property
    def keystore(self) -> KeyStore:
        return open_keystore(self.settings)

    @cached_property
    def central(self) -> KeyStore:
        """The central signing HSM (kyso.remote.central), opened when first used."""
        from kyso.remote.central import open_central_store

        return open_central_store(self.settings)

    @cached_property
    def authority(self) -> Authority:
        return Authority(self.settings, self.db, self.keystore, central=lambda: self.central)

    @cached_property
    def batcher(self) -> IssuanceBatcher:
        return IssuanceBatcher(self.authority)

    @cached_property
    def responder(self) -> Responder:
        return Responder(self.authority)

    @cached_property
    def tsa(self) -> TimeStampAuthority:
        from kyso.store.models import IdentityRole

        tsa = self.authority.identity(IdentityRole.TSA)
        chain = [self.authority.identity(IdentityRole.ISSUING).der]
        return TimeStampAuthority(tsa.key, tsa.der, chain, policy_oid=self.settings.tsa_policy_oid)

    def close(self) -> None:
        if "keystore" in self.__dict__:
            self.keystore.close()
        if "central" in self.__dict__:
            self.central.close()
        self.db.dispose()
