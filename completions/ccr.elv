
use builtin;
use str;

set edit:completion:arg-completer[ccr] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'ccr'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'ccr'= {
            cand --config 'Configuration file (default: the platform config directory''s ccr/config.yaml)'
            cand --data-dir 'Data directory for logs and state (default: the platform data directory''s ccr/)'
            cand --color 'When to use colour (`NO_COLOR` turns `auto` off)'
            cand -q 'Print only errors and requested output (no confirmation lines)'
            cand --quiet 'Print only errors and requested output (no confirmation lines)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand serve 'Run the proxy server'
            cand token 'Manage CodeWhisperer (Kiro) accounts: import, list, refresh, remove'
            cand stats 'Show a running server''s stats'
            cand providers 'Test the configured providers: a text, a streaming and a tool-call probe each'
            cand replay 'Resend logged failures through a running server'
            cand code 'Run Claude Code through ccr, starting `ccr serve` in the background if needed'
            cand activate 'Print the environment `ccr code` sets, for `eval "$(ccr activate)"`'
            cand statusline 'Print one status line for Claude Code''s `statusLine` setting (JSON on stdin)'
            cand completions 'Print the shell completion script (bash, zsh, fish, powershell, elvish)'
            cand generate 'Write completions/ and man/ from this definition (for ccr''s own repository)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'ccr;serve'= {
            cand --host 'Address to listen on (overrides `server.host`)'
            cand --port 'Port to listen on; 0 picks a free one (overrides `server.port`)'
            cand --log-level 'Log level (error, warn, info, debug, trace) or a tracing filter such as `ccr=debug`'
            cand --config 'Configuration file (default: the platform config directory''s ccr/config.yaml)'
            cand --data-dir 'Data directory for logs and state (default: the platform data directory''s ccr/)'
            cand --color 'When to use colour (`NO_COLOR` turns `auto` off)'
            cand -q 'Print only errors and requested output (no confirmation lines)'
            cand --quiet 'Print only errors and requested output (no confirmation lines)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ccr;token'= {
            cand --config 'Configuration file (default: the platform config directory''s ccr/config.yaml)'
            cand --data-dir 'Data directory for logs and state (default: the platform data directory''s ccr/)'
            cand --color 'When to use colour (`NO_COLOR` turns `auto` off)'
            cand -q 'Print only errors and requested output (no confirmation lines)'
            cand --quiet 'Print only errors and requested output (no confirmation lines)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand import 'Import Kiro''s token file as an account'
            cand list 'List accounts with their expiry and status (never a token)'
            cand refresh 'Refresh accounts'' tokens and store them (for scripts and cron: quiet when piped)'
            cand remove 'Remove an account from the store'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'ccr;token;import'= {
            cand --from 'Kiro''s token file (default: ~/.aws/sso/cache/kiro-auth-token.json)'
            cand --name 'The account name, as `accounts:` in the config names it'
            cand --config 'Configuration file (default: the platform config directory''s ccr/config.yaml)'
            cand --data-dir 'Data directory for logs and state (default: the platform data directory''s ccr/)'
            cand --color 'When to use colour (`NO_COLOR` turns `auto` off)'
            cand -q 'Print only errors and requested output (no confirmation lines)'
            cand --quiet 'Print only errors and requested output (no confirmation lines)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ccr;token;list'= {
            cand --config 'Configuration file (default: the platform config directory''s ccr/config.yaml)'
            cand --data-dir 'Data directory for logs and state (default: the platform data directory''s ccr/)'
            cand --color 'When to use colour (`NO_COLOR` turns `auto` off)'
            cand --json 'Print JSON instead of a table'
            cand -q 'Print only errors and requested output (no confirmation lines)'
            cand --quiet 'Print only errors and requested output (no confirmation lines)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ccr;token;refresh'= {
            cand --if-expiring-within 'Only accounts whose token expires within this long (e.g. `10m`)'
            cand --config 'Configuration file (default: the platform config directory''s ccr/config.yaml)'
            cand --data-dir 'Data directory for logs and state (default: the platform data directory''s ccr/)'
            cand --color 'When to use colour (`NO_COLOR` turns `auto` off)'
            cand --all 'Refresh every imported account'
            cand --json 'Print the outcome of each account as JSON'
            cand -q 'Print only errors and requested output (no confirmation lines)'
            cand --quiet 'Print only errors and requested output (no confirmation lines)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ccr;token;remove'= {
            cand --config 'Configuration file (default: the platform config directory''s ccr/config.yaml)'
            cand --data-dir 'Data directory for logs and state (default: the platform data directory''s ccr/)'
            cand --color 'When to use colour (`NO_COLOR` turns `auto` off)'
            cand -q 'Print only errors and requested output (no confirmation lines)'
            cand --quiet 'Print only errors and requested output (no confirmation lines)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ccr;token;help'= {
            cand import 'Import Kiro''s token file as an account'
            cand list 'List accounts with their expiry and status (never a token)'
            cand refresh 'Refresh accounts'' tokens and store them (for scripts and cron: quiet when piped)'
            cand remove 'Remove an account from the store'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'ccr;token;help;import'= {
        }
        &'ccr;token;help;list'= {
        }
        &'ccr;token;help;refresh'= {
        }
        &'ccr;token;help;remove'= {
        }
        &'ccr;token;help;help'= {
        }
        &'ccr;stats'= {
            cand --url 'The server (default: the address in the config)'
            cand --watch 'Redraw every SECONDS until interrupted'
            cand --by 'Group rows by this key, percentiles merged on the server (the table''s default: provider; `--json` without it: every row)'
            cand --config 'Configuration file (default: the platform config directory''s ccr/config.yaml)'
            cand --data-dir 'Data directory for logs and state (default: the platform data directory''s ccr/)'
            cand --color 'When to use colour (`NO_COLOR` turns `auto` off)'
            cand --json 'Print the /api/stats document'
            cand -q 'Print only errors and requested output (no confirmation lines)'
            cand --quiet 'Print only errors and requested output (no confirmation lines)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ccr;providers'= {
            cand --config 'Configuration file (default: the platform config directory''s ccr/config.yaml)'
            cand --data-dir 'Data directory for logs and state (default: the platform data directory''s ccr/)'
            cand --color 'When to use colour (`NO_COLOR` turns `auto` off)'
            cand -q 'Print only errors and requested output (no confirmation lines)'
            cand --quiet 'Print only errors and requested output (no confirmation lines)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand test 'Send a text, a streaming and a tool-call probe to each provider''s targets'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'ccr;providers;test'= {
            cand --model 'Probe this upstream model instead of the models the routes send each provider'
            cand --timeout 'The longest one probe may take, in seconds'
            cand --config 'Configuration file (default: the platform config directory''s ccr/config.yaml)'
            cand --data-dir 'Data directory for logs and state (default: the platform data directory''s ccr/)'
            cand --color 'When to use colour (`NO_COLOR` turns `auto` off)'
            cand --json 'One JSON document with every probe on stdout'
            cand -q 'Print only errors and requested output (no confirmation lines)'
            cand --quiet 'Print only errors and requested output (no confirmation lines)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ccr;providers;help'= {
            cand test 'Send a text, a streaming and a tool-call probe to each provider''s targets'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'ccr;providers;help;test'= {
        }
        &'ccr;providers;help;help'= {
        }
        &'ccr;replay'= {
            cand --since 'Failures from this long ago on (e.g. 1h, 2d; default: all that are kept)'
            cand --until 'Failures before this time (RFC 3339, e.g. 2026-12-02T18:00:00Z)'
            cand --provider 'Only failures whose last attempt went to this provider'
            cand --scenario 'Only failures of this scenario (default, background, thinking…)'
            cand --class 'Only failures of this class (rate_limit, upstream_5xx, stream_cut…)'
            cand --id 'Only these failure ids'
            cand --limit 'At most this many'
            cand --concurrency 'Replays in flight at once'
            cand --url 'The server (default: the address in the config)'
            cand --config 'Configuration file (default: the platform config directory''s ccr/config.yaml)'
            cand --data-dir 'Data directory for logs and state (default: the platform data directory''s ccr/)'
            cand --color 'When to use colour (`NO_COLOR` turns `auto` off)'
            cand --dry-run 'Show what would be resent, send nothing'
            cand --json 'One JSON object per replay on stdout'
            cand -q 'Print only errors and requested output (no confirmation lines)'
            cand --quiet 'Print only errors and requested output (no confirmation lines)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ccr;code'= {
            cand --config 'Configuration file (default: the platform config directory''s ccr/config.yaml)'
            cand --data-dir 'Data directory for logs and state (default: the platform data directory''s ccr/)'
            cand --color 'When to use colour (`NO_COLOR` turns `auto` off)'
            cand -q 'Print only errors and requested output (no confirmation lines)'
            cand --quiet 'Print only errors and requested output (no confirmation lines)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ccr;activate'= {
            cand --shell 'The shell to write for (default: from $SHELL)'
            cand --config 'Configuration file (default: the platform config directory''s ccr/config.yaml)'
            cand --data-dir 'Data directory for logs and state (default: the platform data directory''s ccr/)'
            cand --color 'When to use colour (`NO_COLOR` turns `auto` off)'
            cand -q 'Print only errors and requested output (no confirmation lines)'
            cand --quiet 'Print only errors and requested output (no confirmation lines)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ccr;statusline'= {
            cand --config 'Configuration file (default: the platform config directory''s ccr/config.yaml)'
            cand --data-dir 'Data directory for logs and state (default: the platform data directory''s ccr/)'
            cand --color 'When to use colour (`NO_COLOR` turns `auto` off)'
            cand -q 'Print only errors and requested output (no confirmation lines)'
            cand --quiet 'Print only errors and requested output (no confirmation lines)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ccr;completions'= {
            cand --config 'Configuration file (default: the platform config directory''s ccr/config.yaml)'
            cand --data-dir 'Data directory for logs and state (default: the platform data directory''s ccr/)'
            cand --color 'When to use colour (`NO_COLOR` turns `auto` off)'
            cand -q 'Print only errors and requested output (no confirmation lines)'
            cand --quiet 'Print only errors and requested output (no confirmation lines)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ccr;generate'= {
            cand --out 'Where `completions/` and `man/` go (default: the current directory)'
            cand --config 'Configuration file (default: the platform config directory''s ccr/config.yaml)'
            cand --data-dir 'Data directory for logs and state (default: the platform data directory''s ccr/)'
            cand --color 'When to use colour (`NO_COLOR` turns `auto` off)'
            cand -q 'Print only errors and requested output (no confirmation lines)'
            cand --quiet 'Print only errors and requested output (no confirmation lines)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ccr;help'= {
            cand serve 'Run the proxy server'
            cand token 'Manage CodeWhisperer (Kiro) accounts: import, list, refresh, remove'
            cand stats 'Show a running server''s stats'
            cand providers 'Test the configured providers: a text, a streaming and a tool-call probe each'
            cand replay 'Resend logged failures through a running server'
            cand code 'Run Claude Code through ccr, starting `ccr serve` in the background if needed'
            cand activate 'Print the environment `ccr code` sets, for `eval "$(ccr activate)"`'
            cand statusline 'Print one status line for Claude Code''s `statusLine` setting (JSON on stdin)'
            cand completions 'Print the shell completion script (bash, zsh, fish, powershell, elvish)'
            cand generate 'Write completions/ and man/ from this definition (for ccr''s own repository)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'ccr;help;serve'= {
        }
        &'ccr;help;token'= {
            cand import 'Import Kiro''s token file as an account'
            cand list 'List accounts with their expiry and status (never a token)'
            cand refresh 'Refresh accounts'' tokens and store them (for scripts and cron: quiet when piped)'
            cand remove 'Remove an account from the store'
        }
        &'ccr;help;token;import'= {
        }
        &'ccr;help;token;list'= {
        }
        &'ccr;help;token;refresh'= {
        }
        &'ccr;help;token;remove'= {
        }
        &'ccr;help;stats'= {
        }
        &'ccr;help;providers'= {
            cand test 'Send a text, a streaming and a tool-call probe to each provider''s targets'
        }
        &'ccr;help;providers;test'= {
        }
        &'ccr;help;replay'= {
        }
        &'ccr;help;code'= {
        }
        &'ccr;help;activate'= {
        }
        &'ccr;help;statusline'= {
        }
        &'ccr;help;completions'= {
        }
        &'ccr;help;generate'= {
        }
        &'ccr;help;help'= {
        }
    ]
    $completions[$command]
}
