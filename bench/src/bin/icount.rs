//! `corridor-icount <scenario>`: runs one fixed fast-path scenario once, for
//! `scripts/icount.sh` to count under callgrind. `--list` names them all.
//!
//! The process prints one line (scenario and checksum) and exits 0; a
//! scenario that did not do what it says panics (exit 101).

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--list" => {
            for s in bench::SCENARIOS {
                println!("{}\t{}", s.name, s.about);
            }
            ExitCode::SUCCESS
        }
        [name] => match bench::find(name) {
            Some(scenario) => {
                println!("{} {}", scenario.name, scenario.run());
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("unknown scenario {name:?}; `corridor-icount --list` names them");
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!("usage: corridor-icount <scenario> | --list");
            ExitCode::from(2)
        }
    }
}
