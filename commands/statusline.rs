//! `ccr statusline`: one line for Claude Code's `statusLine` setting, about the session
//! whose status JSON arrives on stdin. It always exits 0 with one line: a status line
//! that fails loudly would only clutter Claude Code.

use std::io::{IsTerminal, Read};
use std::time::Duration;

use crate::{AppContext, Failure};
use ccr::config;

#[derive(clap::Args)]
pub struct Args {}

/// Claude Code writes its JSON at once and closes stdin; a stdin that stays open is not
/// waited on for longer than this.
const STDIN_PATIENCE: Duration = Duration::from_millis(300);

/// More than any status JSON.
const MAX_INPUT: u64 = 1 << 20;

pub fn run(context: &AppContext, _args: Args) -> Result<(), Failure> {
    let session = read_stdin().and_then(|input| ccr::statusline::session_of(&input));
    let line = match config::load_client(context.config_path(), context.config_explicit()) {
        Err(_) => "ccr: config error (ccr stats says what)".to_string(),
        Ok(settings) => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Err(_) => "ccr: cannot run".to_string(),
            Ok(runtime) => runtime.block_on(ccr::statusline::line(
                &settings.base_url(),
                settings.server.client_key(),
                session.as_deref(),
            )),
        },
    };
    context.printer.out(&line)?;
    Ok(())
}

/// What Claude Code wrote on stdin; nothing from a terminal.
fn read_stdin() -> Option<Vec<u8>> {
    if std::io::stdin().is_terminal() {
        return None;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut input = Vec::new();
        let read = std::io::stdin().take(MAX_INPUT).read_to_end(&mut input);
        let _ = tx.send(read.map(|_| input));
    });
    rx.recv_timeout(STDIN_PATIENCE).ok()?.ok()
}
