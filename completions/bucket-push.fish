complete -c bucket-push -l keep-last -d 'After storing, keep the newest N snapshots of the database (with the other --keep rules: their union)' -r
complete -c bucket-push -l keep-hourly -d 'Keep the newest snapshot of each of the last N hours' -r
complete -c bucket-push -l keep-daily -d 'Keep the newest snapshot of each of the last N days (UTC)' -r
complete -c bucket-push -l keep-weekly -d 'Keep the newest snapshot of each of the last N ISO weeks' -r
complete -c bucket-push -l keep-monthly -d 'Keep the newest snapshot of each of the last N months' -r
complete -c bucket-push -l keep-within -d 'Keep every snapshot taken within DURATION of the newest (e.g. 48h, 14d)' -r
complete -c bucket-push -l transfers -d 'Inputs stored at once (a thousand tenant databases); records still leave in input order. Each holds at most one upload\'s parts in memory (three parts of 5 MiB or more for a large file)' -r
complete -c bucket-push -l tries -d 'Tries per request to object storage before giving up with exit 4' -r
complete -c bucket-push -l timeout -d 'Limit on one request to object storage (a part, a manifest, a listing page), e.g. 5m; downloads instead fail when no data arrives for 30 s' -r
complete -c bucket-push -l dry-run -d 'Store nothing and delete nothing: print what would be stored and pruned (and to whom it is encrypted)'
complete -c bucket-push -l require-encryption -d 'Refuse (exit 5) any input that is not an age file: plaintext never reaches the remote'
complete -c bucket-push -s q -l quiet -d 'Log only warnings and errors on stderr'
complete -c bucket-push -s v -l verbose -d 'Log detail lines (INFO) too'
complete -c bucket-push -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bucket-push -s V -l version -d 'Print version'
