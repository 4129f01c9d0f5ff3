"""Electronic documents between agencies: edXML packages (QCVN 102:2016/BTTTT) and their
status messages, built and read here; signing and validating them is kyso.signing.xades and
kyso.validation.xml, as for any XML."""
