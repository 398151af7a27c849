complete -c sqlite-snap -s o -l output-dir -d 'Directory to write snapshots to (created if missing) [default: a private directory under $TMPDIR]' -r -f -a "(__fish_complete_directories)"
complete -c sqlite-snap -l method -d 'How to copy the database [default: pages]' -r -f -a "pages\t'Read every page inside one read transaction (sqlite_dbpage) and stream it into zstd: fastest, no uncompressed temporary copy'
vacuum\t'VACUUM INTO a temporary file, then compress it: a compacted copy, slower, needs free disk for the uncompressed copy'"
complete -c sqlite-snap -l level -d 'zstd compression level' -r
complete -c sqlite-snap -l threads -d 'Compression worker threads [default: CPU cores, at most 4]' -r
complete -c sqlite-snap -s j -l jobs -d 'Databases snapshotted at once; records still leave in input order. The zstd workers are shared among the jobs, so memory does not multiply (measured on 4 × 2 GB: 36 MiB with 1 job, 19 MiB with 2, 31 MiB with 4) [default: CPU cores, at most 4]' -r
complete -c sqlite-snap -l exclude -d 'Skip databases in directories whose file name or path matches GLOB (repeatable)' -r
complete -c sqlite-snap -l state-dir -d 'Where --incremental keeps each database\'s page digests [default: $XDG_STATE_HOME/sqlkeep, /var/lib/sqlkeep for root, else ~/.local/state/sqlkeep]' -r -f -a "(__fish_complete_directories)"
complete -c sqlite-snap -l full-every -d 'With --incremental: a full snapshot at least this often' -r
complete -c sqlite-snap -l diff-every -d 'With --incremental: a level-1 delta (against the last full or level-1 point) at least this often; other runs take a level-2 delta against the previous point' -r
complete -c sqlite-snap -l deltas-per-diff -d 'With --incremental: at most N level-2 deltas between level-1 points' -r
complete -c sqlite-snap -l diffs-per-full -d 'With --incremental: at most N level-1 deltas between full snapshots (a restore reads at most 1 + this + --deltas-per-diff objects)' -r
complete -c sqlite-snap -l busy-timeout -d 'How long to wait for a locked database, e.g. 5s or 1m' -r
complete -c sqlite-snap -l recipient -d 'Encrypt to this age public key, age1… (repeatable; only public keys are needed to back up)' -r
complete -c sqlite-snap -l recipients-file -d 'Encrypt to every key in FILE, age\'s recipients format (`age-keygen -y key.txt` prints one); repeatable' -r -F
complete -c sqlite-snap -l passphrase-file -d 'Use the passphrase in FILE (its first line) instead of keys' -r -F
complete -c sqlite-snap -l passphrase-env -d 'Use the passphrase in the environment variable VAR instead of keys' -r
complete -c sqlite-snap -l scrypt-work-factor -d 'scrypt work factor (log2 N) for a passphrase; tests lower it' -r
complete -c sqlite-snap -l no-compress -d 'Write an uncompressed .sqlite3 file instead of .sqlite3.zst'
complete -c sqlite-snap -l incremental -d 'Store only the pages that changed since the last snapshot that reached storage (a delta), after a first full snapshot; bucket-push commits the new state once the delta is stored'
complete -c sqlite-snap -s q -l quiet -d 'Log only warnings and errors on stderr'
complete -c sqlite-snap -s v -l verbose -d 'Log detail lines (INFO) too'
complete -c sqlite-snap -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sqlite-snap -s V -l version -d 'Print version'
