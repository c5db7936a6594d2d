//! `xray-deploy`: see the library's documentation, or `xray-deploy --help`.

use std::process::ExitCode;

const USAGE: &str = "usage: xray-deploy settings CONFIG_FILE | context-hash DIR

settings      checks the deployment settings in this process's environment (the scripts
              source CONFIG_FILE with `set -a` first; the name is for messages) and prints
              every setting, defaults filled in, as shell assignments to eval
context-hash  prints a 12-digit hash of the docker build context DIR: the name and content
              of every file docker would send, its .dockerignore applied";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["settings", config] => {
            xray_deploy::settings::Settings::from_env(config, |key| std::env::var(key).ok())
                .map(|settings| print!("{}", settings.to_shell()))
        }
        ["context-hash", dir] => xray_deploy::context::context_hash(std::path::Path::new(dir))
            .map(|hash| println!("{hash}")),
        ["-h" | "--help"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
