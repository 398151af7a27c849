complete -c blob-sync -l max-delete -d 'With --delete, refuse a plan deleting more than N files, or N% of the destination' -r
complete -c blob-sync -l transfers -d 'Files copied at once' -r
complete -c blob-sync -l exclude -d 'Skip files matching GLOB (repeatable)' -r
complete -c blob-sync -l exclude-from -d 'Skip files matching the patterns in FILE, one per line (# comments)' -r -F
complete -c blob-sync -l include -d 'Copy only files matching GLOB (repeatable)' -r
complete -c blob-sync -l cache-dir -d 'Where to cache destination manifests [default: $XDG_CACHE_HOME/sqlkeep/blob-sync]' -r -f -a "(__fish_complete_directories)"
complete -c blob-sync -l tries -d 'Tries per request to object storage before giving up with exit 4' -r
complete -c blob-sync -l timeout -d 'Limit on one request to object storage (a part, a manifest, a listing page), e.g. 5m; downloads instead fail when no data arrives for 30 s' -r
complete -c blob-sync -l recipient -d 'Encrypt to this age public key, age1… (repeatable; only public keys are needed to back up)' -r
complete -c blob-sync -l recipients-file -d 'Encrypt to every key in FILE, age\'s recipients format (`age-keygen -y key.txt` prints one); repeatable' -r -F
complete -c blob-sync -l passphrase-file -d 'Use the passphrase in FILE (its first line) instead of keys' -r -F
complete -c blob-sync -l passphrase-env -d 'Use the passphrase in the environment variable VAR instead of keys' -r
complete -c blob-sync -l scrypt-work-factor -d 'scrypt work factor (log2 N) for a passphrase; tests lower it' -r
complete -c blob-sync -s i -l identity -d 'Decrypt with the age identities in FILE (what age-keygen writes); repeatable [env: SQLKEEP_AGE_IDENTITY_FILE]' -r -F
complete -c blob-sync -l delete -d 'Remove destination files that are no longer in the source'
complete -c blob-sync -l dry-run -d 'Print the plan; change nothing'
complete -c blob-sync -l full-check -d 'List the destination instead of trusting its manifest'
complete -c blob-sync -l copy-links -d 'Follow symbolic links in SOURCE and copy what they point to (default: skip them with a warning)'
complete -c blob-sync -l no-default-excludes -d 'Do not exclude SQLite files (*.sqlite3*, *-wal, *-shm, *-journal)'
complete -c blob-sync -s q -l quiet -d 'Log only warnings and errors on stderr'
complete -c blob-sync -s v -l verbose -d 'Log detail lines (INFO) too'
complete -c blob-sync -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blob-sync -s V -l version -d 'Print version'
