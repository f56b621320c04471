//! The `unmix` command line: parses the options ([`cli::args`]) and runs the command's function.

mod cli;

use clap::Parser;
use cli::args::{Cli, Command};

fn main() {
    unmix::alloc::keep_freed_memory();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Runs a command; `Ok` carries the exit status (130 after an interrupt).
fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Pretrain(a) => cli::train::pretrain(a),
        Command::Compare(a) => cli::train::compare(a),
        Command::Preview(a) => cli::train::preview(a),
        Command::Knn(a) => cli::eval::knn(a),
        Command::Linear(a) => cli::eval::linear(a),
        Command::Embed(a) => cli::eval::embed(a),
        Command::Export(a) => cli::eval::export(a),
        Command::Report(a) => cli::eval::report(a),
        Command::Bench(c) => cli::bench::bench(c),
        Command::Selftest(a) => cli::bench::selftest(a),
    }
}
