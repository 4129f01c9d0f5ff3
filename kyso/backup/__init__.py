"""Backup and restore of a whole instance: one encrypted archive (:mod:`kyso.backup.sealed`)
holding a consistent copy of the database, the key store files, the secrets and the audit
checkpoints, with a manifest (:mod:`kyso.backup.archive`)."""
