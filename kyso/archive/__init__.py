"""The electronic archive: every document a unit issues, sends or receives, kept with its
signatures and the fields of the archiving rules, in a content-addressed store whose file
names are the files' SHA-256 (so any change is seen), checked whole on demand, and exported
as record files (hồ sơ) an archivist can check without kyso."""
