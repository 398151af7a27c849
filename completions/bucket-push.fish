complete -c bucket-push -s q -l quiet -d 'Log only warnings and errors on stderr'
complete -c bucket-push -s v -l verbose -d 'Log detail lines (INFO) too'
complete -c bucket-push -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bucket-push -s V -l version -d 'Print version'
