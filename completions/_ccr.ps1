
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'ccr' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'ccr'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'ccr' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (default: the platform config directory''s ccr/config.yaml)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory for logs and state (default: the platform data directory''s ccr/)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (`NO_COLOR` turns `auto` off)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the proxy server')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Manage CodeWhisperer (Kiro) accounts: import, list, refresh, remove')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Show a running server''s stats')
            [CompletionResult]::new('providers', 'providers', [CompletionResultType]::ParameterValue, 'Test the configured providers: a text, a streaming and a tool-call probe each')
            [CompletionResult]::new('replay', 'replay', [CompletionResultType]::ParameterValue, 'Resend logged failures through a running server')
            [CompletionResult]::new('code', 'code', [CompletionResultType]::ParameterValue, 'Run Claude Code through ccr, starting `ccr serve` in the background if needed')
            [CompletionResult]::new('activate', 'activate', [CompletionResultType]::ParameterValue, 'Print the environment `ccr code` sets, for `eval "$(ccr activate)"`')
            [CompletionResult]::new('statusline', 'statusline', [CompletionResultType]::ParameterValue, 'Print one status line for Claude Code''s `statusLine` setting (JSON on stdin)')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print the shell completion script (bash, zsh, fish, powershell, elvish)')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Write completions/ and man/ from this definition (for ccr''s own repository)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'ccr;serve' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Address to listen on (overrides `server.host`)')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Port to listen on; 0 picks a free one (overrides `server.port`)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level (error, warn, info, debug, trace) or a tracing filter such as `ccr=debug`')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (default: the platform config directory''s ccr/config.yaml)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory for logs and state (default: the platform data directory''s ccr/)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (`NO_COLOR` turns `auto` off)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ccr;token' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (default: the platform config directory''s ccr/config.yaml)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory for logs and state (default: the platform data directory''s ccr/)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (`NO_COLOR` turns `auto` off)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Import Kiro''s token file as an account')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List accounts with their expiry and status (never a token)')
            [CompletionResult]::new('refresh', 'refresh', [CompletionResultType]::ParameterValue, 'Refresh accounts'' tokens and store them (for scripts and cron: quiet when piped)')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove an account from the store')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'ccr;token;import' {
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'Kiro''s token file (default: ~/.aws/sso/cache/kiro-auth-token.json)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'The account name, as `accounts:` in the config names it')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (default: the platform config directory''s ccr/config.yaml)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory for logs and state (default: the platform data directory''s ccr/)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (`NO_COLOR` turns `auto` off)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ccr;token;list' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (default: the platform config directory''s ccr/config.yaml)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory for logs and state (default: the platform data directory''s ccr/)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (`NO_COLOR` turns `auto` off)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ccr;token;refresh' {
            [CompletionResult]::new('--if-expiring-within', '--if-expiring-within', [CompletionResultType]::ParameterName, 'Only accounts whose token expires within this long (e.g. `10m`)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (default: the platform config directory''s ccr/config.yaml)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory for logs and state (default: the platform data directory''s ccr/)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (`NO_COLOR` turns `auto` off)')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Refresh every imported account')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the outcome of each account as JSON')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ccr;token;remove' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (default: the platform config directory''s ccr/config.yaml)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory for logs and state (default: the platform data directory''s ccr/)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (`NO_COLOR` turns `auto` off)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ccr;token;help' {
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Import Kiro''s token file as an account')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List accounts with their expiry and status (never a token)')
            [CompletionResult]::new('refresh', 'refresh', [CompletionResultType]::ParameterValue, 'Refresh accounts'' tokens and store them (for scripts and cron: quiet when piped)')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove an account from the store')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'ccr;token;help;import' {
            break
        }
        'ccr;token;help;list' {
            break
        }
        'ccr;token;help;refresh' {
            break
        }
        'ccr;token;help;remove' {
            break
        }
        'ccr;token;help;help' {
            break
        }
        'ccr;stats' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'The server (default: the address in the config)')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Redraw every SECONDS until interrupted')
            [CompletionResult]::new('--by', '--by', [CompletionResultType]::ParameterName, 'Group rows by this key, percentiles merged on the server (the table''s default: provider; `--json` without it: every row)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (default: the platform config directory''s ccr/config.yaml)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory for logs and state (default: the platform data directory''s ccr/)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (`NO_COLOR` turns `auto` off)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the /api/stats document')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ccr;providers' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (default: the platform config directory''s ccr/config.yaml)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory for logs and state (default: the platform data directory''s ccr/)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (`NO_COLOR` turns `auto` off)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('test', 'test', [CompletionResultType]::ParameterValue, 'Send a text, a streaming and a tool-call probe to each provider''s targets')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'ccr;providers;test' {
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Probe this upstream model instead of the models the routes send each provider')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'The longest one probe may take, in seconds')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (default: the platform config directory''s ccr/config.yaml)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory for logs and state (default: the platform data directory''s ccr/)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (`NO_COLOR` turns `auto` off)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One JSON document with every probe on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ccr;providers;help' {
            [CompletionResult]::new('test', 'test', [CompletionResultType]::ParameterValue, 'Send a text, a streaming and a tool-call probe to each provider''s targets')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'ccr;providers;help;test' {
            break
        }
        'ccr;providers;help;help' {
            break
        }
        'ccr;replay' {
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Failures from this long ago on (e.g. 1h, 2d; default: all that are kept)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Failures before this time (RFC 3339, e.g. 2026-12-02T18:00:00Z)')
            [CompletionResult]::new('--provider', '--provider', [CompletionResultType]::ParameterName, 'Only failures whose last attempt went to this provider')
            [CompletionResult]::new('--scenario', '--scenario', [CompletionResultType]::ParameterName, 'Only failures of this scenario (default, background, thinking…)')
            [CompletionResult]::new('--class', '--class', [CompletionResultType]::ParameterName, 'Only failures of this class (rate_limit, upstream_5xx, stream_cut…)')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'Only these failure ids')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'At most this many')
            [CompletionResult]::new('--concurrency', '--concurrency', [CompletionResultType]::ParameterName, 'Replays in flight at once')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'The server (default: the address in the config)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (default: the platform config directory''s ccr/config.yaml)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory for logs and state (default: the platform data directory''s ccr/)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (`NO_COLOR` turns `auto` off)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show what would be resent, send nothing')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One JSON object per replay on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ccr;code' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (default: the platform config directory''s ccr/config.yaml)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory for logs and state (default: the platform data directory''s ccr/)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (`NO_COLOR` turns `auto` off)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ccr;activate' {
            [CompletionResult]::new('--shell', '--shell', [CompletionResultType]::ParameterName, 'The shell to write for (default: from $SHELL)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (default: the platform config directory''s ccr/config.yaml)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory for logs and state (default: the platform data directory''s ccr/)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (`NO_COLOR` turns `auto` off)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ccr;statusline' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (default: the platform config directory''s ccr/config.yaml)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory for logs and state (default: the platform data directory''s ccr/)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (`NO_COLOR` turns `auto` off)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ccr;completions' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (default: the platform config directory''s ccr/config.yaml)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory for logs and state (default: the platform data directory''s ccr/)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (`NO_COLOR` turns `auto` off)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ccr;generate' {
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Where `completions/` and `man/` go (default: the current directory)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (default: the platform config directory''s ccr/config.yaml)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory for logs and state (default: the platform data directory''s ccr/)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (`NO_COLOR` turns `auto` off)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and requested output (no confirmation lines)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ccr;help' {
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the proxy server')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Manage CodeWhisperer (Kiro) accounts: import, list, refresh, remove')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Show a running server''s stats')
            [CompletionResult]::new('providers', 'providers', [CompletionResultType]::ParameterValue, 'Test the configured providers: a text, a streaming and a tool-call probe each')
            [CompletionResult]::new('replay', 'replay', [CompletionResultType]::ParameterValue, 'Resend logged failures through a running server')
            [CompletionResult]::new('code', 'code', [CompletionResultType]::ParameterValue, 'Run Claude Code through ccr, starting `ccr serve` in the background if needed')
            [CompletionResult]::new('activate', 'activate', [CompletionResultType]::ParameterValue, 'Print the environment `ccr code` sets, for `eval "$(ccr activate)"`')
            [CompletionResult]::new('statusline', 'statusline', [CompletionResultType]::ParameterValue, 'Print one status line for Claude Code''s `statusLine` setting (JSON on stdin)')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print the shell completion script (bash, zsh, fish, powershell, elvish)')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Write completions/ and man/ from this definition (for ccr''s own repository)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'ccr;help;serve' {
            break
        }
        'ccr;help;token' {
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Import Kiro''s token file as an account')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List accounts with their expiry and status (never a token)')
            [CompletionResult]::new('refresh', 'refresh', [CompletionResultType]::ParameterValue, 'Refresh accounts'' tokens and store them (for scripts and cron: quiet when piped)')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove an account from the store')
            break
        }
        'ccr;help;token;import' {
            break
        }
        'ccr;help;token;list' {
            break
        }
        'ccr;help;token;refresh' {
            break
        }
        'ccr;help;token;remove' {
            break
        }
        'ccr;help;stats' {
            break
        }
        'ccr;help;providers' {
            [CompletionResult]::new('test', 'test', [CompletionResultType]::ParameterValue, 'Send a text, a streaming and a tool-call probe to each provider''s targets')
            break
        }
        'ccr;help;providers;test' {
            break
        }
        'ccr;help;replay' {
            break
        }
        'ccr;help;code' {
            break
        }
        'ccr;help;activate' {
            break
        }
        'ccr;help;statusline' {
            break
        }
        'ccr;help;completions' {
            break
        }
        'ccr;help;generate' {
            break
        }
        'ccr;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
