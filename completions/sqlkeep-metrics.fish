complete -c sqlkeep-metrics -l textfile -d 'The textfile to update, e.g. /var/lib/node_exporter/textfile_collector/sqlkeep.prom (node_exporter reads only *.prom)' -r -F
complete -c sqlkeep-metrics -l expect-drill -d 'A restore drill of DB ran upstream: if no `verified` record of DB arrives, record a failed drill (repeatable)' -r
complete -c sqlkeep-metrics -s q -l quiet -d 'Log only warnings and errors on stderr'
complete -c sqlkeep-metrics -s v -l verbose -d 'Log detail lines (INFO) too'
complete -c sqlkeep-metrics -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sqlkeep-metrics -s V -l version -d 'Print version'
