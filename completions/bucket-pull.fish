complete -c bucket-pull -s o -l output -d 'File to restore to, or a directory to restore into as <db>.sqlite3 [default: ./<db>.sqlite3]' -r -F
complete -c bucket-pull -l owner -d 'Owner of the restored file, USER[:GROUP] (names or numbers) [default: the replaced file\'s, else the directory\'s owner and group]' -r
complete -c bucket-pull -l mode -d 'Mode of the restored file, in octal [default: the replaced file\'s, else 600]' -r
complete -c bucket-pull -l at -d 'Restore the newest restore point taken at or before TIME (RFC 3339; 2026-11-20T14:30 for the end of that minute, or YYYY-MM-DD for the end of that day, UTC)' -r
complete -c bucket-pull -s i -l identity -d 'Decrypt with the age identities in FILE (what age-keygen writes); repeatable [env: SQLKEEP_AGE_IDENTITY_FILE]' -r -F
complete -c bucket-pull -l passphrase-file -d 'Decrypt with the passphrase in FILE (its first line)' -r -F
complete -c bucket-pull -l passphrase-env -d 'Decrypt with the passphrase in the environment variable VAR' -r
complete -c bucket-pull -l tries -d 'Tries per request to object storage before giving up with exit 4' -r
complete -c bucket-pull -l timeout -d 'Limit on one request to object storage (a part, a manifest, a listing page), e.g. 5m; downloads instead fail when no data arrives for 30 s' -r
complete -c bucket-pull -l latest -d 'Restore the newest snapshot under a prefix (the default for prefixes)'
complete -c bucket-pull -l force -d 'Replace an existing non-empty file (stop the application first); not needed for an unchanged file bucket-pull restored (a drill\'s scratch file)'
complete -c bucket-pull -l even-if-open -d 'Replace the target even when another process has it open (its writes go to the old file and are lost)'
complete -c bucket-pull -l if-missing -d 'Restore only when the target is absent or empty; otherwise exit 0 quietly'
complete -c bucket-pull -l all -d 'Restore every database under SOURCE (each prefix holding a latest.json) into the directory -o, at its path relative to SOURCE (tenants/acme/production → DIR/tenants/acme/production.sqlite3)'
complete -c bucket-pull -l list -d 'Print one `object` record per stored snapshot under each prefix, newest first (on a terminal: a table of time, kind, size and age), and restore nothing; a prefix holding databases lists them (`database` records)'
complete -c bucket-pull -s q -l quiet -d 'Log only warnings and errors on stderr'
complete -c bucket-pull -s v -l verbose -d 'Log detail lines (INFO) too'
complete -c bucket-pull -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bucket-pull -s V -l version -d 'Print version'
