complete -c bucket-push -l tries -d 'Tries per request to object storage before giving up with exit 4' -r
complete -c bucket-push -l timeout -d 'Limit on one request to object storage (a part, a manifest, a listing page), e.g. 5m; downloads instead fail when no data arrives for 30 s' -r
complete -c bucket-push -s q -l quiet -d 'Log only warnings and errors on stderr'
complete -c bucket-push -s v -l verbose -d 'Log detail lines (INFO) too'
complete -c bucket-push -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bucket-push -s V -l version -d 'Print version'
