complete -c sqlite-maint -l auto-vacuum -d 'Set the auto_vacuum mode (switching to or from none needs --rebuild)' -r -f -a "none\t'Freed pages stay in the file until a full VACUUM (SQLite\'s default)'
full\t'Every commit gives freed pages back to the file system'
incremental\t'Freed pages are given back when PRAGMA incremental_vacuum runs'"
complete -c sqlite-maint -l incremental-vacuum -d 'Give free pages back to the file system: all, or at most PAGES per run' -r
complete -c sqlite-maint -l checkpoint -d 'Checkpoint the WAL into the database' -r -f -a "passive\t'Copy what it can without waiting for anyone'
full\t'Wait for writers, then copy every frame'
restart\t'As full, then wait for readers so the WAL restarts from the beginning'
truncate\t'As restart, then truncate the WAL file to zero bytes'"
complete -c sqlite-maint -l busy-timeout -d 'How long to wait for the write lock, e.g. 5s' -r
complete -c sqlite-maint -l exclude -d 'Skip databases in directories whose file name or path matches GLOB (repeatable)' -r
complete -c sqlite-maint -l rebuild -d 'Allow the one-time VACUUM that an auto_vacuum change needs'
complete -c sqlite-maint -l optimize -d 'Run PRAGMA optimize (refresh query planner statistics where useful)'
complete -c sqlite-maint -l analyze -d 'Run ANALYZE (recompute all query planner statistics)'
complete -c sqlite-maint -l dry-run -d 'Report what would be done and reclaimed; write nothing'
complete -c sqlite-maint -l status -d 'Report each database\'s auto_vacuum mode, pages, free pages, WAL size and what conversion would gain; write nothing'
complete -c sqlite-maint -s q -l quiet -d 'Log only warnings and errors on stderr'
complete -c sqlite-maint -s v -l verbose -d 'Log detail lines (INFO) too'
complete -c sqlite-maint -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sqlite-maint -s V -l version -d 'Print version'
