"""Signed-document formats as both kyso's signers and its validators read them.

:mod:`kyso.signing` makes signatures and :mod:`kyso.validation` judges them; neither imports
the other. What both need about the formats lives here, below them: the cheap checks on a PDF
before anything parses it (:mod:`.pdf`), XML-DSig's namespaces and canonicalization
(:mod:`.xmldsig`), and an e-mail message's raw header fields and body (:mod:`.mime`). Nothing
here signs, decides or touches the database. (Running pyHanko's coroutines is
:mod:`kyso.coroutines`; the trust anchors and kyso's own revocation evidence,
:mod:`kyso.trust`.)
"""
