complete -c sqlite-snap -s o -l output-dir -d 'Directory to write snapshots to (created if missing) [default: a private directory under $TMPDIR]' -r -f -a "(__fish_complete_directories)"
complete -c sqlite-snap -l method -d 'How to copy the database' -r -f -a "pages\t'Read every page inside one read transaction (sqlite_dbpage) and stream it into zstd: fastest, no uncompressed temporary copy'
vacuum\t'VACUUM INTO a temporary file, then compress it: a compacted copy, slower, needs free disk for the uncompressed copy'"
complete -c sqlite-snap -l level -d 'zstd compression level' -r
complete -c sqlite-snap -l threads -d 'Compression worker threads [default: CPU cores, at most 4]' -r
complete -c sqlite-snap -l exclude -d 'Skip databases in directories whose file name or path matches GLOB (repeatable)' -r
complete -c sqlite-snap -l busy-timeout -d 'How long to wait for a locked database, e.g. 5s or 1m' -r
complete -c sqlite-snap -l no-compress -d 'Write an uncompressed .sqlite3 file instead of .sqlite3.zst'
complete -c sqlite-snap -s q -l quiet -d 'Log only warnings and errors on stderr'
complete -c sqlite-snap -s v -l verbose -d 'Log detail lines (INFO) too'
complete -c sqlite-snap -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sqlite-snap -s V -l version -d 'Print version'
