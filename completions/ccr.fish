# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ccr_global_optspecs
    string join \n config= data-dir= color= q/quiet h/help V/version
end

function __fish_ccr_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ccr_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ccr_using_subcommand
    set -l cmd (__fish_ccr_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ccr -n "__fish_ccr_needs_command" -l config -d 'Configuration file (default: the platform config directory\'s ccr/config.yaml)' -r -F
complete -c ccr -n "__fish_ccr_needs_command" -l data-dir -d 'Data directory for logs and state (default: the platform data directory\'s ccr/)' -r -F
complete -c ccr -n "__fish_ccr_needs_command" -l color -d 'When to use colour (`NO_COLOR` turns `auto` off)' -r -f -a "auto\t'Colour on a terminal, unless `NO_COLOR` is set'
always\t''
never\t''"
complete -c ccr -n "__fish_ccr_needs_command" -s q -l quiet -d 'Print only errors and requested output (no confirmation lines)'
complete -c ccr -n "__fish_ccr_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ccr -n "__fish_ccr_needs_command" -s V -l version -d 'Print version'
complete -c ccr -n "__fish_ccr_needs_command" -f -a "serve" -d 'Run the proxy server'
complete -c ccr -n "__fish_ccr_needs_command" -f -a "token" -d 'Manage CodeWhisperer (Kiro) accounts: import, list, refresh, remove'
complete -c ccr -n "__fish_ccr_needs_command" -f -a "stats" -d 'Show a running server\'s stats'
complete -c ccr -n "__fish_ccr_needs_command" -f -a "providers" -d 'Test the configured providers: a text, a streaming and a tool-call probe each'
complete -c ccr -n "__fish_ccr_needs_command" -f -a "replay" -d 'Resend logged failures through a running server'
complete -c ccr -n "__fish_ccr_needs_command" -f -a "code" -d 'Run Claude Code through ccr, starting `ccr serve` in the background if needed'
complete -c ccr -n "__fish_ccr_needs_command" -f -a "activate" -d 'Print the environment `ccr code` sets, for `eval "$(ccr activate)"`'
complete -c ccr -n "__fish_ccr_needs_command" -f -a "statusline" -d 'Print one status line for Claude Code\'s `statusLine` setting (JSON on stdin)'
complete -c ccr -n "__fish_ccr_needs_command" -f -a "completions" -d 'Print the shell completion script (bash, zsh, fish, powershell, elvish)'
complete -c ccr -n "__fish_ccr_needs_command" -f -a "generate" -d 'Write completions/ and man/ from this definition (for ccr\'s own repository)'
complete -c ccr -n "__fish_ccr_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ccr -n "__fish_ccr_using_subcommand serve" -l host -d 'Address to listen on (overrides `server.host`)' -r
complete -c ccr -n "__fish_ccr_using_subcommand serve" -l port -d 'Port to listen on; 0 picks a free one (overrides `server.port`)' -r
complete -c ccr -n "__fish_ccr_using_subcommand serve" -l log-level -d 'Log level (error, warn, info, debug, trace) or a tracing filter such as `ccr=debug`' -r
complete -c ccr -n "__fish_ccr_using_subcommand serve" -l config -d 'Configuration file (default: the platform config directory\'s ccr/config.yaml)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand serve" -l data-dir -d 'Data directory for logs and state (default: the platform data directory\'s ccr/)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand serve" -l color -d 'When to use colour (`NO_COLOR` turns `auto` off)' -r -f -a "auto\t'Colour on a terminal, unless `NO_COLOR` is set'
always\t''
never\t''"
complete -c ccr -n "__fish_ccr_using_subcommand serve" -s q -l quiet -d 'Print only errors and requested output (no confirmation lines)'
complete -c ccr -n "__fish_ccr_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ccr -n "__fish_ccr_using_subcommand token; and not __fish_seen_subcommand_from import list refresh remove help" -l config -d 'Configuration file (default: the platform config directory\'s ccr/config.yaml)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand token; and not __fish_seen_subcommand_from import list refresh remove help" -l data-dir -d 'Data directory for logs and state (default: the platform data directory\'s ccr/)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand token; and not __fish_seen_subcommand_from import list refresh remove help" -l color -d 'When to use colour (`NO_COLOR` turns `auto` off)' -r -f -a "auto\t'Colour on a terminal, unless `NO_COLOR` is set'
always\t''
never\t''"
complete -c ccr -n "__fish_ccr_using_subcommand token; and not __fish_seen_subcommand_from import list refresh remove help" -s q -l quiet -d 'Print only errors and requested output (no confirmation lines)'
complete -c ccr -n "__fish_ccr_using_subcommand token; and not __fish_seen_subcommand_from import list refresh remove help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ccr -n "__fish_ccr_using_subcommand token; and not __fish_seen_subcommand_from import list refresh remove help" -f -a "import" -d 'Import Kiro\'s token file as an account'
complete -c ccr -n "__fish_ccr_using_subcommand token; and not __fish_seen_subcommand_from import list refresh remove help" -f -a "list" -d 'List accounts with their expiry and status (never a token)'
complete -c ccr -n "__fish_ccr_using_subcommand token; and not __fish_seen_subcommand_from import list refresh remove help" -f -a "refresh" -d 'Refresh accounts\' tokens and store them (for scripts and cron: quiet when piped)'
complete -c ccr -n "__fish_ccr_using_subcommand token; and not __fish_seen_subcommand_from import list refresh remove help" -f -a "remove" -d 'Remove an account from the store'
complete -c ccr -n "__fish_ccr_using_subcommand token; and not __fish_seen_subcommand_from import list refresh remove help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from import" -l from -d 'Kiro\'s token file (default: ~/.aws/sso/cache/kiro-auth-token.json)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from import" -l name -d 'The account name, as `accounts:` in the config names it' -r
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from import" -l config -d 'Configuration file (default: the platform config directory\'s ccr/config.yaml)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from import" -l data-dir -d 'Data directory for logs and state (default: the platform data directory\'s ccr/)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from import" -l color -d 'When to use colour (`NO_COLOR` turns `auto` off)' -r -f -a "auto\t'Colour on a terminal, unless `NO_COLOR` is set'
always\t''
never\t''"
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from import" -s q -l quiet -d 'Print only errors and requested output (no confirmation lines)'
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from import" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from list" -l config -d 'Configuration file (default: the platform config directory\'s ccr/config.yaml)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from list" -l data-dir -d 'Data directory for logs and state (default: the platform data directory\'s ccr/)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from list" -l color -d 'When to use colour (`NO_COLOR` turns `auto` off)' -r -f -a "auto\t'Colour on a terminal, unless `NO_COLOR` is set'
always\t''
never\t''"
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from list" -l json -d 'Print JSON instead of a table'
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only errors and requested output (no confirmation lines)'
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from refresh" -l if-expiring-within -d 'Only accounts whose token expires within this long (e.g. `10m`)' -r
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from refresh" -l config -d 'Configuration file (default: the platform config directory\'s ccr/config.yaml)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from refresh" -l data-dir -d 'Data directory for logs and state (default: the platform data directory\'s ccr/)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from refresh" -l color -d 'When to use colour (`NO_COLOR` turns `auto` off)' -r -f -a "auto\t'Colour on a terminal, unless `NO_COLOR` is set'
always\t''
never\t''"
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from refresh" -l all -d 'Refresh every imported account'
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from refresh" -l json -d 'Print the outcome of each account as JSON'
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from refresh" -s q -l quiet -d 'Print only errors and requested output (no confirmation lines)'
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from refresh" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from remove" -l config -d 'Configuration file (default: the platform config directory\'s ccr/config.yaml)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from remove" -l data-dir -d 'Data directory for logs and state (default: the platform data directory\'s ccr/)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from remove" -l color -d 'When to use colour (`NO_COLOR` turns `auto` off)' -r -f -a "auto\t'Colour on a terminal, unless `NO_COLOR` is set'
always\t''
never\t''"
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from remove" -s q -l quiet -d 'Print only errors and requested output (no confirmation lines)'
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "import" -d 'Import Kiro\'s token file as an account'
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "list" -d 'List accounts with their expiry and status (never a token)'
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "refresh" -d 'Refresh accounts\' tokens and store them (for scripts and cron: quiet when piped)'
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove an account from the store'
complete -c ccr -n "__fish_ccr_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ccr -n "__fish_ccr_using_subcommand stats" -l url -d 'The server (default: the address in the config)' -r
complete -c ccr -n "__fish_ccr_using_subcommand stats" -l watch -d 'Redraw every SECONDS until interrupted' -r
complete -c ccr -n "__fish_ccr_using_subcommand stats" -l by -d 'Group rows by this key, percentiles merged on the server (the table\'s default: provider; `--json` without it: every row)' -r -f -a "provider\t''
target\t''
model\t''
scenario\t''"
complete -c ccr -n "__fish_ccr_using_subcommand stats" -l config -d 'Configuration file (default: the platform config directory\'s ccr/config.yaml)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand stats" -l data-dir -d 'Data directory for logs and state (default: the platform data directory\'s ccr/)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand stats" -l color -d 'When to use colour (`NO_COLOR` turns `auto` off)' -r -f -a "auto\t'Colour on a terminal, unless `NO_COLOR` is set'
always\t''
never\t''"
complete -c ccr -n "__fish_ccr_using_subcommand stats" -l json -d 'Print the /api/stats document'
complete -c ccr -n "__fish_ccr_using_subcommand stats" -s q -l quiet -d 'Print only errors and requested output (no confirmation lines)'
complete -c ccr -n "__fish_ccr_using_subcommand stats" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ccr -n "__fish_ccr_using_subcommand providers; and not __fish_seen_subcommand_from test help" -l config -d 'Configuration file (default: the platform config directory\'s ccr/config.yaml)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand providers; and not __fish_seen_subcommand_from test help" -l data-dir -d 'Data directory for logs and state (default: the platform data directory\'s ccr/)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand providers; and not __fish_seen_subcommand_from test help" -l color -d 'When to use colour (`NO_COLOR` turns `auto` off)' -r -f -a "auto\t'Colour on a terminal, unless `NO_COLOR` is set'
always\t''
never\t''"
complete -c ccr -n "__fish_ccr_using_subcommand providers; and not __fish_seen_subcommand_from test help" -s q -l quiet -d 'Print only errors and requested output (no confirmation lines)'
complete -c ccr -n "__fish_ccr_using_subcommand providers; and not __fish_seen_subcommand_from test help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ccr -n "__fish_ccr_using_subcommand providers; and not __fish_seen_subcommand_from test help" -f -a "test" -d 'Send a text, a streaming and a tool-call probe to each provider\'s targets'
complete -c ccr -n "__fish_ccr_using_subcommand providers; and not __fish_seen_subcommand_from test help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ccr -n "__fish_ccr_using_subcommand providers; and __fish_seen_subcommand_from test" -l model -d 'Probe this upstream model instead of the models the routes send each provider' -r
complete -c ccr -n "__fish_ccr_using_subcommand providers; and __fish_seen_subcommand_from test" -l timeout -d 'The longest one probe may take, in seconds' -r
complete -c ccr -n "__fish_ccr_using_subcommand providers; and __fish_seen_subcommand_from test" -l config -d 'Configuration file (default: the platform config directory\'s ccr/config.yaml)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand providers; and __fish_seen_subcommand_from test" -l data-dir -d 'Data directory for logs and state (default: the platform data directory\'s ccr/)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand providers; and __fish_seen_subcommand_from test" -l color -d 'When to use colour (`NO_COLOR` turns `auto` off)' -r -f -a "auto\t'Colour on a terminal, unless `NO_COLOR` is set'
always\t''
never\t''"
complete -c ccr -n "__fish_ccr_using_subcommand providers; and __fish_seen_subcommand_from test" -l json -d 'One JSON document with every probe on stdout'
complete -c ccr -n "__fish_ccr_using_subcommand providers; and __fish_seen_subcommand_from test" -s q -l quiet -d 'Print only errors and requested output (no confirmation lines)'
complete -c ccr -n "__fish_ccr_using_subcommand providers; and __fish_seen_subcommand_from test" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ccr -n "__fish_ccr_using_subcommand providers; and __fish_seen_subcommand_from help" -f -a "test" -d 'Send a text, a streaming and a tool-call probe to each provider\'s targets'
complete -c ccr -n "__fish_ccr_using_subcommand providers; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ccr -n "__fish_ccr_using_subcommand replay" -l since -d 'Failures from this long ago on (e.g. 1h, 2d; default: all that are kept)' -r
complete -c ccr -n "__fish_ccr_using_subcommand replay" -l until -d 'Failures before this time (RFC 3339, e.g. 2026-12-02T18:00:00Z)' -r
complete -c ccr -n "__fish_ccr_using_subcommand replay" -l provider -d 'Only failures whose last attempt went to this provider' -r
complete -c ccr -n "__fish_ccr_using_subcommand replay" -l scenario -d 'Only failures of this scenario (default, background, thinking…)' -r
complete -c ccr -n "__fish_ccr_using_subcommand replay" -l class -d 'Only failures of this class (rate_limit, upstream_5xx, stream_cut…)' -r
complete -c ccr -n "__fish_ccr_using_subcommand replay" -l id -d 'Only these failure ids' -r
complete -c ccr -n "__fish_ccr_using_subcommand replay" -l limit -d 'At most this many' -r
complete -c ccr -n "__fish_ccr_using_subcommand replay" -l concurrency -d 'Replays in flight at once' -r
complete -c ccr -n "__fish_ccr_using_subcommand replay" -l url -d 'The server (default: the address in the config)' -r
complete -c ccr -n "__fish_ccr_using_subcommand replay" -l config -d 'Configuration file (default: the platform config directory\'s ccr/config.yaml)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand replay" -l data-dir -d 'Data directory for logs and state (default: the platform data directory\'s ccr/)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand replay" -l color -d 'When to use colour (`NO_COLOR` turns `auto` off)' -r -f -a "auto\t'Colour on a terminal, unless `NO_COLOR` is set'
always\t''
never\t''"
complete -c ccr -n "__fish_ccr_using_subcommand replay" -l dry-run -d 'Show what would be resent, send nothing'
complete -c ccr -n "__fish_ccr_using_subcommand replay" -l json -d 'One JSON object per replay on stdout'
complete -c ccr -n "__fish_ccr_using_subcommand replay" -s q -l quiet -d 'Print only errors and requested output (no confirmation lines)'
complete -c ccr -n "__fish_ccr_using_subcommand replay" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ccr -n "__fish_ccr_using_subcommand code" -l config -d 'Configuration file (default: the platform config directory\'s ccr/config.yaml)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand code" -l data-dir -d 'Data directory for logs and state (default: the platform data directory\'s ccr/)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand code" -l color -d 'When to use colour (`NO_COLOR` turns `auto` off)' -r -f -a "auto\t'Colour on a terminal, unless `NO_COLOR` is set'
always\t''
never\t''"
complete -c ccr -n "__fish_ccr_using_subcommand code" -s q -l quiet -d 'Print only errors and requested output (no confirmation lines)'
complete -c ccr -n "__fish_ccr_using_subcommand code" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ccr -n "__fish_ccr_using_subcommand activate" -l shell -d 'The shell to write for (default: from $SHELL)' -r -f -a "bash\t''
zsh\t''
fish\t''"
complete -c ccr -n "__fish_ccr_using_subcommand activate" -l config -d 'Configuration file (default: the platform config directory\'s ccr/config.yaml)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand activate" -l data-dir -d 'Data directory for logs and state (default: the platform data directory\'s ccr/)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand activate" -l color -d 'When to use colour (`NO_COLOR` turns `auto` off)' -r -f -a "auto\t'Colour on a terminal, unless `NO_COLOR` is set'
always\t''
never\t''"
complete -c ccr -n "__fish_ccr_using_subcommand activate" -s q -l quiet -d 'Print only errors and requested output (no confirmation lines)'
complete -c ccr -n "__fish_ccr_using_subcommand activate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ccr -n "__fish_ccr_using_subcommand statusline" -l config -d 'Configuration file (default: the platform config directory\'s ccr/config.yaml)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand statusline" -l data-dir -d 'Data directory for logs and state (default: the platform data directory\'s ccr/)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand statusline" -l color -d 'When to use colour (`NO_COLOR` turns `auto` off)' -r -f -a "auto\t'Colour on a terminal, unless `NO_COLOR` is set'
always\t''
never\t''"
complete -c ccr -n "__fish_ccr_using_subcommand statusline" -s q -l quiet -d 'Print only errors and requested output (no confirmation lines)'
complete -c ccr -n "__fish_ccr_using_subcommand statusline" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ccr -n "__fish_ccr_using_subcommand completions" -l config -d 'Configuration file (default: the platform config directory\'s ccr/config.yaml)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand completions" -l data-dir -d 'Data directory for logs and state (default: the platform data directory\'s ccr/)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand completions" -l color -d 'When to use colour (`NO_COLOR` turns `auto` off)' -r -f -a "auto\t'Colour on a terminal, unless `NO_COLOR` is set'
always\t''
never\t''"
complete -c ccr -n "__fish_ccr_using_subcommand completions" -s q -l quiet -d 'Print only errors and requested output (no confirmation lines)'
complete -c ccr -n "__fish_ccr_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ccr -n "__fish_ccr_using_subcommand generate" -l out -d 'Where `completions/` and `man/` go (default: the current directory)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand generate" -l config -d 'Configuration file (default: the platform config directory\'s ccr/config.yaml)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand generate" -l data-dir -d 'Data directory for logs and state (default: the platform data directory\'s ccr/)' -r -F
complete -c ccr -n "__fish_ccr_using_subcommand generate" -l color -d 'When to use colour (`NO_COLOR` turns `auto` off)' -r -f -a "auto\t'Colour on a terminal, unless `NO_COLOR` is set'
always\t''
never\t''"
complete -c ccr -n "__fish_ccr_using_subcommand generate" -s q -l quiet -d 'Print only errors and requested output (no confirmation lines)'
complete -c ccr -n "__fish_ccr_using_subcommand generate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ccr -n "__fish_ccr_using_subcommand help; and not __fish_seen_subcommand_from serve token stats providers replay code activate statusline completions generate help" -f -a "serve" -d 'Run the proxy server'
complete -c ccr -n "__fish_ccr_using_subcommand help; and not __fish_seen_subcommand_from serve token stats providers replay code activate statusline completions generate help" -f -a "token" -d 'Manage CodeWhisperer (Kiro) accounts: import, list, refresh, remove'
complete -c ccr -n "__fish_ccr_using_subcommand help; and not __fish_seen_subcommand_from serve token stats providers replay code activate statusline completions generate help" -f -a "stats" -d 'Show a running server\'s stats'
complete -c ccr -n "__fish_ccr_using_subcommand help; and not __fish_seen_subcommand_from serve token stats providers replay code activate statusline completions generate help" -f -a "providers" -d 'Test the configured providers: a text, a streaming and a tool-call probe each'
complete -c ccr -n "__fish_ccr_using_subcommand help; and not __fish_seen_subcommand_from serve token stats providers replay code activate statusline completions generate help" -f -a "replay" -d 'Resend logged failures through a running server'
complete -c ccr -n "__fish_ccr_using_subcommand help; and not __fish_seen_subcommand_from serve token stats providers replay code activate statusline completions generate help" -f -a "code" -d 'Run Claude Code through ccr, starting `ccr serve` in the background if needed'
complete -c ccr -n "__fish_ccr_using_subcommand help; and not __fish_seen_subcommand_from serve token stats providers replay code activate statusline completions generate help" -f -a "activate" -d 'Print the environment `ccr code` sets, for `eval "$(ccr activate)"`'
complete -c ccr -n "__fish_ccr_using_subcommand help; and not __fish_seen_subcommand_from serve token stats providers replay code activate statusline completions generate help" -f -a "statusline" -d 'Print one status line for Claude Code\'s `statusLine` setting (JSON on stdin)'
complete -c ccr -n "__fish_ccr_using_subcommand help; and not __fish_seen_subcommand_from serve token stats providers replay code activate statusline completions generate help" -f -a "completions" -d 'Print the shell completion script (bash, zsh, fish, powershell, elvish)'
complete -c ccr -n "__fish_ccr_using_subcommand help; and not __fish_seen_subcommand_from serve token stats providers replay code activate statusline completions generate help" -f -a "generate" -d 'Write completions/ and man/ from this definition (for ccr\'s own repository)'
complete -c ccr -n "__fish_ccr_using_subcommand help; and not __fish_seen_subcommand_from serve token stats providers replay code activate statusline completions generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ccr -n "__fish_ccr_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "import" -d 'Import Kiro\'s token file as an account'
complete -c ccr -n "__fish_ccr_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "list" -d 'List accounts with their expiry and status (never a token)'
complete -c ccr -n "__fish_ccr_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "refresh" -d 'Refresh accounts\' tokens and store them (for scripts and cron: quiet when piped)'
complete -c ccr -n "__fish_ccr_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "remove" -d 'Remove an account from the store'
complete -c ccr -n "__fish_ccr_using_subcommand help; and __fish_seen_subcommand_from providers" -f -a "test" -d 'Send a text, a streaming and a tool-call probe to each provider\'s targets'
