//! The one way to the terminal: whether stdout and stderr are terminals, colour, quiet
//! mode, table layout and broken pipes are decided here and nowhere else.

use std::io::{IsTerminal, Write};

use comfy_table::{ContentArrangement, Table, presets};

/// `--color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless `NO_COLOR` is set
    Auto,
    Always,
    Never,
}

/// stdout was closed by its reader (`ccr token list | head -1`): the command ends quietly
/// with exit 0.
#[derive(Debug)]
pub struct Closed;

/// Tables never get narrower than this, also when the terminal's width is unknown or 0.
const MIN_TABLE_WIDTH: u16 = 60;
/// The width assumed for a terminal that does not say, and for pipes.
const DEFAULT_WIDTH: u16 = 100;

pub struct Printer {
    stdout_terminal: bool,
    stderr_terminal: bool,
    color: bool,
    quiet: bool,
    /// The terminal's width in columns, when stdout is one and says.
    width: Option<u16>,
}

impl Printer {
    pub fn new(color: ColorChoice, quiet: bool) -> Printer {
        let stdout_terminal = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stdout_terminal && !no_color,
        };
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<u16>().ok())
            .or_else(|| stdout_terminal.then(terminal_width).flatten());
        Printer {
            stdout_terminal,
            stderr_terminal: std::io::stderr().is_terminal(),
            color,
            quiet,
            width,
        }
    }

    pub fn stdout_is_terminal(&self) -> bool {
        self.stdout_terminal
    }

    pub fn stderr_is_terminal(&self) -> bool {
        self.stderr_terminal
    }

    /// The width tables are laid out for: the terminal's, at least [`MIN_TABLE_WIDTH`].
    pub fn width(&self) -> u16 {
        self.width
            .filter(|&w| w > 0)
            .unwrap_or(DEFAULT_WIDTH)
            .max(MIN_TABLE_WIDTH)
    }

    /// Output: a line on stdout.
    pub fn out(&self, text: &str) -> Result<(), Closed> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{text}")
            .and_then(|()| stdout.flush())
            .map_err(|_| Closed)
    }

    /// Raw bytes on stdout, without a newline (screen control for `--watch`).
    pub fn raw(&self, text: &str) -> Result<(), Closed> {
        let mut stdout = std::io::stdout().lock();
        write!(stdout, "{text}").map_err(|_| Closed)
    }

    /// What a command did, in one line: on a terminal only (a script reads the exit code),
    /// and not with `--quiet`.
    pub fn done(&self, text: &str) -> Result<(), Closed> {
        if self.quiet || !self.stdout_terminal {
            return Ok(());
        }
        self.out(&self.bold(text))
    }

    /// A note on stderr about what the command did on its way (stdout belongs to what it
    /// prints or runs); not with `--quiet`, and a closed stderr is ignored.
    pub fn note(&self, text: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }

    /// A per-item error on stderr; a closed stderr is ignored.
    pub fn error(&self, text: &str) {
        self.labelled("error", "1;31", text);
    }

    /// Something the user should know that does not fail the command.
    pub fn warn(&self, text: &str) {
        self.labelled("warning", "1;33", text);
    }

    fn labelled(&self, label: &str, color: &str, text: &str) {
        let mut stderr = std::io::stderr().lock();
        let _ = if self.color && self.stderr_terminal {
            writeln!(stderr, "\x1b[{color}m{label}\x1b[0m: {text}")
        } else {
            writeln!(stderr, "{label}: {text}")
        };
    }

    /// An empty table with the printer's style: box drawing on a terminal, ASCII when
    /// piped, laid out for [`Printer::width`].
    pub fn table(&self) -> Table {
        let mut table = Table::new();
        table.set_content_arrangement(ContentArrangement::Dynamic);
        table.set_width(self.width());
        table.load_style(if self.stdout_terminal {
            presets::UTF8_FULL
        } else {
            presets::ASCII_FULL
        });
        table
    }

    /// A table of `columns` (header, priority: higher is kept longer) and `rows`, dropping
    /// the lowest-priority columns until it fits [`Printer::width`] unwrapped.
    pub fn fitted_table(&self, columns: &[(&str, u8)], rows: &[Vec<String>]) -> Table {
        let widths: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(i, (header, _))| {
                rows.iter()
                    .map(|row| row[i].chars().count())
                    .chain([header.chars().count()])
                    .max()
                    .unwrap_or(0)
                    // A cell's padding and its left border.
                    + 3
            })
            .collect();
        let mut kept: Vec<usize> = (0..columns.len()).collect();
        let fits = |kept: &[usize]| {
            kept.iter().map(|&i| widths[i]).sum::<usize>() < usize::from(self.width())
        };
        while !fits(&kept) && kept.len() > 1 {
            let weakest = kept
                .iter()
                .enumerate()
                .min_by_key(|&(at, &i)| (columns[i].1, std::cmp::Reverse(at)))
                .map(|(at, _)| at)
                .expect("columns remain");
            kept.remove(weakest);
        }
        let mut table = self.table();
        table.set_header(kept.iter().map(|&i| columns[i].0));
        for row in rows {
            table.add_row(kept.iter().map(|&i| row[i].clone()));
        }
        table
    }

    fn bold(&self, text: &str) -> String {
        if self.color {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// The terminal's width, as comfy-table reads it (crossterm) when stdout is a terminal.
fn terminal_width() -> Option<u16> {
    Table::new().width()
}
