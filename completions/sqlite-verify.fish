complete -c sqlite-verify -l max-age -d 'Fail when the snapshot was taken longer ago than DURATION (e.g. 26h, 7d)' -r
complete -c sqlite-verify -l expect-table -d 'Fail unless the table exists (repeatable)' -r
complete -c sqlite-verify -l min-rows -d 'Fail unless TABLE has at least N rows (repeatable)' -r
complete -c sqlite-verify -l busy-timeout -d 'How long to wait for a locked database, e.g. 5s' -r
complete -c sqlite-verify -l quick -d 'Run PRAGMA quick_check instead of the full integrity_check'
complete -c sqlite-verify -s q -l quiet -d 'Log only warnings and errors on stderr'
complete -c sqlite-verify -s v -l verbose -d 'Log detail lines (INFO) too'
complete -c sqlite-verify -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sqlite-verify -s V -l version -d 'Print version'
